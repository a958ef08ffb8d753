package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClockScaleZeroIsInstantButTimePasses(t *testing.T) {
	c := newClock(0)
	before := c.Now()
	realStart := time.Now()
	require.NoError(t, c.Sleep(context.Background(), time.Hour))
	assert.Less(t, time.Since(realStart), time.Second)
	assert.GreaterOrEqual(t, c.Now().Sub(before), time.Hour)
}

func TestClockScaleSleepsAFraction(t *testing.T) {
	c := newClock(0.01)
	before := c.Now()
	realStart := time.Now()
	require.NoError(t, c.Sleep(context.Background(), 10*time.Second))
	elapsed := time.Since(realStart)
	assert.GreaterOrEqual(t, elapsed, 100*time.Millisecond)
	assert.Less(t, elapsed, 5*time.Second)
	simulated := c.Now().Sub(before)
	assert.GreaterOrEqual(t, simulated, 10*time.Second)
	assert.Less(t, simulated, 15*time.Second)
}

func TestClockSleepEndsWithItsContext(t *testing.T) {
	c := newClock(1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond) // the cancellation itself is what is tested
		cancel()
	}()
	assert.ErrorIs(t, c.Sleep(ctx, time.Hour), context.Canceled)

	done, stop := context.WithCancel(context.Background())
	stop()
	assert.ErrorIs(t, newClock(0).Sleep(done, time.Second), context.Canceled, "a cancelled context wins even at scale 0")
}

func TestClockOverlappingSleepsAdvanceOnce(t *testing.T) {
	c := newClock(0.01)
	before := c.Now()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, c.Sleep(context.Background(), 10*time.Second))
		}()
	}
	wg.Wait()
	simulated := c.Now().Sub(before)
	assert.GreaterOrEqual(t, simulated, 10*time.Second)
	assert.Less(t, simulated, 20*time.Second, "four parallel 10 s sleeps take 10 s, not 40 s")
}

func TestClockNeverGoesBackwards(t *testing.T) {
	c := newClock(0)
	last := c.Now()
	for i := 0; i < 1000; i++ {
		if i%10 == 0 {
			_ = c.Sleep(context.Background(), time.Millisecond)
		}
		now := c.Now()
		require.False(t, now.Before(last))
		last = now
	}
}
