//go:build !unix

package tart

import (
	"os"
	"syscall"
)

// ownProcessGroup: tart exists only on macOS; elsewhere nothing to set.
func ownProcessGroup() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { _ = p.Kill() }
