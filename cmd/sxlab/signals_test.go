package main

import (
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeStop records what a stopper did, on a clock the test moves.
type fakeStop struct {
	mu          sync.Mutex
	clock       time.Time
	stops, exit int
	lines       []string
	exited      chan struct{}
}

func (f *fakeStop) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.clock }
func (f *fakeStop) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
}

// deliver sends sig and waits until the stopper has logged it.
func (f *fakeStop) deliver(t *testing.T, sigs chan os.Signal, sig os.Signal) {
	t.Helper()
	f.mu.Lock()
	before := len(f.lines)
	f.mu.Unlock()
	sigs <- sig
	require.Eventually(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.lines) > before }, 10*time.Second, time.Millisecond)
}

func newFakeStop() (*fakeStop, stopper) {
	f := &fakeStop{clock: time.Unix(1_700_000_000, 0), exited: make(chan struct{})}
	s := stopper{grace: time.Second, now: f.now,
		log:  func(l string) { f.mu.Lock(); f.lines = append(f.lines, l); f.mu.Unlock() },
		stop: func() { f.mu.Lock(); f.stops++; f.mu.Unlock() },
		exit: func() { f.mu.Lock(); f.exit++; f.mu.Unlock(); close(f.exited) },
	}
	return f, s
}

func TestSecondSignalWithinTheGraceIsTheSameRequest(t *testing.T) {
	f, s := newFakeStop()
	sigs, done := make(chan os.Signal, 4), make(chan struct{})
	defer close(done)
	go s.watch(done, sigs)

	f.deliver(t, sigs, syscall.SIGTERM)
	f.advance(100 * time.Millisecond)
	f.deliver(t, sigs, syscall.SIGTERM) // GNU timeout's second TERM
	f.advance(800 * time.Millisecond)
	f.deliver(t, sigs, os.Interrupt)
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, 1, f.stops, "one orderly stop")
	assert.Equal(t, 0, f.exit, "no exit at once within the grace")
	assert.Contains(t, f.lines[0], "sxlab: terminated: stopping")
	assert.Contains(t, f.lines[1], "terminated again within 1s of the first: taken as the same request")
	assert.Contains(t, f.lines[2], "interrupted again within 1s of the first")
}

func TestASignalAfterTheGraceExitsAtOnce(t *testing.T) {
	f, s := newFakeStop()
	sigs, done := make(chan os.Signal, 4), make(chan struct{})
	defer close(done)
	go s.watch(done, sigs)

	f.deliver(t, sigs, os.Interrupt)
	f.advance(1500 * time.Millisecond)
	sigs <- os.Interrupt
	select {
	case <-f.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a signal after the grace did not exit")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, 1, f.stops)
	assert.Contains(t, f.lines[len(f.lines)-1], "exiting at once")
	assert.Contains(t, f.lines[len(f.lines)-1], "the next run removes the machines and files left behind")
}

// TestSignalsReceivedBeforeTheEndAreAnswered: signals already received
// when the command returns (done closed) are still answered, in order,
// before watch returns; the run waits for it, so none is dropped without
// a word. Repeated because a select between two ready cases picks one
// at random.
func TestSignalsReceivedBeforeTheEndAreAnswered(t *testing.T) {
	for range 20 {
		f, s := newFakeStop()
		sigs, done := make(chan os.Signal, 4), make(chan struct{})
		sigs <- syscall.SIGTERM
		sigs <- syscall.SIGTERM
		close(done)
		s.watch(done, sigs)
		require.Len(t, f.lines, 2, "both signals answered")
		assert.Contains(t, f.lines[0], "sxlab: terminated: stopping")
		assert.Contains(t, f.lines[1], "terminated again within 1s of the first: taken as the same request")
		assert.Equal(t, 1, f.stops)
		assert.Empty(t, sigs)
	}
}
