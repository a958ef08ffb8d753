//go:build linux || darwin

package artifacts

import "golang.org/x/sys/unix"

// freeBytes is the space an unprivileged user may still write: blocks
// available (not free, which counts root's reserve) times the block size.
func freeBytes(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(uint64(st.Bavail) * uint64(st.Bsize)), nil
}
