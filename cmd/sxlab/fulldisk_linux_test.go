package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestFullDiskAtTheStartIsIncompleteAndLeavesNoFolder runs on a tmpfs
// that is already full (mounting one needs root; elsewhere it skips): the
// run cannot write run.json, which is not a configuration error but an
// attempt left undone (exit 2), and no empty run folder stays behind.
func TestFullDiskAtTheStartIsIncompleteAndLeavesNoFolder(t *testing.T) {
	ws := t.TempDir()
	disk := filepath.Join(ws, "disk")
	require.NoError(t, os.MkdirAll(disk, 0o755))
	if err := unix.Mount("tmpfs", disk, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(disk, unix.MNT_DETACH) })
	runs := filepath.Join(disk, "runs")
	require.NoError(t, os.MkdirAll(runs, 0o755))
	fill, err := os.Create(filepath.Join(disk, "fill"))
	require.NoError(t, err)
	block := make([]byte, 4096)
	for {
		if _, err := fill.Write(block); err != nil {
			require.ErrorIs(t, err, unix.ENOSPC)
			break
		}
	}
	require.NoError(t, fill.Close())

	src, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	cfg := regexp.MustCompile(`time_scale: [0-9.]+`).ReplaceAllString(string(src), "time_scale: 0")
	cfg = regexp.MustCompile(`runs_dir: \S+`).ReplaceAllString(cfg, "runs_dir: "+runs)
	require.NoError(t, os.WriteFile(filepath.Join(ws, "config.yaml"), []byte(cfg), 0o644))
	require.NoError(t, os.CopyFS(filepath.Join(ws, "examples", "pkg"), os.DirFS("../../examples/pkg")))

	code, out, errs := sxlab(t, "run", "--config", filepath.Join(ws, "config.yaml"), "--progress", "none")
	assert.Equal(t, exitIncomplete, code, "%s\n%s", out, errs)
	assert.Contains(t, errs, "no space left on device")
	assert.Contains(t, errs, "is full; free space and run again")
	left, err := os.ReadDir(runs)
	require.NoError(t, err)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "the run folder is removed")
}
