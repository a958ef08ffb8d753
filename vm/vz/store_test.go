package vz

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolveBundle(t *testing.T) {
	assert.Equal(t, "/store/sonoma", ResolveBundle("/store", "sonoma"))
	assert.Equal(t, "/elsewhere/b", ResolveBundle("/store", "/elsewhere/b"))
	assert.Equal(t, "bundles/b", ResolveBundle("/store", "bundles/b"))
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(home, "vms/b"), ResolveBundle("/store", "~/vms/b"))
}

func TestListBundles(t *testing.T) {
	l := newTestLab(t, true)
	require.NoError(t, os.MkdirAll(filepath.Join(l.store, "broken"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(l.store, ClonesDir, "sxlab-x-y"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(l.store, ".importing-z-1"), 0o755))

	entries, err := ListBundles(l.store)
	require.NoError(t, err)
	require.Len(t, entries, 2, "clones and hidden folders are not images")
	assert.Equal(t, "broken", entries[0].Name)
	assert.ErrorIs(t, entries[0].Err, ErrMissingFile)
	assert.Equal(t, "sonoma", entries[1].Name)
	require.NoError(t, entries[1].Err)
	assert.True(t, entries[1].Bundle.HasSavedState)

	none, err := ListBundles(filepath.Join(l.store, "nope"))
	require.NoError(t, err)
	assert.Empty(t, none)
}

func TestTartHome(t *testing.T) {
	h, err := TartHome(func(k string) (string, bool) { return "/opt/tart", k == "TART_HOME" })
	require.NoError(t, err)
	assert.Equal(t, "/opt/tart", h)
	h, err = TartHome(func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	assert.Equal(t, ".tart", filepath.Base(h))
}

// tartHome makes a TART_HOME with the fixture as VM name (suspended: with
// a saved state).
func tartHome(t *testing.T, name string) string {
	t.Helper()
	home := shortTemp(t)
	vmDir := filepath.Join(home, "vms", name)
	require.NoError(t, os.MkdirAll(vmDir, 0o755))
	for _, f := range []string{ConfigFile, DiskFile, NVRAMFile} {
		data, err := os.ReadFile(filepath.Join(fixture, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(vmDir, f), data, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(vmDir, StateFile), []byte("tart's state"), 0o644))
	return home
}

func TestImportTart(t *testing.T) {
	home := tartHome(t, "sequoia-base")
	store := filepath.Join(shortTemp(t), "store")

	imp, err := ImportTart(home, "sequoia-base", store, "")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(store, "sequoia-base"), imp.To)
	assert.True(t, imp.SkippedState)
	b, err := LoadBundle(imp.To)
	require.NoError(t, err)
	assert.False(t, b.HasSavedState, "tart's state is not restorable with sxlab's device set")
	src, err := os.ReadFile(filepath.Join(home, "vms", "sequoia-base", ConfigFile))
	require.NoError(t, err)
	dst, err := os.ReadFile(b.Path(ConfigFile))
	require.NoError(t, err)
	assert.Equal(t, string(src), string(dst), "config.json is copied as it is, MAC included")

	_, err = ImportTart(home, "sequoia-base", store, "")
	assert.ErrorContains(t, err, "exists already")
	imp, err = ImportTart(home, "sequoia-base", store, "copy2")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(store, "copy2"), imp.To)

	_, err = ImportTart(home, "nope", store, "")
	assert.ErrorContains(t, err, "does not exist (tart list shows the local VMs")
	_, err = ImportTart(home, "ghcr.io/cirruslabs/macos-sequoia-base:latest", store, "")
	assert.ErrorContains(t, err, "not a local VM name")
	_, err = ImportTart(home, "sequoia-base", store, ClonesDir)
	assert.ErrorContains(t, err, "not a usable bundle name")

	entries, err := os.ReadDir(store)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), "."), "no half-made import is left: %s", e.Name())
	}
}

func TestImportTartRefusesARunningVM(t *testing.T) {
	home := tartHome(t, "busy")
	vmDir := filepath.Join(home, "vms", "busy")
	// A process holding an fcntl lock on config.json, as tart run does: the
	// fake worker takes the same lock.
	cmd := exec.Command(os.Args[0], "--watch-stdin", vmDir)
	cmd.Env = append(os.Environ(), fakeWorkerEnv+"=ok", quickRaceExit())
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	require.Eventually(t, func() bool { return exists(filepath.Join(vmDir, SocketFile)) }, 10*time.Second, 10*time.Millisecond)

	_, err = ImportTart(home, "busy", filepath.Join(shortTemp(t), "store"), "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "it is running (process ")
	assert.Contains(t, err.Error(), "tart stop busy")
}
