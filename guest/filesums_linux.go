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
		dev: uint64(st.Dev), ino: uint64(st.Ino),
		mtime: syscall.TimespecToNsec(st.Mtim), ctime: syscall.TimespecToNsec(st.Ctim),
	}, true
}
