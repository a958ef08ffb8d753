package report

import (
	"bytes"
	"context"
	"html"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

var (
	reHeatmapCell = regexp.MustCompile(`<a class="hm v-([a-z]+)" data-cell="([0-9a-z]+)" data-verdict="([a-z]+)"[^>]*>(.*?)</a>`)
	reHref        = regexp.MustCompile(`href="([^"]*)"`)
	reTitle       = regexp.MustCompile(`<title>([^<]*)</title>`)
)

// section returns the page between the element with id and the next h2,
// so checks look where a person would.
func section(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `id="`+id+`"`)
	require.GreaterOrEqual(t, i, 0, "no element with id %s", id)
	rest := page[i:]
	if j := strings.Index(rest, "<h2"); j >= 0 {
		return rest[:j]
	}
	return rest
}

func htmlOf(t *testing.T, simulated bool) (string, *Run) {
	t.Helper()
	r := fxLoad(t, simulated)
	b, err := HTML(r)
	require.NoError(t, err)
	return string(b), r
}

func TestHTMLHeatmapHasEveryCellWithItsVerdictAndInterval(t *testing.T) {
	page, r := htmlOf(t, true)
	heat := section(t, page, "heatmap")
	got := map[string][]string{}
	for _, m := range reHeatmapCell.FindAllStringSubmatch(heat, -1) {
		assert.Equal(t, m[1], m[3], "class and data-verdict agree")
		got[m[2]] = []string{m[3], html.UnescapeString(m[4])}
	}
	require.Len(t, got, len(r.Cells), "one heatmap element per cell")
	assert.Equal(t, "fail", got[fxFail.id][0])
	assert.Contains(t, got[fxFail.id][1], "3/3 failed")
	assert.Contains(t, got[fxFail.id][1], "100% (95%: 44–100%)")
	assert.Equal(t, "pass", got[fxPass.id][0])
	assert.Contains(t, got[fxPass.id][1], "0% (95%: 0–56%)")
	assert.Equal(t, "flaky", got[fxFlaky.id][0])
	assert.Contains(t, got[fxFlaky.id][1], "1/3 failed")
	assert.Contains(t, got[fxFlaky.id][1], "33% (95%: 6–79%)")
	assert.Equal(t, "error", got[fxErrors.id][0])
	assert.Contains(t, got[fxErrors.id][1], "1 error(s)")

	// Rows macos x path, columns vpn: 2 rows of 2.
	assert.Equal(t, 2, strings.Count(heat, "<tr><th>macos-15."))
	assert.Contains(t, heat, "<th>vpn=running</th>")
}

func TestHTMLSaysSimulatedInTitleAndBanner(t *testing.T) {
	page, _ := htmlOf(t, true)
	m := reTitle.FindStringSubmatch(page)
	require.NotNil(t, m)
	assert.Contains(t, m[1], "SIMULATED")
	assert.Contains(t, page, `<div class="banner" id="simulated">SIMULATED`)

	real, _ := htmlOf(t, false)
	assert.NotContains(t, real, "SIMULATED")
	assert.NotContains(t, real, `id="simulated"`)
	assert.Contains(t, section(t, real, "matrix"), "") // the page still renders the matrix
	assert.Contains(t, real, "<dd>tart</dd>", "the provider that ran")
}

func TestHTMLListsFailingAndFlakyCellsWithTheirFinding(t *testing.T) {
	page, _ := htmlOf(t, true)
	list := section(t, page, "findings")
	fail := strings.Index(list, fxFail.id)
	flaky := strings.Index(list, fxFlaky.id)
	require.True(t, fail >= 0 && flaky >= 0, "both cells listed")
	assert.Less(t, fail, flaky, "worst first")
	assert.NotContains(t, list, fxPass.id)
	assert.NotContains(t, list, fxErrors.id, "errors are not product findings")
	assert.Contains(t, list, "<code>"+fxFinding+"</code> ×3")
	assert.Contains(t, list, "<code>unclassified</code> ×1")
}

// cellPageOf renders the cell's page with its attempt folders read.
func cellPageOf(t *testing.T, r *Run, id string) string {
	t.Helper()
	c, err := fillCell(r.Dir, fxCellOf(t, r, id))
	require.NoError(t, err)
	b, err := CellHTML(r, c)
	require.NoError(t, err)
	return string(b)
}

// try returns the <details> of one try on a cell page.
func try(t *testing.T, page, anchor string) string {
	t.Helper()
	i := strings.Index(page, `id="`+anchor+`"`)
	require.GreaterOrEqual(t, i, 0, "no try %s", anchor)
	start := strings.LastIndex(page[:i], "<details")
	end := strings.Index(page[i:], "</details>\n")
	return page[start : i+end]
}

func TestHTMLHeatmapCellSaysWhatBroke(t *testing.T) {
	page, _ := htmlOf(t, true)
	for _, m := range reHeatmapCell.FindAllStringSubmatch(section(t, page, "heatmap"), -1) {
		text := html.UnescapeString(m[4])
		switch m[2] {
		case fxFail.id:
			assert.Contains(t, text, fxFinding+" ×3", "the finding and how many attempts carry it")
		case fxFlaky.id:
			assert.Contains(t, text, "unclassified ×1")
		case fxPass.id:
			assert.NotContains(t, text, "×")
		}
	}
	assert.Contains(t, page, `href="cells/`+fxFail.id+`/index.html"`, "the cell links to its page")
}

func TestCellPageFoldsAttemptsAndOpensTheFirstFailure(t *testing.T) {
	r := fxLoad(t, true)
	fail := cellPageOf(t, r, fxFail.id)
	assert.Contains(t, try(t, fail, "r1"), `id="r1" open>`, "the first failing try is open")
	assert.NotContains(t, try(t, fail, "r2"), " open>", "later ones are folded")
	assert.NotContains(t, try(t, fail, "r3"), " open>")

	flaky := cellPageOf(t, r, fxFlaky.id)
	assert.NotContains(t, try(t, flaky, "r1"), " open>", "a passing try is folded")
	assert.Contains(t, try(t, flaky, "r2"), " open>", "the flaky cell opens at its failure")

	pass := cellPageOf(t, r, fxPass.id)
	assert.NotContains(t, pass, " open>", "nothing is open in a passing cell")
	assert.Contains(t, try(t, pass, "r1"), `<a href="../../cells/`+fxPass.id+`/1/steps.jsonl">steps.jsonl</a>`,
		"a pass links to its steps instead of repeating them")
	assert.NotContains(t, try(t, pass, "r1"), "sudo installer", "a pass does not repeat its steps")
}

func TestCellPageShowsStepsProbesEvidenceAndMissing(t *testing.T) {
	r := fxLoad(t, true)
	page := cellPageOf(t, r, fxFail.id)
	r1 := try(t, page, "r1")
	assert.Contains(t, r1, "sudo installer -pkg /tmp/sxlab/example-vpn-2.pkg -target /", "the step's command")
	assert.Contains(t, r1, "1.5 s", "its duration")
	assert.Contains(t, html.UnescapeString(r1), "+100 ms", "its start within the attempt")
	assert.Contains(t, r1, "xpc: connection invalidated", "the failing step's output")
	assert.Contains(t, r1, "did not hold")
	assert.Contains(t, r1, "<code>exit</code>: 1", "the probe's observations")
	assert.Contains(t, r1, fxEvidence, "the finding's evidence line")
	assert.Contains(t, r1, "nesessionmanager")
	assert.Contains(t, r1, `<a href="../../cells/`+fxFail.id+`/1/logs.ndjson">logs.ndjson</a>`, "evidence links to its file")
	assert.Contains(t, r1, `<a href="../../cells/`+fxFail.id+`/1/sysdiagnose_r1.tar.gz">`)
	assert.Contains(t, r1, "20 B", "attachment sizes")
	assert.Contains(t, r1, `<a href="../../cells/`+fxFail.id+`/1/">`, "the folder, for everything else")

	r2 := try(t, page, "r2")
	assert.Contains(t, r2, "Missing evidence")
	assert.Contains(t, r2, "sysdiagnose timed out after 15m")
	assert.NotContains(t, r2, "logs.ndjson</a>", "no link to a file r2 does not have")

	retried := cellPageOf(t, r, fxErrors.id)
	assert.Contains(t, retried, `id="r1-try2"`)
	assert.Contains(t, retried, "(retried)")
	assert.Contains(t, retried, "sshd never answered")
}

// TestHTMLIsSelfContained is the pure-Go DOM check over every page Write
// makes: no scripts, nothing fetched, and every link either an anchor of
// the page it points to or a file or folder of the run folder.
func TestHTMLIsSelfContained(t *testing.T) {
	dir := fxRun(t, true)
	require.NoError(t, Write(dir))
	pages := []string{HTMLFile}
	for _, c := range fxCells {
		pages = append(pages, "cells/"+c.id+"/"+CellPageFile)
	}
	anchors, files := 0, 0
	for _, rel := range pages {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		require.NoError(t, err, "Write made %s", rel)
		page := string(b)
		for _, banned := range []string{"<script", "<link", "<img", "<iframe", "src=", "@import", "url(", "http://", "https://"} {
			assert.NotContains(t, page, banned, rel)
		}
		assert.Contains(t, page, `Content-Security-Policy" content="default-src 'none'`, rel)
		for _, m := range reHref.FindAllStringSubmatch(page, -1) {
			href := html.UnescapeString(m[1])
			u, err := url.Parse(href)
			require.NoError(t, err)
			assert.Empty(t, u.Scheme, href)
			assert.False(t, filepath.IsAbs(u.Path), href)
			target := page
			if u.Path != "" {
				p := filepath.Join(dir, filepath.FromSlash(path.Dir(rel)), filepath.FromSlash(u.Path))
				assert.True(t, strings.HasPrefix(p, dir), "link %s of %s stays in the run folder", href, rel)
				_, err := os.Stat(p)
				assert.NoError(t, err, "link %s of %s", href, rel)
				files++
				if strings.HasSuffix(p, ".html") && u.Fragment != "" {
					b, err := os.ReadFile(p)
					require.NoError(t, err)
					target = string(b)
				}
			}
			if u.Fragment != "" {
				assert.Contains(t, target, `id="`+u.Fragment+`"`, "anchor %s of %s has a target", href, rel)
				anchors++
			}
		}
	}
	assert.Positive(t, anchors)
	assert.Positive(t, files)
}

func TestHTMLEscapesWhatTheGuestSaid(t *testing.T) {
	r := fxLoad(t, true)
	c := fxCellOf(t, r, fxFail.id)
	a := &c.Tries[0]
	a.Probes = append(a.Probes, lab.ProbeOutcome{Name: "shell", Message: `<script>alert("x")</script>`})
	a.Steps[0].Result.Stdout = "</pre><script>alert(1)</script>"
	b, err := CellHTML(r, c)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "<script")
	assert.Contains(t, string(b), "&lt;script&gt;")
}

func TestTimelineHasALanePerSlotAndABarPerTry(t *testing.T) {
	r := fxLoad(t, true)
	// Two slots of one host, as the journal records them.
	n := 0
	for i := range r.Cells {
		for j := range r.Cells[i].Tries {
			r.Cells[i].Tries[j].Slot = n%2 + 1
			n++
		}
	}
	tl := NewTimeline(r)
	require.Len(t, tl.Lanes, 2)
	assert.Equal(t, "local#1", tl.Lanes[0].Name)
	assert.Equal(t, "local#2", tl.Lanes[1].Name)
	bars, verdicts := 0, map[string]int{}
	for _, l := range tl.Lanes {
		for _, b := range l.Bars {
			bars++
			verdicts[b.Verdict]++
			assert.GreaterOrEqual(t, b.X, float64(tl.LabelWidth))
			assert.LessOrEqual(t, b.X+b.W, float64(tl.Width))
		}
	}
	assert.Equal(t, n, bars, "every try, retried ones too")
	assert.Equal(t, map[string]int{"pass": 5, "fail": 4, "error": 2}, verdicts)

	page, _ := htmlOf(t, true)
	svg := section(t, page, "timeline")
	assert.Contains(t, svg, "<svg")
	assert.Contains(t, svg, `<rect class="b-fail"`)
	assert.Contains(t, svg, `<a href="cells/`+fxFail.id+`/index.html#r2">`, "a bar links to its try")
	assert.Contains(t, html.UnescapeString(svg), "local#1", "a journal without slots still gets lanes")
}

func TestTimelineOfAJournalWithoutSlotsNeverOverlaps(t *testing.T) {
	r := fxLoad(t, true) // the fixture's records have no slot
	for _, l := range NewTimeline(r).Lanes {
		for i := 1; i < len(l.Bars); i++ {
			assert.LessOrEqual(t, l.Bars[i-1].X+l.Bars[i-1].W, l.Bars[i].X+0.2, "lane %s", l.Name)
		}
		assert.True(t, strings.HasSuffix(l.Name, "?"), "an inferred lane says so: %s", l.Name)
	}
	page, _ := htmlOf(t, true)
	assert.Contains(t, section(t, page, "timeline"), "lanes marked ? are packed from the tries' times")
}

// TestChromiumRendersTheHeatmap opens report.html in headless Chromium
// (Debian's chromium) and checks the heatmap cells are in its DOM and
// that it logged no console message.
func TestChromiumRendersTheHeatmap(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		needTool(t, "chromium", "Debian: apt-get install chromium; the pure-Go DOM check still ran")
	}
	dir := fxRun(t, true)
	require.NoError(t, Write(dir))
	abs, err := filepath.Abs(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--disable-gpu", "--no-sandbox",
		"--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0",
		"--dump-dom", (&url.URL{Scheme: "file", Path: abs}).String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "chromium: %s", stderr.String())

	dom := stdout.String()
	r, err := Load(dir)
	require.NoError(t, err)
	for _, c := range r.Cells {
		assert.Regexp(t, `<a class="hm v-`+c.Status()+`" data-cell="`+c.Cell+`"`, dom, "heatmap cell %s in the DOM", c.Label)
	}
	assert.Regexp(t, `<title>SIMULATED`, dom)
	// Chromium logs page console messages as "CONSOLE(line)"; a page
	// without scripts that fetches nothing has none.
	for _, line := range strings.Split(stderr.String(), "\n") {
		assert.NotContains(t, line, ":CONSOLE", "console message from the page")
	}
}

// TestCellPagePutsEvidenceOnTheHostsClock: the fixture guest runs 47 s
// ahead; its log line stamped 12:01:00 is shown at 12:00:13 host time,
// +2.0 s into the try, with 12:01:00 beside it, once for two signatures;
// the state snapshot is labelled as one.
func TestCellPagePutsEvidenceOnTheHostsClock(t *testing.T) {
	r := fxLoad(t, true)
	r1 := html.UnescapeString(try(t, cellPageOf(t, r, fxFail.id), "r1"))
	assert.Contains(t, r1, "guest clock 47.0 s ahead of the host's at the first step", "the offset, as measured")
	assert.Equal(t, 1, strings.Count(r1, fxEvidence), "each event once")
	row := r1[strings.LastIndex(r1[:strings.Index(r1, fxEvidence)], "<tr"):]
	row = row[:strings.Index(row, "</tr>")]
	assert.Contains(t, row, "12:00:13.000", "on the host's clock")
	assert.Contains(t, row, "+2.0 s")
	assert.Contains(t, row, "12:01:00.000", "the guest's own time beside it")
	assert.Contains(t, row, `<span class="sig">replacement-path</span>`, "both signatures citing it")
	assert.Contains(t, r1, "state snapshot <code>state/after</code>")
	assert.Contains(t, r1, "launchd shows: "+fxSnapshot)
	assert.Contains(t, r1, "taken 12:01:01.000")
}

// A journal from before the clock readings: evidence keeps the guest's
// time, is not placed on the host's, and the page says why.
func TestCellPageOfAJournalWithoutClockReadings(t *testing.T) {
	r := fxLoad(t, true)
	c, err := fillCell(r.Dir, fxCellOf(t, r, fxFail.id))
	require.NoError(t, err)
	c.Tries[0].Clock = nil
	b, err := CellHTML(r, c)
	require.NoError(t, err)
	r1 := html.UnescapeString(try(t, string(b), "r1"))
	assert.Contains(t, r1, "the guest's clock was not read: guest times are shown as the guest gave them")
	row := r1[strings.LastIndex(r1[:strings.Index(r1, fxEvidence)], "<tr"):]
	row = row[:strings.Index(row, "</tr>")]
	assert.Contains(t, row, `<td class="num">?</td>`, "no host time is made up")
	assert.Contains(t, row, "12:01:00.000", "the guest's own time")
	assert.Greater(t, strings.Index(r1, fxEvidence), strings.Index(r1, "--check-xpc"), "unplaced evidence follows the steps")
}
