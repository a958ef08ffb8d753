package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The exit codes of README's table, on the demo, whose run has failing
// cells: run judges (1); report and merge only render (0); diff of a run
// against itself finds nothing new (0); a folder that is not a run is a
// usage error (3).
func TestExitCodesOfEachCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := demoConfigAt(t, dir)
	runs := filepath.Join(dir, "runs")
	t.Setenv("SXLAB_LAB_RUNS_DIR", runs)

	code, _, errs := sxlab(t, "run", "--config", cfg, "--progress", "none")
	require.Equal(t, exitFindings, code, "run: cells fail in the demo: %s", errs)
	entries, err := os.ReadDir(runs)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	runDir := filepath.Join(runs, entries[0].Name())

	code, _, errs = sxlab(t, "report", runDir)
	assert.Equal(t, exitOK, code, "report renders failing cells without failing: %s", errs)

	code, _, errs = sxlab(t, "merge", runDir, "--out", filepath.Join(dir, "merged"))
	assert.Equal(t, exitOK, code, "merge of a complete run with failing cells: %s", errs)

	code, _, errs = sxlab(t, "diff", runDir, runDir)
	assert.Equal(t, exitOK, code, "diff against itself: nothing newly fails: %s", errs)

	code, _, _ = sxlab(t, "plan", "--config", cfg)
	assert.Equal(t, exitOK, code)

	code, _, _ = sxlab(t, "report", dir)
	assert.Equal(t, exitUsage, code, "not a run folder")
	code, _, _ = sxlab(t, "diff", dir, runDir)
	assert.Equal(t, exitUsage, code, "not a run folder")
}
