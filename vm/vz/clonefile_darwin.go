//go:build darwin

package vz

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

const cloneMethod = "clonefile"

// cloneFile makes dst a copy-on-write clone of src: instant and free of
// space whatever the disk's size. There is no fallback to a copy: a plain
// copy of a sparse 50 GB disk image would take minutes and fill the disk.
func cloneFile(src, dst string) error {
	err := unix.Clonefile(src, dst, unix.CLONE_NOFOLLOW)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("clonefile %s to %s: different volumes: the store and the bundle must be on the same APFS volume", src, dst)
	case errors.Is(err, unix.ENOTSUP):
		return fmt.Errorf("clonefile %s to %s: the volume does not support clones: put the store on APFS", src, dst)
	}
	return fmt.Errorf("clonefile %s to %s: %w", src, dst, err)
}
