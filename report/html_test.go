package report

import (
	"bytes"
	"context"
	"html"
	"net/url"
	"os"
	"os/exec"
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

func TestHTMLDrillDownShowsStepsProbesEvidenceAndMissing(t *testing.T) {
	page, _ := htmlOf(t, true)
	cell := section(t, page, "cell-"+fxFail.id)
	r1 := cell[strings.Index(cell, `id="cell-`+fxFail.id+`-r1"`):strings.Index(cell, `id="cell-`+fxFail.id+`-r2"`)]
	assert.Contains(t, r1, "sudo installer -pkg /tmp/sxlab/example-vpn-2.pkg -target /", "the step's command")
	assert.Contains(t, r1, "1.5 s", "its duration")
	assert.Contains(t, html.UnescapeString(r1), "+100 ms", "its start within the attempt")
	assert.Contains(t, r1, "xpc: connection invalidated", "the failing step's output")
	assert.Contains(t, r1, "did not hold")
	assert.Contains(t, r1, "<code>exit</code>: 1", "the probe's observations")
	assert.Contains(t, r1, fxEvidence, "the finding's evidence line")
	assert.Contains(t, r1, "nesessionmanager")
	assert.Contains(t, r1, `<a href="cells/`+fxFail.id+`/1/logs.ndjson">logs.ndjson</a>`, "evidence links to its file")
	assert.Contains(t, r1, `<a href="cells/`+fxFail.id+`/1/sysdiagnose_r1.tar.gz">`)
	assert.Contains(t, r1, "20 B", "artifact sizes")

	r2 := cell[strings.Index(cell, `id="cell-`+fxFail.id+`-r2"`):]
	assert.Contains(t, r2, "Missing evidence")
	assert.Contains(t, r2, "sysdiagnose timed out after 15m")
	assert.NotContains(t, r2[:strings.Index(r2, "</details>")], "logs.ndjson</a>", "no link to a file r2 does not have")

	retried := section(t, page, "cell-"+fxErrors.id)
	assert.Contains(t, retried, `id="cell-`+fxErrors.id+`-r1-try2"`)
	assert.Contains(t, retried, "(retried)")
	assert.Contains(t, retried, "sshd never answered")
}

// TestHTMLIsSelfContained is the pure-Go DOM check: no scripts, nothing
// fetched, and every link either an anchor of the page or a file of the
// run folder.
func TestHTMLIsSelfContained(t *testing.T) {
	dir := fxRun(t, true)
	require.NoError(t, Write(dir))
	b, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	page := string(b)
	for _, banned := range []string{"<script", "<link", "<img", "<iframe", "src=", "@import", "url(", "http://", "https://"} {
		assert.NotContains(t, page, banned)
	}
	assert.Contains(t, page, `Content-Security-Policy" content="default-src 'none'`)
	anchors, files := 0, 0
	for _, m := range reHref.FindAllStringSubmatch(page, -1) {
		href := html.UnescapeString(m[1])
		if id, ok := strings.CutPrefix(href, "#"); ok {
			assert.Contains(t, page, `id="`+id+`"`, "anchor %s has a target", href)
			anchors++
			continue
		}
		u, err := url.Parse(href)
		require.NoError(t, err)
		assert.Empty(t, u.Scheme, href)
		assert.False(t, filepath.IsAbs(u.Path), href)
		assert.FileExists(t, filepath.Join(dir, filepath.FromSlash(u.Path)), "link %s", href)
		files++
	}
	assert.Positive(t, anchors)
	assert.Positive(t, files)
}

func TestHTMLEscapesWhatTheGuestSaid(t *testing.T) {
	dir := fxRun(t, true)
	r, err := Load(dir)
	require.NoError(t, err)
	a := &r.Cells[0].Tries[0]
	a.Probes = append(a.Probes, lab.ProbeOutcome{Name: "shell", Message: `<script>alert("x")</script>`})
	a.Steps[0].Result.Stdout = "</pre><script>alert(1)</script>"
	b, err := HTML(r)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "<script")
	assert.Contains(t, string(b), "&lt;script&gt;")
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
