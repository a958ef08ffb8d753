package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	cryptossh "golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim"
)

// spareMac starts a simulated Mac to stand in for the existing one.
func spareMac(t *testing.T) (*sim.Machine, guest.Endpoint) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	sp := sim.NewProvider(sim.Options{TimeScale: 0, BaseDir: t.TempDir()})
	ctx := t.Context()
	m, err := sp.NewMachine(ctx, vm.Image{Name: "spare", User: "admin", Password: "s3cret",
		Sim: &vm.SimImage{ProductVersion: "15.3", Build: "24D60"}}, "spare-mac")
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Delete(context.Background()) })
	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	return m, ep
}

func provider(t *testing.T, o Options) *Provider {
	t.Helper()
	o.ConnectTimeout = 10 * time.Second
	p, err := NewProvider(o)
	require.NoError(t, err)
	return p
}

// read runs a command on the spare Mac and returns its stdout.
func read(t *testing.T, ep guest.Endpoint, line string) string {
	t.Helper()
	c, err := guest.Dial(t.Context(), ep, guest.Options{ConnectTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	res, err := c.Run(t.Context(), guest.Cmd{Line: line})
	require.NoError(t, err)
	return res.Stdout
}

func TestAttemptsOnTheSpareMac(t *testing.T) {
	mac, simEP := spareMac(t)
	p := provider(t, Options{Host: "spare", Address: simEP.Addr, User: "admin", Password: "s3cret",
		Reset: "rm -f /tmp/dirty; echo reset >> /tmp/resets"})
	ctx := t.Context()
	assert.Equal(t, "ssh", p.Name())
	assert.False(t, p.Simulated(), "a Mac at an address is taken for real until it says otherwise")

	m, err := p.Clone(ctx, vm.Image{Name: "macos"}, "sxlab-abc-r1-t1")
	require.NoError(t, err)
	assert.True(t, p.Simulated(), "its sshd said it is sxlab's simulated Mac: results must say so")
	assert.Equal(t, "reset\n", read(t, simEP, "cat /tmp/resets"), "the reset ran before the attempt")

	_, err = m.Endpoint(ctx)
	require.Error(t, err, "no endpoint before Start")
	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, simEP.Addr, ep.Addr)
	assert.Equal(t, "admin", ep.User)
	assert.Equal(t, "s3cret", ep.Password)
	assert.True(t, ep.Simulated, "the endpoint carries the label to every record")
	assert.Equal(t, strings.TrimSpace(string(cryptossh.MarshalAuthorizedKey(mac.HostKey()))), ep.HostKey,
		"the key seen first is pinned")

	// The attempt dirties the Mac; the next attempt's reset cleans it.
	read(t, ep, "touch /tmp/dirty")
	_, err = p.Clone(ctx, vm.Image{Name: "macos"}, "sxlab-abc-r2-t1")
	require.ErrorIs(t, err, ErrBusy, "one attempt at a time")
	assert.Contains(t, err.Error(), "sxlab-abc-r1-t1 is still using it")

	require.NoError(t, m.Stop(ctx))
	require.NoError(t, m.Delete(ctx))
	require.NoError(t, m.Delete(ctx))
	assert.Equal(t, "yes\n", read(t, simEP, "test -e /tmp/dirty && echo yes"), "Stop and Delete touch nothing")

	m2, err := p.Clone(ctx, vm.Image{Name: "macos"}, "sxlab-abc-r2-t1")
	require.NoError(t, err)
	assert.Equal(t, "reset\nreset\n", read(t, simEP, "cat /tmp/resets"))
	assert.Equal(t, "no\n", read(t, simEP, "test -e /tmp/dirty && echo yes || echo no"))
	require.NoError(t, m2.Delete(ctx))
	require.NoError(t, p.Reap(ctx))
}

func TestImageCredentialsWhenTheHostHasNone(t *testing.T) {
	_, simEP := spareMac(t)
	p := provider(t, Options{Address: simEP.Addr})
	m, err := p.Clone(t.Context(), vm.Image{Name: "macos", User: "admin", Password: "s3cret"}, "a")
	require.NoError(t, err)
	require.NoError(t, m.Start(t.Context()))
	ep, err := m.Endpoint(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "s3cret", ep.Password)
	assert.Equal(t, "admin", ep.User)
	require.NoError(t, m.Delete(t.Context()))

	// A user on the host and no auth: the image's password still serves.
	p = provider(t, Options{Address: simEP.Addr, User: "admin"})
	m, err = p.Clone(t.Context(), vm.Image{Name: "macos", User: "someone-else", Password: "s3cret"}, "b")
	require.NoError(t, err)
	require.NoError(t, m.Start(t.Context()))
	ep, err = m.Endpoint(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "admin", ep.User, "the host's user wins")
	require.NoError(t, m.Delete(t.Context()))
}

func TestFailedResetFailsTheClone(t *testing.T) {
	_, simEP := spareMac(t)
	p := provider(t, Options{Host: "spare", Address: simEP.Addr, User: "admin", Password: "s3cret",
		Reset: "echo cannot uninstall Example.app >&2; exit 3"})
	_, err := p.Clone(t.Context(), vm.Image{Name: "macos"}, "a")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ssh host spare")
	assert.Contains(t, err.Error(), "exited 3")
	assert.Contains(t, err.Error(), "cannot uninstall Example.app")

	// The slot is free again: a fixed reset works.
	p.o.Reset = "true"
	m, err := p.Clone(t.Context(), vm.Image{Name: "macos"}, "b")
	require.NoError(t, err)
	require.NoError(t, m.Delete(t.Context()))
}

func TestPinnedHostKey(t *testing.T) {
	mac, simEP := spareMac(t)
	right := strings.TrimSpace(string(cryptossh.MarshalAuthorizedKey(mac.HostKey())))
	p := provider(t, Options{Address: simEP.Addr, User: "admin", Password: "s3cret", HostKey: right})
	m, err := p.Clone(t.Context(), vm.Image{Name: "macos"}, "a")
	require.NoError(t, err)
	require.NoError(t, m.Delete(t.Context()))

	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	other, err := cryptossh.NewPublicKey(pub)
	require.NoError(t, err)
	p = provider(t, Options{Address: simEP.Addr, User: "admin", Password: "s3cret",
		HostKey: string(cryptossh.MarshalAuthorizedKey(other))})
	_, err = p.Clone(t.Context(), vm.Image{Name: "macos"}, "a")
	require.ErrorIs(t, err, guest.ErrHostKeyChanged, "another machine at the address is refused")
}

func TestWrongPasswordFailsTheClone(t *testing.T) {
	_, simEP := spareMac(t)
	p := provider(t, Options{Address: simEP.Addr, User: "admin", Password: "wrong"})
	_, err := p.Clone(t.Context(), vm.Image{Name: "macos"}, "a")
	require.ErrorIs(t, err, guest.ErrAuth)
}

func TestOptions(t *testing.T) {
	for in, want := range map[string]string{
		"mac-mini.local":      "mac-mini.local:22",
		"mac-mini.local:2222": "mac-mini.local:2222",
		"192.168.1.20":        "192.168.1.20:22",
		"fe80::1":             "[fe80::1]:22",
		"[fe80::1]":           "[fe80::1]:22",
		"[fe80::1]:2200":      "[fe80::1]:2200",
	} {
		got, err := withPort(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"mac:", "a b", "http://mac/"} {
		_, err := withPort(bad)
		assert.Error(t, err, bad)
	}
	_, err := NewProvider(Options{Host: "spare"})
	require.ErrorContains(t, err, "ssh host spare: no address")
	_, err = NewProvider(Options{Host: "spare", Address: "mac", HostKey: "not a key"})
	require.ErrorContains(t, err, "host key")
}

func TestUnreachableMac(t *testing.T) {
	// A port nothing listens on: the key scan fails at once.
	p := provider(t, Options{Address: "127.0.0.1:1", User: "admin", Password: "x"})
	_, err := p.Clone(t.Context(), vm.Image{Name: "macos"}, "a")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read the host key of 127.0.0.1:1")
}
