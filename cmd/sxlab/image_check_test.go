package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkNames are the golden checks image check prints, in order.
var checkNames = []string{"remote-login", "sudo", "console-user", "filevault", "sip", "tcc", "mdm",
	"ne-logging", "sleep", "disk", "sysdiagnose", "clock"}

// checkWorkspace is the demo configuration on instant simulated Macs in
// a folder of its own, edited by edit.
func checkWorkspace(t *testing.T, edit func(string) string) string {
	t.Helper()
	ws := t.TempDir()
	src, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	cfg := regexp.MustCompile(`time_scale: [0-9.]+`).ReplaceAllString(string(src), "time_scale: 0")
	cfg = regexp.MustCompile(`runs_dir: \S+`).ReplaceAllString(cfg, "runs_dir: "+filepath.Join(ws, "runs"))
	if edit != nil {
		cfg = edit(cfg)
	}
	require.NoError(t, os.WriteFile(filepath.Join(ws, "config.yaml"), []byte(cfg), 0o644))
	require.NoError(t, os.CopyFS(filepath.Join(ws, "examples", "pkg"), os.DirFS("../../examples/pkg")))
	return filepath.Join(ws, "config.yaml")
}

type checkJSON struct {
	Image     string `json:"image"`
	Simulated bool   `json:"simulated"`
	Checks    []struct {
		Name       string `json:"name"`
		Status     string `json:"status"`
		Detail     string `json:"detail"`
		Fix        string `json:"fix"`
		Unverified bool   `json:"unverified_on_macos"`
		Commands   []struct {
			Command string `json:"command"`
			Exit    int    `json:"exit"`
			Stdout  string `json:"stdout"`
			Stderr  string `json:"stderr"`
		} `json:"commands"`
	} `json:"checks"`
}

func TestImageCheckPassesOnEachDemoImage(t *testing.T) {
	// Each golden the demo uses: the plain ones its ui cells run on and
	// the MDM-enrolled ones its approve: mdm cells run on.
	cfg := checkWorkspace(t, nil)
	for _, image := range []string{"macos-15.3", "macos-15.3-mdm", "macos-15.4", "macos-15.4-mdm"} {
		code, out, errs := sxlab(t, "image", "check", image, "--config", cfg)
		require.Equal(t, exitOK, code, "%s\n%s", out, errs)
		for _, name := range checkNames {
			assert.Regexp(t, `(?m)^  (ok|warning|unknown) +`+name+` `, out, image)
		}
		assert.Contains(t, out, "SIMULATED")
	}
}

// The demo's goldens themselves, with the scenario's approve: mdm taken
// out (its goldens have no MDM enrolment): every check prints, none fails.
func TestImageCheckPassesOnEachDemoGolden(t *testing.T) {
	cfg := checkWorkspace(t, func(c string) string { return strings.ReplaceAll(c, "approve: mdm", "approve: none") })
	for _, image := range []string{"macos-15.3", "macos-15.4"} {
		code, out, errs := sxlab(t, "image", "check", image, "--config", cfg)
		require.Equal(t, exitOK, code, "%s\n%s", out, errs)
		for _, name := range checkNames {
			assert.Regexp(t, `(?m)^  (ok|warning|unknown) +`+name+` `, out, image)
		}
		assert.Regexp(t, `(?m)^  ok +console-user +admin is logged in`, out)
		assert.Regexp(t, `(?m)^  ok +filevault `, out)
		assert.Regexp(t, `(?m)^  ok +remote-login +logged in over SSH as admin`, out)
		assert.Contains(t, out, "(unverified on macOS)")
		assert.Contains(t, out, "its cells use approval through System Settings (ui)")
	}
}

// brokenGolden makes macos-15.4 a golden with no automatic login, no
// TCC grants and FileVault on; its cells approve through System Settings.
func brokenGolden(cfg string) string {
	return strings.Replace(cfg, `      product_version: "15.4"
      build: 24E248
`, `      product_version: "15.4"
      build: 24E248
      golden:
        auto_login: false
        filevault: true
        tcc: {accessibility: [], apple_events: []}
`, 1)
}

func TestImageCheckNamesTheBrokenGoldensThreeFailuresWithTheirFixes(t *testing.T) {
	cfg := checkWorkspace(t, brokenGolden)
	code, out, errs := sxlab(t, "image", "check", "macos-15.4", "--config", cfg)
	require.Equal(t, exitFindings, code, "%s\n%s", out, errs)
	assert.Regexp(t, `(?m)^  FAILURE +console-user +nobody is logged in on the console.*automatic login is off`, out)
	assert.Regexp(t, `(?m)^  FAILURE +filevault +FileVault is on`, out)
	assert.Regexp(t, `(?m)^  FAILURE +tcc +Apple events to System Events are refused \(-1743\)`, out)
	assert.Contains(t, out, "fix: turn on automatic login for admin")
	assert.Contains(t, out, "fix: in the golden: `sudo fdesetup disable`")
	assert.Contains(t, out, "fix: grant Apple Events")
	assert.Contains(t, out, "sshd-keygen-wrapper")
	assert.Contains(t, errs, "FAILED")
	for _, name := range checkNames {
		assert.Regexp(t, `(?m)^  (ok|warning|unknown|FAILURE) +`+name+` `, out)
	}
}

func TestImageCheckJSONRecordsEveryCommandAndItsOutput(t *testing.T) {
	cfg := checkWorkspace(t, brokenGolden)
	code, out, errs := sxlab(t, "image", "check", "macos-15.4", "--config", cfg, "--json")
	require.Equal(t, exitFindings, code, errs)
	var got checkJSON
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, "macos-15.4", got.Image)
	assert.True(t, got.Simulated)
	require.Len(t, got.Checks, len(checkNames))
	byName := map[string]int{}
	for i, c := range got.Checks {
		assert.Equal(t, checkNames[i], c.Name)
		assert.NotEmpty(t, c.Commands, c.Name)
		assert.Equal(t, c.Name != "remote-login", c.Unverified, c.Name)
		byName[c.Name] = i
	}
	console := got.Checks[byName["console-user"]]
	assert.Equal(t, "FAILURE", console.Status)
	assert.Equal(t, "stat -f %Su /dev/console", console.Commands[0].Command)
	assert.Equal(t, "root\n", console.Commands[0].Stdout)
	fv := got.Checks[byName["filevault"]]
	assert.Equal(t, "FileVault is On.\n", fv.Commands[0].Stdout)
	tcc := got.Checks[byName["tcc"]]
	// open finds no GUI session; the scripting test is refused first for
	// the missing Apple Events grant.
	assert.Contains(t, tcc.Commands[0].Command, "open 'x-apple.systempreferences:")
	assert.Contains(t, tcc.Commands[0].Stderr, "error -600")
	assert.Contains(t, tcc.Commands[1].Stderr, "(-1743)")
}

func TestImageCheckOfAnUnknownImageIsAUsageError(t *testing.T) {
	cfg := checkWorkspace(t, nil)
	code, _, errs := sxlab(t, "image", "check", "macos-9", "--config", cfg)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "image macos-9 is not in")
	assert.Contains(t, errs, "macos-15.3, macos-15.3-mdm, macos-15.4, macos-15.4-mdm")
}

func TestRunStopsBeforeTheFirstAttemptOnAnUnfitGolden(t *testing.T) {
	cfg := checkWorkspace(t, brokenGolden)
	code, out, errs := sxlab(t, "run", "--config", cfg, "--progress", "none", "--only", "macos=macos-15.4", "--repeat", "1")
	require.Equal(t, exitUsage, code, "%s\n%s", out, errs)
	assert.Contains(t, errs, "no attempt was run")
	assert.Contains(t, errs, "image macos-15.4: console user (automatic login): nobody is logged in")
	assert.Contains(t, errs, "image macos-15.4: TCC grants for UI scripting: Apple events to System Events are refused")
	assert.Contains(t, errs, "fix: turn on automatic login")
	assert.NotContains(t, out, "pass")
	// Nothing ran, so no run folder is left for report or diff to trip on.
	entries, err := os.ReadDir(filepath.Join(filepath.Dir(cfg), "runs"))
	if err == nil {
		for _, e := range entries {
			assert.True(t, strings.HasPrefix(e.Name(), "."), "a run folder was left: %s", e.Name())
		}
	}

	// --skip-image-check runs the attempts, which then meet the problem
	// themselves.
	code, out, errs = sxlab(t, "run", "--config", cfg, "--progress", "none", "--only", "macos=macos-15.4,approval=pending,path=2->3", "--repeat", "1", "--skip-image-check")
	assert.NotEqual(t, exitUsage, code, "%s\n%s", out, errs)
	assert.NotContains(t, errs, "no attempt was run")
}

// An image whose cells approve through System Settings says which
// built-in script they run and that no Mac has run it; an image whose
// cells use mdm only does not.
func TestImageCheckNotesTheUnverifiedUIScript(t *testing.T) {
	cfg := checkWorkspace(t, nil)
	code, out, errs := sxlab(t, "image", "check", "macos-15.3", "--config", cfg)
	require.Equal(t, exitOK, code, "%s\n%s", out, errs)
	assert.Contains(t, out, "its cells use approval through System Settings (ui)")
	assert.Regexp(t, `(?m)^note: approve: ui on macOS 15 opens Login Items & Extensions .*: unverified on macOS 15$`, out)
	assert.NotContains(t, out, "macOS 14", "only the script of the guest's version")

	code, out, errs = sxlab(t, "image", "check", "macos-15.3-mdm", "--config", cfg)
	require.Equal(t, exitOK, code, "%s\n%s", out, errs)
	assert.NotContains(t, out, "approve: ui on macOS")
}
