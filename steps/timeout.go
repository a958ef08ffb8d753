package steps

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TimeoutError is the error of a step that outlived its own `timeout`:
// the lab's (error verdict, retried), never the product's, because a
// bound the lab set is what ended it.
type TimeoutError struct {
	Step    string
	Timeout time.Duration
	// Err is what the step was doing when the bound passed. It is kept
	// as text only: a step cut short may word its end as a product
	// failure, and a bound the lab set must never read as one.
	Err error
}

func (e *TimeoutError) Error() string {
	msg := fmt.Sprintf("%s: did not finish within its timeout of %s (a guest command under way gets SIGTERM, then its session is closed)", e.Step, e.Timeout)
	if e.Err != nil {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

// WithTimeout bounds a whole step by d (a step's `timeout` key). Past d
// the step's context ends: the guest command under way gets SIGTERM, then
// its session is closed (guest.Client.Run), and the step returns a
// *TimeoutError naming label and d. d <= 0 leaves s unbounded (by
// lab.timeouts.command only).
//
// wait-extension and vpn are not wrapped: their timeout is how long the
// product gets to reach a state, and missing it is the product's failure
// (see WaitExtension, VPN).
func WithTimeout(s Step, label string, d time.Duration) Step {
	if d <= 0 {
		return s
	}
	return timed{Step: s, label: label, d: d}
}

type timed struct {
	Step
	label string
	d     time.Duration
}

// Unwrap gives the bounded step, for callers that look at its kind.
func (t timed) Unwrap() Step { return t.Step }

func (t timed) Run(ctx context.Context, env *Env) error {
	bound := errors.New("step timeout")
	sctx, cancel := context.WithTimeoutCause(ctx, t.d, bound)
	defer cancel()
	err := t.Step.Run(sctx, env)
	// The parent ending first (an interrupt, the attempt's own bound) is
	// not this step's timeout.
	if ctx.Err() == nil && errors.Is(context.Cause(sctx), bound) {
		if err == nil {
			return nil // finished just as the bound passed
		}
		terr := &TimeoutError{Step: t.label, Timeout: t.d, Err: err}
		env.record(Entry{Step: t.label, Kind: t.Kind(), Started: time.Now(), Error: terr.Error()})
		return terr
	}
	return err
}
