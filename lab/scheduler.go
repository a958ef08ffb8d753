package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sxlab/sxlab/matrices"
)

// Slot is one place an attempt can run: a host and one of its slots.
type Slot struct {
	Host     string
	Provider string
	Index    int // 1-based within the host
}

// Execute runs one try of an attempt on a slot and returns its record
// (without Try or Final: the scheduler sets them). It must return promptly
// once ctx is cancelled.
type Execute func(ctx context.Context, slot Slot, a matrices.Attempt, try int) Record

// Scheduler runs attempts over slots: each slot takes the next attempt as
// soon as it is free; an attempt that ends in error goes back in the queue
// (after its backoff, on whichever slot frees first) until retry.max.
type Scheduler struct {
	Slots []Slot
	Retry Retry
	Exec  Execute
	// Record receives every try's record, in the order they finish
	// (the journal appends it). An error stops the run: a journal that
	// cannot be written means results would be lost.
	Record func(Record) error
	// Limit, when set, caps how many attempts of one key run at once: an
	// attempt whose key on a slot has limit n > 0 waits there while n run.
	// The vz provider restores a warm golden into one clone at a time, so
	// its key is host and image, its limit the image's warm goldens.
	Limit func(slot Slot, a matrices.Attempt) (key string, n int)
	// Quarantine, when set, hears of each host taken out of the run: a try
	// whose record names a Quarantine reason (the host leaked a VM slot
	// and needs a reboot) takes its host's slots out for the rest of the
	// run, and the attempt goes back in the queue for the other hosts
	// without using up a retry.
	Quarantine func(host, reason string)

	quarantined map[string]string // host → reason, under Run's mu
	// Resume, when set, says where a resumed attempt goes on: the number
	// of its next try, and how many of its tries so far ended in error
	// (they count against retry.max; tries cut short do not).
	Resume func(a matrices.Attempt) (next, errors int)
}

// Quarantined is each host Run took out, with its reason.
func (s *Scheduler) Quarantined() map[string]string { return maps.Clone(s.quarantined) }

// ErrNoHostLeft is returned by Run when every host was quarantined with
// attempts still to run.
var ErrNoHostLeft = errors.New("every host was quarantined")

type task struct {
	attempt   matrices.Attempt
	try       int
	errors    int // tries of the attempt that ended in error so far
	notBefore time.Time
	limitKey  string // the Limit key it counts against while it runs, if any
}

// ErrInterrupted is returned by Run when ctx was cancelled before every
// attempt had a final record.
var ErrInterrupted = errors.New("run interrupted")

// Run runs attempts until each has a final record, ctx is cancelled, or
// Record fails. Tries cut short by cancellation (Record.Interrupted) are
// recorded as not final, so a resume runs them again; a try that reached
// its verdict before the interrupt keeps it.
func (s *Scheduler) Run(ctx context.Context, attempts []matrices.Attempt) error {
	if len(s.Slots) == 0 {
		return errors.New("no slots to run attempts on")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.quarantined = map[string]string{}

	var (
		mu       sync.Mutex
		queue    = make([]task, 0, len(attempts))
		inFlight int
		changed  = make(chan struct{})
		recErr   error
		busy     = map[string]int{} // attempts running per Limit key
	)
	for _, a := range attempts {
		t := task{attempt: a, try: 1}
		if s.Resume != nil {
			t.try, t.errors = s.Resume(a)
		}
		queue = append(queue, t)
	}
	// broadcast wakes every waiting slot; call with mu held.
	broadcast := func() {
		close(changed)
		changed = make(chan struct{})
	}

	// next blocks until a task is due, or returns false when there is
	// nothing left to do for this slot.
	next := func(slot Slot) (task, bool) {
		mu.Lock()
		for {
			if ctx.Err() != nil || s.quarantined[slot.Host] != "" {
				mu.Unlock()
				return task{}, false
			}
			now := time.Now()
			var wait time.Duration = -1
			for i, t := range queue {
				key, n := "", 0
				if s.Limit != nil {
					key, n = s.Limit(slot, t.attempt)
				}
				if n > 0 && busy[key] >= n {
					continue // a finishing attempt of key broadcasts
				}
				if !t.notBefore.After(now) {
					queue = append(queue[:i], queue[i+1:]...)
					inFlight++
					if n > 0 {
						t.limitKey = key
						busy[key]++
					}
					mu.Unlock()
					return t, true
				}
				if d := t.notBefore.Sub(now); wait < 0 || d < wait {
					wait = d
				}
			}
			if len(queue) == 0 && inFlight == 0 {
				mu.Unlock()
				return task{}, false
			}
			ch := changed
			mu.Unlock()
			var tm *time.Timer
			var timer <-chan time.Time
			if wait >= 0 {
				tm = time.NewTimer(wait)
				timer = tm.C
			}
			select {
			case <-ch:
			case <-timer:
			case <-ctx.Done():
			}
			if tm != nil {
				tm.Stop()
			}
			mu.Lock()
		}
	}

	var wg sync.WaitGroup
	for _, slot := range s.Slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				t, ok := next(slot)
				if !ok {
					return
				}
				rec := s.Exec(ctx, slot, t.attempt, t.try)
				rec.Try = t.try
				// An error while the run stops is taken for the stop's doing.
				cut := rec.Interrupted || (rec.Verdict == Error && ctx.Err() != nil)
				rec.Interrupted = cut
				quarantine := rec.Quarantine != "" && rec.Verdict == Error && !cut
				retry := quarantine || (rec.Verdict == Error && !cut && t.errors < s.Retry.Max)
				rec.Final = !retry && !cut
				// The record is written before the retry is queued, so the
				// journal always shows a try before the one that follows it.
				err := s.Record(rec)
				mu.Lock()
				if err != nil && recErr == nil {
					recErr = err
					cancel(err)
				}
				switch {
				case quarantine && err == nil && ctx.Err() == nil:
					if s.quarantined[slot.Host] == "" {
						s.quarantined[slot.Host] = rec.Quarantine
						if s.Quarantine != nil {
							s.Quarantine(slot.Host, rec.Quarantine)
						}
					}
					// At once, elsewhere: the host was at fault, not the
					// attempt, so the try does not count against retry.max.
					queue = append(queue, task{attempt: t.attempt, try: t.try + 1, errors: t.errors})
				case retry && err == nil && ctx.Err() == nil:
					backoff := s.Retry.Delay(t.errors + 2)
					queue = append(queue, task{attempt: t.attempt, try: t.try + 1, errors: t.errors + 1, notBefore: time.Now().Add(backoff)})
				}
				inFlight--
				if t.limitKey != "" {
					busy[t.limitKey]--
				}
				broadcast()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	switch {
	case recErr != nil:
		return recErr
	case ctx.Err() != nil:
		return ErrInterrupted
	case len(queue) > 0:
		return fmt.Errorf("%w (%s) with %d attempt(s) still to run: reboot the host(s) and resume the run", ErrNoHostLeft, strings.Join(slices.Sorted(maps.Keys(s.quarantined)), ", "), len(queue))
	}
	return nil
}
