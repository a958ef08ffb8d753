// Package sim is the simulated macOS guest: an in-process SSH server on
// 127.0.0.1 whose shell answers the lab's macOS commands in the real
// output formats (see ../shared/GUEST-REFERENCE.md), backed by a model of
// sysextd, launchd, Network Extension configurations and unified logging
// that reproduces the field reports as named faults.
//
// Two halves meet in this file: the machine (sshd, sftp, shell, file tree,
// reboots) runs Commands; the Mac model provides them.
package sim

import (
	"context"
	"io"
	"time"

	"github.com/sxlab/sxlab/vm"
)

// Proc is one command invocation inside the simulated Mac.
type Proc struct {
	// Args[0] is the command name, after the shell removed `sudo` and
	// `VAR=value` prefixes.
	Args   []string
	Env    map[string]string
	Root   bool   // the command runs under sudo
	User   string // the logged-in user, e.g. "admin"
	Dir    string // working directory (guest path)
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	FS     *FS
}

// Command is a program of the simulated Mac; it returns the exit status.
// It must return promptly when ctx is cancelled (a signal or a dropped
// connection ends the running command).
type Command func(ctx context.Context, p *Proc) int

// Host is what the Mac model needs from the machine it runs in.
type Host interface {
	// Now is the guest's clock.
	Now() time.Time
	// Sleep waits d of simulated time (scaled by the host's time_scale);
	// it returns ctx's error when cancelled first.
	Sleep(ctx context.Context, d time.Duration) error
	// Reboot drops every SSH connection at once; sshd answers again, with
	// the same host key, after the model's boot delay, and the model's
	// Boot is called before it does.
	Reboot()
}

// Model is the simulated Mac behind the shell.
type Model interface {
	// Commands are the programs found by name on PATH (sw_vers,
	// systemextensionsctl, scutil, ...). The shell's own builtins (cat, ls,
	// sleep, ...) are not among them.
	Commands() map[string]Command
	// Program returns the executable at an absolute guest path, such as
	// an installed app's binary; false when there is none.
	Program(guestPath string) (Command, bool)
	// Boot resets per-boot state; the machine calls it at first start and
	// at every reboot, before sshd answers.
	Boot()
	// BootDelay is the simulated time from a reboot until sshd answers.
	BootDelay() time.Duration
}

// MacConfig is what a simulated Mac is made from.
type MacConfig struct {
	Name           string // machine name; the guest's hostname derives from it
	User           string // login user, "admin" by default
	ProductVersion string // "15.3"
	Build          string // "24D60"
	Faults         []vm.Fault
	Seed           int64 // with Name, makes every random choice reproducible
}
