package sim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRemoveTreeRemovesEverythingButWhatLinksPointAt(t *testing.T) {
	outside := t.TempDir()
	keep := filepath.Join(outside, "keep")
	require.NoError(t, os.WriteFile(keep, []byte("x"), 0o644))

	dir := filepath.Join(t.TempDir(), "machine")
	for _, d := range []string{"root/Applications/A.app/Contents/MacOS", "root/tmp", "root/locked/inner"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "root/Applications/A.app/Contents/MacOS/A"), []byte("bin"), 0o755))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "root/tmp/out")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "root/locked/inner/f"), nil, 0o644))
	require.NoError(t, os.Chmod(filepath.Join(dir, "root/locked"), 0o500)) // the guest made it read-only

	require.NoError(t, removeTree(dir))
	_, err := os.Lstat(dir)
	assert.True(t, os.IsNotExist(err), "the machine's folder is gone")
	_, err = os.Stat(keep)
	assert.NoError(t, err, "a symlink is removed, not followed")
	require.NoError(t, removeTree(dir), "removing what is gone is no error")
}
