package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test configuration points at examples/pkg's real packages, with
// more paths than the root config.yaml's matrix.
const preflightConfig = "testdata/preflight/config.yaml"

type preflightJSON struct {
	Rows []struct {
		Path, Check, Status, From, To, Message, Source string
	} `json:"rows"`
	NotChecked []struct{ Version, File, Reason string } `json:"not_checked"`
	Unreadable []struct{ Version, File, Reason string } `json:"unreadable"`
	Errors     int                                      `json:"errors"`
	Warnings   int                                      `json:"warnings"`
}

func preflightRows(t *testing.T, wantCode int, args ...string) preflightJSON {
	t.Helper()
	code, out, errs := sxlab(t, append([]string{"preflight", "--json"}, args...)...)
	require.Equal(t, wantCode, code, "stdout:\n%s\nstderr:\n%s", out, errs)
	var p preflightJSON
	require.NoError(t, json.Unmarshal([]byte(out), &p), out)
	return p
}

func TestPreflightFindsTheSharedUUIDOfPackage5(t *testing.T) {
	only := []string{"--config", preflightConfig, "--only", "path=2->3", "--only", "path=1->3", "--only", "path=3->5"}
	code, out, errs := sxlab(t, append([]string{"preflight"}, only...)...)
	require.Equal(t, 1, code, errs)
	assert.Contains(t, out, "3->5 ERROR extension-uuid-changes")
	assert.Contains(t, out, "E7692EDE-C2AA-5AD1-8A56-D951AAF5CD50", "the shared arm64 LC_UUID is the evidence")
	assert.Contains(t, out, "TN3178")
	assert.Contains(t, errs, "preflight: 1 error(s)")

	p := preflightRows(t, 1, only...)
	var errorRows []string
	for _, r := range p.Rows {
		if r.Status == "error" {
			errorRows = append(errorRows, r.Path+" "+r.Check)
		}
		if r.Path == "2->3" && r.Check == "mach-service-versioned" {
			assert.Equal(t, "warning", r.Status, "a fixed Mach service across an upgrade is the endpoint-lost hazard")
			assert.Contains(t, r.Source, "xpc-invalidated-on-upgrade")
			assert.Contains(t, r.Message, "versioned name")
		}
	}
	assert.Equal(t, []string{"3->5 extension-uuid-changes"}, errorRows)
	assert.Equal(t, 1, p.Errors)
	// The table and the JSON carry the same rows.
	table := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "2->3 ") || strings.HasPrefix(line, "1->3 ") || strings.HasPrefix(line, "3->5 ") {
			if !strings.Contains(line, " ERROR ") && !strings.Contains(line, " WARNING ") {
				table++
			}
		}
	}
	assert.Equal(t, len(p.Rows), table)
}

func TestPreflightNamesBothValuesWhenTheMachServiceTemplateIsWrong(t *testing.T) {
	// config.yaml's fixed mach_service against package 4's versioned name:
	// what a new user who forgets the template gets.
	p := preflightRows(t, 1, "--config", preflightConfig, "--only", "path=3->4")
	var row *struct{ Path, Check, Status, From, To, Message, Source string }
	for i := range p.Rows {
		if p.Rows[i].Check == "mach-service-template" {
			row = &p.Rows[i]
		}
	}
	require.NotNil(t, row)
	assert.Equal(t, "error", row.Status)
	assert.Contains(t, row.Message, `"ABCDE12345.com.example.vpn.tunnel"`)
	assert.Contains(t, row.Message, `"ABCDE12345.com.example.vpn.tunnel.4.0"`)
	assert.Equal(t, "ABCDE12345.com.example.vpn.tunnel.4.0", row.To)
}

func TestPreflightRefusesAVersionThatDoesNotIncrease(t *testing.T) {
	p := preflightRows(t, 1, "--config", preflightConfig, "--only", "path=3->2")
	status := map[string]string{}
	for _, r := range p.Rows {
		status[r.Check] = r.Status
	}
	assert.Equal(t, "error", status["extension-version-increases"])
	assert.Equal(t, "error", status["extension-short-version-increases"])
}

// TestPreflightOnTheDemoConfig is the "done when": on the root
// config.yaml, preflight prints every upgrade path's checks and exits 1
// because the 3->5 path ships package 3's extension LC_UUID under a new
// version; --json gives the same rows.
func TestPreflightOnTheDemoConfig(t *testing.T) {
	code, out, errs := sxlab(t, "preflight", "--config", demoConfig)
	require.Equal(t, 1, code, errs)
	assert.Contains(t, out, "preflight: 2 path(s) checked")
	p := preflightRows(t, 1, "--config", demoConfig)
	paths := map[string]int{}
	var errorRows []string
	for _, r := range p.Rows {
		paths[r.Path]++
		if r.Status == "error" {
			errorRows = append(errorRows, r.Path+" "+r.Check)
		}
		assert.Contains(t, out, r.Path+"  "+r.Status, "the table has the row %s %s", r.Path, r.Check)
	}
	assert.Equal(t, []string{"3->5 extension-uuid-changes"}, errorRows)
	assert.Len(t, paths, 2, "every path of the matrix: 2->3, 3->5")
	assert.Equal(t, paths["2->3"], paths["3->5"], "every path gets every check")
	assert.Empty(t, p.NotChecked, "the demo's packages are real")
}

func TestPreflightOnSimulatedManifestsSaysSoAndChecksNothing(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	cfg := string(raw)
	for _, v := range []string{"1", "2", "3", "4", "5"} {
		name := "example-vpn-" + v + ".simpkg.json"
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(`{"format":"sxlab-simpkg/1"}`), 0o644))
		cfg = strings.Replace(cfg, "examples/pkg/example-vpn-"+v+".pkg", name, 1)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o644))
	code, out, errs := sxlab(t, "preflight", "--config", filepath.Join(dir, "config.yaml"))
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "simulated package manifest")
	assert.Contains(t, out, "0 path(s) checked")
	p := preflightRows(t, 0, "--config", filepath.Join(dir, "config.yaml"))
	assert.Empty(t, p.Rows)
	assert.Len(t, p.NotChecked, 3, "versions 2, 3 and 5: those the paths use")
}

func TestPreflightExits3OnAnUnreadablePackage(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(preflightConfig)
	require.NoError(t, err)
	abs, err := filepath.Abs("../../examples/pkg")
	require.NoError(t, err)
	cfg := strings.ReplaceAll(string(raw), "../../../../examples/pkg", abs)
	cfg = strings.Replace(cfg, abs+"/example-vpn-5.pkg", filepath.Join(dir, "broken.pkg"), 1)
	good, err := os.ReadFile(filepath.Join(abs, "example-vpn-5.pkg"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.pkg"), good[:len(good)/2], 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o644))

	p := preflightRows(t, 3, "--config", filepath.Join(dir, "config.yaml"))
	require.Len(t, p.Unreadable, 1)
	assert.Equal(t, "5", p.Unreadable[0].Version)
	assert.Contains(t, p.Unreadable[0].Reason, "broken.pkg")
	assert.NotEmpty(t, p.Rows, "the other paths are still checked")
}

func TestRunRecordsPreflightInRunJSON(t *testing.T) {
	dir := demoRun(t)
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	require.NoError(t, err)
	var info struct {
		Preflight *preflightJSON `json:"preflight"`
	}
	require.NoError(t, json.Unmarshal(b, &info))
	require.NotNil(t, info.Preflight, "run.json has no preflight")
	// The demo's real packages are checked: the rows of the paths the
	// run planned, with 3->5's shared LC_UUID the one error.
	assert.NotEmpty(t, info.Preflight.Rows)
	assert.Empty(t, info.Preflight.NotChecked)
	var errorRows []string
	for _, r := range info.Preflight.Rows {
		if r.Status == "error" {
			errorRows = append(errorRows, r.Path+" "+r.Check)
		}
	}
	assert.Equal(t, []string{"3->5 extension-uuid-changes"}, errorRows, "demoRun's cells take the path 3->5 too")
	assert.Equal(t, 1, info.Preflight.Errors)
}
