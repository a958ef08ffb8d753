package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
)

//go:embed report.html.tmpl
var pageSource string

// pageTemplate is parsed once; it is read-only afterwards.
var pageTemplate = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"join":     strings.Join,
	"upper":    func(v any) string { return strings.ToUpper(fmt.Sprint(v)) },
	"pct":      pct,
	"interval": interval,
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
	"since":    func(a, b time.Time) string { return dur(b.Sub(a)) },
	"offset":   func(a, b time.Time) string { return "+" + dur(b.Sub(a)) },
	"dur":      dur,
	"size":     artifacts.HumanSize,
	"output":   output,
}).Parse(pageSource))

// page is what the template renders.
type page struct {
	Run      *Run
	Title    string
	Grid     Grid
	Problems []Cell // failing and flaky cells, worst first
	Verdicts map[string]int
	Statuses map[string]int
}

// HTML renders the run as one self-contained page: inline CSS, no
// scripts, no fetches, links only to files of the run folder.
func HTML(r *Run) ([]byte, error) {
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
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	return b.Bytes(), nil
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
