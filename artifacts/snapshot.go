package artifacts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/internal/plainjson"
)

// A state snapshot (state/before, state/after) is two files: NAME.txt,
// the transcript of its commands in the order they ran — each as "$ "
// and the line sent, what it printed, and "# exit N" — and NAME.json,
// what the guest package made of them (State). One file per snapshot
// rather than one per command: an attempt folder is created on every
// attempt, and file creation is most of what the lab itself costs there.
// Older run folders hold a folder per snapshot with a NAME.txt and
// NAME.json per command; ReadState reads both layouts.
const (
	TranscriptExt = ".txt"
	StateExt      = ".json"
)

// Section names of a snapshot's commands (Missing.What, and the files of
// the older layout).
const (
	SwVersFile       = "sw_vers"
	ExtensionsFile   = "systemextensionsctl-list"
	vpnListFile      = "scutil-nc-list"
	vpnStatusFile    = "scutil-nc-status"
	launchdListFile  = "launchctl-list"    // raw only
	launchdPrintFile = "launchctl-print-"  // + job label
	pkgInfoFile      = "pkgutil-pkg-info-" // + package id
)

// stateCmdTimeout bounds one state command: they answer at once on a
// healthy Mac, and a hung one must not eat the collection's budget.
const stateCmdTimeout = 2 * time.Minute

// State is a parsed state snapshot, limited to the app.
type State struct {
	Taken      time.Time          `json:"taken"` // the guest's clock (the host's when unreadable) as the snapshot began
	SwVers     *guest.SwVers      `json:"sw_vers,omitempty"`
	Extensions []guest.Extension  `json:"extensions"` // the app's extension's rows only (bundle and team id); null when unread
	VPNs       []guest.VPNService `json:"vpns,omitempty"`
	VPNStatus  *guest.VPNStatus   `json:"vpn_status,omitempty"`
	Jobs       []Job              `json:"jobs,omitempty"`
	Packages   []guest.PkgInfo    `json:"packages,omitempty"`
}

// Job is one launchd job of the extension.
type Job struct {
	Label string            `json:"label"`
	Job   *guest.LaunchdJob `json:"job"` // nil when launchd had no such job
}

// JobLabel is the launchd label of a running NE provider:
// NetworkExtension.<bundle id>.<short version>.<build>.
func JobLabel(bundleID, short, build string) string {
	return fmt.Sprintf("NetworkExtension.%s.%s.%s", bundleID, short, build)
}

// snapshot records the app's state as sub.txt and sub.json (sub is
// state/before or state/after). What cannot be had is in s.missing; the
// rest is kept, the transcript command by command as it comes.
func (s *session) snapshot(ctx context.Context, sub string) *State {
	tr := s.transcript(sub)
	if tr == nil {
		return nil
	}
	defer tr.close()
	// The guest's clock, so that state and log lines share one timeline.
	st := &State{Taken: time.Now().UTC()}
	if res, ok := tr.run(ctx, "clock", guestClockLine); ok && res.Exit == 0 {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(res.Stdout)); err == nil {
			st.Taken = t
		}
	}
	app := s.c.App

	if v, ok := capture(ctx, tr, SwVersFile, "sw_vers", guest.ParseSwVers); ok {
		st.SwVers = &v
	}
	if rows, ok := capture(ctx, tr, ExtensionsFile, "systemextensionsctl list", guest.ParseExtensions); ok {
		st.Extensions = []guest.Extension{} // read, though perhaps without a row of the app
		for _, r := range rows {
			if r.BundleID == app.ExtensionBundleID && (app.TeamID == "" || r.TeamID == app.TeamID) {
				st.Extensions = append(st.Extensions, r)
			}
		}
	}
	st.VPNs, _ = capture(ctx, tr, vpnListFile, "scutil --nc list", guest.ParseVPNList)
	if app.VPNService != "" {
		// "No service" (before the app made its configuration) is an
		// answer, which scutil may print on stderr with exit 1.
		line := guest.Join("scutil", "--nc", "status", app.VPNService) + " 2>&1"
		if v, ok := capture(ctx, tr, vpnStatusFile, line, guest.ParseVPNStatus); ok {
			st.VPNStatus = &v
		}
	}
	if app.ExtensionBundleID != "" {
		for _, label := range s.jobLabels(ctx, tr, st.Extensions) {
			j := Job{Label: label}
			if job, ok := capture(ctx, tr, launchdPrintFile+FileSafe(label), guest.Join("sudo", "launchctl", "print", "system/"+label), guest.ParseLaunchdJob); ok {
				j.Job = &job
			}
			st.Jobs = append(st.Jobs, j)
		}
	}
	for _, id := range s.packageIDs(ctx, tr) {
		if info, ok := capture(ctx, tr, pkgInfoFile+FileSafe(id), guest.Join("pkgutil", "--pkg-info", id), guest.ParsePkgInfo); ok {
			st.Packages = append(st.Packages, info)
		}
	}
	b, err := plainjson.MarshalIndent(st, "", "  ")
	if err == nil {
		err = s.o.written.WriteFile(s.dir, sub+StateExt, append(b, '\n'))
	}
	if err != nil {
		s.miss(sub+StateExt, fmt.Sprintf("write: %v", err))
	}
	return st
}

// mkdirs makes the folders of sub (forward slashes) under base, which
// exists: one mkdir each, where os.MkdirAll would first stat every level.
func mkdirs(base, sub string) error {
	p := base
	for part := range strings.SplitSeq(sub, "/") {
		p = filepath.Join(p, part)
		err := os.Mkdir(p, 0o755)
		if errors.Is(err, fs.ErrExist) {
			var st fs.FileInfo
			if st, err = os.Stat(p); err == nil && !st.IsDir() {
				err = fmt.Errorf("%s: not a folder", p)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// jobLabels finds the extension's launchd jobs: those `launchctl list`
// shows under its label prefix, and those its enabled rows imply.
func (s *session) jobLabels(ctx context.Context, tr *transcript, rows []guest.Extension) []string {
	prefix := "NetworkExtension." + s.c.App.ExtensionBundleID + "."
	var labels []string
	if out, ok := tr.raw(ctx, launchdListFile, "sudo launchctl list"); ok {
		for line := range strings.Lines(out) {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[len(f)-1], prefix) {
				labels = append(labels, f[len(f)-1])
			}
		}
	}
	for _, r := range rows {
		if r.State == "activated enabled" && r.ShortVersion != "" && r.Build != "" {
			labels = append(labels, JobLabel(r.BundleID, r.ShortVersion, r.Build))
		}
	}
	slices.Sort(labels)
	return slices.Compact(labels)
}

// packageIDs are the configured package ids or, when none are, the
// receipts whose id starts with the app's bundle id.
func (s *session) packageIDs(ctx context.Context, tr *transcript) []string {
	if len(s.c.App.Packages) > 0 || s.c.App.BundleID == "" {
		return s.c.App.Packages
	}
	res, ok := tr.run(ctx, "pkgutil-pkgs", guest.Join("pkgutil", "--pkgs=^"+regexp.QuoteMeta(s.c.App.BundleID)))
	if !ok || res.Exit != 0 {
		return nil
	}
	return strings.Fields(res.Stdout)
}

// transcript is a snapshot's NAME.txt, appended to command by command,
// its sum kept as it grows (Written.Appended).
type transcript struct {
	s      *session
	sub    string // state/before
	rel    string // state/before.txt
	f      *os.File
	failed bool // a write failed: the manifest reads what is there
}

// transcript creates sub's transcript (and its folder) with its header;
// nil, with the reason in s.missing, when it cannot be written.
func (s *session) transcript(sub string) *transcript {
	tr := &transcript{s: s, sub: sub, rel: sub + TranscriptExt}
	err := mkdirs(s.dir, path.Dir(sub))
	if err == nil {
		s.o.written.Forget(tr.rel)
		tr.f, err = os.OpenFile(filepath.Join(s.dir, filepath.FromSlash(tr.rel)), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	}
	if err != nil {
		s.miss(tr.rel, fmt.Sprintf("create: %v", err))
		return nil
	}
	tr.write("# sxlab state snapshot " + path.Base(sub) + ": each command as sent to the guest after \"$ \", what it printed, and its exit status\n")
	return tr
}

func (tr *transcript) write(text string) {
	if tr.failed {
		return
	}
	b := []byte(text)
	if _, err := tr.f.Write(b); err != nil {
		tr.failed = true
		tr.s.o.written.Forget(tr.rel)
		tr.s.miss(tr.rel, fmt.Sprintf("write: %v", err))
		return
	}
	tr.s.o.written.Appended(tr.rel, b)
}

func (tr *transcript) close() {
	if err := tr.f.Close(); err != nil && !tr.failed {
		tr.s.o.written.Forget(tr.rel)
		tr.s.miss(tr.rel, fmt.Sprintf("close: %v", err))
	}
}

// what names a command's part of the snapshot: "state/after.txt
// (sw_vers)".
func (tr *transcript) what(name string) string { return tr.rel + " (" + name + ")" }

// run runs line and adds it to the transcript with what it printed.
func (tr *transcript) run(ctx context.Context, name, line string) (guest.Result, bool) {
	res, ok := tr.s.run(ctx, tr.what(name), line, stateCmdTimeout)
	var b strings.Builder
	b.WriteString("\n$ " + line + "\n")
	if !ok {
		b.WriteString("# not run: " + tr.s.missing[len(tr.s.missing)-1].Reason + "\n")
		tr.write(b.String())
		return res, false
	}
	if res.Cut {
		b.WriteString("# over the capture limit: only the output's tail is here\n")
	}
	section(&b, res.Stdout)
	if strings.TrimSpace(res.Stderr) != "" {
		b.WriteString("# stderr:\n")
		section(&b, res.Stderr)
	}
	fmt.Fprintf(&b, "# exit %d\n", res.Exit)
	tr.write(b.String())
	return res, true
}

// section adds out, ending it with a newline when it has none.
func section(b *strings.Builder, out string) {
	b.WriteString(out)
	if out != "" && !strings.HasSuffix(out, "\n") {
		b.WriteByte('\n')
	}
}

// raw runs line into the transcript and returns its output: stdout, or
// nothing (with the reason in s.missing) when it could not be had.
func (tr *transcript) raw(ctx context.Context, name, line string) (string, bool) {
	res, ok := tr.run(ctx, name, line)
	if !ok {
		return "", false
	}
	// Some answers come with a non-zero exit and are still the state
	// (scutil's "No service"); output on stdout is kept and parsed.
	if res.Exit != 0 && strings.TrimSpace(res.Stdout) == "" {
		tr.s.miss(tr.what(name), fmt.Sprintf("%s exited %d: %s", line, res.Exit, firstLine(res.Stderr, res.Stdout)))
		return "", false
	}
	if res.Cut {
		tr.s.miss(tr.what(name), "output over the capture limit: only its tail was kept")
	}
	return res.Stdout, true
}

// capture runs line into the transcript and parses its output.
func capture[T any](ctx context.Context, tr *transcript, name, line string, parse func(io.Reader) (T, error)) (T, bool) {
	var zero T
	out, ok := tr.raw(ctx, name, line)
	if !ok {
		return zero, false
	}
	v, err := parse(strings.NewReader(out))
	if err != nil {
		tr.s.miss(tr.what(name), "not read: "+err.Error())
		return zero, false
	}
	return v, true
}

// FileSafe keeps a label or id usable as a file name on every host.
func FileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

func firstLine(outs ...string) string {
	return cmp.Or(guest.FirstLine(outs...), "no output")
}

// HumanSize is a byte count for people: 412.0 MiB.
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
