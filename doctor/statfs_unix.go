//go:build unix

package doctor

import "golang.org/x/sys/unix"

// freeSpace is the space an unprivileged user may still write on path's
// volume (f_bavail, not f_bfree: root's reserve is not ours).
func freeSpace(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
