//go:build !unix

package vz

import (
	"errors"
	"os/exec"
)

var errNoLocks = errors.New("vz: file locks need a unix host")

type fcntlLock struct{}

type errLocked struct{ pid int }

func (e *errLocked) Error() string { return "locked by another process" }

func lockFile(string) (*fcntlLock, error)        { return nil, errNoLocks }
func (*fcntlLock) release() error                { return nil }
func lockHolder(string) (int, error)             { return 0, errNoLocks }
func lockOwner(string) (*ownerLock, bool, error) { return nil, false, errNoLocks }

type ownerLock struct{}

func (*ownerLock) release() error { return nil }

func detach(*exec.Cmd) {}
