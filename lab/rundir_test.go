package lab

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/matrices"
)

func TestRunDirLockAndAtomicWrites(t *testing.T) {
	runs := t.TempDir()
	id := NewRunID(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	assert.Regexp(t, `^20261123-100000-[0-9a-f]{6}$`, id)

	d, err := CreateRunDir(runs, id)
	require.NoError(t, err)
	_, err = OpenRunDir(d.Path)
	require.ErrorIs(t, err, ErrRunLocked, "a second sxlab may not use a live run's folder")

	require.NoError(t, d.WriteJSON(RunFile, RunInfo{ID: id, Seed: 7}))
	var back RunInfo
	require.NoError(t, ReadJSON(d.Path, RunFile, &back))
	assert.Equal(t, int64(7), back.Seed)
	entries, err := os.ReadDir(d.Path)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".tmp", "no temporary file left behind")
	}

	require.NoError(t, d.Close())
	again, err := OpenRunDir(d.Path)
	require.NoError(t, err, "a released lock can be taken, as after a crash")
	require.NoError(t, again.Close())

	_, err = OpenRunDir(filepath.Join(runs, "nope"))
	assert.ErrorContains(t, err, "not found")
}

func TestPlanInfoDigestIsSharedByShards(t *testing.T) {
	whole, err := matrices.Expand(matrices.Matrix{Axes: []matrices.Axis{{Name: "a", Values: []string{"1", "2", "3"}}}, Repeat: 2})
	require.NoError(t, err)
	s1 := NewPlanInfo(whole.Shard(matrices.Shard{Index: 1, Count: 2}), whole, map[string]string{"seed": "1"})
	s2 := NewPlanInfo(whole.Shard(matrices.Shard{Index: 2, Count: 2}), whole, map[string]string{"seed": "1"})
	assert.Equal(t, s1.Digest, s2.Digest)
	assert.Equal(t, 6, s1.Total)
	assert.Len(t, s1.Attempts, 3)
	other, err := matrices.Expand(matrices.Matrix{Axes: []matrices.Axis{{Name: "a", Values: []string{"1", "2"}}}, Repeat: 2})
	require.NoError(t, err)
	assert.NotEqual(t, s1.Digest, PlanDigest(other, map[string]string{"seed": "1"}))
	assert.NotEqual(t, s1.Digest, PlanDigest(whole, map[string]string{"seed": "7"}), "the seed decides results")
	assert.Equal(t, filepath.Join("cells", "abc", "2-try3"), AttemptDir("abc", 2, 3))
}
