package report

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/google/renameio/v2"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/packages"
)

// Names of a feedback bundle: feedback/<cell>/FEEDBACK.md in the run
// folder, its attachments beside it, and feedback/<cell>.zip with --zip.
const (
	FeedbackDir  = "feedback"
	FeedbackFile = "FEEDBACK.md"
	packagesDir  = "packages"
)

// maxEvidenceLines bounds the log lines shown per signature: the rest are
// in logs.ndjson, which is attached.
const maxEvidenceLines = 12

// ErrNothingToReport is returned for a cell (or an attempt) that did not
// fail: a passing cell has nothing to tell Apple.
var ErrNothingToReport = errors.New("nothing to report")

// CellError says which cell a query could not pick, and lists the cells
// it could have picked.
type CellError struct {
	Query   string
	Problem string // "no cell matches", "matches 4 cells", or a --only syntax error
	Cells   []Cell // the run's cells, or the ambiguous matches
}

func (e *CellError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cell %q: %s", e.Query, e.Problem)
	if len(e.Cells) == 0 {
		b.WriteString("; the run has no cells")
		return b.String()
	}
	b.WriteString("; name one by its id, a unique id prefix, axis values (vpn=running,macos=macos-15.3) or a unique part of its label:")
	for _, c := range e.Cells {
		fmt.Fprintf(&b, "\n  %s  %-10s %d/%d failed  %s", c.Cell, c.Status(), c.Failures, c.Attempts, c.Label)
	}
	return b.String()
}

// FindCell picks the cell a person named: its id, a unique prefix of it,
// a unique part of its label, or axis values in --only syntax
// ("vpn=running,path=2->3", in any order; spaces work as commas).
func FindCell(r *Run, query string) (*Cell, error) {
	q := strings.TrimSpace(query)
	if q == "" {
		return nil, &CellError{Query: query, Problem: "empty", Cells: r.Cells}
	}
	for i := range r.Cells {
		if r.Cells[i].Cell == q {
			return &r.Cells[i], nil
		}
	}
	var matches []int
	for i, c := range r.Cells {
		if strings.HasPrefix(c.Cell, q) || strings.Contains(c.Label, q) {
			matches = append(matches, i)
		}
	}
	problem := "no cell matches"
	if len(matches) == 0 && strings.Contains(q, "=") {
		cells := make([]matrices.Cell, len(r.Cells))
		for i, c := range r.Cells {
			cells[i] = matrices.Cell{ID: c.Cell, Label: c.Label, Values: c.Axes}
		}
		expr := strings.Join(strings.Fields(strings.ReplaceAll(q, ",", " ")), ",")
		if f, err := matrices.ParseOnly([]string{expr}, cells); err != nil {
			problem = err.Error()
		} else {
			for i, c := range cells {
				if f.Match(c) {
					matches = append(matches, i)
				}
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, &CellError{Query: query, Problem: problem, Cells: r.Cells}
	case 1:
		return &r.Cells[matches[0]], nil
	}
	e := &CellError{Query: query, Problem: fmt.Sprintf("matches %d cells", len(matches))}
	for _, i := range matches {
		e.Cells = append(e.Cells, r.Cells[i])
	}
	return nil, e
}

// PickAttempt returns the final try of the attempt to report: repeat
// when it is not 0, else the cell's first failing attempt. An attempt
// that passed, or ended in an infrastructure error, is refused with the
// failing ones named.
func PickAttempt(c *Cell, repeat int) (*Attempt, error) {
	finals := map[int]*Attempt{}
	var repeats, failing []int
	for i := range c.Tries {
		a := &c.Tries[i]
		if _, seen := finals[a.Repeat]; !seen {
			repeats = append(repeats, a.Repeat)
		}
		if prev, ok := finals[a.Repeat]; !ok || a.Final || (!prev.Final && a.Try > prev.Try) {
			finals[a.Repeat] = a
		}
	}
	sort.Ints(repeats)
	for _, rep := range repeats {
		if finals[rep].Verdict == lab.Fail {
			failing = append(failing, rep)
		}
	}
	which := func() string {
		if len(failing) == 0 {
			return "no attempt of the cell failed"
		}
		return "failing attempts: " + joinInts(failing)
	}
	if repeat == 0 {
		if len(failing) == 0 {
			return nil, fmt.Errorf("cell %s (%s) is %s, %d/%d failed, %d error(s): %w", c.Cell, c.Label, c.Status(), c.Failures, c.Attempts, c.Errors, ErrNothingToReport)
		}
		return finals[failing[0]], nil
	}
	a, ok := finals[repeat]
	if !ok {
		if len(repeats) == 0 {
			return nil, fmt.Errorf("cell %s has no attempt %d: no attempt of it finished", c.Cell, repeat)
		}
		return nil, fmt.Errorf("cell %s has no attempt %d (attempts: %s; %s)", c.Cell, repeat, joinInts(repeats), which())
	}
	switch a.Verdict {
	case lab.Fail:
		return a, nil
	case lab.Error:
		return nil, fmt.Errorf("attempt %d of cell %s ended in an infrastructure error (%s), not a product failure (%s): %w", repeat, c.Cell, a.Reason, which(), ErrNothingToReport)
	default:
		return nil, fmt.Errorf("attempt %d of cell %s is %s (%s): %w", repeat, c.Cell, a.Verdict, which(), ErrNothingToReport)
	}
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// FeedbackOptions says what to bundle.
type FeedbackOptions struct {
	// Attempt is the repeat to report; 0 picks the first failing one.
	Attempt int
	// Zip also writes feedback/<cell>.zip.
	Zip bool
	// WorkDir is where a relative config_dir of run.json is taken from
	// (the folder `sxlab run` ran in); "" is the current folder.
	WorkDir string
}

// Bundle is a feedback bundle as written.
type Bundle struct {
	Dir       string // feedback/<cell> in the run folder
	Markdown  string // its FEEDBACK.md
	Zip       string // feedback/<cell>.zip, "" without FeedbackOptions.Zip
	Title     string // the suggested title
	Cell      string
	Repeat    int
	Simulated bool
	Files     []BundleFile // the attachments, FEEDBACK.md not included
	// Missing is the evidence the bundle lacks, and why.
	Missing []artifacts.Missing
}

// BundleFile is one attachment of a bundle.
type BundleFile struct {
	Name   string // relative to the bundle folder, with slashes
	What   string // what it is, for people
	Size   int64
	SHA256 string // as the attempt's manifest recorded it, or computed; "" when neither
	src    string
}

// BuildFeedback writes feedback/<cell>/ in the run folder for the
// failing attempt of the cell query names (see FindCell, PickAttempt):
// FEEDBACK.md and the attempt's evidence (sysdiagnose, logs, state
// snapshots, steps, manifest) with both packages of its upgrade path,
// hard-linked where the disk allows. A bundle made before for the cell is
// replaced whole, so it never mixes two attempts.
func BuildFeedback(r *Run, query string, opt FeedbackOptions) (*Bundle, error) {
	c, err := FindCell(r, query)
	if err != nil {
		return nil, err
	}
	a, err := PickAttempt(c, opt.Attempt)
	if err != nil {
		return nil, err
	}
	fb := newFeedback(r, c, a, opt.WorkDir)

	root := filepath.Join(r.Dir, FeedbackDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("feedback folder: %w", err)
	}
	tmp, err := os.MkdirTemp(root, "."+c.Cell+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("feedback folder: %w", err)
	}
	defer os.RemoveAll(tmp)                      // gone after the rename below; cleans up after a failure
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it private
		return nil, fmt.Errorf("feedback folder: %w", err)
	}

	var files []BundleFile
	for _, f := range fb.Files {
		if err := linkOrCopy(f.src, filepath.Join(tmp, filepath.FromSlash(f.Name))); err != nil {
			fb.Missing = append(fb.Missing, artifacts.Missing{What: f.Name, Reason: fmt.Sprintf("copy into the bundle: %v", err)})
			continue
		}
		files = append(files, f)
	}
	fb.Files = files
	md, err := fb.markdown()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, FeedbackFile), md, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", FeedbackFile, err)
	}

	dir := filepath.Join(root, c.Cell)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("replace %s: %w", dir, err)
	}
	b := &Bundle{Dir: dir, Markdown: filepath.Join(dir, FeedbackFile), Title: fb.Title, Cell: c.Cell, Repeat: a.Repeat,
		Simulated: fb.Simulated, Files: fb.Files, Missing: fb.Missing}

	// A zip left by an earlier bundle of the cell may be of another
	// attempt: never leave one that disagrees with the folder.
	zipPath := filepath.Join(root, c.Cell+".zip")
	if !opt.Zip {
		if err := os.Remove(zipPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove the earlier %s: %w", zipPath, err)
		}
		return b, nil
	}
	if err := writeZip(dir, c.Cell, zipPath); err != nil {
		return nil, err
	}
	b.Zip = zipPath
	return b, nil
}

// linkOrCopy hard-links src to dst (a sysdiagnose is hundreds of
// megabytes and the run folder is on the same disk), else copies it.
func linkOrCopy(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if os.Link(src, dst) == nil {
		return nil
	}
	return copyFile(src, dst)
}

// writeZip archives the bundle folder as one file for Feedback
// Assistant, entries under <cell>/. Archives already compressed
// (the sysdiagnose) are stored as they are.
func writeZip(dir, cell, dst string) error {
	t, err := renameio.TempFile(filepath.Dir(dst), dst)
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer t.Cleanup()
	if err := t.Chmod(0o644); err != nil { // a temporary file is private
		return fmt.Errorf("write %s: %w", dst, err)
	}
	zw := zip.NewWriter(t)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		h.Name = cell + "/" + filepath.ToSlash(rel)
		h.Method = zip.Deflate
		if compressed(rel) {
			h.Method = zip.Store
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = t.CloseAtomicallyReplace()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

func compressed(name string) bool {
	for _, ext := range []string{".gz", ".tgz", ".zip", ".dmg", ".pkg", ".xz", ".bz2"} {
		if strings.HasSuffix(strings.ToLower(name), ext) {
			return true
		}
	}
	return false
}

// --- what FEEDBACK.md says ---------------------------------------------------

// feedback is what FEEDBACK.md is rendered from.
type feedback struct {
	Title     string
	Simulated bool
	Run       *Run
	Cell      *Cell
	Attempt   *Attempt
	Axes      []axisValue // the cell's axes but image and path, in matrix order
	Guest     guestOS
	Machine   string // what kind of Mac ran the attempt
	Host      string
	Provider  string
	App       lab.App
	From, To  *appVersion // nil when the matrix has no upgrade path
	Steps     []stepRow
	Clock     string // the guest clock's offset, as measured
	Probes    []probeRow
	Repeats   []*Attempt // the cell's final tries, by repeat
	Labels    []labelView
	Triage    string // "", "not triaged" or artifacts.Unclassified: why Labels is empty or has no finding
	Files     []BundleFile
	Missing   []artifacts.Missing
}

type axisValue struct{ Name, Value string }

type guestOS struct {
	Version, Build, Source string // Source: where the values come from
}

// appVersion is one side of the upgrade: the configured package and what
// the package and the guest say about it.
type appVersion struct {
	ID      string
	Package string // the configured path
	Kind    string
	Bundle  string // its name in the bundle, "" when not attached
	Size    int64
	SHA256  string
	// Ident is what the package itself says of both bundles (the
	// packages reader); nil when it could not be read.
	Ident *packages.Identity
	// PkgID and PkgVersion are the component's PackageInfo identifier
	// and version ("" for a .zip or .dmg).
	PkgID, PkgVersion string
	UUIDs             string // how the extension's LC_UUIDs are known
	Guest             string // what systemextensionsctl showed for the extension in the guest, when it was this version
	Receipt           string // pkgutil's receipt in the guest
	src               string // the package's path on this machine
	// fromRunJSON: Ident is run.json's preflight record, the package
	// file being gone.
	fromRunJSON bool
}

// packageFiles attaches the packages of both versions as
// packages/<file name>, prefixed by the version id when both have one
// name; one package when both versions are the same file.
func (fb *feedback) packageFiles() {
	from, to := fb.From, fb.To
	clash := from.src != "" && to.src != "" && filepath.Base(from.src) == filepath.Base(to.src) && from.SHA256 != to.SHA256
	for _, v := range []*appVersion{from, to} {
		if v.src == "" {
			continue
		}
		name := filepath.Base(v.src)
		if clash {
			name = artifacts.FileSafe(v.ID) + "-" + name
		}
		v.Bundle = packagesDir + "/" + name
		if v == to && to.Bundle == from.Bundle {
			continue // the same file: attached once
		}
		fb.Files = append(fb.Files, BundleFile{Name: v.Bundle, What: "package of version " + v.ID, Size: v.Size, SHA256: v.SHA256, src: v.src})
	}
}

type stepRow struct {
	Time, Offset, Step, Kind string
	Guest                    string // the guest's own time of evidence
	Evidence                 string // "log" or "snapshot" for a row of evidence; "" for a step
	Signatures               []string
	What                     string // the command or the note
	IsCommand                bool
	Exit                     string
	Took                     string
	Output                   string // stderr's first line of a failing command, or the step's error
}

type probeRow struct {
	Name, Expected, Observed string
	Held                     bool
}

type labelView struct {
	artifacts.Label
	Finding bool
	More    int // evidence lines left out
}

func newFeedback(r *Run, c *Cell, a *Attempt, workDir string) *feedback {
	fb := &feedback{Run: r, Cell: c, Attempt: a, Simulated: r.Simulated || a.Simulated, App: r.Info.Config.App,
		Host: a.Host, Provider: a.Provider, Missing: slices.Clone(a.Missing)}
	cfg := r.Info.Config
	imageAxis, pathAxis := cmpOr(cfg.Matrix.ImageAxis, "macos"), cmpOr(cfg.Matrix.PathAxis, "path")
	for _, ax := range cfg.Matrix.Axes {
		if v, ok := c.Axes[ax.Name]; ok && ax.Name != imageAxis && ax.Name != pathAxis {
			fb.Axes = append(fb.Axes, axisValue{ax.Name, v})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Axes)) {
		if k != imageAxis && k != pathAxis && !slices.ContainsFunc(fb.Axes, func(v axisValue) bool { return v.Name == k }) {
			fb.Axes = append(fb.Axes, axisValue{k, c.Axes[k]})
		}
	}
	attemptDir := filepath.Join(r.Dir, filepath.FromSlash(a.Folder))
	if a.Folder == "" {
		fb.miss("attempt folder", a.StepsProblem)
	}
	if a.StepsProblem != "" && a.Folder != "" {
		fb.miss("steps", a.StepsProblem)
	}

	snaps := readSnapshots(attemptDir)
	fb.Guest = fb.guestOS(snaps, c.Axes[imageAxis])
	fb.Machine = fb.machine()

	if p, ok := c.Axes[pathAxis]; !ok {
		fb.miss("app versions", fmt.Sprintf("the matrix has no upgrade path axis %q: the versions are not known", pathAxis))
	} else if from, to, err := lab.ParsePath(p); err != nil {
		fb.miss("app versions", fmt.Sprintf("axis %s: %v", pathAxis, err))
	} else {
		fb.From = fb.appVersion(from, r, workDir)
		fb.To = fb.appVersion(to, r, workDir)
		fb.guestVersions(snaps)
		fb.packageFiles()
	}

	fb.Probes = probeRows(cfg, a)
	fb.Repeats = finalTries(c)
	fb.labels(a)
	fb.Clock = clockMap(a.Clock).describe()
	labels := make([]artifacts.Label, len(fb.Labels))
	for i, l := range fb.Labels {
		labels[i] = l.Label
	}
	fb.Steps = stepRows(a, labels)
	fb.files(a, attemptDir)
	fb.Title = fb.title()
	return fb
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (fb *feedback) miss(what, reason string) {
	fb.Missing = append(fb.Missing, artifacts.Missing{What: what, Reason: reason})
}

// readSnapshots reads the attempt's state snapshots once, by name
// (artifacts.BeforeDir, AfterDir); one not taken, or not readable, is
// absent.
func readSnapshots(attemptDir string) map[string]*artifacts.State {
	snaps := map[string]*artifacts.State{}
	for _, sub := range []string{artifacts.BeforeDir, artifacts.AfterDir} {
		if st, err := artifacts.ReadState(attemptDir, sub); err == nil {
			snaps[sub] = st
		}
	}
	return snaps
}

// guestOS is the guest's macOS as sw_vers printed it after the failure
// (before the upgrade when that is all there is), else the image's
// configured version, said to be so.
func (fb *feedback) guestOS(snaps map[string]*artifacts.State, image string) guestOS {
	for _, sub := range []string{artifacts.AfterDir, artifacts.BeforeDir} {
		if st := snaps[sub]; st != nil && st.SwVers != nil && st.SwVers.ProductVersion != "" {
			v := st.SwVers
			ver := v.ProductVersion
			if v.ProductVersionExtra != "" {
				ver += " " + v.ProductVersionExtra
			}
			return guestOS{Version: ver, Build: v.BuildVersion, Source: "sw_vers in the guest (" + sub + ")"}
		}
	}
	if img, ok := fb.Run.Info.Config.Images[image]; ok && img.Sim != nil && img.Sim.ProductVersion != "" {
		fb.miss("sw_vers", "no sw_vers snapshot in the attempt folder; the version shown is the simulated image's configuration")
		return guestOS{Version: img.Sim.ProductVersion, Build: img.Sim.Build, Source: "the configuration of image " + image + " (not read from the guest)"}
	}
	fb.miss("sw_vers", "no sw_vers snapshot in the attempt folder: the guest's macOS version is not known")
	return guestOS{Version: "unknown", Source: "image " + image}
}

// machine says what ran the attempt. The run records the provider and
// the host's name, not the host's hardware model.
func (fb *feedback) machine() string {
	var host *lab.Host
	for i := range fb.Run.Info.Hosts {
		if fb.Run.Info.Hosts[i].Name == fb.Host {
			host = &fb.Run.Info.Hosts[i]
		}
	}
	provider := fb.Provider
	if provider == "" && host != nil {
		provider = host.Provider
		fb.Provider = provider
	}
	switch provider {
	case lab.ProviderSim:
		return "SIMULATED Mac: sxlab's model of macOS (provider sim), not real hardware or a real macOS"
	case lab.ProviderVZ:
		return "macOS virtual machine (Virtualization.framework, provider vz) on Apple silicon host " + fb.Host + "; the host's model is not recorded in the run"
	case lab.ProviderTart:
		return "macOS virtual machine (tart, provider tart) on Apple silicon host " + fb.Host + "; the host's model is not recorded in the run"
	case lab.ProviderSSH:
		addr := ""
		if host != nil && host.SSH != nil {
			addr = " at " + host.SSH.Address
		}
		return "existing Mac" + addr + " (provider ssh); its model is not recorded in the run"
	}
	return "unknown (provider " + cmpOr(provider, "not recorded") + ")"
}

// appVersion describes version id of the app: its package, and what the
// package itself says (the packages reader). The package is found from run.json's
// config_dir, relative to workDir or to the folder the run was started
// in (derived from runs_dir).
func (fb *feedback) appVersion(id string, r *Run, workDir string) *appVersion {
	v := &appVersion{ID: id}
	cv, ok := r.Info.Config.App.Versions[id]
	if !ok {
		fb.miss("package "+id, "app.versions has no version "+id+" in run.json's configuration")
		return v
	}
	v.Package, v.Kind = cv.Package, cv.Kind
	src, tried := findPackage(r, cv.Package, workDir)
	if src == "" {
		fb.miss("package "+id, "not found (tried "+strings.Join(tried, ", ")+"); the bundle has no package of version "+id)
		v.UUIDs = "not known (package not found)"
		// The run's preflight read the package when the run started:
		// its identity is still known, from run.json.
		if pf := r.Info.Preflight; pf != nil {
			if ident, ok := pf.Identities[id]; ok {
				v.Ident, v.fromRunJSON = &ident, true
			}
		}
		return v
	}
	st, err := os.Stat(src)
	if err != nil {
		fb.miss("package "+id, err.Error())
		return v
	}
	v.Size = st.Size()
	if v.SHA256, err = fileSHA256(src); err != nil {
		fb.miss("package "+id, err.Error())
		return v
	}
	v.src = src

	pkg, err := packages.OpenAs(src, v.Kind, packages.Limits{})
	if err == nil {
		var ident packages.Identity
		if ident, err = packages.IdentityOf(pkg, fb.App.BundleID, fb.App.Extension.BundleID); err == nil {
			v.Ident = &ident
			// The receipt is the component that installs the app.
			if app, aerr := pkg.App(ident.App.BundleID); aerr == nil {
				for _, c := range pkg.Components {
					if strings.HasPrefix(app.Path, strings.TrimSuffix(c.InstallLocation, "/")+"/") {
						v.PkgID, v.PkgVersion = c.ID, c.Version
						break
					}
				}
			}
			v.UUIDs = "LC_UUID of the extension's Mach-O, read from the package"
			return v
		}
	}
	fb.miss("package "+id, fmt.Sprintf("could not read the package: %v", err))
	v.UUIDs = "not read from the package (" + err.Error() + "): run `dwarfdump --uuid` on the extension's executable (TN3178)"
	return v
}

func findPackage(r *Run, pkg, workDir string) (string, []string) {
	if filepath.IsAbs(pkg) {
		if fileExists(pkg) {
			return pkg, nil
		}
		return "", []string{pkg}
	}
	var bases []string
	cd := r.Info.ConfigDir
	if filepath.IsAbs(cd) {
		bases = append(bases, cd)
	} else {
		bases = append(bases, filepath.Join(cmpOr(workDir, "."), cd))
		if origin := runOrigin(r); origin != "" {
			bases = append(bases, filepath.Join(origin, cd))
		}
	}
	var tried []string
	for _, b := range bases {
		p := filepath.Join(b, pkg)
		if slices.Contains(tried, p) {
			continue
		}
		if fileExists(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", tried
}

// runOrigin is the folder `sxlab run` ran in, when the run folder is
// still where it made it (<origin>/<runs_dir>/<id>).
func runOrigin(r *Run) string {
	abs, err := filepath.Abs(r.Dir)
	if err != nil || filepath.Base(abs) != r.Info.ID {
		return ""
	}
	runs := r.Info.Config.Lab.RunsDir
	if runs == "" || filepath.IsAbs(runs) {
		return ""
	}
	parent := filepath.Dir(abs)
	parts := strings.Split(filepath.Clean(runs), string(filepath.Separator))
	for i := len(parts) - 1; i >= 0; i-- { // from the run folder upward
		switch parts[i] {
		case ".":
			continue
		case "..":
			return "" // cannot be undone from the path alone
		}
		if filepath.Base(parent) != parts[i] {
			return ""
		}
		parent = filepath.Dir(parent)
	}
	return parent
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func readJSONFile(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// guestVersions adds what the guest showed of the extension before the
// upgrade (version N) and after it (N+1): the guest's own word on which
// build ran, for real packages whose manifest the lab cannot read.
func (fb *feedback) guestVersions(snaps map[string]*artifacts.State) {
	ext := fb.App.Extension.BundleID
	for _, side := range []struct {
		sub string
		v   *appVersion
	}{{artifacts.BeforeDir, fb.From}, {artifacts.AfterDir, fb.To}} {
		st := snaps[side.sub]
		if st == nil {
			continue
		}
		if st.Extensions != nil {
			var shown []string
			for _, row := range st.Extensions {
				if ext == "" || row.BundleID == ext {
					shown = append(shown, fmt.Sprintf("%s/%s [%s]", row.ShortVersion, row.Build, row.State))
				}
			}
			if len(shown) == 0 {
				shown = append(shown, "no row of "+ext)
			}
			side.v.Guest = strings.Join(shown, "; ") + " (" + side.sub + ")"
		}
		var receipts []string
		for _, info := range st.Packages {
			if info.PackageID != "" {
				receipts = append(receipts, info.PackageID+" "+info.Version)
			}
		}
		if len(receipts) > 0 {
			side.v.Receipt = strings.Join(receipts, "; ") + " (" + side.sub + ")"
		}
	}
}

// stepRows is the attempt's one timeline: its steps, and the evidence
// its labels cite placed on the host's clock among them (each line once),
// with the guest's own time beside it.
func stepRows(a *Attempt, labels []artifacts.Label) []stepRow {
	evs := a.events(labels)
	rows := make([]stepRow, 0, len(evs))
	for _, ev := range evs {
		if ev.Ev != nil {
			row := stepRow{Time: stamp(ev.Host), Offset: offset(a.Started, ev.Host), Guest: stamp(ev.Guest),
				Signatures: ev.Signatures, Evidence: "log", Kind: "log", Step: ev.Ev.Process,
				What: strings.Join(strings.Fields(ev.Ev.Message), " ")}
			if !ev.Placed {
				row.Time, row.Offset = "?", ""
			}
			if ev.Snapshot() {
				row.Evidence, row.Kind, row.Step = "snapshot", "state snapshot", ev.SnapshotName()
				row.What = ev.Ev.Process + " showed: " + row.What
			}
			rows = append(rows, row)
			continue
		}
		e := ev.Step
		row := stepRow{Time: stamp(e.Started), Offset: offset(a.Started, e.Started), Step: ev.StepLabel(), Kind: e.Kind, What: e.Note}
		if p := ev.Probe(); p != "" {
			row.Kind = e.Kind + " (" + p + ")"
		}
		if res := e.Result; res != nil {
			row.What, row.IsCommand = res.Line, true
			row.Exit = fmt.Sprint(res.Exit)
			row.Took = dur(res.Duration)
			if res.Exit != 0 {
				row.Output = firstOutputLine(res.Stderr, res.Stdout)
			}
		}
		if e.Error != "" {
			row.Output = e.Error
		}
		rows = append(rows, row)
	}
	return rows
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func offset(start, t time.Time) string {
	if start.IsZero() || t.IsZero() {
		return ""
	}
	return fmt.Sprintf("+%.3f s", t.Sub(start).Seconds())
}

func firstOutputLine(outs ...string) string {
	for _, o := range outs {
		for line := range strings.Lines(o) {
			if l := strings.TrimSpace(line); l != "" {
				return l
			}
		}
	}
	return ""
}

// probeRows pairs each probe's outcome with what it expected, as the
// configuration of the run says it.
func probeRows(cfg lab.Config, a *Attempt) []probeRow {
	var rows []probeRow
	for _, p := range a.Probes {
		row := probeRow{Name: p.Name, Held: p.Held, Expected: "the probe holds", Observed: "held"}
		// Expected is Markdown; Observed is the guest's words, shown as code.
		for _, cp := range cfg.Probes {
			if cp.Name == p.Name {
				row.Expected = expectation(cfg.App, cp, a)
			}
		}
		if !p.Held {
			row.Observed = p.Message
			for _, k := range slices.Sorted(maps.Keys(p.Observations)) {
				if v := p.Observations[k]; v != "" && !strings.Contains(p.Message, v) {
					row.Observed += "; " + k + ": " + v
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// expectation says in Markdown what a configured probe expects; a
// command probe shows the command as it ran (from steps.jsonl) rather
// than its template.
func expectation(app lab.App, p lab.Probe, a *Attempt) string {
	switch cmpOr(p.Kind, p.Name) {
	case "extension-state":
		s := mdSpan("systemextensionsctl list") + " shows " + mdSpan(cmpOr(app.Extension.BundleID, "the extension"))
		if p.Version != "" {
			s += " " + mdSpan(p.Version)
		}
		s += " as " + mdSpan("["+cmpOr(p.State, "activated enabled")+"]")
		if p.Old != "" && p.Old != "any" {
			s += "; the old copy " + strings.ReplaceAll(p.Old, "-", " ")
		}
		return s
	case "mach-endpoint":
		return "the extension's launchd job lists Mach service " + mdSpan(cmpOr(p.Service, app.Extension.MachService)) + " under " + mdSpan("endpoints")
	case "vpn-status":
		return mdSpan("scutil --nc status "+guest.Quote(app.VPNService)) + " says " + mdSpan(cmpOr(p.Expect, "Connected"))
	case "xpc", "command":
		line := p.Run
		for _, e := range a.Steps {
			if e.Step == "probe "+p.Name && e.Result != nil {
				line = e.Result.Line
			}
		}
		exit := 0
		if p.ExpectExit != nil {
			exit = *p.ExpectExit
		}
		s := fmt.Sprintf("%s exits %d", mdSpan(line), exit)
		if p.ExpectStdout != "" {
			s += " and prints a match of " + mdSpan(p.ExpectStdout)
		}
		return s
	}
	return "the probe holds"
}

// VersionRows are the rows of the versions table: what, N, N+1, in
// Markdown.
func (fb *feedback) VersionRows() [][3]string {
	if fb.From == nil {
		return nil
	}
	var rows [][3]string
	add := func(what string, f func(v *appVersion) string) {
		a, b := f(fb.From), f(fb.To)
		if a != "" || b != "" {
			rows = append(rows, [3]string{what, cmpOr(a, "—"), cmpOr(b, "—")})
		}
	}
	fromPkg := func(f func(v *appVersion, id *packages.Identity) string) func(v *appVersion) string {
		return func(v *appVersion) string {
			if v.Ident == nil {
				if v.src == "" {
					return "not known (package not found)"
				}
				return "not read from the " + cmpOr(v.Kind, "") + " package; see the guest rows"
			}
			return f(v, v.Ident)
		}
	}
	add("version (configuration)", func(v *appVersion) string { return mdSpan(v.ID) })
	add("package", func(v *appVersion) string {
		if v.Package == "" {
			return ""
		}
		return mdSpan(v.Package) + " (" + cmpOr(v.Kind, "?") + ")"
	})
	add("package id and version", fromPkg(func(v *appVersion, _ *packages.Identity) string {
		if v.fromRunJSON {
			return "not recorded (package not found)"
		}
		if v.PkgID == "" {
			return "none (a " + cmpOr(v.Kind, "") + " has no PackageInfo)"
		}
		return mdSpan(v.PkgID) + " " + mdSpan(v.PkgVersion)
	}))
	add("app: bundle id, version (build)", fromPkg(func(_ *appVersion, p *packages.Identity) string {
		return mdSpan(p.App.BundleID) + " " + mdSpan(p.App.ShortVersion) + " (" + mdSpan(p.App.Version) + ")"
	}))
	add("app: team, signing", fromPkg(func(_ *appVersion, p *packages.Identity) string {
		return "team " + mdSpan(cmpOr(p.App.TeamID, "none")) + ", " + mdSpan(p.App.Signing)
	}))
	add("extension: bundle id, version (build)", fromPkg(func(_ *appVersion, p *packages.Identity) string {
		return mdSpan(p.Extension.BundleID) + " " + mdSpan(p.Extension.ShortVersion) + " (" + mdSpan(p.Extension.Version) + "), team " + mdSpan(cmpOr(p.Extension.TeamID, "none"))
	}))
	add("extension: signing", fromPkg(func(_ *appVersion, p *packages.Identity) string { return mdSpan(p.Extension.Signing) }))
	add("extension: Mach service", fromPkg(func(_ *appVersion, p *packages.Identity) string {
		return mdSpan(cmpOr(p.Extension.MachService, "none"))
	}))
	add("extension: LC_UUID per architecture", func(v *appVersion) string {
		if ids := v.UUIDList(); len(ids) > 0 {
			spans := make([]string, len(ids))
			for i, id := range ids {
				spans[i] = mdSpan(id)
			}
			if v.fromRunJSON {
				return strings.Join(spans, "<br>") + " (from run.json's preflight; the package was not found)"
			}
			return strings.Join(spans, "<br>")
		}
		return mdCell(v.UUIDs)
	})
	add("extension in the guest (systemextensionsctl)", func(v *appVersion) string {
		if v.Guest == "" {
			return ""
		}
		return mdSpan(v.Guest)
	})
	add("receipt in the guest (pkgutil)", func(v *appVersion) string {
		if v.Receipt == "" {
			return ""
		}
		return mdSpan(v.Receipt)
	})
	add("attached as", func(v *appVersion) string {
		if v.Bundle == "" {
			return "not attached"
		}
		return mdSpan(v.Bundle) + " (" + artifacts.HumanSize(v.Size) + ", sha256 " + mdSpan(shorten(v.SHA256, 16)) + ")"
	})
	return rows
}

// finalTries are the cell's final tries, one per repeat.
func finalTries(c *Cell) []*Attempt {
	byRepeat := map[int]*Attempt{}
	for i := range c.Tries {
		a := &c.Tries[i]
		if prev, ok := byRepeat[a.Repeat]; !ok || a.Final || (!prev.Final && a.Try > prev.Try) {
			byRepeat[a.Repeat] = a
		}
	}
	out := make([]*Attempt, 0, len(byRepeat))
	for _, a := range byRepeat {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Repeat < out[j].Repeat })
	return out
}

func (fb *feedback) labels(a *Attempt) {
	switch {
	case a.Triage == nil:
		fb.Triage = noTriage
		return
	case a.Triage.Finding == artifacts.Unclassified || a.Triage.Finding == "":
		fb.Triage = artifacts.Unclassified
	}
	for i, l := range a.Triage.Labels {
		if l.Signature == artifacts.Unclassified {
			continue
		}
		v := labelView{Label: l, Finding: i == 0 && l.Signature == a.Triage.Finding}
		if len(v.Evidence) > maxEvidenceLines {
			v.More = len(v.Evidence) - maxEvidenceLines
			v.Evidence = v.Evidence[:maxEvidenceLines]
		}
		fb.Labels = append(fb.Labels, v)
	}
}

// files lists the attempt's files as attachments, with the sha256 the
// manifest recorded when they were collected, and says which evidence
// the folder lacks that the record does not already explain.
func (fb *feedback) files(a *Attempt, attemptDir string) {
	sums := map[string]string{}
	var m artifacts.Manifest
	if readJSONFile(filepath.Join(attemptDir, artifacts.ManifestFile), &m) == nil {
		for _, e := range m.Files {
			sums[e.Path] = e.SHA256
		}
	}
	var sysdiagnose, logs, state bool
	for _, f := range a.Files {
		what := "evidence"
		switch {
		case isSysdiagnose(f.Name):
			what, sysdiagnose = "sysdiagnose, taken right after the failure", true
		case f.Name == "logs.ndjson":
			what, logs = "unified log over the attempt (log show --style ndjson)", true
		case f.Name == "steps.jsonl":
			what = "every step: command, exit, duration, output tail"
		case f.Name == artifacts.ManifestFile:
			what = "the attempt's files with size and sha256, as collected"
		case strings.HasPrefix(f.Name, artifacts.BeforeDir+"/"), strings.HasPrefix(f.Name, artifacts.BeforeDir+"."):
			what, state = "state before the upgrade", true
		case strings.HasPrefix(f.Name, artifacts.AfterDir+"/"), strings.HasPrefix(f.Name, artifacts.AfterDir+"."):
			what, state = "state after the probes", true
		}
		fb.Files = append(fb.Files, BundleFile{Name: f.Name, What: what, Size: f.Size, SHA256: sums[f.Name],
			src: filepath.Join(fb.Run.Dir, filepath.FromSlash(f.Path))})
	}
	sort.SliceStable(fb.Files, func(i, j int) bool { return attachmentRank(fb.Files[i].Name) < attachmentRank(fb.Files[j].Name) })

	explained := func(what string) bool {
		return slices.ContainsFunc(fb.Missing, func(m artifacts.Missing) bool { return m.What == what || strings.HasPrefix(m.What, what+"/") })
	}
	collect := fb.Run.Info.Config.Collect
	why := "not in the attempt folder"
	if collect.On == artifacts.OnNever {
		why += " (collect.on is never)"
	}
	if !sysdiagnose && !explained("sysdiagnose") {
		reason := why
		if !collect.Sysdiagnose && collect.On != artifacts.OnNever {
			reason += " (collect.sysdiagnose is false)"
		}
		fb.miss("sysdiagnose", reason)
	}
	if !logs && !explained("logs") {
		fb.miss("logs", why)
	}
	if !state && !explained("state") {
		fb.miss("state snapshots", why)
	}
}

// attachmentRank orders attachments as Apple reads them: sysdiagnose,
// packages, logs, steps, state, the rest.
func attachmentRank(name string) int {
	switch {
	case isSysdiagnose(name):
		return 0
	case strings.HasPrefix(name, packagesDir+"/"):
		return 1
	case name == "logs.ndjson":
		return 2
	case name == "steps.jsonl":
		return 3
	case strings.HasPrefix(name, "state/"):
		return 4
	}
	return 5
}

// title is the suggested title: what broke, on which upgrade, on which
// macOS; simulated bundles say so first.
func (fb *feedback) title() string {
	var b strings.Builder
	if fb.Simulated {
		b.WriteString("[SIMULATED] ")
	}
	what := ""
	for _, l := range fb.Labels {
		if l.Finding {
			// The meaning's first clause; the rest is in the summary.
			what, _, _ = strings.Cut(l.Meaning, ": ")
			what, _, _ = strings.Cut(what, "; ")
		}
	}
	if what == "" {
		what = "upgrade fails: " + cmpOr(fb.Attempt.Reason, "a probe did not hold")
	}
	if len(what) > 120 {
		cut := strings.LastIndex(what[:120], " ")
		if cut < 40 {
			cut = 120
		}
		what = strings.ToValidUTF8(what[:cut], "") + "…"
	}
	b.WriteString(upperFirst(what))
	b.WriteString(" after upgrading ")
	b.WriteString(cmpOr(fb.App.Name, "the app"))
	if fb.From != nil {
		fmt.Fprintf(&b, " %s to %s", fb.From.short(), fb.To.short())
	}
	fmt.Fprintf(&b, " (macOS %s", fb.Guest.Version)
	if fb.Guest.Build != "" {
		fmt.Fprintf(&b, " %s", fb.Guest.Build)
	}
	for _, ax := range fb.Axes {
		fmt.Fprintf(&b, ", %s=%s", ax.Name, ax.Value)
	}
	b.WriteString(")")
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// short is "3.0 (300)" from the package's app, else the version id.
func (v *appVersion) short() string {
	if v.Ident != nil {
		return v.Ident.App.ShortVersion + " (" + v.Ident.App.Version + ")"
	}
	return v.ID
}

// UUIDList is the extension's LC_UUIDs from its Mach-O, one
// architecture each.
func (v *appVersion) UUIDList() []string {
	if v.Ident == nil {
		return nil
	}
	var out []string
	for _, arch := range slices.Sorted(maps.Keys(v.Ident.Extension.UUIDs)) {
		out = append(out, arch+" "+strings.ToUpper(v.Ident.Extension.UUIDs[arch]))
	}
	return out
}

// --- rendering ---------------------------------------------------------------

//go:embed feedback.md.tmpl
var feedbackSource string

// feedbackTemplate is parsed once; it is read-only afterwards.
var feedbackTemplate = template.Must(template.New(FeedbackFile).Funcs(template.FuncMap{
	"code":     mdSpan,
	"cell":     mdCell,
	"size":     artifacts.HumanSize,
	"pct":      pct,
	"interval": interval,
	"stamp":    stamp,
	"fence":    mdFence,
	"upper":    func(v any) string { return strings.ToUpper(fmt.Sprint(v)) },
	"sentence": upperFirst,
	"add1":     func(i int) int { return i + 1 },
	"join":     strings.Join,
	"untimed":  Untimed,
	"evidenceText": func(ev []artifacts.Evidence) string {
		var b strings.Builder
		for _, e := range ev {
			e.Message = strings.TrimSpace(e.Message) // sysextd starts some with a line break
			b.WriteString(strings.TrimRight(evidenceLine(e), "\n") + "\n")
		}
		return b.String()
	},
}).Parse(feedbackSource))

func (fb *feedback) markdown() ([]byte, error) {
	var b bytes.Buffer
	if err := feedbackTemplate.Execute(&b, fb); err != nil {
		return nil, fmt.Errorf("%s: %w", FeedbackFile, err)
	}
	return b.Bytes(), nil
}

// mdSpan is s as one code span on one line: a delimiter longer than any
// run of backticks inside, pipes escaped for tables (GitHub unescapes
// them inside spans too). Line breaks show as ⏎; the exact text is in
// the attached steps.jsonl.
func mdSpan(s string) string {
	s = strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "⏎")
	if s == "" {
		return ""
	}
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	d := strings.Repeat("`", longest+1)
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return d + pad + strings.ReplaceAll(s, "|", `\|`) + pad + d
}

// mdCell is plain text kept in one table cell.
func mdCell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

// mdFence is a code fence longer than any inside s.
func mdFence(s string) string {
	longest := 2
	for line := range strings.Lines(s) {
		n := len(line) - len(strings.TrimLeft(line, "`"))
		longest = max(longest, n)
	}
	return strings.Repeat("`", longest+1)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
