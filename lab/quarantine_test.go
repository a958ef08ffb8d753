package lab

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/matrices"
)

// leakyExec runs attempts: every try on host "leaky" ends the way a host
// that leaked a VM slot ends one; the others pass.
func leakyExec(ctx context.Context, sl Slot, a matrices.Attempt, try int) Record {
	r := Record{Cell: a.Cell.ID, Repeat: a.Repeat, Host: sl.Host, Verdict: Pass}
	if sl.Host == "leaky" {
		r.Verdict, r.Reason = Error, "boot: VM limit exceeded"
		r.Quarantine = "leaked a VM slot; reboot it"
	}
	return r
}

func TestSchedulerQuarantinesAHostAndTheOthersFinish(t *testing.T) {
	defer goleak.VerifyNone(t)
	var c collector
	var heard []string
	out := make(chan struct{})
	s := Scheduler{
		Slots: []Slot{{Host: "leaky", Index: 1}, {Host: "leaky", Index: 2}, {Host: "good", Index: 1}},
		// No retries at all: a quarantined host's tries must not use them up.
		Retry: Retry{Max: 0}, Record: c.add,
		Exec: func(ctx context.Context, sl Slot, a matrices.Attempt, try int) Record {
			if sl.Host == "good" {
				<-out // the leaky host takes attempts first
			}
			return leakyExec(ctx, sl, a, try)
		},
		Quarantine: func(host, reason string) {
			heard = append(heard, host+": "+reason)
			close(out)
		},
	}
	require.NoError(t, s.Run(context.Background(), attemptsOf(t, 3, 2)))

	done := Finished(c.recs)
	require.Len(t, done, 6, "the good host finished the plan")
	for _, r := range done {
		assert.Equal(t, Pass, r.Verdict, "%s", r.AttemptKey())
		assert.Equal(t, "good", r.Host)
	}
	var leaky int
	for _, r := range c.recs {
		if r.Host == "leaky" {
			leaky++
			assert.False(t, r.Final, "a quarantined host's try is run again elsewhere")
			assert.NotEqual(t, Fail, r.Verdict)
		}
	}
	assert.GreaterOrEqual(t, leaky, 1)
	assert.LessOrEqual(t, leaky, 2, "at most one try per slot before the host is out")
	assert.Equal(t, map[string]string{"leaky": "leaked a VM slot; reboot it"}, s.Quarantined())
	assert.Equal(t, []string{"leaky: leaked a VM slot; reboot it"}, heard, "heard once")
}

func TestSchedulerSaysWhenNoHostIsLeft(t *testing.T) {
	defer goleak.VerifyNone(t)
	var c collector
	s := Scheduler{Slots: []Slot{{Host: "leaky", Index: 1}}, Record: c.add, Exec: leakyExec}
	err := s.Run(context.Background(), attemptsOf(t, 2, 1))
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrNoHostLeft))
	assert.Contains(t, err.Error(), "(leaky) with 2 attempt(s) still to run")
	assert.Empty(t, Finished(c.recs), "nothing got a verdict, so a resume runs it all")
}
