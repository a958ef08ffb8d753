package guest

import (
	"context"
	"io"
	"strings"
	"time"
)

// Guest is a connection to a macOS guest: run commands, move files.
// Steps talk to macOS only through it, so a real Mac and a simulated one
// look the same to them.
type Guest interface {
	// Run runs one shell command line. A non-zero exit is a Result, not an
	// error; the error is for what kept the command from finishing (the
	// connection died, the timeout passed, ctx was cancelled).
	Run(ctx context.Context, cmd Cmd) (Result, error)
	Upload(ctx context.Context, local, remote string, p Progress) error
	Download(ctx context.Context, remote, local string, p Progress) error
	Close() error
}

// Cmd is one command line for the guest's shell. Build Line with Quote
// (or Join) for every argument that comes from configuration.
type Cmd struct {
	Line    string
	Timeout time.Duration // 0: only ctx bounds it
	Stdin   io.Reader
}

// Result is what a finished command left.
type Result struct {
	Line     string        `json:"command"`
	Exit     int           `json:"exit"`
	Stdout   string        `json:"stdout,omitempty"` // the tail when over the cap
	Stderr   string        `json:"stderr,omitempty"`
	Cut      bool          `json:"cut,omitempty"` // output was over the cap; the head was dropped
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
}

// Progress reports bytes moved so far out of total (-1 when unknown).
type Progress func(done, total int64)

// Quote makes s one word for a POSIX shell (zsh and sh alike): it is
// wrapped in single quotes, inside which nothing is special, and each
// single quote inside becomes: close quote, backslash-quote, reopen. Plain words
// are left alone so logged commands stay readable.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes each argument and joins them into one command line.
func Join(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// FirstLine is the first non-empty line of the first output that has one
// (say stderr, then stdout), trimmed; "" when none does. Steps, evidence
// and golden checks quote a guest command by it in their messages.
func FirstLine(outs ...string) string {
	for _, o := range outs {
		if l, _, _ := strings.Cut(strings.TrimSpace(o), "\n"); l != "" {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
