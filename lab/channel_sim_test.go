package lab

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

// channelProvider is the sim posing as a vz host: its machines have a
// guest channel (a TCP stand-in for the agent's vsock port) and say how
// they started.
type channelProvider struct {
	vm.Provider
	agentDown bool         // the agent never answers
	fallback  string       // a restore that fell back to a cold boot
	streams   atomic.Int64 // guest-channel dials
}

func (p *channelProvider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	m, err := p.Provider.Clone(ctx, img, name)
	if err != nil {
		return nil, err
	}
	return &channelMachine{Machine: m, p: p}, nil
}

type channelMachine struct {
	vm.Machine
	p    *channelProvider
	addr atomic.Value
}

func (m *channelMachine) Endpoint(ctx context.Context) (guest.Endpoint, error) {
	ep, err := m.Machine.Endpoint(ctx)
	m.addr.Store(ep.Addr)
	return ep, err
}

func (m *channelMachine) DialGuest(ctx context.Context, port uint32) (net.Conn, error) {
	m.p.streams.Add(1)
	if m.p.agentDown || port != vm.AgentPort {
		return nil, errors.New("connect to guest vsock port: Connection reset by peer")
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", m.addr.Load().(string))
}

func (m *channelMachine) StartInfo() vm.StartInfo {
	return vm.StartInfo{Restored: m.p.fallback == "", Fallback: m.p.fallback}
}

func channelRun(t *testing.T, agent bool, p *channelProvider, edit func(*RunOptions)) *RunResult {
	t.Helper()
	cfg := simLabConfig
	if agent {
		cfg = strings.Replace(cfg, "    auth: {password: admin}\n", "    auth: {password: admin}\n    agent: true\n", 1)
	}
	cfg = strings.Replace(cfg, "retry:\n  max: 1\n", "retry:\n  max: 0\n", 1)
	// A silent agent costs half the boot bound: keep it short here.
	cfg = strings.Replace(cfg, "timeouts: {boot: 1m,", "timeouts: {boot: 6s,", 1)
	o, _ := simRunOptions(t, cfg, nil)
	newSim := o.NewProvider
	o.NewProvider = func(h Host, seed int64) (vm.Provider, error) {
		sp, err := newSim(h, seed)
		p.Provider = sp
		return p, err
	}
	if edit != nil {
		edit(&o)
	}
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	require.Len(t, res.Records, 2)
	return res
}

func TestAttemptsTalkOverTheAgentsChannel(t *testing.T) {
	p := &channelProvider{}
	res := channelRun(t, true, p, nil)
	for _, r := range res.Records {
		assert.Equal(t, ChannelVsock, r.Channel, r.Label)
		assert.Empty(t, r.ChannelNote)
		assert.Equal(t, StartRestored, r.Start)
		assert.Positive(t, r.ToSSH, "the time to SSH is recorded")
		assert.NotEqual(t, Error, r.Verdict, "%s: %s", r.Label, r.Reason)
	}
	assert.GreaterOrEqual(t, p.streams.Load(), int64(2), "every attempt dialled the channel")
}

func TestAttemptsFallBackToTCPWhenTheAgentIsSilent(t *testing.T) {
	p := &channelProvider{agentDown: true}
	res := channelRun(t, true, p, nil)
	for _, r := range res.Records {
		assert.Equal(t, ChannelTCP, r.Channel, r.Label)
		assert.Contains(t, r.ChannelNote, "vsock port 7022 did not answer")
		assert.Contains(t, r.ChannelNote, "over TCP instead")
		assert.NotEqual(t, Error, r.Verdict, "%s: %s", r.Label, r.Reason)
	}
}

func TestAttemptsWithoutTheAgentUseTCP(t *testing.T) {
	p := &channelProvider{}
	res := channelRun(t, false, p, nil)
	for _, r := range res.Records {
		assert.Equal(t, ChannelTCP, r.Channel)
		assert.Empty(t, r.ChannelNote)
	}
	assert.Zero(t, p.streams.Load(), "an image without the agent never tries the channel")
}

func TestRestoreFallbackIsJournaledAndRequireRestoreMakesItAnError(t *testing.T) {
	const why = "restoring state.vzvmsave failed (the device set differs); booted cold instead"
	res := channelRun(t, false, &channelProvider{fallback: why}, nil)
	for _, r := range res.Records {
		assert.Equal(t, StartCold, r.Start)
		assert.Equal(t, why, r.StartNote)
		assert.NotEqual(t, Error, r.Verdict, "without --require-restore a fallback is only said")
	}

	res = channelRun(t, false, &channelProvider{fallback: why}, func(o *RunOptions) { o.RequireRestore = true })
	for _, r := range res.Records {
		assert.Equal(t, Error, r.Verdict)
		assert.Contains(t, r.Reason, "booted cold (--require-restore makes that an error): "+why)
	}
}
