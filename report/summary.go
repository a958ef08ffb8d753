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

	markdownPreflight(&b, r)
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

// markdownPreflight writes the preflight's errors and warnings (run.json's
// "preflight") as a table, or its one line when there are none. Its
// errors are the product's, found before any VM booted; no cell's verdict
// depends on them.
func markdownPreflight(b *strings.Builder, r *Run) {
	v := newPreflightView(r.Info.Preflight)
	if len(v.Paths) == 0 && len(v.Unreadable) == 0 {
		fmt.Fprintf(b, "%s\n\n", mdText(v.Line()))
		return
	}
	b.WriteString("### Preflight\n\n")
	fmt.Fprintf(b, "**%s**\n\n", mdText(v.Line()))
	if h := v.Hazard(); h != "" {
		fmt.Fprintf(b, "> **PREFLIGHT ERROR**: %s\n\n", mdText(h))
	}
	if len(v.Paths) > 0 {
		b.WriteString("| path | status | check | from | to | what it means | source |\n")
		b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
		for _, p := range v.Paths {
			for _, row := range p.Rows {
				fmt.Fprintf(b, "| %s | **%s** | `%s` | %s: %s | %s: %s | %s | %s |\n", mdText(row.Path), strings.ToUpper(string(row.Status)),
					mdCode(row.Check), mdText(p.From), mdValue(row.From), mdText(p.To), mdValue(row.To), mdText(row.Message), mdText(row.Source))
			}
		}
		b.WriteString("\n")
	}
	for _, u := range v.Unreadable {
		fmt.Fprintf(b, "- version %s: package `%s` UNREADABLE, not checked: %s\n", mdText(u.Version), mdCode(u.File), mdText(u.Reason))
	}
	if len(v.Unreadable) > 0 {
		b.WriteString("\n")
	}
}

// mdValue is a check's evidence as code, or a dash when it is empty.
func mdValue(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return "`" + mdCode(s) + "`"
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
