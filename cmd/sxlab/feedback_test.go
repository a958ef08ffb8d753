package main

import (
	"archive/zip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// demoRun runs the demo's failing macos-15.3 vpn=running cells (both
// paths, two repeats) on instant simulated Macs, in a workspace of its
// own, and returns the run folder.
func demoRun(t *testing.T) string {
	t.Helper()
	ws := t.TempDir()
	src, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	cfg := regexp.MustCompile(`time_scale: [0-9.]+`).ReplaceAllString(string(src), "time_scale: 0")
	cfg = regexp.MustCompile(`runs_dir: \S+`).ReplaceAllString(cfg, "runs_dir: "+filepath.Join(ws, "runs"))
	require.NoError(t, os.WriteFile(filepath.Join(ws, "config.yaml"), []byte(cfg), 0o644))
	require.NoError(t, os.CopyFS(filepath.Join(ws, "examples", "pkg"), os.DirFS("../../examples/pkg")))

	code, out, errs := sxlab(t, "run", "--config", filepath.Join(ws, "config.yaml"), "--progress", "none",
		"--only", "macos=macos-15.3,vpn=running", "--only", "macos=macos-15.3,vpn=stopped,approval=approved,path=2->3", "--repeat", "2")
	require.Equal(t, exitFindings, code, "the demo's vpn=running cells fail on 15.3\n%s\n%s", out, errs)
	m := regexp.MustCompile(`run folder: (\S+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	return m[1]
}

func TestFeedbackOnAFailingDemoCell(t *testing.T) {
	dir := demoRun(t)
	code, out, errs := sxlab(t, "feedback", dir, "vpn=running,path=2->3", "--zip")
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, errs, "SIMULATED: this bundle comes from simulated Macs")
	assert.NotContains(t, errs, "missing evidence", "the demo collects everything")

	md := regexp.MustCompile(`(?m)^feedback: (.+)$`).FindStringSubmatch(out)
	require.NotNil(t, md, out)
	b, err := os.ReadFile(md[1])
	require.NoError(t, err)
	text := string(b)

	// Both versions, with their builds and LC_UUIDs.
	assert.Regexp(t, `(?m)^# \[SIMULATED\] The new provider's Mach service never registered with launchd after upgrading Example VPN 2\.0 \(200\) to 3\.0 \(300\) \(macOS 15\.3 24D60, vpn=running, approval=approved\)$`, text)
	assert.Contains(t, text, "| extension: bundle id, version (build) | `com.example.vpn.tunnel` `2.0` (`200`), team `ABCDE12345` | `com.example.vpn.tunnel` `3.0` (`300`), team `ABCDE12345` |")
	assert.Contains(t, text, "`arm64 E7692EDE-C2AA-5AD1-8A56-D951AAF5CD50`")
	// The steps with timestamps, install and upgrade among them.
	assert.Regexp(t, "\\| 2 \\| 20\\d\\d-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z \\| \\+\\d+\\.\\d{3} s \\| `1 install` \\|", text)
	assert.Regexp(t, "\\| `6 upgrade` \\| install: `sudo installer -pkg /tmp/sxlab/example-vpn-3\\.pkg -target /` \\| 0 \\|", text)
	// The repro rate and the signature.
	assert.Contains(t, text, "2 of 2 attempts of this configuration failed: 100%, 95% Wilson interval 34–100%")
	assert.Contains(t, text, "### `endpoint-lost` (the finding)")
	assert.Contains(t, text, "no endpoints block")
	// The guest's own word, read from the snapshots' parsed files.
	assert.Contains(t, text, "| macOS (guest) | 15.3 (24D60), from sw_vers in the guest (state/after) |")
	assert.Contains(t, text, "`2.0/200 [activated enabled] (state/before)`")
	assert.Contains(t, text, "`com.example.vpn.pkg 3.0 (state/after)`")
	assert.Contains(t, text, "| `state/after` | state snapshot [endpoint-lost]: `launchd showed: launchctl print", "the evidence is shown as the snapshot's")

	bundle := filepath.Dir(md[1])
	sysdiagnoses, err := filepath.Glob(filepath.Join(bundle, "sysdiagnose_*.tar.gz"))
	require.NoError(t, err)
	assert.Len(t, sysdiagnoses, 1)
	for _, f := range []string{"packages/example-vpn-2.pkg", "packages/example-vpn-3.pkg", "logs.ndjson", "state/before.txt", "state/before.json", "state/after.txt", "state/after.json"} {
		assert.FileExists(t, filepath.Join(bundle, filepath.FromSlash(f)))
	}

	zm := regexp.MustCompile(`(?m)^zip: (.+)$`).FindStringSubmatch(out)
	require.NotNil(t, zm, out)
	zr, err := zip.OpenReader(zm[1])
	require.NoError(t, err)
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	assert.Contains(t, names, filepath.Base(bundle)+"/FEEDBACK.md")
	assert.Contains(t, names, filepath.Base(bundle)+"/"+filepath.Base(sysdiagnoses[0]))
}

func TestFeedbackRefusesWhatItCannotReport(t *testing.T) {
	dir := reportFixture(t)

	code, _, errs := sxlab(t, "feedback", dir, "vpn=running")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, `unknown key "vpn" (valid keys: macos, path)`)
	assert.Contains(t, errs, "c0ffeec0ffee  fail", "the cells are listed")

	code, _, errs = sxlab(t, "feedback", dir, "c0ffee", "--attempt", "2")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "has no attempt 2 (attempts: 1; failing attempts: 1)")

	code, _, errs = sxlab(t, "feedback", t.TempDir(), "c0ffee")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "not a run folder")

	code, _, errs = sxlab(t, "feedback", dir)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "accepts 2 arg(s)")
}

func TestFeedbackOfAPassingCellHasNothingToReport(t *testing.T) {
	dir := demoRun(t)
	code, out, errs := sxlab(t, "feedback", dir, "vpn=stopped")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "is pass, 0/2 failed, 0 error(s): nothing to report")
	assert.Empty(t, out)
	assert.NoDirExists(t, filepath.Join(dir, "feedback"))

	// The fixture's one failing attempt has no evidence at all: the
	// bundle is made and says what is missing, on stderr too.
	dir = reportFixture(t)
	code, _, errs = sxlab(t, "feedback", dir, "c0ffee")
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, errs, "missing evidence: sysdiagnose: not in the attempt folder")
	assert.True(t, strings.Contains(errs, "missing evidence: package 2: app.versions has no version 2"), errs)
}
