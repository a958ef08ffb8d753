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

// The test configuration points at examples/pkg's real packages; the
// root config.yaml still names simulated manifests.
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

func TestPreflightOnSimulatedManifestsSaysSoAndChecksNothing(t *testing.T) {
	code, out, errs := sxlab(t, "preflight", "--config", demoConfig)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "simulated package manifest")
	assert.Contains(t, out, "0 path(s) checked")
	p := preflightRows(t, 0, "--config", demoConfig)
	assert.Empty(t, p.Rows)
	assert.Len(t, p.NotChecked, 3)
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
	// The demo still names simulated manifests: nothing checked, and said.
	assert.Empty(t, info.Preflight.Rows)
	require.Len(t, info.Preflight.NotChecked, 3)
	assert.Contains(t, info.Preflight.NotChecked[0].Reason, "simulated package manifest")
}
