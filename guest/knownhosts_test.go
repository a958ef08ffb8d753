package guest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func knownHostsLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func TestTrustOnFirstUseRecordsKnownHostsAndRejectsAChangedKey(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	o.HostKeyAlias = "sxlab-cell-1"
	c := dialTest(t, s, o)

	lines := knownHostsLines(t, o.KnownHosts)
	require.Len(t, lines, 1)
	want := "sxlab-cell-1 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.publicHostKey())))
	assert.Equal(t, want, lines[0])

	// A reboot with the same key: Reconnect is silent and the file unchanged.
	s.dropAll()
	require.NoError(t, c.Reconnect(context.Background()))
	_, err := c.Run(context.Background(), Cmd{Line: "echo again"})
	require.NoError(t, err)
	assert.Len(t, knownHostsLines(t, o.KnownHosts), 1)

	// The guest comes back with another key: refused, not retried.
	old := s.publicHostKey()
	s.setHostKey(newSigner(t))
	s.dropAll()
	accepts := s.accepts.Load()
	err = c.Reconnect(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrHostKeyChanged)
	assert.Contains(t, err.Error(), ssh.FingerprintSHA256(old))
	assert.Contains(t, err.Error(), ssh.FingerprintSHA256(s.publicHostKey()))
	hk, ok := errors.AsType[*HostKeyChangedError](err)
	require.True(t, ok)
	assert.Equal(t, "sxlab-cell-1", hk.Host)
	assert.Equal(t, int64(1), s.accepts.Load()-accepts, "a changed key is not retried")
	assert.Len(t, knownHostsLines(t, o.KnownHosts), 1, "the new key was not recorded")

	// Nothing runs on the refused guest.
	_, err = c.Run(context.Background(), Cmd{Line: "echo no"})
	assert.ErrorIs(t, err, ErrConnectionLost)
}

func TestKnownHostsAliasSurvivesAnAddressChange(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	o := testOptions(t)
	o.KnownHosts = filepath.Join(dir, "known_hosts")
	o.HostKeyAlias = "sxlab-cell-2"

	first := newTestServer(t)
	c1 := dialTest(t, first, o)
	require.NoError(t, c1.Close())

	// Same guest (same key) after a reboot that gave it a new address.
	moved := newTestServer(t)
	moved.setHostKey(*first.hostKey.Load())
	c2 := dialTest(t, moved, o)
	_, err := c2.Run(context.Background(), Cmd{Line: "echo moved"})
	require.NoError(t, err)
	assert.Len(t, knownHostsLines(t, o.KnownHosts), 1)

	// Another machine under the same name: the file's record wins.
	impostor := newTestServer(t)
	_, err = Dial(context.Background(), impostor.endpoint(), o)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrHostKeyChanged)
	assert.Contains(t, err.Error(), o.KnownHosts+":1")
}

func TestTrustOnFirstUseInMemory(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))

	s.setHostKey(newSigner(t))
	s.dropAll()
	err := c.Reconnect(context.Background())
	assert.ErrorIs(t, err, ErrHostKeyChanged)
	assert.Contains(t, err.Error(), "trusted on first use")
}

func TestPinnedEndpointHostKey(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	ep := s.endpoint()
	ep.HostKey = string(ssh.MarshalAuthorizedKey(s.publicHostKey()))
	o := testOptions(t)
	o.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")

	c, err := Dial(context.Background(), ep, o)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	b, err := os.ReadFile(o.KnownHosts)
	require.NoError(t, err, "a key the provider knows is recorded, so OpenSSH can check it too")
	assert.Contains(t, string(b), strings.TrimSpace(ep.HostKey))
	assert.Equal(t, 1, strings.Count(string(b), "\n"), "one line per machine")

	other := newSigner(t)
	ep.HostKey = string(ssh.MarshalAuthorizedKey(other.PublicKey()))
	start := time.Now()
	_, err = Dial(context.Background(), ep, o)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrHostKeyChanged)
	assert.Contains(t, err.Error(), ssh.FingerprintSHA256(other.PublicKey()))
	assert.Contains(t, err.Error(), ssh.FingerprintSHA256(s.publicHostKey()))
	assert.Equal(t, int64(2), s.accepts.Load(), "one good dial, one refused without retries")
	assert.Less(t, time.Since(start), promptly)

	ep.HostKey = "ssh-ed25519 not-base64"
	_, err = Dial(context.Background(), ep, o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "endpoint host key")
}

func TestHostKeyAlgorithmFollowsThePinnedKey(t *testing.T) {
	h, err := newHostKeys(Endpoint{Addr: "cell:22"}, Options{KnownHosts: filepath.Join(t.TempDir(), "known_hosts")})
	require.NoError(t, err)
	assert.Nil(t, h.algorithms(), "nothing known, nothing asked")

	ed := newSigner(t).PublicKey()
	require.NoError(t, h.appendFile(ed))
	assert.Equal(t, []string{ssh.KeyAlgoED25519}, h.algorithms(), "from the file")

	h.pinned = ed
	assert.Equal(t, []string{ssh.KeyAlgoED25519}, h.algorithms())
}
