package lab

import (
	"fmt"
	"math"
	"sort"
)

// CellVerdict is a cell's verdict over its repeats.
type CellVerdict string

const (
	CellPass  CellVerdict = "pass"  // 0 of K attempts failed
	CellFail  CellVerdict = "fail"  // K of K failed
	CellFlaky CellVerdict = "flaky" // f of K failed, 0 < f < K
	// CellIncomplete: no attempt reached a product verdict (errors only,
	// or nothing ran yet), or, for a cell of a plan (SummarisePlan), some
	// of its attempts have no verdict yet (an interrupted run).
	CellIncomplete CellVerdict = "incomplete"
)

// CellSummary aggregates a cell's final records.
type CellSummary struct {
	Cell     string            `json:"cell"`
	Label    string            `json:"label"`
	Axes     map[string]string `json:"axes"`
	Verdict  CellVerdict       `json:"verdict"`
	Attempts int               `json:"attempts"` // final records with a product verdict (pass or fail)
	Failures int               `json:"failures"`
	Errors   int               `json:"errors"` // final records that ended in error
	// Missing counts the cell's planned attempts without a final record
	// (SummarisePlan only): until they have one, the cell is incomplete.
	Missing int `json:"missing,omitempty"`
	// Rate is Failures/Attempts; Low and High bound it at 95% (Wilson).
	Rate float64 `json:"rate"`
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Wilson returns the 95% Wilson score interval of f failures in n trials.
// Unlike the normal approximation it stays within [0, 1] and is honest for
// the small K of a nightly run (3/3 failures is not "certainly 100%").
func Wilson(f, n int) (low, high float64) {
	if n <= 0 {
		return 0, 1
	}
	const z = 1.959963984540054
	p := float64(f) / float64(n)
	nn := float64(n)
	denom := 1 + z*z/nn
	center := (p + z*z/(2*nn)) / denom
	half := z * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn)) / denom
	return math.Max(0, center-half), math.Min(1, center+half)
}

// Summarise folds final records into one summary per cell, in the order
// cells first appear.
func Summarise(records []Record) []CellSummary {
	byCell := map[string]*CellSummary{}
	var order []string
	for _, r := range records {
		if !r.Final {
			continue
		}
		s, ok := byCell[r.Cell]
		if !ok {
			s = &CellSummary{Cell: r.Cell, Label: r.Label, Axes: r.Axes}
			byCell[r.Cell] = s
			order = append(order, r.Cell)
		}
		switch r.Verdict {
		case Pass:
			s.Attempts++
		case Fail:
			s.Attempts++
			s.Failures++
		default:
			s.Errors++
		}
	}
	out := make([]CellSummary, 0, len(order))
	for _, id := range order {
		s := byCell[id]
		switch {
		case s.Attempts == 0:
			s.Verdict = CellIncomplete
		case s.Failures == 0:
			s.Verdict = CellPass
		case s.Failures == s.Attempts:
			s.Verdict = CellFail
		default:
			s.Verdict = CellFlaky
		}
		if s.Attempts > 0 {
			s.Rate = float64(s.Failures) / float64(s.Attempts)
		}
		s.Low, s.High = Wilson(s.Failures, s.Attempts)
		out = append(out, *s)
	}
	return out
}

// SummarisePlan folds final records into one summary per planned cell, in
// plan order (cells of records the plan does not list follow): a cell
// with planned attempts still without a final record is incomplete, its
// figures so far kept, so an interrupted run does not read as a finished
// one.
func SummarisePlan(records []Record, cells []PlanCell, attempts []PlanAttempt) []CellSummary {
	final := Finished(records)
	missing := map[string]int{}
	planned := map[string]bool{}
	for _, a := range attempts {
		planned[a.Cell] = true
		if _, ok := final[fmt.Sprintf("%s-r%d", a.Cell, a.Repeat)]; !ok {
			missing[a.Cell]++
		}
	}
	byCell := map[string]CellSummary{}
	for _, s := range Summarise(records) {
		byCell[s.Cell] = s
	}
	var out []CellSummary
	seen := map[string]bool{}
	for _, c := range cells {
		if !planned[c.ID] || seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		s, ok := byCell[c.ID]
		if !ok {
			s = CellSummary{Cell: c.ID, Label: c.Label, Axes: c.Axes, Verdict: CellIncomplete}
			s.Low, s.High = Wilson(0, 0)
		}
		if s.Missing = missing[c.ID]; s.Missing > 0 {
			s.Verdict = CellIncomplete
		}
		out = append(out, s)
	}
	for _, s := range Summarise(records) {
		if !seen[s.Cell] {
			out = append(out, s)
		}
	}
	return out
}

// Overlap reports whether two cells' failure-rate intervals overlap: a
// change in flakiness counts only when they do not.
func Overlap(a, b CellSummary) bool {
	return a.Low <= b.High && b.Low <= a.High
}

// SortByVerdict orders summaries worst first (fail, flaky, incomplete,
// pass), then by label, for summaries people read.
func SortByVerdict(s []CellSummary) {
	rank := map[CellVerdict]int{CellFail: 0, CellFlaky: 1, CellIncomplete: 2, CellPass: 3}
	sort.SliceStable(s, func(i, j int) bool {
		if rank[s[i].Verdict] != rank[s[j].Verdict] {
			return rank[s[i].Verdict] < rank[s[j].Verdict]
		}
		return s[i].Label < s[j].Label
	})
}
