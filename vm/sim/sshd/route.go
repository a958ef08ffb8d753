package sshd

import (
	"net"
	"sync"
)

// Route is the guest's route back to the host side of its NAT network,
// the one the lab's TCP to sshd travels. A VPN that takes every route (a
// full tunnel, NEVPNProtocol.includeAllNetworks) sends the guest's half
// of those connections into the tunnel, where the host never sees it:
// the host's new connections get no answer (its SYN arrives, the SYN-ACK
// goes into the tunnel), and established ones stall both ways, neither
// reset nor closed, until the route comes back. Captured models that at
// the connections: while it is set, no byte moves either way on a
// connection Wrap made; what was in flight is delivered once it clears,
// as TCP's retransmissions would. The loopback (where the guest agent
// reaches sshd) is not routed through the tunnel and is never wrapped.
type Route struct {
	mu       sync.Mutex
	captured bool
	changed  chan struct{} // closed and replaced on every change
}

// NewRoute returns a route that is not captured.
func NewRoute() *Route { return &Route{changed: make(chan struct{})} }

// Capture sets (true) or clears (false) the capture.
func (r *Route) Capture(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.captured == on {
		return
	}
	r.captured = on
	close(r.changed)
	r.changed = make(chan struct{})
}

// Captured says whether the guest's traffic to the host is captured.
func (r *Route) Captured() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.captured
}

// state returns the capture and the channel its next change closes.
func (r *Route) state() (bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.captured, r.changed
}

// Wrap makes c a connection over this route.
func (r *Route) Wrap(c net.Conn) net.Conn {
	return &routedConn{Conn: c, r: r, closed: make(chan struct{})}
}

// routedConn is a TCP connection of the guest's NAT network.
type routedConn struct {
	net.Conn
	r         *Route
	closeOnce sync.Once
	closed    chan struct{}
}

// pass waits until the route is not captured; false when the connection
// was closed first (the machine stopped or rebooted, or sshd gave up).
func (c *routedConn) pass() bool {
	for {
		captured, changed := c.r.state()
		if !captured {
			return true
		}
		select {
		case <-changed:
		case <-c.closed:
			return false
		}
	}
}

// Read waits out a capture before and after reading: bytes (or the
// client's FIN) that arrive while the route is captured are the guest's
// to acknowledge, and its acknowledgements go into the tunnel, so the
// guest does not see them until the route is back.
func (c *routedConn) Read(p []byte) (int, error) {
	if !c.pass() {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if !c.pass() {
		return 0, net.ErrClosed
	}
	return n, err
}

// Write waits out a capture: what the guest sends goes into the tunnel.
func (c *routedConn) Write(p []byte) (int, error) {
	if !c.pass() {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *routedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
