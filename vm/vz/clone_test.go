package vz

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCloneNaming(t *testing.T) {
	name, err := CloneName("a1b2c3", "sxlab-0123456789ab-r1-t2")
	require.NoError(t, err)
	assert.Equal(t, "sxlab-a1b2c3-0123456789ab-r1-t2", name, "the lab's own sxlab- prefix is not doubled")

	run, attempt, ok := ParseCloneName(name)
	require.True(t, ok)
	assert.Equal(t, "a1b2c3", run)
	assert.Equal(t, "0123456789ab-r1-t2", attempt)

	dir, err := CloneDir("/Users/ci/.sxlab/vz", "a1b2c3", "sxlab-0123456789ab-r1-t2")
	require.NoError(t, err)
	assert.Equal(t, "/Users/ci/.sxlab/vz/clones/sxlab-a1b2c3-0123456789ab-r1-t2", dir)

	for _, bad := range [][2]string{{"", "x"}, {"a-b", "x"}, {"run", ""}, {"run", "../escape"}, {"run", "a/b"}} {
		_, err := CloneName(bad[0], bad[1])
		assert.Error(t, err, "%q %q", bad[0], bad[1])
	}
	_, _, ok = ParseCloneName("golden")
	assert.False(t, ok)
}

func TestCloneDirRefusesSocketPathsMacOSCannotBind(t *testing.T) {
	long := "/Users/" + strings.Repeat("x", 60) + "/.sxlab/vz"
	_, err := CloneDir(long, "a1b2c3", "sxlab-0123456789ab-r1-t1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "use a shorter hosts[].vz.store")
}

func TestPlanClone(t *testing.T) {
	golden, err := LoadBundle(copyBundle(t, nil))
	require.NoError(t, err)

	cold, err := PlanClone(golden, "/s/clones/sxlab-r-a", false, rand.Reader)
	require.NoError(t, err)
	assert.Equal(t, []string{DiskFile, NVRAMFile}, cold.Files)
	assert.NotEqual(t, golden.Config.MACAddress, cold.MAC)
	assert.False(t, cold.Restore)
	assert.Equal(t, cloneMethod, cold.Method)

	_, err = PlanClone(golden, "/s/clones/sxlab-r-a", true, rand.Reader)
	assert.ErrorContains(t, err, "has no state.vzvmsave")

	require.NoError(t, os.WriteFile(golden.Path(StateFile), []byte("saved"), 0o644))
	golden, err = LoadBundle(golden.Dir)
	require.NoError(t, err)
	warm, err := PlanClone(golden, "/s/clones/sxlab-r-b", true, rand.Reader)
	require.NoError(t, err)
	assert.Equal(t, []string{DiskFile, NVRAMFile, StateFile}, warm.Files)
	assert.Equal(t, golden.Config.MACAddress, warm.MAC)
}

func TestApplyMakesALoadableClone(t *testing.T) {
	golden, err := LoadBundle(copyBundle(t, nil))
	require.NoError(t, err)
	plan, err := PlanClone(golden, "unused", false, rand.Reader)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, plan.Apply(dir))

	clone, err := LoadBundle(dir)
	require.NoError(t, err)
	assert.Equal(t, plan.MAC, clone.Config.MACAddress)
	assert.Equal(t, golden.Config.HardwareModel, clone.Config.HardwareModel)
	assert.Equal(t, golden.DiskBytes, clone.DiskBytes)
	assert.False(t, clone.HasSavedState)

	// Applying twice fails rather than overwrite a clone's disk.
	assert.Error(t, plan.Apply(dir))
	_, err = os.Stat(filepath.Join(dir, DiskFile))
	assert.NoError(t, err, "the existing disk is left alone")
}
