package report

import (
	"encoding/json"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/packages"
)

// fxPreflight is what `sxlab run` recorded for the fixture's 2->3 path:
// the extension kept package 2's executable under a new version (TN3178),
// and its Mach service name did not change.
func fxPreflight() *packages.Report {
	rows := []packages.Row{
		{Path: "2->3", Check: "extension-version-increases", Status: packages.OK, From: "200", To: "300", Message: "CFBundleVersion increases", Source: "field report approval-dialog-missing"},
		{Path: "2->3", Check: "extension-uuid-changes", Status: packages.Error,
			From: "arm64=6F1C2A4E-0000-4000-8000-000000000002", To: "arm64=6F1C2A4E-0000-4000-8000-000000000002",
			Message: "the extension's LC_UUID 6F1C2A4E-0000-4000-8000-000000000002 is the same in 2 and 3 while its version changes (200 → 300)",
			Source:  "TN3178 (every build has its own LC_UUID)"},
		{Path: "2->3", Check: "mach-service-versioned", Status: packages.Warning,
			From: "TEAM1234.com.example.vpn.tunnel", To: "TEAM1234.com.example.vpn.tunnel",
			Message: "NEMachServiceName is unchanged: replacing the extension while its VPN runs can leave the new provider without its Mach endpoint",
			Source:  "field report xpc-invalidated-on-upgrade"},
	}
	return &packages.Report{Rows: rows, Errors: 1, Warnings: 1}
}

// fxWithPreflight writes the fixture run folder with rep as run.json's
// preflight, as `sxlab run` records it.
func fxWithPreflight(t *testing.T, rep *packages.Report) string {
	t.Helper()
	dir := fxRun(t, true)
	var info lab.RunInfo
	require.NoError(t, lab.ReadJSON(dir, lab.RunFile, &info))
	info.Preflight = rep
	b, err := json.Marshal(info)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, lab.RunFile), b, 0o644))
	return dir
}

func pageOf(t *testing.T, dir string) string {
	t.Helper()
	r, err := Load(dir)
	require.NoError(t, err)
	b, err := HTML(r)
	require.NoError(t, err)
	return string(b)
}

var (
	rePreflightBlock = regexp.MustCompile(`(?s)<div class="preflight pf-([a-z-]+)" id="preflight" data-state="([a-z-]+)">(.*?)</div>`)
	rePreflightRow   = regexp.MustCompile(`(?s)<tr class="pf-[a-z]+" data-path="([^"]*)" data-check="([^"]*)" data-status="([a-z]+)">(.*?)</tr>`)
	reTag            = regexp.MustCompile(`<[^>]+>`)
)

// preflightBlock is the header's preflight block: its state and its text
// as a reader sees it; it fails the test when the block is not in the
// header (before the matrix).
func preflightBlock(t *testing.T, page string) (state, block string) {
	t.Helper()
	m := rePreflightBlock.FindStringSubmatchIndex(page)
	require.NotNil(t, m, "report.html has a preflight block")
	assert.Less(t, m[0], strings.Index(page, `id="matrix"`), "the preflight block is in the header, above the matrix")
	assert.Equal(t, page[m[2]:m[3]], page[m[4]:m[5]], "class and data-state agree")
	return page[m[4]:m[5]], page[m[6]:m[7]]
}

func textOf(s string) string {
	return strings.Join(strings.Fields(html.UnescapeString(reTag.ReplaceAllString(s, " "))), " ")
}

func heatmapVerdicts(t *testing.T, page string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, m := range reHeatmapCell.FindAllStringSubmatch(section(t, page, "heatmap"), -1) {
		got[m[2]] = m[3]
	}
	return got
}

func TestHTMLHeaderShowsPreflightErrorsAndWarnings(t *testing.T) {
	page := pageOf(t, fxWithPreflight(t, fxPreflight()))
	state, block := preflightBlock(t, page)
	assert.Equal(t, "error", state)
	text := textOf(block)
	assert.Contains(t, text, "PREFLIGHT ERROR · preflight: 1 error, 1 warning (1 of 3 checks ok)")
	assert.Contains(t, text, "before any VM booted", "an error is a product hazard found before the lab ran")
	assert.Contains(t, text, "never changes a cell's verdict")

	rows := map[string][]string{}
	for _, m := range rePreflightRow.FindAllStringSubmatch(block, -1) {
		assert.Equal(t, "2->3", html.UnescapeString(m[1]))
		rows[m[2]] = []string{m[3], textOf(m[4])}
	}
	require.Len(t, rows, 2, "only the warning and the error are listed, not the ok checks")
	uuid := rows["extension-uuid-changes"]
	assert.Equal(t, "error", uuid[0])
	assert.Contains(t, uuid[1], "ERROR")
	assert.Contains(t, uuid[1], "2: arm64=6F1C2A4E-0000-4000-8000-000000000002 3: arm64=6F1C2A4E-0000-4000-8000-000000000002", "both values, each under its version")
	assert.Contains(t, uuid[1], "TN3178", "the source")
	mach := rows["mach-service-versioned"]
	assert.Equal(t, "warning", mach[0])
	assert.Contains(t, mach[1], "2: TEAM1234.com.example.vpn.tunnel 3: TEAM1234.com.example.vpn.tunnel")
	assert.Contains(t, mach[1], "xpc-invalidated-on-upgrade")
	assert.NotContains(t, block, "extension-version-increases")

	// The cells are the journal's, preflight or not.
	assert.Equal(t, heatmapVerdicts(t, pageOf(t, fxRun(t, true))), heatmapVerdicts(t, page))
}

func TestHTMLHeaderPreflightStates(t *testing.T) {
	clean := &packages.Report{Rows: []packages.Row{
		{Path: "2->3", Check: "extension-version-increases", Status: packages.OK},
		{Path: "2->3", Check: "extension-uuid-changes", Status: packages.OK},
	}}
	simulated := &packages.Report{NotChecked: []packages.Problem{
		{Version: "2", File: "/demo/example-vpn-2.simpkg.json", Reason: "simulated manifest"},
		{Version: "3", File: "/demo/example-vpn-3.simpkg.json", Reason: "simulated manifest"},
	}}
	unreadable := &packages.Report{Unreadable: []packages.Problem{{Version: "3", File: "/pkgs/vpn-3.pkg", Reason: "xar: bad magic"}}}
	for _, tc := range []struct {
		name  string
		rep   *packages.Report
		state string
		line  string
	}{
		{"clean", clean, "clean", "preflight: 2 checks ok"},
		{"simulated", simulated, "not-checked", "preflight: packages were simulated manifests, not checked"},
		{"unreadable", unreadable, "warning", "preflight: 1 package unreadable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := pageOf(t, fxWithPreflight(t, tc.rep))
			state, block := preflightBlock(t, page)
			assert.Equal(t, tc.state, state)
			assert.Contains(t, textOf(block), tc.line)
			assert.NotContains(t, block, "PREFLIGHT ERROR")
			assert.NotContains(t, block, "<table", "nothing to list")
			md := string(Markdown(mustLoad(t, fxWithPreflight(t, tc.rep))))
			assert.Contains(t, md, tc.line)
			assert.NotContains(t, md, "| path | status | check |")
		})
	}
	_, block := preflightBlock(t, pageOf(t, fxWithPreflight(t, unreadable)))
	assert.Contains(t, textOf(block), "version 3: package /pkgs/vpn-3.pkg UNREADABLE, not checked: xar: bad magic")
}

func mustLoad(t *testing.T, dir string) *Run {
	t.Helper()
	r, err := Load(dir)
	require.NoError(t, err)
	return r
}

func TestMarkdownSummaryListsPreflightErrorsAndWarnings(t *testing.T) {
	rep := fxPreflight()
	// Preflight's order is its checks'; the summary lists errors first.
	rep.Rows[1], rep.Rows[2] = rep.Rows[2], rep.Rows[1]
	md := string(Markdown(mustLoad(t, fxWithPreflight(t, rep))))
	assert.Contains(t, md, "### Preflight\n\n**preflight: 1 error, 1 warning (1 of 3 checks ok)**")
	assert.Contains(t, md, "> **PREFLIGHT ERROR**: Found in the packages before any VM booted")
	assert.Contains(t, md, "| 2-&gt;3 | **ERROR** | `extension-uuid-changes` | 2: `arm64=6F1C2A4E-0000-4000-8000-000000000002` | 3: `arm64=6F1C2A4E-0000-4000-8000-000000000002` |")
	assert.Contains(t, md, "| 2-&gt;3 | **WARNING** | `mach-service-versioned` | 2: `TEAM1234.com.example.vpn.tunnel` | 3: `TEAM1234.com.example.vpn.tunnel` |")
	assert.Contains(t, md, "| TN3178 (every build has its own LC\\_UUID) |", "the source")
	assert.NotContains(t, md, "extension-version-increases", "ok checks are only counted")
	assert.Less(t, strings.Index(md, "**ERROR**"), strings.Index(md, "**WARNING**"))
	// Every table row has the header's columns, so GitHub renders it.
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "| 2-&gt;3 |") {
			assert.Equal(t, 8, strings.Count(l, "|")-strings.Count(l, `\|`), "7 columns: %s", l)
		}
	}
	// The cells' table is the journal's, as without preflight.
	assert.Contains(t, md, "| macos=macos-15.3 path=2-&gt;3 vpn=running | **FAIL** | 3/3 |")
}

// A run.json written before preflight (or by a run that could not do
// it) renders as it did, and says preflight did not run.
func TestReportsOfARunWithoutPreflight(t *testing.T) {
	page := pageOf(t, fxRun(t, true))
	state, block := preflightBlock(t, page)
	assert.Equal(t, "not-run", state)
	assert.Equal(t, "preflight: not run", textOf(block))
	assert.Contains(t, string(Markdown(fxLoad(t, true))), "preflight: not run")

	for _, name := range []string{"complete", "resumed"} {
		dir := copyFixture(t, filepath.Join(v1, name))
		require.NoError(t, Write(dir), "an old run folder's reports are rebuilt")
		b, err := os.ReadFile(filepath.Join(dir, HTMLFile))
		require.NoError(t, err)
		state, _ := preflightBlock(t, string(b))
		assert.Equal(t, "not-run", state, name)
		md, err := os.ReadFile(filepath.Join(dir, SummaryFile))
		require.NoError(t, err)
		assert.Contains(t, string(md), "preflight: not run", name)
	}
}
