package report

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sxlab/sxlab/lab"
)

// Change is how one cell moved between two runs.
type Change string

const (
	// NewlyFailing: passed before, fails or is flaky now (or is new and
	// does not pass). The nightly gate.
	NewlyFailing Change = "newly-failing"
	// Fixed: failed or was flaky before, passes now.
	Fixed Change = "fixed"
	// Worse and Better: still failing or flaky, with a failure rate whose
	// interval no longer overlaps the old one.
	Worse  Change = "flakier"
	Better Change = "less-flaky"
	// Gone: in the base run only (the matrix changed, or the new run is a
	// shard).
	Gone Change = "gone"
)

// CellDiff is one cell that changed.
type CellDiff struct {
	Cell   string           `json:"cell"`
	Label  string           `json:"label"`
	Change Change           `json:"change"`
	Base   *lab.CellSummary `json:"base,omitempty"`
	New    *lab.CellSummary `json:"new,omitempty"`
}

// DiffResult compares two runs cell by cell.
type DiffResult struct {
	Base string `json:"base"` // run IDs
	New  string `json:"new"`
	// Simulated is true when either run came from simulated Macs.
	Simulated bool       `json:"simulated"`
	Changes   []CellDiff `json:"changes"`
	Unchanged int        `json:"unchanged"`
	// Excluded are journal lines of either run left out, as resume,
	// report and merge leave them out (`RUN/results.jsonl:LINE: why`).
	Excluded []string `json:"excluded,omitempty"`
}

// NewlyFailing reports whether the gate should fail the nightly job.
func (d DiffResult) NewlyFailing() bool {
	for _, c := range d.Changes {
		if c.Change == NewlyFailing || c.Change == Worse {
			return true
		}
	}
	return false
}

// Diff compares the runs in two run folders.
func Diff(baseDir, newDir string) (*DiffResult, error) {
	base, err := readShard(baseDir)
	if err != nil {
		return nil, fmt.Errorf("diff: base: %w", err)
	}
	cur, err := readShard(newDir)
	if err != nil {
		return nil, fmt.Errorf("diff: new: %w", err)
	}
	res := DiffCells(lab.Summarise(base.Records), lab.Summarise(cur.Records))
	res.Base, res.New = base.Info.ID, cur.Info.ID
	res.Simulated = base.Info.Simulated || cur.Info.Simulated
	for _, sh := range []*shard{base, cur} {
		for _, d := range sh.Damage {
			res.Excluded = append(res.Excluded, filepath.Join(sh.Dir, d.String()))
		}
	}
	return res, nil
}

// DiffCells classifies each cell. Pass and fail are both certain outcomes
// at their repeat count, so a flip between them always counts; anything
// involving a flaky cell counts only when the two 95% intervals do not
// overlap, so a 20% race that showed 0/3 one night and 1/3 the next is
// not news. Cells that could not be judged (incomplete) are left out.
func DiffCells(base, cur []lab.CellSummary) *DiffResult {
	res := &DiffResult{}
	byID := map[string]lab.CellSummary{}
	for _, c := range base {
		byID[c.Cell] = c
	}
	seen := map[string]bool{}
	for _, n := range cur {
		seen[n.Cell] = true
		b, ok := byID[n.Cell]
		n := n
		if !ok {
			if n.Verdict == lab.CellFail || n.Verdict == lab.CellFlaky {
				res.Changes = append(res.Changes, CellDiff{Cell: n.Cell, Label: n.Label, Change: NewlyFailing, New: &n})
			}
			continue
		}
		if ch, changed := classify(b, n); changed {
			res.Changes = append(res.Changes, CellDiff{Cell: n.Cell, Label: n.Label, Change: ch, Base: &b, New: &n})
		} else {
			res.Unchanged++
		}
	}
	for _, b := range base {
		if !seen[b.Cell] {
			b := b
			res.Changes = append(res.Changes, CellDiff{Cell: b.Cell, Label: b.Label, Change: Gone, Base: &b})
		}
	}
	rank := map[Change]int{NewlyFailing: 0, Worse: 1, Fixed: 2, Better: 3, Gone: 4}
	sort.SliceStable(res.Changes, func(i, j int) bool {
		a, b := res.Changes[i], res.Changes[j]
		if rank[a.Change] != rank[b.Change] {
			return rank[a.Change] < rank[b.Change]
		}
		return a.Label < b.Label
	})
	return res
}

func classify(b, n lab.CellSummary) (Change, bool) {
	if b.Verdict == lab.CellIncomplete || n.Verdict == lab.CellIncomplete {
		return "", false
	}
	certain := func(v lab.CellVerdict) bool { return v == lab.CellPass || v == lab.CellFail }
	separated := (certain(b.Verdict) && certain(n.Verdict) && b.Verdict != n.Verdict) || !lab.Overlap(b, n)
	if !separated {
		return "", false
	}
	switch {
	case b.Verdict == lab.CellPass:
		return NewlyFailing, true
	case n.Verdict == lab.CellPass:
		return Fixed, true
	case n.Rate > b.Rate:
		return Worse, true
	case n.Rate < b.Rate:
		return Better, true
	}
	return "", false
}

// WriteDiff prints a diff for a person.
func WriteDiff(w io.Writer, d *DiffResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "diff %s → %s: %d cell(s) changed, %d unchanged\n", d.Base, d.New, len(d.Changes), d.Unchanged)
	if d.Simulated {
		b.WriteString("SIMULATED: at least one run comes from simulated Macs (provider sim), not from real macOS.\n")
	}
	// The count says what it counts ("0/3 failed"): next to the verdict
	// word alone, "pass 0/3" read as no passes.
	rate := func(s *lab.CellSummary) string {
		if s == nil {
			return "—"
		}
		return fmt.Sprintf("%s, %d/%d failed (95%%: %.0f%%–%.0f%%)", s.Verdict, s.Failures, s.Attempts, 100*s.Low, 100*s.High)
	}
	for _, c := range d.Changes {
		fmt.Fprintf(&b, "  %-13s %s  %s → %s\n", strings.ToUpper(string(c.Change)), c.Label, rate(c.Base), rate(c.New))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
