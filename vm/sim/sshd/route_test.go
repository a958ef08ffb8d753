package sshd

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// routedPair is a TCP connection whose guest side goes over r.
func routedPair(t *testing.T, r *Route) (host, guest net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	host, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	g := <-accepted
	require.NotNil(t, g)
	guest = r.Wrap(g)
	t.Cleanup(func() { host.Close(); guest.Close() })
	return host, guest
}

// The stalls below are bounded by the test's own deadlines: what must
// not happen is a byte getting through while the route is captured.
func TestCapturedRouteMovesNoByteUntilReleased(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := NewRoute()
	host, guest := routedPair(t, r)

	_, err := guest.Write([]byte("before\n"))
	require.NoError(t, err)
	buf := make([]byte, 7)
	_, err = io.ReadFull(host, buf)
	require.NoError(t, err)
	assert.Equal(t, "before\n", string(buf))

	r.Capture(true)
	assert.True(t, r.Captured())
	wrote := make(chan error, 1)
	go func() {
		_, err := guest.Write([]byte("during\n"))
		wrote <- err
	}()
	_, err = host.Write([]byte("asked\n"))
	require.NoError(t, err, "the host's side sends; its bytes go nowhere the guest sees")
	read := make(chan string, 1)
	go func() {
		b := make([]byte, 6)
		_, _ = io.ReadFull(guest, b)
		read <- string(b)
	}()
	require.NoError(t, host.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, err = host.Read(buf)
	require.Error(t, err, "nothing from the guest while captured")
	select {
	case s := <-read:
		t.Fatalf("the guest read %q while captured", s)
	case <-time.After(100 * time.Millisecond):
	}

	r.Capture(false)
	require.NoError(t, <-wrote)
	assert.Equal(t, "asked\n", <-read, "what the host sent arrives once the route is back")
	require.NoError(t, host.SetReadDeadline(time.Time{}))
	_, err = io.ReadFull(host, buf)
	require.NoError(t, err)
	assert.Equal(t, "during\n", string(buf))
}

func TestClosingACapturedConnectionEndsItsWaits(t *testing.T) {
	defer goleak.VerifyNone(t)
	r := NewRoute()
	_, guest := routedPair(t, r)
	r.Capture(true)
	errs := make(chan error, 2)
	go func() { _, err := guest.Write([]byte("x")); errs <- err }()
	go func() { _, err := guest.Read(make([]byte, 1)); errs <- err }()
	time.Sleep(20 * time.Millisecond) // both are waiting (or about to): either way Close ends them
	require.NoError(t, guest.Close())
	assert.ErrorIs(t, <-errs, net.ErrClosed)
	assert.ErrorIs(t, <-errs, net.ErrClosed)
}
