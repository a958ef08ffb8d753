package guest

import (
	"os"
	"syscall"
)

func statID(info os.FileInfo) (fileID, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{
		dev: uint64(st.Dev), ino: st.Ino,
		mtime: syscall.TimespecToNsec(st.Mtimespec), ctime: syscall.TimespecToNsec(st.Ctimespec),
	}, true
}
