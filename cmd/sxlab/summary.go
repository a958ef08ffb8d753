package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/sxlab/sxlab/internal/plainjson"
	"golang.org/x/term"

	"github.com/sxlab/sxlab/lab"
)

// runSummary is the documented shape of `run --json`.
type runSummary struct {
	Run       string            `json:"run"`
	Dir       string            `json:"dir"`
	Providers []string          `json:"providers"`
	Simulated bool              `json:"simulated"`
	Attempts  int               `json:"attempts"`
	Remaining int               `json:"remaining"`
	Verdicts  map[string]int    `json:"verdicts"` // final records by verdict
	Cells     []lab.CellSummary `json:"cells"`
	// Findings names, per failing or flaky cell id, the triage findings of
	// its failing attempts with their counts ("endpoint-lost ×3").
	Findings map[string]string `json:"findings,omitempty"`
	// Quarantined names the hosts the run took out (they need a reboot).
	Quarantined []lab.QuarantinedHost `json:"quarantined,omitempty"`
	// Preflight counts what `sxlab preflight` found before the first
	// attempt (absent when it did not run); it never sets the exit code.
	Preflight *preflightCounts `json:"preflight,omitempty"`
	ExitCode  int              `json:"exit_code"`
	// SimulatedBy says where the simulated Macs were: "provider sim", or
	// "ssh host mini" for an ssh host pointed at `sxlab sim serve`.
	SimulatedBy []string `json:"simulated_by,omitempty"`
}

// preflightCounts is run.json's preflight in numbers.
type preflightCounts struct {
	Errors     int `json:"errors"`
	Warnings   int `json:"warnings"`
	Unreadable int `json:"unreadable"`
}

func summarise(res *lab.RunResult) runSummary {
	s := runSummary{Run: res.Info.ID, Dir: res.Dir, Providers: res.Info.Providers, Simulated: res.Info.Simulated,
		Attempts: len(res.Records) + res.Remaining, Remaining: res.Remaining,
		Verdicts: map[string]int{"pass": 0, "fail": 0, "error": 0}, Cells: res.Cells, Quarantined: res.Info.Quarantined}
	counts := map[string]map[string]int{}
	for _, r := range res.Records {
		s.Verdicts[string(r.Verdict)]++
		if r.Verdict == lab.Fail && r.Triage != nil && r.Triage.Finding != "" {
			if counts[r.Cell] == nil {
				counts[r.Cell] = map[string]int{}
			}
			counts[r.Cell][r.Triage.Finding]++
		}
	}
	for cell, byName := range counts {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(byName)) {
			parts = append(parts, fmt.Sprintf("%s ×%d", name, byName[name]))
		}
		if s.Findings == nil {
			s.Findings = map[string]string{}
		}
		s.Findings[cell] = strings.Join(parts, ", ")
	}
	if p := res.Info.Preflight; p != nil {
		s.Preflight = &preflightCounts{Errors: p.Errors, Warnings: p.Warnings, Unreadable: len(p.Unreadable)}
	}
	lab.SortByVerdict(s.Cells)
	s.ExitCode = exitCodeOf(s)
	s.SimulatedBy = simulatedBy(res)
	return s
}

// simulatedBy names where the simulated Macs of a run were, so the
// summary's two lines agree: the sim provider, and each host of another
// provider whose Mac turned out to be simulated (an ssh host pointed at
// sxlab sim serve), with its provider.
func simulatedBy(res *lab.RunResult) []string {
	if !res.Info.Simulated {
		return nil
	}
	provider := map[string]string{}
	for _, h := range res.Info.Hosts {
		provider[h.Name] = h.Provider
	}
	simHosts := map[string]bool{}
	for _, r := range res.Records {
		if r.Simulated && provider[r.Host] != lab.ProviderSim {
			simHosts[r.Host] = true
		}
	}
	var out []string
	if slices.Contains(res.Info.Providers, lab.ProviderSim) {
		out = append(out, "provider sim")
	}
	for _, h := range slices.Sorted(maps.Keys(simHosts)) {
		p := provider[h]
		if p == "" {
			p = "host"
		} else {
			p += " host"
		}
		out = append(out, fmt.Sprintf("%s %s", p, h))
	}
	if len(out) == 0 {
		out = []string{"provider " + strings.Join(res.Info.Providers, ", ")}
	}
	return out
}

// providersLine is "sim", or "ssh host mini (a simulated Mac)" when an
// ssh host's Mac was simulated: the names of the SIMULATED line.
func providersLine(s runSummary) string {
	parts := slices.Clone(s.Providers)
	for i, p := range parts {
		for _, by := range s.SimulatedBy {
			if strings.HasPrefix(by, p+" host ") {
				parts[i] = by + " (a simulated Mac)"
			}
		}
	}
	return strings.Join(parts, ", ")
}

// exitCodeOf: 2 when attempts were left without a verdict (the results are
// partial), else 1 when a cell failed or is flaky, else 0.
func exitCodeOf(s runSummary) int {
	if s.Remaining > 0 {
		return exitIncomplete
	}
	for _, c := range s.Cells {
		switch c.Verdict {
		case lab.CellIncomplete:
			return exitIncomplete
		}
	}
	for _, c := range s.Cells {
		if c.Verdict == lab.CellFail || c.Verdict == lab.CellFlaky {
			return exitFindings
		}
	}
	return exitOK
}

func writeSummary(w io.Writer, s runSummary, asJSON bool) error {
	if asJSON {
		enc := plainjson.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "run %s: %d attempt(s) on %s\n", s.Run, s.Attempts, providersLine(s))
	if s.Simulated {
		by := s.SimulatedBy
		if len(by) == 0 {
			by = []string{"provider sim"}
		}
		fmt.Fprintf(&b, "SIMULATED: these results come from simulated Macs (%s), not from real macOS.\n", strings.Join(by, ", "))
	}
	fmt.Fprintf(&b, "attempts: %d pass, %d fail, %d error", s.Verdicts["pass"], s.Verdicts["fail"], s.Verdicts["error"])
	if s.Remaining > 0 {
		fmt.Fprintf(&b, ", %d without a verdict (resume with: sxlab run --resume %s)", s.Remaining, s.Dir)
	}
	b.WriteString("\n")
	counts := map[lab.CellVerdict]int{}
	for _, c := range s.Cells {
		counts[c.Verdict]++
	}
	fmt.Fprintf(&b, "cells: %d pass, %d fail, %d flaky, %d incomplete\n", counts[lab.CellPass], counts[lab.CellFail], counts[lab.CellFlaky], counts[lab.CellIncomplete])
	for _, c := range s.Cells {
		if c.Verdict == lab.CellPass {
			continue
		}
		fmt.Fprintf(&b, "  %-10s %s  %d/%d failed (95%%: %.0f%%–%.0f%%)", strings.ToUpper(string(c.Verdict)), c.Label, c.Failures, c.Attempts, 100*c.Low, 100*c.High)
		if c.Errors > 0 {
			fmt.Fprintf(&b, ", %d error(s)", c.Errors)
		}
		if c.Missing > 0 {
			fmt.Fprintf(&b, ", %d without a verdict", c.Missing)
		}
		if f := s.Findings[c.Cell]; f != "" {
			fmt.Fprintf(&b, "; finding: %s", f)
		}
		b.WriteString("\n")
	}
	for _, q := range s.Quarantined {
		fmt.Fprintf(&b, "QUARANTINED host %s: %s (its attempts ran elsewhere; none counts against the product)\n", q.Host, q.Reason)
	}
	if line := preflightSummaryLine(s.Preflight); line != "" {
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "run folder: %s\n", s.Dir)
	_, err := io.WriteString(w, wrapForTerminal(w, b.String()))
	return err
}

// wrapForTerminal breaks the lines of text between words to the width of
// the terminal w is, if it is one, so that the terminal does not cut them
// mid-word; continuations line up under the cell's label.
func wrapForTerminal(w io.Writer, text string) string {
	fd, ok := terminalFd(w)
	if !ok {
		return text
	}
	width, _, err := term.GetSize(fd)
	if err != nil || width <= 0 {
		return text
	}
	return wrapText(text, width)
}

func wrapText(text string, width int) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		body := strings.TrimSuffix(line, "\n")
		b.WriteString(strings.Join(wrapWords(body, width-1, "             "), "\n"))
		if strings.HasSuffix(line, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// preflightSummaryLine is "preflight: 2 errors, 1 warning (sxlab preflight
// for details)", or "" when preflight found nothing or did not run.
func preflightSummaryLine(p *preflightCounts) string {
	if p == nil || p.Errors+p.Warnings+p.Unreadable == 0 {
		return ""
	}
	plural := func(n int, noun string) string {
		if n == 1 {
			return "1 " + noun
		}
		return fmt.Sprintf("%d %ss", n, noun)
	}
	line := "preflight: " + plural(p.Errors, "error") + ", " + plural(p.Warnings, "warning")
	if p.Unreadable > 0 {
		line += ", " + plural(p.Unreadable, "package") + " unreadable"
	}
	return line + " (sxlab preflight for details)"
}
