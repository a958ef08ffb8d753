package sim

import (
	"context"
	"sync"
	"time"
)

// guestClock is a machine's guest clock. A scaled Sleep waits only d*scale of
// real time, and the clock jumps over the rest, so the guest's timestamps
// (logs, install times) show the simulated durations while a run with
// time_scale 0.01 takes a hundredth of the time.
type guestClock struct {
	scale float64
	start time.Time // wall and monotonic reading at creation

	mu     sync.Mutex
	offset time.Duration // simulated time skipped so far; never decreases
}

func newClock(scale float64) *guestClock {
	if scale < 0 {
		scale = 0
	}
	return &guestClock{scale: scale, start: time.Now()}
}

// Now is the guest's time. It is built from the monotonic clock since
// creation plus the skipped time, so it never goes backwards, not even when
// the host's wall clock is set back.
func (c *guestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *guestClock) nowLocked() time.Time {
	return c.start.Add(time.Since(c.start) + c.offset)
}

// Sleep waits d of simulated time: d*scale of real time. It returns ctx's
// error when ctx ends first; the clock then has advanced by the simulated
// share of the time actually waited.
func (c *guestClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	begin := c.Now()
	realWait := time.Duration(float64(d) * c.scale)
	if realWait <= 0 {
		c.reach(begin.Add(d))
		return nil
	}
	t := time.NewTimer(realWait)
	defer t.Stop()
	realStart := time.Now()
	select {
	case <-t.C:
		c.reach(begin.Add(d))
		return nil
	case <-ctx.Done():
		simulated := time.Duration(float64(time.Since(realStart)) / c.scale)
		c.reach(begin.Add(min(simulated, d)))
		return ctx.Err()
	}
}

// reach moves the clock forward so that Now() is at least t. Two sleeps
// that overlap in simulated time therefore advance the clock once, not
// twice.
func (c *guestClock) reach(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if behind := t.Sub(c.nowLocked()); behind > 0 {
		c.offset += behind
	}
}
