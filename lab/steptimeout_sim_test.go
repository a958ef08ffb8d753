package lab

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/matrices"
)

// TestShellStepTimeoutEndsTheTryAsError runs a shell step whose command
// outlives the step's timeout on a simulated Mac in real time: the try
// must end soon after the bound, as the lab's error (not a product fail),
// with a reason naming the step and the bound.
func TestShellStepTimeoutEndsTheTryAsError(t *testing.T) {
	cfg := simLabConfig
	i := strings.Index(cfg, "scenario:\n")
	j := strings.Index(cfg, "probes:\n")
	require.True(t, i > 0 && j > i)
	cfg = cfg[:i] + "scenario:\n  - name: nap\n    shell: {run: sleep 100}\n    timeout: 2s\n" + cfg[j:]
	// At time scale 0.3 the guest's sleep 100 takes 30 s of real time
	// (and boot 9 s): long enough that only the bound can end it sooner.
	cfg = strings.Replace(cfg, "sim: {time_scale: 0}", "sim: {time_scale: 0.3}", 1)
	cfg = strings.Replace(cfg, "vpn: [running, stopped]", "vpn: [stopped]", 1)
	cfg = strings.Replace(cfg, "max: 1\n", "max: 0\n", 1)
	o, sl := simRunOptions(t, cfg, nil)

	var mu sync.Mutex
	var shellAt, afterAt time.Time
	o.Phase = func(_ Slot, _ matrices.Attempt, p string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case p == "shell":
			shellAt = time.Now()
		case !shellAt.IsZero() && afterAt.IsZero():
			afterAt = time.Now()
		}
	}
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	sl.assertNothingLeft(t)
	require.Len(t, res.Records, 1)
	r := res.Records[0]
	assert.Equal(t, Error, r.Verdict, r.Reason)
	assert.Contains(t, r.Reason, "nap")
	assert.Contains(t, r.Reason, "timeout of 2s")
	// The step ended because of the bound, far sooner than the
	// command would have (generous: no flakes).
	require.False(t, shellAt.IsZero() || afterAt.IsZero(), "the shell step and the phase after it")
	assert.Less(t, afterAt.Sub(shellAt), 20*time.Second, "the step ran past its timeout")
}
