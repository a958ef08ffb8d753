package report

import (
	"fmt"
	"strings"
)

// Markdown renders the short summary for $GITHUB_STEP_SUMMARY and
// Buildkite annotations: who ran, the counts, and the failing and flaky
// cells with rate, interval and finding. The details are in report.html.
func Markdown(r *Run) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "## sxlab: %s, run %s", mdText(r.Info.Lab), mdText(r.Info.ID))
	if r.Simulated {
		b.WriteString(" (SIMULATED)")
	}
	b.WriteString("\n\n")
	if r.Simulated {
		fmt.Fprintf(&b, "> **SIMULATED**: these results come from simulated Macs (provider %s), not from real macOS.\n\n", mdText(strings.Join(r.Providers, ", ")))
	}
	for _, q := range r.Quarantined() {
		fmt.Fprintf(&b, "> **QUARANTINED**: %s.\n\n", mdText(q.Sentence()))
	}
	statuses := map[string]int{}
	for _, c := range r.Cells {
		statuses[c.Status()]++
	}
	fmt.Fprintf(&b, "| provider | attempts | pass | fail | error | without verdict | cells pass | fail | flaky | error | incomplete |\n")
	fmt.Fprintf(&b, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	prov := strings.Join(r.Providers, ", ")
	if r.Simulated {
		prov += " (SIMULATED)"
	}
	attempts := r.Verdicts["pass"] + r.Verdicts["fail"] + r.Verdicts["error"] + r.Remaining
	fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n\n", mdText(prov), attempts,
		r.Verdicts["pass"], r.Verdicts["fail"], r.Verdicts["error"], r.Remaining,
		statuses["pass"], statuses["fail"], statuses["flaky"], statuses["error"], statuses["incomplete"])
	if m := r.Machines(); m != "" {
		fmt.Fprintf(&b, "Tries by %s.\n\n", mdText(m))
	}

	problems := problemCells(r)
	if len(problems) == 0 {
		b.WriteString("No cell failed or is flaky.\n")
	} else {
		b.WriteString("| cell | verdict | failed | rate (95% interval) | finding |\n")
		b.WriteString("| --- | --- | ---: | --- | --- |\n")
		for _, c := range problems {
			var fs []string
			for _, f := range c.Findings() {
				fs = append(fs, fmt.Sprintf("`%s` ×%d", mdCode(f.Name), f.Count))
			}
			fmt.Fprintf(&b, "| %s | **%s** | %d/%d | %s (%s) | %s |\n", mdText(c.Label), strings.ToUpper(c.Status()),
				c.Failures, c.Attempts, pct(c.Rate), interval(c.Low, c.High), strings.Join(fs, "<br>"))
		}
	}
	var other []Cell
	for _, c := range r.Cells {
		if s := c.Status(); s == "error" || s == "incomplete" {
			other = append(other, c)
		}
	}
	if len(other) > 0 {
		b.WriteString("\nWithout a product verdict (infrastructure errors or not run):\n\n")
		for _, c := range other {
			fmt.Fprintf(&b, "- %s: %s", mdText(c.Label), c.Status())
			if c.Errors > 0 {
				fmt.Fprintf(&b, ", %d error(s)", c.Errors)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\nDetails: `report.html` and `junit.xml` in the run folder.\n")
	return []byte(b.String())
}

// mdText makes s safe inside a table cell: one line, pipes escaped, and
// characters Markdown would read as markup escaped.
func mdText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := strings.NewReplacer(`\`, `\\`, "|", `\|`, "*", `\*`, "_", `\_`, "`", "\\`", "<", "&lt;", ">", "&gt;", "[", `\[`, "]", `\]`)
	return r.Replace(s)
}

// mdCode makes s safe inside a code span in a table cell.
func mdCode(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("`", "'", "|", `\|`).Replace(s)
}
