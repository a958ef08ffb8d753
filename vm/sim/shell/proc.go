// Package shell is the simulated guest's command interpreter: a POSIX
// subset with zsh's wording and the BSD userland builtins (cat, ls, stat,
// grep, ...) over one machine's file tree. It knows nothing of macOS
// services: every program it does not provide itself comes from
// Programs, which the macOS model (or a test's fake) implements.
package shell

import (
	"context"
	"io"
	"time"
)

// Proc is one command invocation inside the simulated machine.
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
	// Exec runs another program from inside this one, as execve from a
	// process would (launchctl asuser UID CMD…): args[0] is looked up
	// like a command name (sudo included), with this Proc's directory,
	// stdio and environment; root says whether it starts as root. Nil
	// when the caller offers no way to run programs.
	Exec func(ctx context.Context, args []string, root bool) int
}

// Command is a program of the simulated machine; it returns the exit
// status. It must return promptly when ctx is cancelled (a signal or a
// dropped connection ends the running command).
type Command func(ctx context.Context, p *Proc) int

// Programs are the programs the shell does not provide itself.
type Programs interface {
	// Commands are the programs found by name on PATH (sw_vers,
	// systemextensionsctl, scutil, ...).
	Commands() map[string]Command
	// Program returns the executable at an absolute guest path, such as
	// an installed app's binary; false when there is none.
	Program(guestPath string) (Command, bool)
}

// Owners is what Programs may also implement: the owners of files the
// machine's tree cannot say, such as /dev/console (owned by whoever is
// logged in on the console).
type Owners interface {
	Owner(guestPath string) (user, group string, ok bool)
}

// Clock is the guest's clock, which the shell's sleep, date, touch and
// ls read.
type Clock interface {
	Now() time.Time
	// Sleep waits d of simulated time; it returns ctx's error when
	// cancelled first.
	Sleep(ctx context.Context, d time.Duration) error
}

// IO is a command's standard input, output and error.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}
