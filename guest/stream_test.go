package guest

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDialOverAStream: an endpoint with Stream reaches sshd through it
// (here a TCP stand-in for the vsock channel), never through Addr, and
// pins the host key as over TCP, reconnects included.
func TestDialOverAStream(t *testing.T) {
	s := newTestServer(t)
	var streams atomic.Int64
	ep := s.endpoint()
	ep.Addr = "192.0.2.1:22" // TEST-NET-1: a TCP dial there would never answer
	ep.Stream = func(ctx context.Context) (net.Conn, error) {
		streams.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", s.addr)
	}
	o := testOptions(t)
	o.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	o.HostKeyAlias = "sxlab-cell-r1-t1"
	c, err := Dial(context.Background(), ep, o)
	require.NoError(t, err)
	defer c.Close()
	res, err := c.Run(context.Background(), Cmd{Line: "echo over the agent"})
	require.NoError(t, err)
	assert.Equal(t, "over the agent\n", res.Stdout)
	assert.Equal(t, int64(1), streams.Load())

	s.dropAll()
	require.NoError(t, c.Reconnect(context.Background()))
	assert.GreaterOrEqual(t, streams.Load(), int64(2), "a reconnect takes the stream again")

	// A guest that now shows another host key is refused, as over TCP.
	s.setHostKey(newSigner(t))
	s.dropAll()
	err = c.Reconnect(context.Background())
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrHostKeyChanged), "%v", err)
}
