package lab

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sxlab/sxlab/matrices"
)

// BenchmarkSchedulerMakespan runs 64 attempts of varied length (5–19 ms,
// slept) on 2 hosts × 2 slots and reports the makespan over its lower
// bound (total attempt time / slots); the goal for the whole run is
// ≤ 1.05. The lower bound adds up the time each attempt really took, as
// BenchmarkMakespan does with the journal's times: a sleep overshoots
// its duration by the timer's slack, and that is the attempt's time, not
// the scheduler's. makespan/nominal divides by the durations asked for
// instead. Attempt times are synthetic here, so this is the scheduler
// alone; BenchmarkMakespan (run_bench_test.go) measures the whole
// pipeline over simulated Macs. With these durations, in this order,
// even a scheduler without any cost of its own ends 2% over the bound:
// the last attempts do not divide evenly over the slots.
func BenchmarkSchedulerMakespan(b *testing.B) {
	sl := []Slot{{Host: "a", Index: 1}, {Host: "a", Index: 2}, {Host: "b", Index: 1}, {Host: "b", Index: 2}}
	var vals []string
	for i := range 16 {
		vals = append(vals, string(rune('a'+i)))
	}
	p, err := matrices.Expand(matrices.Matrix{Axes: []matrices.Axis{{Name: "x", Values: vals}}, Repeat: 4})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	dur := map[string]time.Duration{}
	var nominal time.Duration
	for _, a := range p.Attempts {
		d := time.Duration(5+r.IntN(15)) * time.Millisecond
		dur[a.ID()] = d
		nominal += d
	}
	var ratio, ratioNominal float64
	var runs int
	for b.Loop() {
		var busy atomic.Int64 // time spent inside Exec, over all slots
		s := Scheduler{Slots: sl, Record: func(Record) error { return nil },
			Exec: func(ctx context.Context, _ Slot, a matrices.Attempt, _ int) Record {
				start := time.Now()
				time.Sleep(dur[a.ID()])
				busy.Add(int64(time.Since(start)))
				return Record{Cell: a.Cell.ID, Repeat: a.Repeat, Verdict: Pass}
			}}
		start := time.Now()
		if err := s.Run(context.Background(), p.Attempts); err != nil {
			b.Fatal(err)
		}
		took := float64(time.Since(start))
		ratio += took / (float64(busy.Load()) / float64(len(sl)))
		ratioNominal += took / (float64(nominal) / float64(len(sl)))
		runs++
	}
	b.ReportMetric(ratio/float64(runs), "makespan/lowerbound")
	b.ReportMetric(ratioNominal/float64(runs), "makespan/nominal")
}
