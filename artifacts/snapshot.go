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
	"strconv"
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
	app := s.c.App
	vpnStatusLine := guest.Join("scutil", "--nc", "status", app.VPNService) + " 2>&1"
	// What needs no earlier answer goes in one round trip; the rest
	// (launchctl print of the jobs found, receipts found) in a second.
	first := []string{guestClockLine, "sw_vers", "systemextensionsctl list", "scutil --nc list"}
	if app.VPNService != "" {
		first = append(first, vpnStatusLine)
	}
	if app.ExtensionBundleID != "" {
		first = append(first, launchdListLine)
	}
	if ids, listed := s.packageIDsKnown(); listed {
		for _, id := range ids {
			first = append(first, pkgInfoLine(id))
		}
	} else {
		first = append(first, s.pkgsLine())
	}
	tr.batch(ctx, first)
	// The guest's clock, so that state and log lines share one timeline.
	st := &State{Taken: time.Now().UTC()}
	if res, ok := tr.run(ctx, "clock", guestClockLine); ok && res.Exit == 0 {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(res.Stdout)); err == nil {
			st.Taken = t
		}
	}
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
		if v, ok := capture(ctx, tr, vpnStatusFile, vpnStatusLine, guest.ParseVPNStatus); ok {
			st.VPNStatus = &v
		}
	}
	var labels []string
	if app.ExtensionBundleID != "" {
		labels = s.jobLabels(ctx, tr, st.Extensions)
	}
	readPackages := func(ids []string) {
		for _, id := range ids {
			if info, ok := capture(ctx, tr, pkgInfoFile+FileSafe(id), pkgInfoLine(id), guest.ParsePkgInfo); ok {
				st.Packages = append(st.Packages, info)
			}
		}
	}
	// The transcript keeps the order the guest ran the commands in.
	second := make([]string, 0, len(labels))
	for _, label := range labels {
		second = append(second, launchdPrintLine(label))
	}
	ids, known := s.packageIDsKnown()
	if known { // they went in the first session
		readPackages(ids)
	} else {
		ids = s.packageIDs(ctx, tr)
		for _, id := range ids {
			second = append(second, pkgInfoLine(id))
		}
	}
	tr.batch(ctx, second)
	for _, label := range labels {
		j := Job{Label: label}
		if job, ok := capture(ctx, tr, launchdPrintFile+FileSafe(label), launchdPrintLine(label), guest.ParseLaunchdJob); ok {
			j.Job = &job
		}
		st.Jobs = append(st.Jobs, j)
	}
	if !known {
		readPackages(ids)
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
	if out, ok := tr.raw(ctx, launchdListFile, launchdListLine); ok {
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
	if ids, known := s.packageIDsKnown(); known {
		return ids
	}
	res, ok := tr.run(ctx, "pkgutil-pkgs", s.pkgsLine())
	if !ok || res.Exit != 0 {
		return nil
	}
	return strings.Fields(res.Stdout)
}

// packageIDsKnown are the package ids when no guest need be asked.
func (s *session) packageIDsKnown() ([]string, bool) {
	return s.c.App.Packages, len(s.c.App.Packages) > 0 || s.c.App.BundleID == ""
}

func (s *session) pkgsLine() string {
	return guest.Join("pkgutil", "--pkgs=^"+regexp.QuoteMeta(s.c.App.BundleID))
}

// The snapshot's command lines.
const launchdListLine = "sudo launchctl list"

func launchdPrintLine(label string) string {
	return guest.Join("sudo", "launchctl", "print", "system/"+label)
}

func pkgInfoLine(id string) string { return guest.Join("pkgutil", "--pkg-info", id) }

// transcript is a snapshot's NAME.txt, appended to command by command,
// its sum kept as it grows (Written.Appended).
type transcript struct {
	s      *session
	sub    string // state/before
	rel    string // state/before.txt
	f      *os.File
	failed bool // a write failed: the manifest reads what is there
	// ran holds what a batch brought back, by command line, for run to
	// take instead of asking the guest again; hung, a command of a batch
	// that did not end in time, with the reason and what it printed.
	ran  map[string]guest.Result
	hung map[string]stopped
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

// run runs line (or takes what its batch brought back) and adds it to
// the transcript with what it printed.
func (tr *transcript) run(ctx context.Context, name, line string) (guest.Result, bool) {
	res, done := tr.ran[line]
	ok := done
	switch st, hung := tr.hung[line]; {
	case done:
		delete(tr.ran, line)
	case hung:
		delete(tr.hung, line)
		tr.s.miss(tr.what(name), st.reason)
		res = st.partial
	default:
		res, ok = tr.s.run(ctx, tr.what(name), line, stateCmdTimeout)
	}
	var b strings.Builder
	b.WriteString("\n$ " + line + "\n")
	if !ok {
		b.WriteString("# no answer: " + tr.s.missing[len(tr.s.missing)-1].Reason + "\n")
		if res.Stdout != "" || res.Stderr != "" {
			b.WriteString("# what it printed before it was stopped:\n")
			output(&b, res)
		}
		tr.write(b.String())
		return res, false
	}
	if res.Cut {
		b.WriteString("# over the capture limit: only the output's tail is here\n")
	}
	output(&b, res)
	fmt.Fprintf(&b, "# exit %d\n", res.Exit)
	tr.write(b.String())
	return res, true
}

// batch runs lines in one shell session, one round trip instead of one
// per command: after each, a line of its own on stdout carries a marker,
// the command's number and its exit status, and one on stderr the marker
// and the number, so each command's output and status can be told apart
// again (the marker is random per batch: no output contains it by
// chance). What comes back whole is kept for run; a command whose part
// is not whole (the batch timed out or the connection dropped under it,
// or the output was over the capture limit) is left for run to send
// alone — except the one a timeout stopped, which is not sent again.
func (tr *transcript) batch(ctx context.Context, lines []string) {
	if len(lines) < 2 || tr.s.gone != nil {
		return
	}
	mark := "sxlab-" + randomHex(6)
	var b strings.Builder
	for i, line := range lines {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s; printf '\\n%%s %%s %%s\\n' %s %d $?; printf '\\n%%s %%s\\n' %s %d 1>&2", line, mark, i, mark, i)
	}
	all := b.String()
	timeout := stateCmdTimeout
	res, err := tr.s.g.Run(ctx, guest.Cmd{Line: all, Timeout: timeout})
	if err == nil && res.Cut {
		return // a head was dropped: every command runs alone
	}
	outs, outRest := splitMarked(res.Stdout, mark, true)
	errs, errRest := splitMarked(res.Stderr, mark, false)
	if tr.ran == nil {
		tr.ran, tr.hung = map[string]guest.Result{}, map[string]stopped{}
	}
	n := min(len(outs), len(errs))
	for i := range n {
		tr.ran[lines[i]] = guest.Result{Line: lines[i], Exit: outs[i].exit, Stdout: outs[i].text, Stderr: errs[i].text, Started: res.Started}
	}
	if n < len(lines) && errors.Is(err, guest.ErrCommandTimeout) && ctx.Err() == nil {
		// What it printed is kept, when the parts before it split evenly.
		var partial guest.Result
		if len(outs) == n && len(errs) == n {
			partial = guest.Result{Line: lines[n], Exit: -1, Stdout: outRest, Stderr: errRest, Started: res.Started}
		}
		tr.hung[lines[n]] = stopped{
			reason:  fmt.Sprintf("%s did not finish within %s (sent in one session with the snapshot's other commands)", lines[n], timeout),
			partial: partial,
		}
	}
	if n > 0 {
		tr.write(fmt.Sprintf("\n# the next %d commands were sent in one session, each followed by a marker line and its exit status (not shown)\n", len(lines)))
	}
}

// stopped is a command of a batch a timeout stopped.
type stopped struct {
	reason  string
	partial guest.Result // what it printed until then
}

// marked is one command's part of a batch's output.
type marked struct {
	text string
	exit int
}

// splitMarked cuts a batch's stdout (withExit: its marker lines end in
// the exit status) or stderr at its marker lines, in order; it stops at
// the first part that is not whole and returns what follows the last
// whole one.
func splitMarked(out, mark string, withExit bool) (parts []marked, rest string) {
	rest = out
	for i := 0; ; i++ {
		sep := "\n" + mark + " " + strconv.Itoa(i)
		if withExit {
			sep += " "
		} else {
			sep += "\n"
		}
		at := strings.Index(rest, sep)
		if at < 0 {
			return parts, rest
		}
		p := marked{text: rest[:at]}
		tail := rest[at+len(sep):]
		if withExit {
			end := strings.IndexByte(tail, '\n')
			code, err := strconv.Atoi(tail[:max(end, 0)])
			if end < 0 || err != nil {
				return parts, rest
			}
			p.exit, tail = code, tail[end+1:]
		}
		parts, rest = append(parts, p), tail
	}
}

// output adds what a command printed: stdout, then any stderr under its
// own heading.
func output(b *strings.Builder, res guest.Result) {
	section(b, res.Stdout)
	if strings.TrimSpace(res.Stderr) != "" {
		b.WriteString("# stderr:\n")
		section(b, res.Stderr)
	}
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
