package sim

import (
	"io/fs"
	"os"
	"path/filepath"
)

// removeTree removes a machine folder left by an older sxlab, even where
// its guest made folders read-only. Machines of this sxlab have no
// folder: their trees are in memory (shell.FS).
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
