package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/steps"
)

// Run is a run folder as the reports see it: read once, rendered three
// ways. Nothing in it is re-run or re-judged; verdicts and intervals are
// the journal's, folded by lab.Summarise.
type Run struct {
	Dir     string
	Info    lab.RunInfo
	Plan    lab.PlanInfo
	Records []lab.Record // every journal line that parsed, in journal order
	// Damage lists the journal lines that were excluded, by number: torn,
	// edited, unparsable, of an unknown verdict or outside the plan (as
	// resume and merge exclude them).
	Damage []lab.JournalDamage
	// Cells are in plan order; cells of the journal that the plan does
	// not know follow.
	Cells []Cell
	// Providers that ran: run.json's, and any a record names.
	Providers []string
	// Simulated is true when any host or record was simulated.
	Simulated bool
	// Remaining counts this run's planned attempts without a final record.
	Remaining int
	// Verdicts counts final records by verdict.
	Verdicts map[lab.Verdict]int
}

// Cell is one cell: its summary and every try of every attempt.
type Cell struct {
	lab.CellSummary
	Tries []Attempt // every try of every attempt, by repeat, then try
}

// Attempt is one try of an attempt with what its folder holds.
type Attempt struct {
	lab.Record
	// Folder is the attempt's folder relative to the run folder, with
	// slashes (it is also the base of the links to its files).
	Folder string
	Steps  []steps.Entry
	// StepsProblem says why steps.jsonl could not be read whole.
	StepsProblem string
	Files        []File
}

// File is one file of an attempt's folder.
type File struct {
	Path string // relative to the run folder, with slashes
	Name string // relative to the attempt folder, with slashes
	Size int64
}

// Status is the word (and colour) of a cell in the reports: the cell
// verdict, except that a cell whose attempts all ended in infrastructure
// errors says "error" rather than "incomplete", so a broken host is not
// mistaken for a cell nobody ran.
func (c Cell) Status() string {
	if c.Verdict == lab.CellIncomplete && c.Errors > 0 {
		return "error"
	}
	return string(c.Verdict)
}

// Finding is a triage finding and how many of a cell's failing attempts
// carry it.
type Finding struct {
	Name  string
	Count int
}

// noTriage names failing attempts that carry no triage at all (collection
// was off, or the run predates triage), which is not the same as
// artifacts.Unclassified.
const noTriage = "not triaged"

// Findings counts the findings of the cell's final failing attempts, most
// frequent first.
func (c Cell) Findings() []Finding {
	counts := map[string]int{}
	for _, a := range c.Tries {
		if !a.Final || a.Verdict != lab.Fail {
			continue
		}
		name := noTriage
		if a.Triage != nil && a.Triage.Finding != "" {
			name = a.Triage.Finding
		}
		counts[name]++
	}
	out := make([]Finding, 0, len(counts))
	for n, k := range counts {
		out = append(out, Finding{Name: n, Count: k})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Attachments returns the attempt's sysdiagnose and log files, the
// evidence CI systems attach to a test case.
func (a Attempt) Attachments() []File {
	var out []File
	for _, f := range a.Files {
		if isSysdiagnose(f.Name) || f.Name == "logs.ndjson" {
			out = append(out, f)
		}
	}
	return out
}

func isSysdiagnose(name string) bool {
	return !strings.Contains(name, "/") && strings.HasPrefix(name, "sysdiagnose_") && strings.HasSuffix(name, ".tar.gz")
}

// Lookup returns the attempt's file at name (relative to the attempt
// folder), or nil when the folder does not hold it: links go only to
// files that exist.
func (a Attempt) Lookup(name string) *File {
	if name == "" {
		return nil
	}
	name = path.Clean(filepath.ToSlash(name))
	for i := range a.Files {
		if a.Files[i].Name == name {
			return &a.Files[i]
		}
	}
	return nil
}

// Load reads a run folder: run.json, plan.json, results.jsonl, and each
// attempt's steps.jsonl and file list. It takes no lock, so it can read a
// folder the run that writes it still holds. It is loadIndex with every
// cell filled, so the two cannot disagree on a cell's verdict.
func Load(dir string) (*Run, error) {
	r, err := loadIndex(dir)
	if err != nil {
		return nil, err
	}
	for i, c := range r.Cells {
		if r.Cells[i], err = fillCell(dir, c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Excluded returns the journal lines of a run folder that the reports (and
// resume and merge) leave out, by number.
func Excluded(dir string) ([]lab.JournalDamage, error) {
	_, _, _, damage, err := readRunFiles(dir)
	return damage, err
}

// finalRecords returns one final record per attempt (the journal's last,
// as resume keeps it), in plan order, then attempts the plan does not
// list, so the summaries agree with what `sxlab run` printed.
func finalRecords(plan lab.PlanInfo, records []lab.Record) []lab.Record {
	byKey := lab.Finished(records)
	var out []lab.Record
	used := map[string]bool{}
	for _, pa := range plan.Attempts {
		key := fmt.Sprintf("%s-r%d", pa.Cell, pa.Repeat)
		if rec, ok := byKey[key]; ok && !used[key] {
			used[key] = true
			out = append(out, rec)
		}
	}
	var rest []lab.Record
	for key, rec := range byKey {
		if !used[key] {
			rest = append(rest, rec)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return lessTry(rest[i], rest[j]) })
	return append(out, rest...)
}

// latestTries keeps the last journal line of each try (a merged or
// resumed journal may repeat one), ordered by cell, repeat and try.
func latestTries(records []lab.Record) []lab.Record {
	type key struct {
		cell        string
		repeat, try int
	}
	idx := map[key]int{}
	var out []lab.Record
	for _, rec := range records {
		k := key{rec.Cell, rec.Repeat, rec.Try}
		if i, ok := idx[k]; ok {
			out[i] = rec
			continue
		}
		idx[k] = len(out)
		out = append(out, rec)
	}
	sort.SliceStable(out, func(i, j int) bool { return lessTry(out[i], out[j]) })
	return out
}

func lessTry(a, b lab.Record) bool {
	if a.Cell != b.Cell {
		return a.Cell < b.Cell
	}
	if a.Repeat != b.Repeat {
		return a.Repeat < b.Repeat
	}
	return a.Try < b.Try
}

// loadAttempt reads an attempt's steps and lists its files. A missing
// folder is not an error: an attempt that failed to boot has none.
func loadAttempt(runDir string, rec lab.Record) (Attempt, error) {
	rel := rec.Dir
	if rel == "" {
		rel = lab.AttemptDir(rec.Cell, rec.Repeat, max(rec.Try, 1))
	}
	rel = path.Clean(filepath.ToSlash(rel))
	a := Attempt{Record: rec, Folder: rel}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		a.StepsProblem = fmt.Sprintf("attempt folder %q is outside the run folder; not read", rec.Dir)
		a.Folder = ""
		return a, nil
	}
	abs := filepath.Join(runDir, filepath.FromSlash(rel))
	err := filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == abs {
				return fs.SkipAll
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		name = filepath.ToSlash(name)
		a.Files = append(a.Files, File{Path: rel + "/" + name, Name: name, Size: info.Size()})
		return nil
	})
	if err != nil {
		return a, fmt.Errorf("attempt folder %s: %w", abs, err)
	}
	sort.Slice(a.Files, func(i, j int) bool { return a.Files[i].Name < a.Files[j].Name })

	b, err := os.ReadFile(filepath.Join(abs, "steps.jsonl"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return a, nil
	case err != nil:
		return a, fmt.Errorf("attempt %s: %w", rel, err)
	}
	a.Steps, a.StepsProblem = parseSteps(b)
	return a, nil
}

// parseSteps reads steps.jsonl, skipping lines that do not parse (the
// line a kill interrupted) and saying how many.
func parseSteps(b []byte) ([]steps.Entry, string) {
	var out []steps.Entry
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e steps.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			bad = append(bad, fmt.Sprint(n))
			continue
		}
		out = append(out, e)
	}
	problem := ""
	if len(bad) > 0 {
		problem = "steps.jsonl: skipped unreadable line(s) " + strings.Join(bad, ", ")
	}
	if err := sc.Err(); err != nil {
		problem = strings.TrimPrefix(problem+"; ", "; ") + "steps.jsonl: " + err.Error()
	}
	return out, problem
}
