package lab

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
)

func TestKeepLeavesTheFirstFailingMachineRunning(t *testing.T) {
	cfg := strings.Replace(simLabConfig, "  repeat: 1\n", "  repeat: 2\n", 1)
	o, sl := simRunOptions(t, cfg, nil)
	o.Keep = true
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	require.NotNil(t, res.Kept, "the vpn=running cell fails, so its first failing machine is kept")
	k := res.Kept
	assert.Contains(t, k.Label, "vpn=running")
	assert.True(t, k.Simulated)

	// Exactly one record says kept, and it is a failure.
	var kept []Record
	for _, r := range readRecords(t, res.Dir) {
		if r.Kept {
			kept = append(kept, r)
		}
	}
	require.Len(t, kept, 1)
	assert.Equal(t, Fail, kept[0].Verdict)
	assert.Equal(t, k.Dir, kept[0].Dir)

	// A person can log in and see the failure for themselves.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := guest.Dial(ctx, k.Endpoint, guest.Options{})
	require.NoError(t, err)
	out, err := c.Run(ctx, guest.Cmd{Line: "systemextensionsctl list"})
	require.NoError(t, err)
	assert.Contains(t, out.Stdout, "activated enabled")
	require.NoError(t, c.Close())

	// Every other machine is gone; deleting the kept one leaves nothing.
	running := 0
	for _, m := range sl.Machines() {
		if m.Addr() == "" {
			continue
		}
		if conn, err := net.DialTimeout("tcp", m.Addr(), time.Second); err == nil {
			conn.Close()
			running++
		}
	}
	assert.Equal(t, 1, running, "only the kept machine still listens")
	require.NoError(t, k.Machine.Stop(ctx))
	require.NoError(t, k.Machine.Delete(ctx))
	sl.assertNothingLeft(t)
}

func TestWithoutKeepNothingIsKept(t *testing.T) {
	o, sl := simRunOptions(t, simLabConfig, nil)
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Nil(t, res.Kept)
	sl.assertNothingLeft(t)
}
