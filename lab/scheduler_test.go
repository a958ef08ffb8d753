package lab

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/matrices"
)

func attemptsOf(t *testing.T, cells, repeat int) []matrices.Attempt {
	t.Helper()
	var vals []string
	for i := range cells {
		vals = append(vals, string(rune('a'+i)))
	}
	p, err := matrices.Expand(matrices.Matrix{Axes: []matrices.Axis{{Name: "x", Values: vals}}, Repeat: repeat})
	require.NoError(t, err)
	return p.Attempts
}

// collector is a journal stand-in.
type collector struct {
	mu   sync.Mutex
	recs []Record
}

func (c *collector) add(r Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r)
	return nil
}

func slots(n int) []Slot {
	var out []Slot
	for i := range n {
		out = append(out, Slot{Host: "h", Provider: "sim", Index: i + 1})
	}
	return out
}

func TestSchedulerRunsEveryAttemptOnceAndUsesEverySlot(t *testing.T) {
	defer goleak.VerifyNone(t)
	var c collector
	var running, peak atomic.Int32
	s := Scheduler{Slots: slots(3), Record: c.add, Exec: func(ctx context.Context, sl Slot, a matrices.Attempt, try int) Record {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		running.Add(-1)
		return Record{Cell: a.Cell.ID, Repeat: a.Repeat, Verdict: Pass, Host: sl.Host}
	}}
	require.NoError(t, s.Run(context.Background(), attemptsOf(t, 4, 3)))
	assert.Len(t, Finished(c.recs), 12)
	assert.Len(t, c.recs, 12, "passes are never retried")
	assert.LessOrEqual(t, peak.Load(), int32(3), "never more attempts at once than slots")
	assert.Equal(t, int32(3), peak.Load(), "slots are used in parallel")
}

func TestSchedulerRetriesErrorsNotFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	var c collector
	var tries sync.Map
	s := Scheduler{Slots: slots(2), Retry: Retry{Max: 2, Backoff: Duration(time.Millisecond)}, Record: c.add,
		Exec: func(ctx context.Context, sl Slot, a matrices.Attempt, try int) Record {
			tries.Store(a.ID(), try)
			r := Record{Cell: a.Cell.ID, Label: a.Cell.Label, Repeat: a.Repeat}
			switch a.Cell.Values["x"] {
			case "a": // always broken infrastructure
				r.Verdict, r.Reason = Error, "sshd never answered"
			case "b": // a product failure
				r.Verdict = Fail
			default: // error once, then fine
				if try == 1 {
					r.Verdict = Error
				} else {
					r.Verdict = Pass
				}
			}
			return r
		}}
	require.NoError(t, s.Run(context.Background(), attemptsOf(t, 3, 1)))
	final := Finished(c.recs)
	require.Len(t, final, 3)
	byX := map[string]Record{}
	for _, r := range final {
		byX[r.Label] = r
	}
	assert.Equal(t, Error, byX["x=a"].Verdict)
	assert.Equal(t, 3, byX["x=a"].Try, "1 try + retry.max 2")
	assert.Equal(t, Fail, byX["x=b"].Verdict)
	assert.Equal(t, 1, byX["x=b"].Try, "product failures are never retried")
	assert.Equal(t, Pass, byX["x=c"].Verdict)
	assert.Equal(t, 2, byX["x=c"].Try)
	assert.Len(t, c.recs, 3+1+2, "every try is recorded")
}

func TestSchedulerInterruptLeavesUnfinishedAttemptsForResume(t *testing.T) {
	defer goleak.VerifyNone(t)
	var c collector
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 10)
	s := Scheduler{Slots: slots(2), Record: c.add, Exec: func(ctx context.Context, sl Slot, a matrices.Attempt, try int) Record {
		started <- struct{}{}
		<-ctx.Done() // an attempt that runs until interrupted
		return Record{Cell: a.Cell.ID, Repeat: a.Repeat, Verdict: Error, Reason: "interrupted"}
	}}
	go func() { <-started; <-started; cancel() }()
	err := s.Run(ctx, attemptsOf(t, 5, 1))
	require.ErrorIs(t, err, ErrInterrupted)
	assert.Len(t, c.recs, 2, "only the two in flight ran; nothing new started after the interrupt")
	assert.Empty(t, Finished(c.recs), "interrupted tries are not final: resume reruns them")
}

func TestSchedulerStopsWhenTheJournalFails(t *testing.T) {
	defer goleak.VerifyNone(t)
	var n atomic.Int32
	s := Scheduler{Slots: slots(1), Record: func(Record) error { return errors.New("disk full") },
		Exec: func(ctx context.Context, sl Slot, a matrices.Attempt, try int) Record {
			n.Add(1)
			return Record{Cell: a.Cell.ID, Repeat: a.Repeat, Verdict: Pass}
		}}
	err := s.Run(context.Background(), attemptsOf(t, 5, 1))
	require.ErrorContains(t, err, "disk full")
	assert.Equal(t, int32(1), n.Load(), "no attempt runs whose result could not be kept")
}

func TestSchedulerWithNoSlots(t *testing.T) {
	s := Scheduler{}
	assert.Error(t, s.Run(context.Background(), nil))
}

func TestSchedulerKeepsToLimitsAndFillsSlotsWithOtherWork(t *testing.T) {
	defer goleak.VerifyNone(t)
	// run runs attempts on two slots, image a limited to limitA at once
	// (0: no limit); it returns the peak of a, and whether b ever ran
	// while a did.
	run := func(attempts []matrices.Attempt, limitA int) (peakA int, bBesideA bool) {
		var c collector
		var mu sync.Mutex
		running := map[string]int{}
		s := Scheduler{Slots: slots(2), Record: c.add,
			Limit: func(slot Slot, a matrices.Attempt) (string, int) {
				if a.Cell.Values["x"] == "a" {
					return slot.Host + "/a", limitA
				}
				return "", 0
			},
			Exec: func(ctx context.Context, sl Slot, a matrices.Attempt, try int) Record {
				x := a.Cell.Values["x"]
				mu.Lock()
				running[x]++
				peakA = max(peakA, running["a"])
				bBesideA = bBesideA || running["a"] > 0 && running["b"] > 0
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				running[x]--
				mu.Unlock()
				return Record{Cell: a.Cell.ID, Repeat: a.Repeat, Verdict: Pass}
			}}
		require.NoError(t, s.Run(t.Context(), attempts))
		assert.Len(t, c.recs, len(attempts), "every attempt ran")
		return peakA, bBesideA
	}
	onlyA := attemptsOf(t, 1, 4)
	peak, _ := run(onlyA, 0)
	assert.Equal(t, 2, peak, "without a limit both slots run a")
	peak, _ = run(onlyA, 1)
	assert.Equal(t, 1, peak, "one warm golden: one attempt of a at a time")

	peak, beside := run(attemptsOf(t, 2, 4), 1)
	assert.Equal(t, 1, peak)
	assert.True(t, beside, "the other slot runs b meanwhile instead of idling")
}
