package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sxlab/sxlab/cmd/sxlab-agent/forward"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/sshd"
)

// The two ways to a simulated Mac's sshd, as on a vz guest: TCP over the
// guest's NAT network (Endpoint's address; a VPN that captures the
// guest's traffic to the host stalls it, see sshd.Route) and, when the
// image has the agent, the agent's vsock port (DialGuest), which is no
// network at all. The guest's side of the vsock port is sxlab-agent's own
// forwarder (cmd/sxlab-agent/forward) joining each stream to sshd on the
// guest's loopback; in-memory pipes stand in for the socket device.

// DialGuest is vm.StreamDialer: a stream to port on the guest's side of
// the channel. Only the agent listens (on vm.AgentPort), and only on an
// image that has it; elsewhere the connection is refused, as vsock
// refuses a port nobody listens on.
func (m *Machine) DialGuest(ctx context.Context, port uint32) (net.Conn, error) {
	m.mu.Lock()
	running, ln := m.state == machineRunning, m.vsock
	m.mu.Unlock()
	switch {
	case !running:
		return nil, fmt.Errorf("dial %s over vsock: the machine is not running", m.name)
	case ln == nil || port != vm.AgentPort:
		return nil, fmt.Errorf("dial %s over vsock: connect to port %d: connection reset by peer", m.name, port)
	}
	c, err := ln.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("dial %s over vsock: connect to port %d: %w", m.name, port, err)
	}
	return c, nil
}

// startAgent runs the guest agent until ctx (the machine's run) ends.
// Callers hold mu.
func (m *Machine) startAgent(ctx context.Context, srv *sshd.Server) {
	ln := newPipeListener(fmt.Sprintf("vsock:%d", vm.AgentPort))
	m.vsock = ln
	toSSHD := func(context.Context) (net.Conn, error) {
		agentSide, sshdSide := net.Pipe()
		srv.ServeConn(sshdSide) // 127.0.0.1:22: the loopback, never captured
		return agentSide, nil
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := forward.Serve(ctx, ln, toSSHD, m.logf); err != nil {
			m.logf("sim: %s: agent: %v", m.name, err)
		}
	}()
}

// CaptureHostRoute is macos.Network: a connected VPN took the guest's
// route to the host (the vpn-captures-host-traffic fault), or gave it
// back. The capture begins once the commands running now have ended (at
// most rebootGrace later): the command that saw the VPN connect still
// gets its answer out, and whatever the lab sends next over TCP meets
// the captured route. Its release is at once.
func (m *Machine) CaptureHostRoute(captured bool) {
	m.routeMu.Lock()
	m.routeGen++
	gen := m.routeGen
	if !captured || m.route.Captured() {
		m.route.Capture(captured)
		m.routeMu.Unlock()
		return
	}
	m.routeMu.Unlock()
	// Called from a command, which the machine's WaitGroup counts, so
	// this Add cannot race Stop's Wait.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.mu.Lock()
		srv, ctx := m.srv, m.runCtx
		m.mu.Unlock()
		if srv == nil {
			return
		}
		grace := time.NewTimer(rebootGrace)
		defer grace.Stop()
		select {
		case <-srv.IdleCh():
		case <-grace.C:
		case <-ctx.Done():
			return
		}
		m.routeMu.Lock()
		defer m.routeMu.Unlock()
		if m.routeGen == gen {
			m.route.Capture(true)
			m.logf("sim: %s: the VPN captures the guest's traffic to the host: TCP to sshd stalls", m.name)
		}
	}()
}

// pipeListener is the agent's vsock port: dial hands it one end of an
// in-memory pipe.
type pipeListener struct {
	addr  pipeAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener(addr string) *pipeListener {
	return &pipeListener{addr: pipeAddr(addr), conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return l.addr }

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	client, agent := net.Pipe()
	select {
	case l.conns <- agent:
		return client, nil
	case <-l.done:
	case <-ctx.Done():
		client.Close()
		agent.Close()
		return nil, context.Cause(ctx)
	}
	client.Close()
	agent.Close()
	return nil, errors.New("connection reset by peer") // the agent is gone
}

type pipeAddr string

func (a pipeAddr) Network() string { return "vsock" }
func (a pipeAddr) String() string  { return string(a) }
