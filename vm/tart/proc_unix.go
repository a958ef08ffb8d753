//go:build unix

package tart

import (
	"os"
	"syscall"
)

// ownProcessGroup puts `tart run` in a process group of its own: the
// terminal's Ctrl-C then reaches sxlab only, which stops the VM in order.
func ownProcessGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills `tart run` and anything it started.
func killGroup(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill()
	}
}
