package guest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim"
)

// simNoLeaks checks, after every other cleanup, that the test left no
// goroutine behind.
func simNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// simGuest boots a simulated Mac and dials it the way the lab does.
func simGuest(t *testing.T) *guest.Client {
	t.Helper()
	return simGuestLogging(t, t.Logf)
}

// simGuestLogging is simGuest with the client's notes going to logf.
func simGuestLogging(t *testing.T, logf func(string, ...any)) *guest.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := sim.NewProvider(sim.Options{BaseDir: t.TempDir(), Seed: 1})
	img := vm.Image{Name: "macos-15.3", User: "admin", Password: "admin",
		Sim: &vm.SimImage{ProductVersion: "15.3", Build: "24D60"}}
	m, err := p.Clone(ctx, img, "guest-sim-test")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Delete(context.Background())) })
	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	require.True(t, ep.Simulated)
	require.NotEmpty(t, ep.HostKey, "the sim knows its host key, so the client pins it")

	c, err := guest.Dial(ctx, ep, guest.Options{
		ConnectTimeout: 20 * time.Second, BackoffInitial: 10 * time.Millisecond,
		BackoffMax: 100 * time.Millisecond, Logf: logf,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func simWord(r *rand.Rand) string {
	alphabet := []rune("aZ9 \t\n'\"$`\\!*?[]{}();&|<>~#=%-é漢🙂")
	out := make([]rune, r.IntN(12))
	for i := range out {
		out[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(out)
}

// TestSimQuoteRoundTrip: words quoted with guest.Quote reach the
// simulated Mac's shell and come back byte for byte.
func TestSimQuoteRoundTrip(t *testing.T) {
	simNoLeaks(t)
	c := simGuest(t)
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		w := simWord(r)
		res, err := c.Run(context.Background(), guest.Cmd{Line: "printf %s " + guest.Quote(w)})
		require.NoError(t, err, "word %q", w)
		require.Equal(t, 0, res.Exit, "word %q: %s", w, res.Stderr)
		require.Equal(t, w, res.Stdout, "word %q quoted as %s", w, guest.Quote(w))
	}
}

func TestSimSwVers(t *testing.T) {
	simNoLeaks(t)
	c := simGuest(t)
	res, err := c.Run(context.Background(), guest.Cmd{Line: "sw_vers"})
	require.NoError(t, err)
	require.Equal(t, 0, res.Exit, res.Stderr)
	v, err := guest.ParseSwVers(strings.NewReader(res.Stdout))
	require.NoError(t, err)
	assert.Equal(t, "macOS", v.ProductName)
	assert.Equal(t, "15.3", v.ProductVersion)
	assert.Equal(t, "24D60", v.BuildVersion)
}

// TestSimTransfersAndReboot: files cross both ways verified by the sim's
// shasum; a reboot step drops the connection and Reconnect finds the
// same pinned host key; the home folder keeps its files, /tmp does not.
func TestSimTransfersAndReboot(t *testing.T) {
	simNoLeaks(t)
	c := simGuest(t)
	ctx := context.Background()
	dir := t.TempDir()
	data := bytes.Repeat([]byte("sxlab "), 200_000)
	local := filepath.Join(dir, "Example VPN.pkg")
	require.NoError(t, os.WriteFile(local, data, 0o644))

	require.NoError(t, c.Upload(ctx, local, "/Users/admin/Example VPN.pkg", nil))
	require.NoError(t, c.Upload(ctx, local, "/tmp/Example VPN.pkg", nil))
	back := filepath.Join(dir, "back.pkg")
	require.NoError(t, c.Download(ctx, "/Users/admin/Example VPN.pkg", back, nil))
	got, err := os.ReadFile(back)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got))

	res, err := c.Run(ctx, guest.Cmd{Line: "sudo shutdown -r now"})
	if err != nil {
		require.True(t, errors.Is(err, guest.ErrConnectionLost), "%v", err)
	} else {
		require.Equal(t, 0, res.Exit, res.Stderr)
	}
	require.NoError(t, c.Reconnect(ctx))
	res, err = c.Run(ctx, guest.Cmd{Line: "cat " + guest.Quote("/Users/admin/Example VPN.pkg") + " | wc -c"})
	require.NoError(t, err)
	assert.Equal(t, "1200000", strings.TrimSpace(res.Stdout), "what is on disk survives the reboot")
	res, err = c.Run(ctx, guest.Cmd{Line: "ls " + guest.Quote("/tmp/Example VPN.pkg")})
	require.NoError(t, err)
	assert.NotEqual(t, 0, res.Exit, "a restart empties /tmp (docs/macos-behaviour.md rule 26)")
}

// TestSimTransfersUseOpenSSHsRequestSize: the sim's SFTP server offers
// limits@openssh.com as a Mac's sftp-server does, so the lab's client
// takes the path it takes against a Mac, 255 KiB requests (its own note
// says which size it chose), and files of a few MB still cross intact
// both ways (Upload and Download check the sim's shasum).
func TestSimTransfersUseOpenSSHsRequestSize(t *testing.T) {
	simNoLeaks(t)
	var mu sync.Mutex
	var notes []string
	c := simGuestLogging(t, func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		notes = append(notes, fmt.Sprintf(format, args...))
	})
	ctx := context.Background()
	dir := t.TempDir()
	data := make([]byte, 5<<20+12345) // not a multiple of the request size
	rand.NewChaCha8([32]byte{3}).Read(data)
	local := filepath.Join(dir, "sxlab-probe")
	require.NoError(t, os.WriteFile(local, data, 0o755))

	require.NoError(t, c.Upload(ctx, local, "/Users/admin/sxlab-probe", nil))
	back := filepath.Join(dir, "back")
	require.NoError(t, c.Download(ctx, "/Users/admin/sxlab-probe", back, nil))
	got, err := os.ReadFile(back)
	require.NoError(t, err)
	assert.Equal(t, sha256.Sum256(data), sha256.Sum256(got))

	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, notes, "sftp: requests of up to 261120 bytes", "255 KiB, as against a Mac")
}
