package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/guest"
)

// captureRun runs simLabConfig on an image whose VPN takes every route
// (vpn-captures-host-traffic), with or without the guest agent: the
// vpn=running attempt connects the VPN, the vpn=stopped one does not.
func captureRun(t *testing.T, agent bool) (*RunResult, map[string]Record) {
	t.Helper()
	leaks := goleak.IgnoreCurrent()
	cfg := strings.Replace(simLabConfig, "      faults: [endpoint-lost-on-replace-while-running]\n",
		"      faults: [vpn-captures-host-traffic]\n", 1)
	if agent {
		cfg = strings.Replace(cfg, "    auth: {password: admin}\n", "    auth: {password: admin}\n    agent: true\n", 1)
	}
	cfg = strings.Replace(cfg, "retry:\n  max: 1\n", "retry:\n  max: 0\n", 1)
	require.Contains(t, cfg, "vpn-captures-host-traffic")
	if agent {
		require.Contains(t, cfg, "agent: true")
	}
	o, sl := simRunOptions(t, cfg, nil)
	// A stalled connection is found by the keepalive; make it quick.
	o.Dial = func(ctx context.Context, ep guest.Endpoint, knownHosts, alias string) (Conn, error) {
		return guest.Dial(ctx, ep, guest.Options{KnownHosts: knownHosts, HostKeyAlias: alias,
			Keepalive: 250 * time.Millisecond, KeepaliveTimeout: time.Second,
			BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	}
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	require.Len(t, res.Records, 2)
	sl.assertNothingLeft(t)
	goleak.VerifyNone(t, leaks)
	byVPN := map[string]Record{}
	for _, r := range res.Records {
		byVPN[r.Axes["vpn"]] = r
	}
	return res, byVPN
}

func TestVPNThatCapturesTheHostsTrafficIsAnErrorWithoutTheAgent(t *testing.T) {
	_, recs := captureRun(t, false)
	r := recs["running"]
	t.Logf("reason: %s\nmissing: %+v", r.Reason, r.Missing)
	assert.Equal(t, Error, r.Verdict, "the lab lost the guest; the product did nothing wrong that it saw")
	assert.Equal(t, ChannelTCP, r.Channel)
	for _, want := range []string{
		`guest unreachable right after step "5 vpn" connected VPN "Example VPN"`,
		"the lab's tcp channel to the guest's sshd was lost",
		"connection lost: no keepalive reply",
		"The product's routing took the lab's path",
		"not a product failure",
		"Every retry on image macos-15.3 meets it again: it has no guest agent",
		"`agent: true`", "docs/agent.md",
	} {
		assert.Contains(t, r.Reason, want)
	}
	assert.NotContains(t, r.Reason, "interrupted")
	assert.Empty(t, r.Probes, "no probe ran: nothing about the product was observed")
	require.NotEmpty(t, r.Missing)
	assert.Contains(t, r.Missing[len(r.Missing)-1].Reason, "unreachable over tcp while the VPN holds its routes")

	assert.Equal(t, Pass, recs["stopped"].Verdict, "without the VPN connected TCP works: %s", recs["stopped"].Reason)
}

func TestVPNThatCapturesTheHostsTrafficPassesOverTheAgentsChannel(t *testing.T) {
	res, recs := captureRun(t, true)
	for vpn, r := range recs {
		assert.Equal(t, Pass, r.Verdict, "vpn=%s: %s", vpn, r.Reason)
		assert.Equal(t, ChannelVsock, r.Channel, vpn)
		assert.Empty(t, r.ChannelNote, vpn)
	}
	journal, err := os.ReadFile(filepath.Join(res.Dir, "results.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(journal), `"channel":"vsock"`), "the journal says which channel each try used")
}
