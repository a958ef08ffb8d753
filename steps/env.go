// Package steps is the scenario: the catalogue of steps (install, launch,
// approve, vpn, upgrade, reboot, probe, ...) and the probes that decide
// whether the product still works. Steps talk to macOS only through a
// guest.Guest, so a simulated Mac and a real one look the same to them.
package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// App is the product under test, as the steps need it.
type App struct {
	Name       string
	BundleID   string
	Path       string
	Extension  Extension
	VPNService string
	Versions   map[string]Version
}

// Extension is the app's system extension.
type Extension struct {
	BundleID    string
	TeamID      string
	MachService string // template over {{.Version}} and {{.Build}}
}

// Version is one build of the app.
type Version struct {
	ID      string
	Package string // local file
	Kind    string // pkg, dmg, zip
	// ExtShort and ExtBuild are the extension's version in this build when
	// known (from a simulated package's manifest); probes check them then.
	ExtShort string
	ExtBuild string
	// PackageID is the package's receipt id when known (pkgutil --pkg-info).
	PackageID string
}

// Env is what a step runs with: the guest, the cell, the app, and where
// to record what it did.
type Env struct {
	Guest    guest.Guest
	User     string            // the guest's console user
	Password string            // the user's password, for System Settings' password sheet; never recorded
	Image    string            // the image's name, for messages
	Axes     map[string]string // the cell's values
	From, To string            // the upgrade path's version ids
	App      App
	Probes   map[string]Probe
	// Record receives every command a step ran (steps.jsonl).
	Record func(Entry)
	// Reconnect re-establishes the guest connection after a reboot; the
	// host key must not change.
	Reconnect func(ctx context.Context) error
	// Poll is the longest interval of polling steps (default 2s): they
	// check again after 10ms, then back off, doubling, to Poll. Wait
	// bounds them when the step sets no timeout (default 5m).
	Poll time.Duration
	Wait time.Duration
	// CommandTimeout bounds each guest command and file transfer that
	// sets no timeout of its own (0: only ctx bounds them). A guest wedged
	// in an installer then ends the attempt as an infrastructure error
	// instead of holding its slot forever.
	CommandTimeout time.Duration
	// Results collects the probes' outcomes, in order.
	Results []ProbeResult
	// ProbeBinary returns the local path of a darwin/arm64 sxlab-probe
	// (package guestbin builds it); the mach-lookup and xpc-connect
	// probes upload it once per attempt. nil makes them a lab error.
	ProbeBinary func(ctx context.Context) (string, error)
	// Set by the first guest probe of the attempt: where the probe was
	// uploaded, and the console user's uid.
	probeRemote, consoleUID string
	// staged: remoteDir exists in the guest (since its last boot).
	staged bool
	// inProbes: a probe step is running; probeListing is the listing its
	// probes that only read have seen (nil: none yet).
	inProbes     bool
	probeListing []guest.Extension
}

// Entry is one line of steps.jsonl.
type Entry struct {
	Step    string        `json:"step"`
	Kind    string        `json:"kind"`
	Started time.Time     `json:"started"`
	Result  *guest.Result `json:"result,omitempty"`
	Note    string        `json:"note,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// Step is one step of a scenario.
type Step interface {
	Kind() string
	Run(ctx context.Context, env *Env) error
}

// ProductFailure is a step's error when the product misbehaved (the VPN
// would not connect although its extension is enabled, the installer
// refused the package): the attempt's verdict is fail, never retried. Any
// other error is the lab's (error verdict, retried).
type ProductFailure struct {
	Step   string
	Reason string
}

func (f *ProductFailure) Error() string { return f.Step + ": " + f.Reason }

// IsProductFailure reports whether err says the product misbehaved.
func IsProductFailure(err error) bool {
	var f *ProductFailure
	return errors.As(err, &f)
}

func fail(step, format string, args ...any) error {
	return &ProductFailure{Step: step, Reason: fmt.Sprintf(format, args...)}
}

func (e *Env) poll() time.Duration {
	if e.Poll > 0 {
		return e.Poll
	}
	return 2 * time.Second
}

// firstPoll is the first wait of a polling step. The first check nearly
// always finds the change under way (a VPN connecting, an extension
// activating); a fixed Poll would then charge every such step a whole
// interval, even on a guest that finishes in milliseconds. Doubling from
// here keeps the checks few on a slow one.
const firstPoll = 10 * time.Millisecond

// poller spaces the checks of one polling step: the second check at
// once (a fast guest is done by then; a fixed 10 ms was 13 % of an
// attempt against a zero-latency one), then firstPoll, doubling up to
// Env.Poll.
type poller struct {
	next, longest time.Duration
}

func (e *Env) poller() *poller {
	return &poller{next: 0, longest: e.poll()}
}

// wait sleeps until the next check, but not past deadline (the last
// check then comes at the deadline), or until ctx ends.
func (p *poller) wait(ctx context.Context, deadline time.Time) error {
	d := min(p.next, max(time.Until(deadline), 0))
	if p.next == 0 {
		p.next = min(firstPoll, p.longest)
	} else {
		p.next = min(2*p.next, p.longest)
	}
	if d == 0 {
		return ctx.Err()
	}
	return sleep(ctx, d)
}

func (e *Env) wait(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	if e.Wait > 0 {
		return e.Wait
	}
	return 5 * time.Minute
}

// run runs one command line, bounded by CommandTimeout, and records it
// under step.
func (e *Env) run(ctx context.Context, step, kind, line string) (guest.Result, error) {
	return e.runCmd(ctx, step, kind, guest.Cmd{Line: line})
}

// runCmd runs cmd, with CommandTimeout when it sets no timeout, and
// records it under step.
func (e *Env) runCmd(ctx context.Context, step, kind string, cmd guest.Cmd, secrets ...string) (guest.Result, error) {
	byDefault := cmd.Timeout <= 0 && e.CommandTimeout > 0
	if byDefault {
		cmd.Timeout = e.CommandTimeout
	}
	started := time.Now()
	res, err := e.Guest.Run(ctx, cmd)
	if err != nil && res.Line == "" {
		res.Line = cmd.Line
	}
	if err != nil && byDefault && errors.Is(err, guest.ErrCommandTimeout) {
		err = fmt.Errorf("%w (lab.timeouts.command)", err)
	}
	shown := res
	shown.Line, shown.Stdout, shown.Stderr = redact(res.Line, secrets...), redact(res.Stdout, secrets...), redact(res.Stderr, secrets...)
	entry := Entry{Step: step, Kind: kind, Started: started, Result: &shown}
	if err != nil {
		if msg := redact(err.Error(), secrets...); msg != err.Error() {
			err = &redactedError{msg: msg, err: err}
		}
		entry.Error = err.Error()
	}
	e.record(entry)
	if err != nil {
		return shown, fmt.Errorf("%s: %s: %w", step, redact(cmd.Line, secrets...), err)
	}
	return res, nil
}

// redactedError shows a message without the secret and still unwraps
// to what it hides (errors.Is ErrCommandTimeout).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact replaces each secret in s (a password on a command line) with
// <redacted>, for what steps.jsonl and messages show.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}

// upload copies a local file into the guest, bounded by CommandTimeout
// (transfers take no timeout of their own), and records it under step.
func (e *Env) upload(ctx context.Context, step, local, remote string) error {
	if e.CommandTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, e.CommandTimeout,
			fmt.Errorf("%w after %s (lab.timeouts.command)", guest.ErrCommandTimeout, e.CommandTimeout))
		defer cancel()
	}
	started := time.Now()
	err := e.Guest.Upload(ctx, local, remote, nil)
	entry := Entry{Step: step, Kind: "upload", Started: started, Note: local + " -> " + remote}
	if err != nil {
		entry.Error = err.Error()
	}
	e.record(entry)
	if err != nil {
		return fmt.Errorf("%s: upload %s: %w", step, local, err)
	}
	return nil
}

func (e *Env) record(entry Entry) {
	if e.Record != nil {
		e.Record(entry)
	}
}

// data is what templates see.
type data struct {
	Axis     map[string]string
	From, To string
	App      App
	Version  string
	Build    string
}

// Render expands a template over the cell: {{.From}}, {{.To}},
// {{.Axis.vpn}}, {{.App.Path}}.
func (e *Env) Render(s string) (string, error) {
	return render(s, data{Axis: e.Axes, From: e.From, To: e.To, App: e.App})
}

func render(s string, d any) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	t, err := template.New("").Option("missingkey=error").Parse(s)
	if err != nil {
		return "", fmt.Errorf("template %q: %w", s, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("template %q: %w", s, err)
	}
	return b.String(), nil
}

// MachService renders the extension's Mach service name for one build.
func (a App) MachService(short, build string) (string, error) {
	return render(a.Extension.MachService, struct{ Version, Build string }{short, build})
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
