package lab

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/matrices"
)

// cellTotals is what a run concluded per cell, by label: the figures a
// resumed run must reproduce.
func cellTotals(records []Record) map[string]CellSummary {
	out := map[string]CellSummary{}
	for _, s := range Summarise(records) {
		out[s.Label] = s
	}
	return out
}

// TestInterruptAtEveryBoundaryThenResume interrupts a simulated run at
// each phase boundary of one attempt in turn (clone, boot, connect, every
// step, cleanup). Each time, nothing may be left behind, the journal must
// read cleanly without a final line for the interrupted attempt, and
// --resume must finish the run with the totals of an uninterrupted one.
func TestInterruptAtEveryBoundaryThenResume(t *testing.T) {
	// The target is the attempt with the longest scenario.
	isTarget := func(a matrices.Attempt) bool { return a.Cell.Values["vpn"] == "running" }

	o, _ := simRunOptions(t, simLabConfig, nil)
	var mu sync.Mutex
	var phases []string
	o.Phase = func(_ Slot, a matrices.Attempt, phase string) {
		if isTarget(a) {
			mu.Lock()
			phases = append(phases, phase)
			mu.Unlock()
		}
	}
	ref, err := Run(context.Background(), o)
	require.NoError(t, err)
	want := cellTotals(ref.Records)
	require.Len(t, want, 2)
	// The reference must show both verdicts, or equal totals prove little.
	verdicts := map[CellVerdict]bool{}
	for _, s := range want {
		verdicts[s.Verdict] = true
	}
	require.Equal(t, map[CellVerdict]bool{CellPass: true, CellFail: true}, verdicts)
	require.Equal(t, []string{"clone", "boot", "connect", "session", "install", "launch", "approve", "wait-extension", "vpn", "collect state", "upgrade", "launch", "probe", "collect sysdiagnose", "collect state", "collect logs", "collect manifest", "cleanup"}, phases)

	for k := 1; k <= len(phases); k++ {
		t.Run(fmt.Sprintf("%02d-%s", k, phases[k-1]), func(t *testing.T) {
			leaks := goleak.IgnoreCurrent()
			o, sl := simRunOptions(t, simLabConfig, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			seen := 0
			o.Phase = func(_ Slot, a matrices.Attempt, phase string) {
				if !isTarget(a) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if seen++; seen == k {
					cancel() // the phase starts with the run already interrupted
				}
			}
			res, err := Run(ctx, o)
			require.ErrorIs(t, err, ErrInterrupted)
			sl.assertNothingLeft(t)
			goleak.VerifyNone(t, leaks)

			recs := readRecords(t, res.Dir) // fails on any damaged line
			var target []Record
			for _, r := range recs {
				if r.Axes["vpn"] == "running" {
					target = append(target, r)
				}
			}
			require.Len(t, target, 1, "the interrupted try is journalled")
			before := Finished(recs)
			if phases[k-1] == "cleanup" {
				// The verdict and its evidence were complete: the interrupt
				// does not take them back.
				assert.True(t, target[0].Final, "a try that reached its verdict before the interrupt keeps it")
				assert.False(t, target[0].Interrupted)
				assert.Equal(t, Fail, target[0].Verdict)
			} else {
				assert.False(t, target[0].Final, "an interrupted try is not final: resume runs it again")
				assert.True(t, target[0].Interrupted, "the journal says the try was cut short")
				assert.GreaterOrEqual(t, res.Remaining, 1)
			}
			assert.Len(t, before, 2-res.Remaining)
			for _, c := range res.Cells {
				if c.Missing > 0 {
					assert.Equal(t, CellIncomplete, c.Verdict, "%s: a cell with attempts left is not finished", c.Label)
				}
			}

			o.Phase, o.Resume = nil, res.Dir
			res2, err := Run(context.Background(), o)
			require.NoError(t, err)
			assert.Equal(t, 0, res2.Remaining)
			assert.Equal(t, want, cellTotals(res2.Records), "resume reaches the totals of an uninterrupted run")
			final := map[string]int{}
			for _, r := range readRecords(t, res.Dir) {
				if r.Final {
					final[r.AttemptKey()]++
				}
			}
			assert.Equal(t, map[string]int{ref.Records[0].AttemptKey(): 1, ref.Records[1].AttemptKey(): 1}, final,
				"every attempt has exactly one final line")
			dirs := map[string]int{}
			after := readRecords(t, res.Dir)
			for _, r := range after {
				dirs[r.Dir]++
				if b, ok := before[r.AttemptKey()]; ok {
					assert.Equal(t, b.Try, r.Try, "%s: a verdict final before the interrupt is never run again", r.AttemptKey())
				}
			}
			for d, n := range dirs {
				assert.Equal(t, 1, n, "one folder per try: %s", d)
			}
			if !target[0].Final {
				assert.Equal(t, []int{1, 2}, triesOf(after, target[0].AttemptKey()), "the resumed attempt is the next try")
			}
			sl.assertNothingLeft(t)
			goleak.VerifyNone(t, leaks)
		})
	}
}

func triesOf(recs []Record, key string) []int {
	var out []int
	for _, r := range recs {
		if r.AttemptKey() == key {
			out = append(out, r.Try)
		}
	}
	return out
}
