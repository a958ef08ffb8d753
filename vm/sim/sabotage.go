package sim

import (
	"errors"
	"io"
	"regexp"
	"sync"
	"sync/atomic"
)

// Sabotage breaks a simulated machine's infrastructure (its sshd, its
// network, its credentials), never its macOS model: tests use it to check
// that the lab reports and retries what goes wrong around a Mac as
// errors, apart from the product's failures. Options.Sabotage picks one
// per machine; the zero value breaks nothing.
type Sabotage struct {
	// NoSSHD: sshd never answers after Start. It accepts and drops every
	// connection, as a Mac stuck in boot does, and Endpoint returns the
	// address at once (a real provider knows it from the DHCP lease), so
	// the client's connection retries are what times out.
	NoSSHD bool
	// Hang, when set, makes an exec command whose line it matches hang
	// without output until its session is signalled or closed, or the
	// machine stops: a guest wedged in an installer.
	Hang *regexp.Regexp
	// CutSFTPAfter, when above 0, drops the whole SSH connection (as a
	// network that goes away) once that many bytes of one file have
	// crossed over SFTP, uploads and downloads alike.
	CutSFTPAfter int64
	// CutSFTPTimes limits how many transfers of the machine are cut, so a
	// retry after a reconnect can succeed; 0 cuts every one.
	CutSFTPTimes int
	// Password, when set, is the password the guest really has. Endpoint
	// still hands out the image's, which then does not match.
	Password string
}

// errCut is why a sabotaged transfer's connection ended.
var errCut = errors.New("sabotage: connection cut during an SFTP transfer")

// sftpCutter cuts a machine's SFTP transfers per its Sabotage; it lives
// as long as the machine, so CutSFTPTimes counts across connections.
type sftpCutter struct {
	after int64
	times int64 // 0: unlimited
	cuts  atomic.Int64
}

func newSFTPCutter(s Sabotage) *sftpCutter {
	if s.CutSFTPAfter <= 0 {
		return nil
	}
	return &sftpCutter{after: s.CutSFTPAfter, times: int64(s.CutSFTPTimes)}
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
func (c *sftpCutter) wrap(f sftpFile, cut func()) sftpFile {
	if c == nil {
		return f
	}
	return &cutFile{sftpFile: f, c: c, cut: cut}
}

// cutFile passes the first bytes of a transfer through, then cuts the
// connection, unless the machine has used up its cuts.
type cutFile struct {
	sftpFile
	c     *sftpCutter
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
