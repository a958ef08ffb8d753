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

// Files of a state snapshot (state/before/, state/after/): each command's
// output as NAME.txt and, parsed by the guest package, as NAME.json.
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
	Extensions []guest.Extension  `json:"extensions,omitempty"` // the app's extension's rows only (bundle and team id)
	VPNs       []guest.VPNService `json:"vpns,omitempty"`
	VPNStatus  *guest.VPNStatus   `json:"vpn_status,omitempty"`
	Jobs       []Job              `json:"jobs,omitempty"`
	Packages   []guest.PkgInfo    `json:"packages,omitempty"`
}

// Job is one launchd job of the extension.
type Job struct {
	Label string            `json:"label"`
	File  string            `json:"file"` // raw output's name in the snapshot folder
	Job   *guest.LaunchdJob `json:"job"`  // nil when launchd had no such job
}

// JobLabel is the launchd label of a running NE provider:
// NetworkExtension.<bundle id>.<short version>.<build>.
func JobLabel(bundleID, short, build string) string {
	return fmt.Sprintf("NetworkExtension.%s.%s.%s", bundleID, short, build)
}

// snapshot records the app's state into sub (state/before or
// state/after). What cannot be had is in s.missing; the rest is kept.
func (s *session) snapshot(ctx context.Context, sub string) *State {
	if err := mkdirs(s.dir, sub); err != nil {
		s.miss(sub, fmt.Sprintf("create folder: %v", err))
		return nil
	}
	// The guest's clock, so that state and log lines share one timeline.
	st := &State{Taken: time.Now().UTC()}
	if res, ok := s.run(ctx, path.Join(sub, "clock"), guestClockLine, stateCmdTimeout); ok && res.Exit == 0 {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(res.Stdout)); err == nil {
			st.Taken = t
		}
	}
	app := s.c.App

	if v, ok := capture(ctx, s, sub, SwVersFile, "sw_vers", guest.ParseSwVers); ok {
		st.SwVers = &v
	}
	rows, _ := capture(ctx, s, sub, ExtensionsFile, "systemextensionsctl list", guest.ParseExtensions)
	for _, r := range rows {
		if r.BundleID == app.ExtensionBundleID && (app.TeamID == "" || r.TeamID == app.TeamID) {
			st.Extensions = append(st.Extensions, r)
		}
	}
	st.VPNs, _ = capture(ctx, s, sub, vpnListFile, "scutil --nc list", guest.ParseVPNList)
	if app.VPNService != "" {
		// "No service" (before the app made its configuration) is an
		// answer, which scutil may print on stderr with exit 1.
		line := guest.Join("scutil", "--nc", "status", app.VPNService) + " 2>&1"
		if v, ok := capture(ctx, s, sub, vpnStatusFile, line, guest.ParseVPNStatus); ok {
			st.VPNStatus = &v
		}
	}
	if app.ExtensionBundleID != "" {
		for _, label := range s.jobLabels(ctx, sub, st.Extensions) {
			file := launchdPrintFile + FileSafe(label)
			j := Job{Label: label, File: file + ".txt"}
			if job, ok := capture(ctx, s, sub, file, guest.Join("sudo", "launchctl", "print", "system/"+label), guest.ParseLaunchdJob); ok {
				j.Job = &job
			}
			st.Jobs = append(st.Jobs, j)
		}
	}
	for _, id := range s.packageIDs(ctx, sub) {
		if info, ok := capture(ctx, s, sub, pkgInfoFile+FileSafe(id), guest.Join("pkgutil", "--pkg-info", id), guest.ParsePkgInfo); ok {
			st.Packages = append(st.Packages, info)
		}
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
func (s *session) jobLabels(ctx context.Context, sub string, rows []guest.Extension) []string {
	prefix := "NetworkExtension." + s.c.App.ExtensionBundleID + "."
	var labels []string
	if out, ok := s.raw(ctx, sub, launchdListFile, "sudo launchctl list"); ok {
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
func (s *session) packageIDs(ctx context.Context, sub string) []string {
	if len(s.c.App.Packages) > 0 || s.c.App.BundleID == "" {
		return s.c.App.Packages
	}
	res, ok := s.run(ctx, path.Join(sub, "pkgutil-pkgs"), guest.Join("pkgutil", "--pkgs=^"+regexp.QuoteMeta(s.c.App.BundleID)), stateCmdTimeout)
	if !ok || res.Exit != 0 {
		return nil
	}
	return strings.Fields(res.Stdout)
}

// raw runs line and keeps its output as NAME.txt.
func (s *session) raw(ctx context.Context, sub, name, line string) (string, bool) {
	what := path.Join(sub, name)
	res, ok := s.run(ctx, what, line, stateCmdTimeout)
	if !ok {
		return "", false
	}
	// Some answers come with a non-zero exit and are still the state
	// (scutil's "No service"); output on stdout is kept and parsed.
	if res.Exit != 0 && strings.TrimSpace(res.Stdout) == "" {
		s.miss(what, fmt.Sprintf("%s exited %d: %s", line, res.Exit, firstLine(res.Stderr, res.Stdout)))
		return "", false
	}
	if res.Cut {
		s.miss(what, "output over the capture limit: only its tail was kept")
	}
	if err := s.o.written.WriteFile(s.dir, what+".txt", []byte(res.Stdout)); err != nil {
		s.miss(what, fmt.Sprintf("write: %v", err))
		return "", false
	}
	return res.Stdout, true
}

// capture runs line, keeps its output as NAME.txt and what parse makes
// of it as NAME.json.
func capture[T any](ctx context.Context, s *session, sub, name, line string, parse func(io.Reader) (T, error)) (T, bool) {
	var zero T
	out, ok := s.raw(ctx, sub, name, line)
	if !ok {
		return zero, false
	}
	what := path.Join(sub, name)
	v, err := parse(strings.NewReader(out))
	if err != nil {
		s.miss(what+".json", err.Error())
		return zero, false
	}
	b, err := plainjson.MarshalIndent(v, "", "  ")
	if err == nil {
		err = s.o.written.WriteFile(s.dir, what+".json", append(b, '\n'))
	}
	if err != nil {
		s.miss(what+".json", fmt.Sprintf("write: %v", err))
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
