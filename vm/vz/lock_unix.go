//go:build unix

package vz

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// fcntlLock is a POSIX record lock on a whole file. The kernel drops it when
// the holding process dies, so a crashed worker leaves no stale lock. The
// catch of fcntl locks: closing any descriptor of the file in the holding
// process drops the lock too, so the worker reads config.json before it
// locks it and never opens it again.
type fcntlLock struct{ f *os.File }

// errLocked is what lockFile returns when another process holds the lock.
type errLocked struct{ pid int }

func (e *errLocked) Error() string {
	if e.pid > 0 {
		return fmt.Sprintf("locked by process %d", e.pid)
	}
	return "locked by another process"
}

// lockFile takes a write lock on path without waiting.
func lockFile(path string) (*fcntlLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		pid, _ := lockHolder(path)
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("lock %s: %w", path, &errLocked{pid: pid})
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fcntlLock{f: f}, nil
}

func (l *fcntlLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// lockHolder returns the PID of the process holding a lock on path, 0 when
// none does. Locks held by this process are not reported (fcntl does not
// see a process conflict with itself).
func lockHolder(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	// Closing f would drop a lock this process held on path; this process
	// never locks the files it probes (workers are other processes).
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return 0, fmt.Errorf("probe lock on %s: %w", path, err)
	}
	if lk.Type == unix.F_UNLCK {
		return 0, nil
	}
	return int(lk.Pid), nil
}

// ownerLock is the flock(2) a run holds on a clone's sxlab.lock. flock
// rather than fcntl because the run's own process probes other clones'
// lock files: flock belongs to the open file, so a probe in the same
// process sees the conflict and closing the probe drops nothing.
type ownerLock struct{ f *os.File }

// lockOwner creates path if needed and flocks it without waiting; ok is
// false when another open file holds it.
func lockOwner(path string) (l *ownerLock, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return &ownerLock{f: f}, true, nil
}

func (l *ownerLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// detach puts the worker in its own process group: a Ctrl-C in the
// terminal reaches the run, whose cleanup stops the VM, and not the worker
// behind its back.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
