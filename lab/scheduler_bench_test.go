package lab

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sxlab/sxlab/matrices"
)

// BenchmarkSchedulerMakespan runs 64 attempts of varied length on 2 hosts ×
// 2 slots and reports the makespan over its lower bound (total attempt
// time / slots); the goal for the whole run is ≤ 1.05. Attempt times are
// synthetic here (a sim-driven figure comes with `sxlab run`).
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
	var total time.Duration
	for _, a := range p.Attempts {
		d := time.Duration(5+r.IntN(15)) * time.Millisecond
		dur[a.ID()] = d
		total += d
	}
	lower := total / time.Duration(len(sl))
	var ratio float64
	for b.Loop() {
		s := Scheduler{Slots: sl, Record: func(Record) error { return nil },
			Exec: func(ctx context.Context, _ Slot, a matrices.Attempt, _ int) Record {
				time.Sleep(dur[a.ID()])
				return Record{Cell: a.Cell.ID, Repeat: a.Repeat, Verdict: Pass}
			}}
		start := time.Now()
		if err := s.Run(context.Background(), p.Attempts); err != nil {
			b.Fatal(err)
		}
		ratio = float64(time.Since(start)) / float64(lower)
	}
	b.ReportMetric(ratio, "makespan/lowerbound")
}
