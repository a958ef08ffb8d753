package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunThatSelectsNothingIsAUsageError runs the demo with selections
// that leave no attempt: each is exit 3 naming why, and no run folder is
// written (an empty run would read as a clean night).
func TestRunThatSelectsNothingIsAUsageError(t *testing.T) {
	ws := t.TempDir()
	src, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	runs := filepath.Join(ws, "runs")
	cfg := regexp.MustCompile(`time_scale: [0-9.]+`).ReplaceAllString(string(src), "time_scale: 0")
	cfg = regexp.MustCompile(`runs_dir: \S+`).ReplaceAllString(cfg, "runs_dir: "+runs)
	require.NoError(t, os.WriteFile(filepath.Join(ws, "config.yaml"), []byte(cfg), 0o644))
	require.NoError(t, os.CopyFS(filepath.Join(ws, "examples", "pkg"), os.DirFS("../../examples/pkg")))

	for _, tc := range []struct {
		args []string
		why  string
	}{
		{[]string{"--only", "vpn=running,approval=pending"}, "every cell it names is removed by matrix.exclude[0] {approval: pending, vpn: running}"},
		{[]string{"--shard", "40/40"}, "the plan has 39 attempt(s), fewer than the 40 shards, so shard 40 gets none"},
	} {
		for _, cmd := range [][]string{{"run", "--progress", "none"}, {"plan"}} {
			code, out, errs := sxlab(t, append(append(cmd, "--config", filepath.Join(ws, "config.yaml")), tc.args...)...)
			assert.Equal(t, exitUsage, code, "%s %v\n%s\n%s", cmd, tc.args, out, errs)
			assert.Contains(t, errs, "selects no attempt", "%s %v", cmd, tc.args)
			assert.Contains(t, errs, tc.why, "%s %v", cmd, tc.args)
		}
	}
	_, err = os.Stat(runs)
	assert.ErrorIs(t, err, os.ErrNotExist, "no run folder is written")
}

// TestRunInterruptedBeforeItStartsIsIncomplete: a signal that comes
// before the first attempt is not a configuration error.
func TestRunInterruptedBeforeItStartsIsIncomplete(t *testing.T) {
	ws := t.TempDir()
	src, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	cfg := regexp.MustCompile(`runs_dir: \S+`).ReplaceAllString(string(src), "runs_dir: "+filepath.Join(ws, "runs"))
	require.NoError(t, os.WriteFile(filepath.Join(ws, "config.yaml"), []byte(cfg), 0o644))
	require.NoError(t, os.CopyFS(filepath.Join(ws, "examples", "pkg"), os.DirFS("../../examples/pkg")))
	// A dead run's machine makes the start reap, which sees the signal.
	t.Setenv("TMPDIR", filepath.Join(ws, "tmp"))
	require.NoError(t, os.MkdirAll(filepath.Join(simMachinesDir(), "sxlab-sim-dead-1", "root"), 0o755))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errs bytes.Buffer
	code := run(ctx, []string{"run", "--config", filepath.Join(ws, "config.yaml"), "--progress", "none"}, &out, &errs)
	assert.Equal(t, exitIncomplete, code, "%s\n%s", &out, &errs)
	assert.Contains(t, errs.String(), "interrupted before the first attempt")
	left, err := os.ReadDir(filepath.Join(ws, "runs"))
	require.NoError(t, err)
	assert.Empty(t, left, "the run folder is removed")
}
