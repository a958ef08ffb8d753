package report

import (
	"archive/zip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/packages"
	"github.com/sxlab/sxlab/steps"
)

// fbRun is the report fixture (see fixture_test.go) with what a feedback
// bundle reads besides: the app's configuration with versions 2 and 3,
// their packages (the demo's real .pkg files, examples/pkg) in a
// configuration folder of their own, and the probes.
func fbRun(t *testing.T, simulated bool) *Run {
	t.Helper()
	dir := fxRun(t, simulated)
	var info lab.RunInfo
	require.NoError(t, lab.ReadJSON(dir, lab.RunFile, &info))

	cfgDir := t.TempDir()
	info.ConfigDir = cfgDir
	info.Config.App = lab.App{Name: "Example VPN", BundleID: "com.example.vpn", VPNService: "Example VPN",
		Extension: lab.Extension{BundleID: "com.example.vpn.tunnel", TeamID: "ABCDE12345", MachService: "ABCDE12345.com.example.vpn.tunnel"},
		Versions:  map[string]lab.Version{}}
	for _, v := range []string{"2", "3"} {
		name := "pkgs/example-vpn-" + v + ".pkg"
		body, err := os.ReadFile(filepath.Join("..", "examples", "pkg", "example-vpn-"+v+".pkg"))
		require.NoError(t, err)
		if !simulated {
			name = "pkgs/ExampleVPN-" + v + ".pkg"
		}
		fxFile(t, filepath.Join(cfgDir, filepath.FromSlash(name)), string(body))
		info.Config.App.Versions[v] = lab.Version{Package: name, Kind: "pkg"}
	}
	info.Config.Probes = []lab.Probe{
		{Name: "extension-state", Kind: "extension-state", State: "activated enabled"},
		{Name: "mach-endpoint", Kind: "mach-endpoint"},
		{Name: "xpc", Kind: "xpc", Run: `"{{.App.Path}}/Contents/MacOS/Example VPN" --check-xpc`},
	}
	info.Config.Collect = lab.Collect{On: "failure", Sysdiagnose: true}
	d := &lab.RunDir{Path: dir}
	require.NoError(t, d.WriteJSON(lab.RunFile, info))

	// The failing attempt's state, as artifacts writes it.
	r1 := filepath.Join(dir, lab.AttemptDir(fxFail.id, 1, 1))
	fxFile(t, filepath.Join(r1, "state", "after", "sw_vers.json"), `{"product_name":"macOS","product_version":"15.3","build_version":"24D60"}`)
	fxFile(t, filepath.Join(r1, "state", "before", "systemextensionsctl-list.json"),
		`[{"team_id":"ABCDE12345","bundle_id":"com.example.vpn.tunnel","short_version":"2.0","build":"200","state":"activated enabled"}]`)
	fxFile(t, filepath.Join(r1, "state", "after", "systemextensionsctl-list.json"),
		`[{"team_id":"ABCDE12345","bundle_id":"com.example.vpn.tunnel","short_version":"3.0","build":"300","state":"activated enabled"},
		  {"team_id":"OTHER00000","bundle_id":"com.other.filter","short_version":"9","build":"9","state":"activated enabled"}]`)
	fxFile(t, filepath.Join(r1, "manifest.json"), `{"files":[{"path":"sysdiagnose_r1.tar.gz","size":20,"sha256":"5f1e"}]}`)

	r, err := Load(dir)
	require.NoError(t, err)
	return r
}

func readBundle(t *testing.T, b *Bundle) string {
	t.Helper()
	md, err := os.ReadFile(b.Markdown)
	require.NoError(t, err)
	return string(md)
}

// section returns the text of FEEDBACK.md's "## name" section.
func mdSection(t *testing.T, md, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(md, "\n## "+name+"\n")
	require.True(t, ok, "FEEDBACK.md has no section %q:\n%s", name, md)
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func TestFeedbackOfAFailingCellNamesVersionsStepsRateAndSignature(t *testing.T) {
	r := fbRun(t, true)
	b, err := BuildFeedback(r, fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(r.Dir, "feedback", fxFail.id), b.Dir)
	assert.Equal(t, 1, b.Repeat, "the first failing attempt")
	md := readBundle(t, b)

	// Title: simulated, the finding's meaning, both versions, the guest.
	assert.True(t, strings.HasPrefix(b.Title, "[SIMULATED] The new provider's Mach service never registered"), b.Title)
	assert.Contains(t, b.Title, "Example VPN 2.0 (200) to 3.0 (300)")
	assert.Contains(t, b.Title, "macOS 15.3 24D60")
	assert.Contains(t, b.Title, "vpn=running")
	assert.Contains(t, md, "\n    "+b.Title+"\n", "the title as a block to copy")

	env := mdSection(t, md, "Environment")
	assert.Contains(t, env, "| macOS (guest) | 15.3 (24D60), from sw_vers in the guest (state/after) |")
	assert.Contains(t, env, "SIMULATED Mac")

	versions := mdSection(t, md, "App versions")
	assert.Contains(t, versions, "| app: bundle id, version (build) | `com.example.vpn` `2.0` (`200`) | `com.example.vpn` `3.0` (`300`) |")
	// The LC_UUIDs are the extension's Mach-O ones, read from the package.
	for _, v := range []string{"2", "3"} {
		pkg, err := packages.Open(filepath.Join("..", "examples", "pkg", "example-vpn-"+v+".pkg"), packages.Limits{})
		require.NoError(t, err)
		id, err := packages.IdentityOf(pkg, "com.example.vpn", "com.example.vpn.tunnel")
		require.NoError(t, err)
		require.Len(t, id.Extension.UUIDs, 2)
		assert.Contains(t, versions, "`arm64 "+id.Extension.UUIDs["arm64"]+"`<br>`x86_64 "+id.Extension.UUIDs["x86_64"]+"`", "version %s's extension LC_UUIDs", v)
	}
	assert.Contains(t, versions, "`arm64 965B75C3-F0D7-56B0-99A2-050DD8716908`", "the extension's LC_UUIDs of version 2")
	assert.Contains(t, versions, "| package id and version | `com.example.vpn.pkg` `2.0` | `com.example.vpn.pkg` `3.0` |", "from PackageInfo")
	assert.Contains(t, versions, "| extension: Mach service | `ABCDE12345.com.example.vpn.tunnel` | `ABCDE12345.com.example.vpn.tunnel` |", "from the extension's Info.plist")
	assert.Contains(t, versions, "team `ABCDE12345`", "the team from the code signature")
	assert.Contains(t, versions, "| extension: signing | `adhoc,runtime` | `adhoc,runtime` |", "how the extension is signed")
	assert.Contains(t, versions, "`2.0/200 [activated enabled] (state/before)`", "what the guest ran before the upgrade")
	assert.NotContains(t, versions, "com.other.filter", "only the app's extension")

	stepsMD := mdSection(t, md, "Steps to reproduce")
	assert.Contains(t, stepsMD, "| 1 | 2026-11-23 12:00:11.100Z | +0.100 s | `1 install` | install: `sudo installer -pkg /tmp/sxlab/example-vpn-2.pkg -target /` | 0 | 1.5 s | |")
	assert.Contains(t, stepsMD, "→ `xpc: connection invalidated` | 1 | 42 ms | |", "a failing command shows its error")
	assert.Contains(t, stepsMD, "guest clock 47.0 s ahead of the host's at the first step", "the measured offset is stated")

	probes := mdSection(t, md, "Expected and observed")
	assert.Contains(t, probes, "| `xpc` | `\"/Applications/Example VPN.app/Contents/MacOS/Example VPN\" --check-xpc` exits 0 | **did not hold**: `xpc: connection invalidated; exit: 1` |",
		"the command as it ran, not its template")
	assert.Contains(t, probes, "| `extension-state` | `systemextensionsctl list` shows `com.example.vpn.tunnel` as `[activated enabled]` | held |")

	repro := mdSection(t, md, "Reproducibility")
	assert.Contains(t, repro, "3 of 3 attempts of this configuration failed: 100%, 95% Wilson interval 44–100%")
	assert.Contains(t, repro, "| 1 (this bundle) | fail | `"+fxFinding+"` |")

	sig := mdSection(t, md, "Signatures")
	assert.Contains(t, sig, "### `"+fxFinding+"` (the finding)")
	assert.NotContains(t, sig, fxEvidence, "the log line is in the timeline, not again here")
	assert.Contains(t, sig, "Field report: `xpc-invalidated-on-upgrade`")

	att := mdSection(t, md, "Attachments")
	for _, f := range []string{"sysdiagnose_r1.tar.gz", "packages/example-vpn-2.pkg", "packages/example-vpn-3.pkg", "logs.ndjson", "steps.jsonl", "state/after/sw_vers.json"} {
		assert.Contains(t, att, "| `"+f+"` |")
		assert.FileExists(t, filepath.Join(b.Dir, filepath.FromSlash(f)))
	}
	assert.Contains(t, att, "| `sysdiagnose_r1.tar.gz` | sysdiagnose, taken right after the failure | 20 B | `5f1e` |", "size and the manifest's sha256")
	assert.Less(t, strings.Index(att, "sysdiagnose_r1"), strings.Index(att, "logs.ndjson"), "the sysdiagnose first")
	assert.NotContains(t, md, "## Missing evidence")
	assert.Empty(t, b.Missing)
}

func TestFeedbackAttachmentsAreTheRunsFiles(t *testing.T) {
	r := fbRun(t, true)
	b, err := BuildFeedback(r, fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	src := filepath.Join(r.Dir, lab.AttemptDir(fxFail.id, 1, 1), "sysdiagnose_r1.tar.gz")
	a, err := os.Stat(src)
	require.NoError(t, err)
	c, err := os.Stat(filepath.Join(b.Dir, "sysdiagnose_r1.tar.gz"))
	require.NoError(t, err)
	assert.True(t, os.SameFile(a, c), "hard-linked: a sysdiagnose is not copied on the same disk")
	pkg, err := os.ReadFile(filepath.Join(b.Dir, "packages", "example-vpn-3.pkg"))
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join("..", "examples", "pkg", "example-vpn-3.pkg"))
	require.NoError(t, err)
	assert.Equal(t, want, pkg, "the package as shipped")
}

func TestFeedbackOfASimulatedRunSaysSoAndARealOneDoesNot(t *testing.T) {
	b, err := BuildFeedback(fbRun(t, true), fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	md := readBundle(t, b)
	assert.True(t, b.Simulated)
	assert.True(t, strings.HasPrefix(md, "> **SIMULATED — NOT EVIDENCE ABOUT REAL macOS.**"), "the banner comes first:\n%s", md[:200])
	assert.Contains(t, mdSection(t, md, "Summary"), "[SIMULATED] Upgrading Example VPN")

	b, err = BuildFeedback(fbRun(t, false), fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	md = readBundle(t, b)
	assert.False(t, b.Simulated)
	assert.NotContains(t, strings.ToUpper(md), "SIMULATED")
	assert.True(t, strings.HasPrefix(b.Title, "The new provider's Mach service"), b.Title)
	assert.Contains(t, mdSection(t, md, "Environment"), "provider tart")
	versions := mdSection(t, md, "App versions")
	assert.Contains(t, versions, "`arm64 E7692EDE-C2AA-5AD1-8A56-D951AAF5CD50`", "a real run's package is read the same way")
	assert.Contains(t, versions, "`3.0/300 [activated enabled] (state/after)`", "the guest says which build ran")
	assert.FileExists(t, filepath.Join(b.Dir, "packages", "ExampleVPN-2.pkg"))
}

func TestFeedbackListsMissingEvidenceWithItsReason(t *testing.T) {
	r := fbRun(t, true)
	b, err := BuildFeedback(r, fxFail.id, FeedbackOptions{Attempt: 2})
	require.NoError(t, err)
	assert.Equal(t, 2, b.Repeat)
	missing := mdSection(t, readBundle(t, b), "Missing evidence")
	assert.Contains(t, missing, "- **sysdiagnose**: sysdiagnose timed out after 15m", "the record's reason")
	assert.Contains(t, missing, "- **logs**: not in the attempt folder")
	assert.Contains(t, missing, "- **sw_vers**: no sw_vers snapshot", "the guest's version is then unknown")
	assert.NotContains(t, readBundle(t, b), "sysdiagnose_r1", "nothing of attempt 1")

	// A package that is gone is named with where it was looked for.
	require.NoError(t, os.RemoveAll(filepath.Join(r.Info.ConfigDir, "pkgs")))
	b, err = BuildFeedback(r, fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	var reasons []string
	for _, m := range b.Missing {
		reasons = append(reasons, m.What+": "+m.Reason)
	}
	assert.Contains(t, strings.Join(reasons, "\n"), "package 2: not found (tried "+filepath.Join(r.Info.ConfigDir, "pkgs", "example-vpn-2.pkg"))
}

// TestFeedbackTakesAGonePackagesIdentityFromRunJSON: the run's
// preflight recorded each build's identity; with the package file gone,
// FEEDBACK.md still gives the Mach-O LC_UUIDs, and says where they came
// from.
func TestFeedbackTakesAGonePackagesIdentityFromRunJSON(t *testing.T) {
	r := fbRun(t, true)
	rep := &packages.Report{Identities: map[string]packages.Identity{}}
	for _, v := range []string{"2", "3"} {
		pkg, err := packages.Open(filepath.Join(r.Info.ConfigDir, "pkgs", "example-vpn-"+v+".pkg"), packages.Limits{})
		require.NoError(t, err)
		rep.Identities[v], err = packages.IdentityOf(pkg, "com.example.vpn", "com.example.vpn.tunnel")
		require.NoError(t, err)
	}
	r.Info.Preflight = rep
	require.NoError(t, os.RemoveAll(filepath.Join(r.Info.ConfigDir, "pkgs")))
	b, err := BuildFeedback(r, fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	versions := mdSection(t, readBundle(t, b), "App versions")
	assert.Contains(t, versions, "`arm64 "+rep.Identities["2"].Extension.UUIDs["arm64"]+"`")
	assert.Contains(t, versions, "(from run.json's preflight; the package was not found)")
	assert.Contains(t, versions, "| app: bundle id, version (build) | `com.example.vpn` `2.0` (`200`) | `com.example.vpn` `3.0` (`300`) |")
	assert.Contains(t, versions, "| package id and version | not recorded (package not found) | not recorded (package not found) |")
	assert.NotEmpty(t, b.Missing, "the packages themselves are still missing evidence")
}

// TestFeedbackNamesAPackageItCannotRead: a package the reader refuses is
// missing evidence with the reader's reason, and the versions table says
// its identity was not read rather than inventing one.
func TestFeedbackNamesAPackageItCannotRead(t *testing.T) {
	r := fbRun(t, false)
	bad := filepath.Join(r.Info.ConfigDir, "pkgs", "ExampleVPN-2.pkg")
	require.NoError(t, os.WriteFile(bad, []byte("xar! truncated"), 0o644))
	b, err := BuildFeedback(r, fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	var reasons []string
	for _, m := range b.Missing {
		reasons = append(reasons, m.What+": "+m.Reason)
	}
	assert.Contains(t, strings.Join(reasons, "\n"), "package 2: could not read the package: "+bad)
	versions := mdSection(t, readBundle(t, b), "App versions")
	assert.Contains(t, versions, "| app: bundle id, version (build) | not read from the pkg package; see the guest rows | `com.example.vpn` `3.0` (`300`) |")
	assert.Contains(t, versions, "run `dwarfdump --uuid` on the extension's executable (TN3178)")
}

func TestFeedbackPicksTheFirstFailingAttemptAndRefusesOthers(t *testing.T) {
	r := fbRun(t, true)
	b, err := BuildFeedback(r, fxFlaky.id, FeedbackOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, b.Repeat, "the flaky cell failed in its second attempt only")
	assert.Contains(t, mdSection(t, readBundle(t, b), "Signatures"), "No known failure signature matched")
	assert.Contains(t, mdSection(t, readBundle(t, b), "Reproducibility"), "1 of 3 attempts of this configuration failed: 33%")

	_, err = BuildFeedback(r, fxFlaky.id, FeedbackOptions{Attempt: 1})
	require.ErrorIs(t, err, ErrNothingToReport)
	assert.Contains(t, err.Error(), "attempt 1 of cell "+fxFlaky.id+" is pass (failing attempts: 2)")

	_, err = BuildFeedback(r, fxFlaky.id, FeedbackOptions{Attempt: 9})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has no attempt 9 (attempts: 1, 2, 3; failing attempts: 2)")

	_, err = BuildFeedback(r, fxPass.id, FeedbackOptions{})
	require.ErrorIs(t, err, ErrNothingToReport)
	assert.Contains(t, err.Error(), "is pass, 0/3 failed")

	_, err = BuildFeedback(r, fxErrors.id, FeedbackOptions{Attempt: 1})
	require.ErrorIs(t, err, ErrNothingToReport)
	assert.Contains(t, err.Error(), "infrastructure error (guest: sshd never answered")
	assert.NoDirExists(t, filepath.Join(r.Dir, "feedback", fxPass.id))
}

func TestFindCellByIDAxesOrLabel(t *testing.T) {
	r := fxLoad(t, true)
	for query, want := range map[string]string{
		fxFlaky.id:                               fxFlaky.id,
		"aaaaaaaaaaa2":                           fxPass.id,
		"vpn=running,macos=macos-15.4":           fxFlaky.id,
		" vpn=stopped , macos=macos-15.3 ":       fxPass.id,
		"macos=macos-15.3 path=2->3 vpn=running": fxFail.id,   // a label pasted whole
		"15.4 path=2->3 vpn=stopped":             fxErrors.id, // a label fragment
	} {
		c, err := FindCell(r, query)
		if assert.NoError(t, err, query) {
			assert.Equal(t, want, c.Cell, query)
		}
	}

	_, err := FindCell(r, "vpn=running")
	var ce *CellError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), `cell "vpn=running": matches 2 cells`)
	assert.Contains(t, err.Error(), fxFail.id)
	assert.Contains(t, err.Error(), fxFlaky.id)
	assert.NotContains(t, err.Error(), fxPass.id, "only the matches are listed")

	_, err = FindCell(r, "nothing-like-it")
	require.ErrorAs(t, err, &ce)
	for _, c := range fxCells {
		assert.Contains(t, err.Error(), c.id+"  ", "an unknown cell lists the cells")
	}
	assert.Contains(t, err.Error(), "fail       3/3 failed  macos=macos-15.3 path=2->3 vpn=running")

	_, err = FindCell(r, "vpn=up")
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), `no cell has vpn="up" (valid values for vpn: running, stopped)`)
}

func TestFeedbackZipHoldsTheBundleAndARebuildReplacesIt(t *testing.T) {
	r := fbRun(t, true)
	b, err := BuildFeedback(r, fxFail.id, FeedbackOptions{Zip: true})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(r.Dir, "feedback", fxFail.id+".zip"), b.Zip)

	zr, err := zip.OpenReader(b.Zip)
	require.NoError(t, err)
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		entries[f.Name] = f
	}
	want := []string{fxFail.id + "/FEEDBACK.md"}
	for _, f := range b.Files {
		want = append(want, fxFail.id+"/"+f.Name)
	}
	for _, name := range want {
		f, ok := entries[name]
		if !assert.True(t, ok, "zip lacks %s", name) {
			continue
		}
		rc, err := f.Open()
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		disk, err := os.ReadFile(filepath.Join(b.Dir, filepath.FromSlash(strings.TrimPrefix(name, fxFail.id+"/"))))
		require.NoError(t, err)
		assert.Equal(t, disk, got, name)
	}
	assert.Len(t, zr.File, len(want))
	assert.Equal(t, zip.Store, entries[fxFail.id+"/sysdiagnose_r1.tar.gz"].Method, "an archive is stored, not compressed again")
	require.NoError(t, zr.Close())

	// Another attempt of the cell, without --zip: the folder holds only
	// that attempt, and the zip of the first one is gone.
	b2, err := BuildFeedback(r, fxFail.id, FeedbackOptions{Attempt: 2})
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(b2.Dir, "sysdiagnose_r1.tar.gz"))
	assert.NoFileExists(t, b.Zip)
	leftovers, err := filepath.Glob(filepath.Join(r.Dir, "feedback", ".*"))
	require.NoError(t, err)
	assert.Empty(t, leftovers, "no temporary folder is left behind")
}

func TestFeedbackWithoutTriageOrPathSaysWhy(t *testing.T) {
	r := fbRun(t, true)
	// A run whose matrix has no upgrade path and whose failure was not
	// triaged: the bundle is still made and says what it lacks.
	for i := range r.Cells {
		for j := range r.Cells[i].Tries {
			r.Cells[i].Tries[j].Triage = nil
		}
	}
	r.Info.Config.Matrix.PathAxis = "upgrade"
	b, err := BuildFeedback(r, fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	md := readBundle(t, b)
	assert.Contains(t, mdSection(t, md, "Signatures"), "The attempt was not triaged")
	assert.Contains(t, mdSection(t, md, "App versions"), "The versions are not known")
	assert.Contains(t, mdSection(t, md, "Missing evidence"), `the matrix has no upgrade path axis "upgrade"`)
	assert.True(t, strings.HasPrefix(b.Title, "[SIMULATED] Upgrade fails: probe mach-endpoint: connection invalidated after upgrading Example VPN (macOS 15.3 24D60"), b.Title)
}

func TestMarkdownSpanKeepsACommandInOneTableCell(t *testing.T) {
	assert.Equal(t, "`a \\| b`", mdSpan("a | b"))
	assert.Equal(t, "`` echo `date` ``", mdSpan("echo `date`"), "CommonMark strips one space each side")
	assert.Equal(t, "`one⏎two`", mdSpan("one\ntwo\n"))
	assert.Equal(t, "", mdSpan(""))
}

func TestCellErrorWithoutCells(t *testing.T) {
	err := error(&CellError{Query: "x", Problem: "no cell matches"})
	assert.Equal(t, `cell "x": no cell matches; the run has no cells`, err.Error())
	assert.False(t, errors.Is(err, ErrNothingToReport))
}

func TestFeedbackFindsThePackagesFromWhereTheRunStarted(t *testing.T) {
	// run.json says config_dir "conf", relative to the folder `sxlab run`
	// ran in; the bundle is made from another folder.
	ws, elsewhere := t.TempDir(), t.TempDir()
	want := filepath.Join(ws, "conf", "pkgs", "vpn-3.pkg")
	fxFile(t, want, "xar!")
	r := &Run{Dir: filepath.Join(ws, "runs", "nightly", "run-9")}
	r.Info.ID, r.Info.ConfigDir, r.Info.Config.Lab.RunsDir = "run-9", "conf", "./runs/nightly"
	got, tried := findPackage(r, "pkgs/vpn-3.pkg", elsewhere)
	assert.Equal(t, want, got, "tried %v", tried)

	// A run folder moved away from its runs_dir: its origin is not
	// guessed, and the error says where the package was looked for.
	r.Info.Config.Lab.RunsDir = "./other"
	got, tried = findPackage(r, "pkgs/vpn-3.pkg", elsewhere)
	assert.Empty(t, got)
	assert.Equal(t, []string{filepath.Join(elsewhere, "conf", "pkgs", "vpn-3.pkg")}, tried)
}

// TestFeedbackPutsEvidenceOnTheHostsTimelineOnce: the guest stamped its
// log line 12:01:00, 47 s ahead of the host; on the host's clock it falls
// between the steps, with the guest's time beside it, once although two
// signatures cite it; the state snapshot reads as a snapshot.
func TestFeedbackPutsEvidenceOnTheHostsTimelineOnce(t *testing.T) {
	r := fbRun(t, true)
	b, err := BuildFeedback(r, fxFail.id, FeedbackOptions{})
	require.NoError(t, err)
	steps := mdSection(t, readBundle(t, b), "Steps to reproduce")
	assert.Equal(t, 1, strings.Count(steps, fxEvidence), "each event once")
	log := lineWith(steps, fxEvidence)
	assert.Contains(t, log, "| 2026-11-23 12:00:13.000Z | +2.000 s | `nesessionmanager` | log ["+fxFinding+"] [replacement-path]: ",
		"on the host's clock, with both signatures")
	assert.True(t, strings.HasSuffix(log, "| | | 2026-11-23 12:01:00.000Z |"), "the guest's own time beside it: %s", log)
	snap := lineWith(steps, "no endpoints block (state = running)")
	assert.Contains(t, snap, "| `state/after` | state snapshot ["+fxFinding+"]: `launchd showed: launchctl print", "a snapshot, not a log line")
	assert.Contains(t, snap, "taken 2026-11-23 12:01:01.000Z")

	// In order: the install at +0.1 s, the log line at +2.0 s, then the
	// probe's command at +2.2 s.
	install := strings.Index(steps, "`1 install`")
	at := strings.Index(steps, fxEvidence)
	probe := strings.Index(steps, "--check-xpc")
	assert.True(t, install < at && at < probe, "one timeline, by the host's clock")
}

func TestFeedbackNumbersEveryStepAsTheScenarioDoes(t *testing.T) {
	a := Attempt{Steps: []steps.Entry{
		{Step: "8 approve", Kind: "approve", Started: fxT0},
		{Step: "probe extension-state", Kind: "query", Started: fxT0.Add(time.Second), Result: &guest.Result{Line: "systemextensionsctl list"}},
		{Step: "9 probe", Kind: "probe", Started: fxT0.Add(2 * time.Second), Note: "extension-state held"},
		{Step: "probe xpc", Kind: "probe", Started: fxT0.Add(3 * time.Second), Result: &guest.Result{Line: "x --check-xpc", Exit: 1}},
		{Step: "9 probe", Kind: "probe", Started: fxT0.Add(4 * time.Second), Note: "xpc did not hold"},
	}}
	rows := stepRows(&a, nil)
	require.Len(t, rows, 5)
	for _, r := range rows[1:] {
		assert.Equal(t, "9 probe", r.Step, "a probe's command is under its numbered probe step")
	}
	assert.Equal(t, "query (extension-state)", rows[1].Kind, "and says which probe")
	assert.Equal(t, "probe (xpc)", rows[3].Kind)
}

func lineWith(text, part string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, part) {
			return l
		}
	}
	return ""
}
