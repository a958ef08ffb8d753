package sim

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

// tunnelModel is fakeModel with a VPN that takes every route when it
// connects, as macos does under vpn-captures-host-traffic.
type tunnelModel struct{ *fakeModel }

func (m tunnelModel) Commands() map[string]shell.Command {
	cmds := m.fakeModel.Commands()
	cmds["vpn-up"] = func(_ context.Context, p *shell.Proc) int {
		m.host.(interface{ CaptureHostRoute(bool) }).CaptureHostRoute(true)
		fmt.Fprintln(p.Stdout, "Connected")
		return 0
	}
	return cmds
}

func startTunnelMachine(t *testing.T, agent bool) *Machine {
	t.Helper()
	p := NewProvider(Options{BaseDir: t.TempDir(), Logf: t.Logf, Seed: 1,
		NewModel: func(_ MacConfig, host Host, fs *FS) Model {
			return tunnelModel{&fakeModel{host: host, fs: fs}}
		}})
	img := vm.Image{Name: "tunnel", Agent: agent, Sim: &vm.SimImage{ProductVersion: "15.4", Build: "24E248"}}
	m, err := p.NewMachine(context.Background(), img, "tunnel-mac")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Delete(context.Background())) })
	require.NoError(t, m.Start(context.Background()))
	return m
}

// quick keeps a dead connection from costing the test seconds.
var quick = guest.Options{ConnectTimeout: 2 * time.Second, HandshakeTimeout: 500 * time.Millisecond,
	Keepalive: 200 * time.Millisecond, KeepaliveTimeout: 500 * time.Millisecond,
	BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}

// natPaths are the two ways the host's TCP reaches sshd: the Endpoint's
// in-memory stream (what the lab dials) and the listener's address
// (OpenSSH, sim serve). Both must behave the same.
var natPaths = map[string]func(guest.Endpoint) guest.Endpoint{
	"in memory": func(ep guest.Endpoint) guest.Endpoint { return ep },
	"over the listener": func(ep guest.Endpoint) guest.Endpoint {
		ep.Stream = nil
		return ep
	},
}

func TestCapturedRouteStallsTCPButNotTheAgentsChannel(t *testing.T) {
	for name, path := range natPaths {
		t.Run(name, func(t *testing.T) { testCapturedRoute(t, path) })
	}
}

func testCapturedRoute(t *testing.T, path func(guest.Endpoint) guest.Endpoint) {
	noLeaks(t)
	m := startTunnelMachine(t, true)
	ctx := context.Background()
	vmEP, err := m.Endpoint(ctx)
	require.NoError(t, err)
	ep := path(vmEP)
	overTCP, err := guest.Dial(ctx, ep, quick)
	require.NoError(t, err)
	defer overTCP.Close()
	vep := vmEP
	vep.Stream = func(ctx context.Context) (net.Conn, error) { return m.DialGuest(ctx, vm.AgentPort) }
	overVsock, err := guest.Dial(ctx, vep, quick)
	require.NoError(t, err)
	defer overVsock.Close()

	// The command that connects the VPN still answers...
	res, err := overTCP.Run(ctx, guest.Cmd{Line: "vpn-up"})
	require.NoError(t, err)
	assert.Equal(t, "Connected\n", res.Stdout)
	require.Eventually(t, m.route.Captured, 5*time.Second, 5*time.Millisecond)

	// ...the next one over TCP stalls until the keepalive gives up,
	_, err = overTCP.Run(ctx, guest.Cmd{Line: "hello", Timeout: 30 * time.Second})
	require.ErrorIs(t, err, guest.ErrConnectionLost)
	assert.Contains(t, err.Error(), "no keepalive reply")
	// a new TCP connection gets no answer (not a refusal),
	_, err = guest.Dial(ctx, ep, quick)
	require.ErrorIs(t, err, guest.ErrConnectTimeout)
	assert.Contains(t, err.Error(), "no answer within")
	// and the agent's channel goes on: it is no network.
	res, err = overVsock.Run(ctx, guest.Cmd{Line: "hello"})
	require.NoError(t, err)
	assert.Equal(t, "hello from admin\n", res.Stdout)
	again, err := guest.Dial(ctx, vep, quick)
	require.NoError(t, err, "new connections over the agent's channel")
	require.NoError(t, again.Close())

	// When the VPN gives the route back, TCP answers again.
	m.CaptureHostRoute(false)
	back, err := guest.Dial(ctx, ep, quick)
	require.NoError(t, err)
	res, err = back.Run(ctx, guest.Cmd{Line: "hello"})
	require.NoError(t, err)
	assert.Equal(t, "hello from admin\n", res.Stdout)
	require.NoError(t, back.Close())
}

func TestNATPathsAreRefusedWhileTheMachineIsStopped(t *testing.T) {
	noLeaks(t)
	m := startTunnelMachine(t, false)
	ctx := context.Background()
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	require.NoError(t, m.Stop(ctx))
	brief := quick
	brief.ConnectTimeout = 300 * time.Millisecond
	for name, path := range natPaths {
		_, err := guest.Dial(ctx, path(ep), brief)
		require.ErrorIs(t, err, guest.ErrConnectTimeout, name)
		assert.ErrorContains(t, err, "connect: connection refused", name)
	}
	require.NoError(t, m.Start(ctx))
	ep, err = m.Endpoint(ctx)
	require.NoError(t, err)
	for name, path := range natPaths {
		c, err := guest.Dial(ctx, path(ep), quick)
		require.NoError(t, err, name+": after a restart")
		res, err := c.Run(ctx, guest.Cmd{Line: "hello"})
		require.NoError(t, err, name)
		assert.Equal(t, "hello from admin\n", res.Stdout, name)
		require.NoError(t, c.Close())
	}
}

func TestGuestChannelNeedsTheAgent(t *testing.T) {
	noLeaks(t)
	m := startTunnelMachine(t, false)
	_, err := m.DialGuest(context.Background(), vm.AgentPort)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to port 7022: connection reset by peer")

	withAgent := startTunnelMachine(t, true)
	_, err = withAgent.DialGuest(context.Background(), 22)
	assert.ErrorContains(t, err, "connect to port 22: connection reset by peer", "the agent listens on its own port only")
	require.NoError(t, withAgent.Stop(context.Background()))
	_, err = withAgent.DialGuest(context.Background(), vm.AgentPort)
	assert.ErrorContains(t, err, "not running")
}

func TestRebootReleasesTheRouteAndTheAgentComesBack(t *testing.T) {
	noLeaks(t)
	m := startTunnelMachine(t, true)
	ctx := context.Background()
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	vep := ep
	vep.Stream = func(ctx context.Context) (net.Conn, error) { return m.DialGuest(ctx, vm.AgentPort) }
	c, err := guest.Dial(ctx, vep, quick)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Run(ctx, guest.Cmd{Line: "vpn-up"})
	require.NoError(t, err)
	require.Eventually(t, m.route.Captured, 5*time.Second, 5*time.Millisecond)
	// The model's Boot disconnects its VPNs and tells the machine; the
	// fake model does not, so the machine's own release stands in.
	m.Reboot()
	m.CaptureHostRoute(false)
	require.NoError(t, c.Reconnect(ctx), "the agent serves the rebooted sshd")
	res, err := c.Run(ctx, guest.Cmd{Line: "hello"})
	require.NoError(t, err)
	assert.Equal(t, "hello from admin\n", res.Stdout)
}
