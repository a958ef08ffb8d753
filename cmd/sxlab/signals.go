package main

import (
	"fmt"
	"os"
	"time"
)

// stopGrace is how long after the first interrupt further ones are taken
// as the same request. GNU timeout(1) without --foreground signals its
// child and then the child's whole process group, so one expiry arrives
// as two SIGTERMs; a key held down repeats Ctrl-C. Only an interrupt
// after the grace means "exit at once".
const stopGrace = time.Second

// stopper turns interrupts into a run's stop. The first calls stop (the
// orderly stop: no new attempts, cleanups, journal, reports, summary);
// those within grace of it are absorbed; one after the grace calls exit.
type stopper struct {
	grace time.Duration
	log   func(string)
	stop  func()
	exit  func()
	now   func() time.Time // time.Now; tests set their own clock
}

// watch handles sigs until done is closed (the command returned). It
// must outlive the run's context, which its first signal cancels. A
// signal already received when done closes is still answered, so the
// caller, which waits for watch to return before exiting, never drops
// one silently.
func (s stopper) watch(done <-chan struct{}, sigs <-chan os.Signal) {
	now := s.now
	if now == nil {
		now = time.Now
	}
	var first time.Time
	// handle answers sig and says whether the process exits at once.
	handle := func(sig os.Signal) bool {
		switch {
		case first.IsZero():
			first = now()
			s.log(fmt.Sprintf("sxlab: %s: stopping: no new attempts; cleaning up, then writing the journal, reports and summary (interrupt again after %s to exit at once)", sigName(sig), s.grace))
			s.stop()
		case now().Sub(first) < s.grace:
			s.log(fmt.Sprintf("sxlab: %s again within %s of the first: taken as the same request; still stopping", sigName(sig), s.grace))
		default:
			s.log(fmt.Sprintf("sxlab: %s again: exiting at once; attempts without a verdict stay so (--resume runs them), and the next run removes the machines and files left behind", sigName(sig)))
			s.exit()
			return true
		}
		return false
	}
	for {
		select {
		case <-done:
			for {
				select {
				case sig := <-sigs:
					if handle(sig) {
						return
					}
				default:
					return
				}
			}
		case sig := <-sigs:
			if handle(sig) {
				return
			}
		}
	}
}

func sigName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "interrupted"
	}
	return sig.String()
}
