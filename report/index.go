package report

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"

	"github.com/sxlab/sxlab/lab"
)

// loadIndex reads a run folder as Load does but leaves the attempt
// folders unread: every Attempt has its record and Folder, no Steps and no
// Files. Write renders from it and reads one cell's folders at a time
// (fillCell), so a run of thousands of attempts never holds every
// steps.jsonl at once. TestLoadIndexAgreesWithLoad keeps the two in step.
func loadIndex(dir string) (*Run, error) {
	r := &Run{Dir: dir, Verdicts: map[lab.Verdict]int{}}
	var err error
	if r.Info, r.Plan, r.Records, r.Damage, err = readRunFiles(dir); err != nil {
		return nil, err
	}
	final := finalRecords(r.Plan, r.Records)
	for _, rec := range final {
		r.Verdicts[rec.Verdict]++
	}
	// A cell with planned attempts left is incomplete, as `sxlab run`
	// summarised it.
	folded := lab.SummarisePlan(final, r.Plan.Cells, r.Plan.Attempts)
	summaries := map[string]lab.CellSummary{}
	for _, s := range folded {
		summaries[s.Cell] = s
	}
	tries := map[string][]Attempt{}
	for _, rec := range latestTries(r.Records) {
		tries[rec.Cell] = append(tries[rec.Cell], indexAttempt(rec))
	}
	seen := map[string]bool{}
	add := func(s lab.CellSummary) {
		seen[s.Cell] = true
		r.Cells = append(r.Cells, Cell{CellSummary: s, Tries: tries[s.Cell]})
	}
	for _, pc := range r.Plan.Cells {
		s, ok := summaries[pc.ID]
		if !ok {
			s = lab.CellSummary{Cell: pc.ID, Label: pc.Label, Axes: pc.Axes, Verdict: lab.CellIncomplete}
			s.Low, s.High = lab.Wilson(0, 0)
		}
		add(s)
	}
	for _, s := range folded {
		if !seen[s.Cell] {
			add(s)
		}
	}
	done := lab.Finished(final)
	planned := map[string]bool{}
	for _, pa := range r.Plan.Attempts {
		key := fmt.Sprintf("%s-r%d", pa.Cell, pa.Repeat)
		if planned[key] {
			continue
		}
		planned[key] = true
		if _, ok := done[key]; !ok {
			r.Remaining++
		}
	}
	r.Simulated = r.Info.Simulated
	providers := map[string]bool{}
	for _, p := range r.Info.Providers {
		providers[p] = true
	}
	for _, rec := range r.Records {
		r.Simulated = r.Simulated || rec.Simulated
		if rec.Provider != "" {
			providers[rec.Provider] = true
		}
	}
	for p := range providers {
		r.Providers = append(r.Providers, p)
	}
	sort.Strings(r.Providers)
	return r, nil
}

// indexAttempt is the Attempt loadAttempt would make, without reading
// the folder: the same Folder, or the same complaint about it.
func indexAttempt(rec lab.Record) Attempt {
	rel := rec.Dir
	if rel == "" {
		rel = lab.AttemptDir(rec.Cell, rec.Repeat, max(rec.Try, 1))
	}
	rel = path.Clean(filepath.ToSlash(rel))
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return Attempt{Record: rec, StepsProblem: fmt.Sprintf("attempt folder %q is outside the run folder; not read", rec.Dir)}
	}
	return Attempt{Record: rec, Folder: rel}
}

// fillCell returns the cell with its attempts' folders read (steps and
// files), leaving c as it was.
func fillCell(dir string, c Cell) (Cell, error) {
	full := c
	full.Tries = make([]Attempt, len(c.Tries))
	for i, a := range c.Tries {
		if a.Folder == "" { // outside the run folder: loadIndex already said so
			full.Tries[i] = a
			continue
		}
		la, err := loadAttempt(dir, a.Record)
		if err != nil {
			return c, err
		}
		full.Tries[i] = la
	}
	return full, nil
}
