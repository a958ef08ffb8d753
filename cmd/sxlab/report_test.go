package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

// reportFixture is a one-cell simulated run folder with one failing
// attempt, written with lab's own types.
func reportFixture(t *testing.T) string {
	t.Helper()
	d, err := lab.CreateRunDir(t.TempDir(), "run-r")
	require.NoError(t, err)
	defer d.Close()
	axes := map[string]string{"macos": "macos-15.3", "path": "2->3"}
	info := lab.RunInfo{ID: "run-r", Lab: "cmd-lab", Providers: []string{"sim"}, Simulated: true}
	info.Config.Matrix = lab.Matrix{Axes: lab.OrderedAxes{{Name: "macos", Values: []string{"macos-15.3"}}, {Name: "path", Values: []string{"2->3"}}},
		ImageAxis: "macos", PathAxis: "path"}
	require.NoError(t, d.WriteJSON(lab.RunFile, info))
	require.NoError(t, d.WriteJSON(lab.PlanFile, lab.PlanInfo{Digest: "x", Total: 1,
		Cells:    []lab.PlanCell{{ID: "c0ffeec0ffee", Label: "macos=macos-15.3 path=2->3", Axes: axes}},
		Attempts: []lab.PlanAttempt{{Cell: "c0ffeec0ffee", Repeat: 1}}}))
	j, err := lab.OpenJournal(filepath.Join(d.Path, lab.JournalFile))
	require.NoError(t, err)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	require.NoError(t, j.Append(lab.Record{Cell: "c0ffeec0ffee", Label: "macos=macos-15.3 path=2->3", Axes: axes, Repeat: 1, Try: 1,
		Final: true, Verdict: lab.Fail, Reason: "probe xpc: invalidated", Started: now, Finished: now.Add(time.Second),
		Probes: []lab.ProbeOutcome{{Name: "xpc", Message: "invalidated"}}, Provider: "sim", Simulated: true}))
	require.NoError(t, j.Close())
	return d.Path
}

func TestReportRebuildsTheReportsOfARunFolder(t *testing.T) {
	dir := reportFixture(t)
	code, out, errs := sxlab(t, "report", dir)
	require.Equal(t, exitOK, code, errs)
	for _, f := range []string{"report.html", "junit.xml", "summary.md"} {
		assert.Contains(t, out, filepath.Join(dir, f))
		assert.FileExists(t, filepath.Join(dir, f))
	}
	page, err := os.ReadFile(filepath.Join(dir, "report.html"))
	require.NoError(t, err)
	assert.Contains(t, string(page), `data-cell="c0ffeec0ffee"`)
	assert.Contains(t, string(page), "<title>SIMULATED")
	md, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "**FAIL** | 1/1")
}

func TestReportRefusesAFolderThatIsNotARun(t *testing.T) {
	code, _, errs := sxlab(t, "report", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "not a run folder")

	code, _, errs = sxlab(t, "report")
	assert.Equal(t, exitUsage, code)
	assert.True(t, strings.Contains(errs, "accepts 1 arg"), errs)
}
