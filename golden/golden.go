// Package golden checks that a booted golden macOS guest is fit for the
// lab: that a scenario run on it can mean something. Each check runs
// ordinary macOS commands through a guest connection (the same on a Mac
// and on the simulated one), records them, and says ok / warning /
// FAILURE / unknown with the fix.
//
// No Mac has run these checks for this project yet: every check but
// Remote Login is marked "unverified on macOS" until one has.
package golden

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// Status is a check's outcome.
type Status string

const (
	OK      Status = "ok"
	Warning Status = "warning"
	Failure Status = "FAILURE"
	// Unknown: the guest did not answer in a way this check can read
	// (a command missing, an output it does not know). Not a failure.
	Unknown Status = "unknown"
)

// Runner is what the checks need of a guest connection.
type Runner interface {
	Run(ctx context.Context, cmd guest.Cmd) (guest.Result, error)
}

// Needs says what the configuration's scenario asks of this image, so a
// missing grant is a FAILURE only where it matters.
type Needs struct {
	// UI: a step approves through System Settings (approve: ui, or its
	// deprecated alias prompt): the TCC grants are needed, and an MDM
	// policy that approves at once would make the cell meaningless.
	UI bool `json:"ui"`
	// MDM: a step uses approve: mdm, which needs a user-approved
	// enrolment with a system extension policy for the team.
	MDM bool `json:"mdm"`
}

// Target is the image under check and what it is for.
type Target struct {
	Image   string
	User    string // the image's user, who must own the console
	Address string // where the lab logged in, for the Remote Login line
	// Team and Extension are the app's team ID and extension bundle ID,
	// which a system extension policy must allow.
	Team, Extension string
	Needs           Needs
	// Now is the host's clock (time.Now when nil).
	Now func() time.Time
	// Timeout bounds each command (DefaultTimeout when 0).
	Timeout time.Duration
	// Poll is the pause between tries while System Settings comes up
	// (1 s when 0).
	Poll time.Duration
}

// DefaultTimeout bounds one check command: they are all quick.
const DefaultTimeout = 60 * time.Second

// Exec is one command a check ran and what it left.
type Exec struct {
	Command  string  `json:"command"`
	Exit     int     `json:"exit"`
	Stdout   string  `json:"stdout"`
	Stderr   string  `json:"stderr"`
	Error    string  `json:"error,omitempty"` // the command did not finish
	Seconds  float64 `json:"seconds"`
	finished bool
}

// Check is one verdict on the golden.
type Check struct {
	Name   string `json:"name"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// Unverified: the commands or their reading have not been run on a
	// Mac by this project; the first Mac run should confirm them.
	Unverified bool   `json:"unverified_on_macos,omitempty"`
	Commands   []Exec `json:"commands"`
}

// Failed reports whether any check is a FAILURE.
func Failed(cs []Check) bool {
	for _, c := range cs {
		if c.Status == Failure {
			return true
		}
	}
	return false
}

// session runs the checks' commands and keeps what each check ran.
type session struct {
	r   Runner
	t   Target
	log []Exec
}

func (s *session) run(ctx context.Context, line string) Exec {
	timeout := s.t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := time.Now()
	res, err := s.r.Run(ctx, guest.Cmd{Line: line, Timeout: timeout})
	e := Exec{Command: line, Exit: res.Exit, Stdout: res.Stdout, Stderr: res.Stderr,
		Seconds: time.Since(start).Round(time.Millisecond).Seconds(), finished: err == nil}
	if err != nil {
		e.Exit = -1
		e.Error = err.Error()
	}
	s.log = append(s.log, e)
	return e
}

// take returns the commands run since the last take.
func (s *session) take() []Exec {
	out := s.log
	s.log = nil
	if out == nil {
		out = []Exec{}
	}
	return out
}

// asUser is a command line run as the image's user inside their GUI
// session (docs/macos-behaviour.md, "Command lines the sim understands").
func (s *session) asUser(args ...string) string {
	return "sudo -n launchctl asuser $(id -u " + guest.Quote(s.t.User) + ") sudo -n -u " + guest.Quote(s.t.User) + " " + guest.Join(args...)
}

// checkFunc is one check; it fills name, title and commands itself only
// through the returned Check's Status/Detail/Fix.
type checkFunc func(ctx context.Context, s *session) Check

type spec struct {
	name, title string
	verified    bool
	f           checkFunc
}

// all is every check, in the order a person fixes them.
var all = []spec{
	{"remote-login", "Remote Login (SSH)", true, checkRemoteLogin},
	{"sudo", "passwordless sudo", false, checkSudo},
	{"console-user", "console user (automatic login)", false, checkConsoleUser},
	{"filevault", "FileVault off", false, checkFileVault},
	{"sip", "System Integrity Protection", false, checkSIP},
	{"tcc", "TCC grants for UI scripting", false, checkTCC},
	{"mdm", "MDM enrolment and system extension policy", false, checkMDM},
	{"ne-logging", "Network Extension debug logging", false, checkNELogging},
	{"sleep", "sleep and screen lock off", false, checkSleep},
	{"disk", "free space in the guest", false, checkDisk},
	{"sysdiagnose", "sysdiagnose available", false, checkSysdiagnose},
	{"clock", "clock offset to the host", false, checkClock},
}

// All runs every check.
func All(ctx context.Context, r Runner, t Target) []Check {
	return runChecks(ctx, r, t, all)
}

// Preflight runs the cheap subset `sxlab run` needs before the first
// attempt on an image: the console user always, the TCC grants when a
// step approves through System Settings, the MDM policy when one uses
// approve: mdm.
func Preflight(ctx context.Context, r Runner, t Target) []Check {
	var sel []spec
	for _, sp := range all {
		switch {
		case sp.name == "console-user",
			sp.name == "tcc" && t.Needs.UI,
			sp.name == "mdm" && (t.Needs.MDM || t.Needs.UI):
			sel = append(sel, sp)
		}
	}
	return runChecks(ctx, r, t, sel)
}

func runChecks(ctx context.Context, r Runner, t Target, specs []spec) []Check {
	if t.Now == nil {
		t.Now = time.Now
	}
	s := &session{r: r, t: t}
	out := make([]Check, 0, len(specs))
	for _, sp := range specs {
		c := sp.f(ctx, s)
		c.Name, c.Title, c.Unverified = sp.name, sp.title, !sp.verified
		c.Commands = s.take()
		out = append(out, c)
	}
	return out
}

// notRun describes a command that did not finish or is not there, as an
// unknown with what happened.
func notRun(e Exec) (Check, bool) {
	switch {
	case !e.finished:
		return Check{Status: Unknown, Detail: fmt.Sprintf("%s did not finish: %s", e.Command, e.Error)}, true
	case e.Exit == 127 || e.Exit == 126:
		return Check{Status: Unknown, Detail: fmt.Sprintf("%s: the guest cannot run it (exit %d: %s)", firstWord(e.Command), e.Exit, oneLine(e.Stderr))}, true
	}
	return Check{}, false
}

func firstWord(line string) string {
	f := strings.Fields(line)
	for len(f) > 1 && (f[0] == "sudo" || strings.HasPrefix(f[0], "-")) {
		f = f[1:]
	}
	if len(f) == 0 {
		return line
	}
	return f[0]
}

// oneLine is the first non-empty line of s, for details.
func oneLine(s string) string { return guest.FirstLine(s) }

func output(e Exec) string { return guest.FirstLine(e.Stderr, e.Stdout) }

// ErrFailed says a golden failed its checks; the message names them.
var ErrFailed = errors.New("the golden is not fit for this scenario")
