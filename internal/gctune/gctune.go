// Package gctune is sxlab's garbage-collection setting, in one place so
// that the binary and the benchmarks that stand for it run the same.
//
// A run's live heap is small (about 10 MB at 1,200 attempts) while every
// attempt moves megabytes through short-lived buffers (packages, the
// probe, evidence), so the default GOGC=100 collected three times per
// attempt and took 12 % of the CPU (GODEBUG=gctrace=1). Collecting at
// five times the live heap, but never letting the heap pass 80 MiB,
// trades memory the run has for CPU it lacks (bench/README.md).
package gctune

import "runtime/debug"

// The settings, unless GOGC or GOMEMLIMIT says otherwise.
const (
	Percent     = 400
	MemoryLimit = 80 << 20
)

// Tune applies them where lookup (os.LookupEnv) finds neither variable
// set, and returns what restores the previous settings.
func Tune(lookup func(string) (string, bool)) (restore func()) {
	percent, limit := -2, int64(-1)
	if _, set := lookup("GOGC"); !set {
		percent = debug.SetGCPercent(Percent)
	}
	if _, set := lookup("GOMEMLIMIT"); !set {
		limit = debug.SetMemoryLimit(MemoryLimit)
	}
	return func() {
		if percent != -2 {
			debug.SetGCPercent(percent)
		}
		if limit >= 0 {
			debug.SetMemoryLimit(limit)
		}
	}
}
