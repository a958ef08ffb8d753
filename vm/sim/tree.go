package sim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// clearTree empties dir with one unlinkat per entry, relative to its
// folder's descriptor, choosing file or folder removal from the type the
// directory listing already gives. os.RemoveAll tries every folder as a
// file first, and resolves whole paths each time; a machine's tree is
// removed once per attempt, so that doubled the unlinkat calls of the
// sim (bench/README.md). Anything unusual (a read-only folder, a tree
// that changes meanwhile) returns an error and the caller falls back to
// os.RemoveAll.
func clearTree(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	return clearDir(f)
}

func clearDir(d *os.File) error {
	entries, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	dfd := int(d.Fd())
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			if err := unix.Unlinkat(dfd, name, 0); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			continue
		}
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
		sub := os.NewFile(uintptr(fd), name)
		err = clearDir(sub)
		sub.Close()
		if err != nil {
			return err
		}
		if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	return nil
}
