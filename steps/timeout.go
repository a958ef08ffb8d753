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
	// Grace is the time given past Timeout for a polling step's last
	// check (see WithTimeoutGrace).
	Grace time.Duration
	// Err is what the step was doing when the bound passed. It is kept
	// as text only: a step cut short may word its end as a product
	// failure, and a bound the lab set must never read as one.
	Err error
}

func (e *TimeoutError) Error() string {
	within := e.Timeout.String()
	if e.Grace > 0 {
		within += fmt.Sprintf(" and %s for its last check", e.Grace)
	}
	msg := fmt.Sprintf("%s: did not finish within its timeout of %s (a guest command under way gets SIGTERM, then its session is closed)", e.Step, within)
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
func WithTimeout(s Step, label string, d time.Duration) Step {
	return WithTimeoutGrace(s, label, d, 0)
}

// WithTimeoutGrace is WithTimeout for the steps whose timeout is how
// long the product gets to reach a state (wait-extension, vpn): missing
// it is their own product failure, found by a last check at the
// deadline, so the bound comes grace later, for that check. Only a
// command that hangs past it ends the step as the lab's error.
func WithTimeoutGrace(s Step, label string, d, grace time.Duration) Step {
	if d <= 0 {
		return s
	}
	return timed{Step: s, label: label, d: d, grace: max(grace, 0)}
}

type timed struct {
	Step
	label    string
	d, grace time.Duration
}

// Unwrap gives the bounded step, for callers that look at its kind.
func (t timed) Unwrap() Step { return t.Step }

func (t timed) Run(ctx context.Context, env *Env) error {
	bound := errors.New("step timeout")
	sctx, cancel := context.WithTimeoutCause(ctx, t.d+t.grace, bound)
	defer cancel()
	err := t.Step.Run(sctx, env)
	// The parent ending first (an interrupt, the attempt's own bound) is
	// not this step's timeout.
	if ctx.Err() == nil && errors.Is(context.Cause(sctx), bound) {
		if err == nil {
			return nil // finished just as the bound passed
		}
		terr := &TimeoutError{Step: t.label, Timeout: t.d, Grace: t.grace, Err: err}
		env.record(Entry{Step: t.label, Kind: t.Kind(), Started: time.Now(), Error: terr.Error()})
		return terr
	}
	return err
}
