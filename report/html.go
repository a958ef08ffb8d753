package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
)

//go:embed report.html.tmpl
var pageSource string

//go:embed cell.html.tmpl
var cellSource string

// styleSource is both pages' inline style sheet.
//
//go:embed style.css
var styleSource string

var funcs = template.FuncMap{
	"join":      strings.Join,
	"upper":     func(v any) string { return strings.ToUpper(fmt.Sprint(v)) },
	"pct":       pct,
	"interval":  interval,
	"when":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
	"clock":     func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"since":     func(a, b time.Time) string { return dur(b.Sub(a)) },
	"offset":    offsetText,
	"dur":       dur,
	"size":      artifacts.HumanSize,
	"output":    output,
	"cellpage":  func(id string) string { p, _ := cellPagePath(id); return p },
	"anchor":    attemptAnchor,
	"up":        func(p string) string { return "../../" + p },
	"clocknote": func(a Attempt) string { return clockMap(a.Clock).describe() },
	"untimed":   Untimed,
	"slotname":  slotName,
	"style":     func() template.CSS { return template.CSS(styleSource) },
	"first":     func(fs []Finding, n int) []Finding { return fs[:min(n, len(fs))] },
	"preflight": newPreflightView,
}

// The templates are parsed once; they are read-only afterwards.
var (
	pageTemplate = template.Must(template.New("report.html").Funcs(funcs).Parse(pageSource))
	cellTemplate = template.Must(template.New("cell.html").Funcs(funcs).Parse(cellSource))
)

// page is what report.html renders.
type page struct {
	Run      *Run
	Title    string
	Grid     Grid
	Problems []Cell // failing and flaky cells, worst first
	Verdicts map[string]int
	Statuses map[string]int
	Timeline Timeline
}

// HTML renders the run's front page: the matrix with each cell's
// finding, the timeline of the slots, and the failing and flaky cells,
// each linking to its cell page (CellHTML). Inline CSS, no scripts, no
// fetches, links only to files of the run folder.
func HTML(r *Run) ([]byte, error) {
	var b bytes.Buffer
	if err := writeHTML(&b, r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeHTML(w io.Writer, r *Run) error {
	p := page{Run: r, Title: title(r), Verdicts: map[string]int{}, Statuses: map[string]int{}}
	for v, n := range r.Verdicts {
		p.Verdicts[string(v)] = n
	}
	summaries := make([]lab.CellSummary, len(r.Cells))
	for i, c := range r.Cells {
		summaries[i] = c.CellSummary
		p.Statuses[c.Status()]++
	}
	m := r.Info.Config.Matrix
	p.Grid = NewGrid(m.Axes, m.ImageAxis, m.PathAxis, summaries)
	p.Problems = problemCells(r)
	p.Timeline = NewTimeline(r)
	if err := pageTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("%s: %w", HTMLFile, err)
	}
	return nil
}

// cellPageData is what a cell page renders.
type cellPageData struct {
	Run   *Run
	Title string
	Cell  Cell
	Open  int // index of the try shown open, -1: none
}

// CellHTML renders one cell's page (cells/<id>/index.html): its rate and
// findings, then every try collapsed, the first failing one open, each
// with its probes, one timeline of steps and evidence on the host's
// clock, and links to the attempt's folder for everything else.
func CellHTML(r *Run, c Cell) ([]byte, error) {
	var b bytes.Buffer
	if err := writeCellHTML(&b, r, c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeCellHTML(w io.Writer, r *Run, c Cell) error {
	d := cellPageData{Run: r, Title: title(r) + " · " + c.Label, Cell: c, Open: openTry(c)}
	if err := cellTemplate.Execute(w, d); err != nil {
		return fmt.Errorf("cell page %s: %w", c.Cell, err)
	}
	return nil
}

// openTry is the try a cell page shows open: the first final failing
// one; in a cell without failures, the first that errored; else none.
func openTry(c Cell) int {
	for i, a := range c.Tries {
		if a.Final && a.Verdict == lab.Fail {
			return i
		}
	}
	for i, a := range c.Tries {
		if a.Verdict == lab.Error {
			return i
		}
	}
	return -1
}

// cellPagePath is a cell's page relative to the run folder, beside its
// attempt folders; false for an ID that is no plain folder name.
func cellPagePath(id string) (string, bool) {
	if id == "" || id == "." || id == ".." || strings.ContainsFunc(id, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return "", false
	}
	return "cells/" + id + "/" + CellPageFile, true
}

// attemptAnchor is a try's id on its cell page: r2, or r2-try3.
func attemptAnchor(a Attempt) string {
	if a.Try > 1 {
		return fmt.Sprintf("r%d-try%d", a.Repeat, a.Try)
	}
	return fmt.Sprintf("r%d", a.Repeat)
}

func slotName(a Attempt) string {
	if a.Slot > 0 {
		return fmt.Sprintf("%s#%d", a.Host, a.Slot)
	}
	return a.Host
}

// offsetText is t after the start, "+1.5 s"; "" for a time unknown.
func offsetText(start, t time.Time) string {
	if t.IsZero() || start.IsZero() {
		return ""
	}
	if t.Before(start) {
		return "−" + dur(start.Sub(t))
	}
	return "+" + dur(t.Sub(start))
}

func title(r *Run) string {
	t := "sxlab report: " + r.Info.Lab + " run " + r.Info.ID
	if r.Simulated {
		t = "SIMULATED · " + t
	}
	return t
}

// problemCells are the failing and flaky cells, worst first, in the order
// lab.SortByVerdict gives the console summary.
func problemCells(r *Run) []Cell {
	var s []lab.CellSummary
	byID := map[string]Cell{}
	for _, c := range r.Cells {
		if c.Verdict == lab.CellFail || c.Verdict == lab.CellFlaky {
			s = append(s, c.CellSummary)
			byID[c.Cell] = c
		}
	}
	lab.SortByVerdict(s)
	out := make([]Cell, len(s))
	for i, cs := range s {
		out[i] = byID[cs.Cell]
	}
	return out
}

func pct(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }

func interval(low, high float64) string {
	return fmt.Sprintf("%.0f–%.0f%%", 100*low, 100*high)
}

// dur rounds a duration for people: milliseconds under a second, then
// tenths of seconds.
func dur(d time.Duration) string {
	switch {
	case d < 0:
		return "?"
	case d < time.Millisecond:
		return "<1 ms"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

// outputLimit bounds one step's output in the page; the whole tail is in
// steps.jsonl, linked from the artifacts.
const outputLimit = 4 << 10

// output is a step's stdout and stderr, the last outputLimit bytes.
func output(r guest.Result) string {
	var b strings.Builder
	if r.Cut {
		b.WriteString("[… earlier output dropped]\n")
	}
	b.WriteString(r.Stdout)
	if r.Stderr != "" {
		if r.Stdout != "" && !strings.HasSuffix(r.Stdout, "\n") {
			b.WriteString("\n")
		}
		b.WriteString("[stderr]\n" + r.Stderr)
	}
	s := b.String()
	if len(s) > outputLimit {
		i := len(s) - outputLimit
		for i < len(s) && !utf8.RuneStart(s[i]) {
			i++
		}
		s = "[…]\n" + s[i:]
	}
	return s
}

// evidenceLine is one evidence line as text: time, process, message,
// and the file it came from.
func evidenceLine(e artifacts.Evidence) string {
	var b strings.Builder
	if !e.Time.IsZero() {
		b.WriteString(e.Time.UTC().Format("2006-01-02 15:04:05.000Z") + " ")
	}
	if e.Process != "" {
		b.WriteString(e.Process + ": ")
	}
	b.WriteString(e.Message)
	if e.Source != "" {
		b.WriteString(" (" + e.Source + ")")
	}
	return b.String()
}
