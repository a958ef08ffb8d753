package sshd

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// errCut is why a sabotaged transfer's connection ended.
var errCut = errors.New("sabotage: connection cut during an SFTP transfer")

// Cutter cuts a machine's SFTP transfers (sabotage, for tests of the
// lab's error handling); it lives as long as the machine, so its count of
// cuts spans connections.
type Cutter struct {
	after int64
	times int64 // 0: unlimited
	cuts  atomic.Int64
}

// NewCutter drops the whole SSH connection once after bytes of one file
// crossed over SFTP, for at most times transfers (0: every one); nil
// when after is 0 or less.
func NewCutter(after int64, times int) *Cutter {
	if after <= 0 {
		return nil
	}
	return &Cutter{after: after, times: int64(times)}
}

// sftpFile is what the SFTP handlers hand out for a file: os.File's
// ReadAt, WriteAt and Close.
type sftpFile interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
}

// wrap returns f, counting the bytes through it when transfers are cut;
// cut drops the connection the file is served on.
func (c *Cutter) wrap(f sftpFile, cut func()) sftpFile {
	if c == nil {
		return f
	}
	return &cutFile{sftpFile: f, c: c, cut: cut}
}

// cutFile passes the first bytes of a transfer through, then cuts the
// connection, unless the machine has used up its cuts.
type cutFile struct {
	sftpFile
	c     *Cutter
	cut   func()
	mu    sync.Mutex
	moved int64
	done  bool // this file was cut, or is exempt
}

// allow returns how many of n bytes may cross before the cut, and whether
// the cut comes with them.
func (f *cutFile) allow(n int) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return n, false
	}
	if f.moved+int64(n) <= f.c.after {
		f.moved += int64(n)
		return n, false
	}
	f.done = true
	if f.c.times > 0 && f.c.cuts.Add(1) > f.c.times {
		return n, false // cuts used up: this transfer goes through
	}
	ok := int(f.c.after - f.moved)
	f.moved = f.c.after
	return ok, true
}

func (f *cutFile) ReadAt(p []byte, off int64) (int, error) {
	if _, cut := f.allow(len(p)); !cut {
		return f.sftpFile.ReadAt(p, off)
	}
	// The reply that would carry these bytes never goes out, as on a
	// network that vanished mid-transfer.
	f.cut()
	return 0, errCut
}

func (f *cutFile) WriteAt(p []byte, off int64) (int, error) {
	n, cut := f.allow(len(p))
	if !cut {
		return f.sftpFile.WriteAt(p, off)
	}
	// What arrived before the cut is on the guest's disk.
	w, err := f.sftpFile.WriteAt(p[:n], off)
	f.cut()
	if err != nil {
		return w, err
	}
	return w, errCut
}
