package doctor

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"time"
)

// Output is what a finished command printed and its exit status.
type Output struct {
	Stdout string
	Stderr string
	Exit   int
}

// Runner runs a command to its end. A non-zero exit is an Output, not an
// error; the error is for a command that could not run (not installed).
type Runner func(ctx context.Context, name string, args ...string) (Output, error)

// System is everything the checks learn from outside: the platform,
// commands, files, the disk and the network. Local is the real one;
// tests fill it with canned answers.
type System struct {
	GOOS, GOARCH string
	Run          Runner
	LookPath     func(file string) (string, error)
	// Executable is the path of the running sxlab (for codesign).
	Executable func() (string, error)
	// FreeSpace is the space available to this user on the volume
	// holding path, which exists.
	FreeSpace func(path string) (uint64, error)
	// Stat tells whether a path exists (FreeSpace walks up to one that does).
	Stat func(path string) (os.FileInfo, error)
	// Dial makes a TCP connection and closes it.
	Dial     func(ctx context.Context, addr string) error
	ReadFile func(path string) ([]byte, error)
	UserHome func() (string, error)
	Getenv   func(string) string
	Now      func() time.Time
}

// Local is this machine.
func Local() System {
	return System{
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		Run:        runCommand,
		LookPath:   exec.LookPath,
		Executable: os.Executable,
		FreeSpace:  freeSpace,
		Stat:       os.Stat,
		Dial:       dialTCP,
		ReadFile:   os.ReadFile,
		UserHome:   os.UserHomeDir,
		Getenv:     os.Getenv,
		Now:        time.Now,
	}
}

// withDefaults fills what a test left out with answers that find
// nothing, so a test states only what its checks read.
func (s System) withDefaults() System {
	missing := errors.New("not available")
	if s.Run == nil {
		s.Run = func(context.Context, string, ...string) (Output, error) { return Output{}, exec.ErrNotFound }
	}
	if s.LookPath == nil {
		s.LookPath = func(string) (string, error) { return "", exec.ErrNotFound }
	}
	if s.Executable == nil {
		s.Executable = func() (string, error) { return "", missing }
	}
	if s.FreeSpace == nil {
		s.FreeSpace = func(string) (uint64, error) { return 0, missing }
	}
	if s.Stat == nil {
		s.Stat = func(string) (os.FileInfo, error) { return nil, os.ErrNotExist }
	}
	if s.Dial == nil {
		s.Dial = func(context.Context, string) error { return missing }
	}
	if s.ReadFile == nil {
		s.ReadFile = func(string) ([]byte, error) { return nil, os.ErrNotExist }
	}
	if s.UserHome == nil {
		s.UserHome = func() (string, error) { return "", missing }
	}
	if s.Getenv == nil {
		s.Getenv = func(string) string { return "" }
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return s
}

// commandTimeout bounds each command a check runs: they all answer at
// once when the machine is healthy.
const commandTimeout = 20 * time.Second

func runCommand(ctx context.Context, name string, args ...string) (Output, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	out := Output{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && ctx.Err() == nil {
		out.Exit = ee.ExitCode()
		return out, nil
	}
	return out, err
}

// dialTimeout bounds one TCP connection attempt of the network checks.
const dialTimeout = 3 * time.Second

func dialTCP(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
