package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const demoConfig = "../../config.yaml"

// sxlab runs one command line and returns exit code, stdout and stderr.
func sxlab(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	// A CI shard must not leak into tests that do not ask for one.
	for _, k := range []string{"BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", "CI_NODE_INDEX", "CI_NODE_TOTAL"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Setenv(k, "")
		}
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

type planOut struct {
	Cells    int `json:"cells"`
	Attempts []struct {
		Cell   string            `json:"cell"`
		Label  string            `json:"label"`
		Repeat int               `json:"repeat"`
		Axes   map[string]string `json:"axes"`
	} `json:"attempts"`
}

func planJSONOf(t *testing.T, args ...string) planOut {
	t.Helper()
	code, out, errs := sxlab(t, append([]string{"plan", "--config", demoConfig, "--format", "json"}, args...)...)
	require.Equal(t, 0, code, errs)
	var p planOut
	require.NoError(t, json.Unmarshal([]byte(out), &p))
	return p
}

func TestPlanJSONOfDemo(t *testing.T) {
	p := planJSONOf(t)
	assert.Equal(t, 13, p.Cells, "12 of the axes and the tunnel image's included cell")
	require.Len(t, p.Attempts, 39)
	first := p.Attempts[0]
	assert.Equal(t, "macos=macos-15.3 path=2->3 vpn=running approval=approved", first.Label)
	assert.Equal(t, map[string]string{"macos": "macos-15.3", "path": "2->3", "vpn": "running", "approval": "approved"}, first.Axes)
	assert.Len(t, first.Cell, 12)
	for _, a := range p.Attempts {
		assert.False(t, a.Axes["vpn"] == "running" && a.Axes["approval"] == "pending", "excluded cell planned: %s", a.Label)
	}
}

// The upgrade path reads as the user wrote it, not as "2-\u003e3".
func TestJSONOutputKeepsArrows(t *testing.T) {
	code, out, errs := sxlab(t, "plan", "--config", demoConfig, "--format", "json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `"path": "2->3"`)
	assert.NotContains(t, out, `\u003e`)
}

// A misspelt variable is not silently ignored: every SXLAB_* variable
// that names no key is warned about, with the likely one.
func TestMisspeltEnvironmentVariableIsWarnedAbout(t *testing.T) {
	t.Setenv("SXLAB_MATRIX_REPAET", "5")
	t.Setenv("SXLAB_NOTHING_LIKE_IT", "1")
	// A secret the configuration points at is not a key, and not a typo.
	t.Setenv("SXLAB_GUEST_PASSWORD", "admin")
	cfg := demoConfigAt(t, t.TempDir())
	data, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.Contains(t, string(data), "password: admin")
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(data), "password: admin", "password_env: SXLAB_GUEST_PASSWORD", 1)), 0o644))

	code, out, errs := sxlab(t, "plan", "--config", cfg, "--format", "json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, errs, "sxlab: warning: environment SXLAB_MATRIX_REPAET names no configuration key and is ignored; did you mean SXLAB_MATRIX_REPEAT?")
	assert.Contains(t, errs, "sxlab: warning: environment SXLAB_NOTHING_LIKE_IT names no configuration key and is ignored\n")
	assert.NotContains(t, errs, "SXLAB_GUEST_PASSWORD")
	var p planOut
	require.NoError(t, json.Unmarshal([]byte(out), &p))
	assert.Len(t, p.Attempts, 39, "the plan is the file's: the variable did nothing")

	t.Setenv("SXLAB_MATRIX_REPAET", "")
	t.Setenv("SXLAB_NOTHING_LIKE_IT", "")
	code, _, errs = sxlab(t, "config", "validate", "--config", demoConfig)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, errs, "SXLAB_MATRIX_REPAET", "set but empty is still a typo worth a word")
}

func TestShardsPartitionThePlan(t *testing.T) {
	whole := planJSONOf(t)
	seen := map[string]int{}
	sizes := []int{}
	for _, s := range []string{"1/3", "2/3", "3/3"} {
		p := planJSONOf(t, "--shard", s)
		sizes = append(sizes, len(p.Attempts))
		for _, a := range p.Attempts {
			seen[a.Cell+"/"+string(rune('0'+a.Repeat))]++
		}
	}
	assert.Len(t, seen, len(whole.Attempts), "the union of the shards is the plan")
	for k, n := range seen {
		assert.Equal(t, 1, n, "attempt %s in more than one shard", k)
	}
	assert.Equal(t, []int{13, 13, 13}, sizes)
}

func TestShardFromCIVariables(t *testing.T) {
	t.Setenv("CI_NODE_INDEX", "2")
	t.Setenv("CI_NODE_TOTAL", "3")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"plan", "--config", demoConfig, "--format", "json"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	assert.Contains(t, errb.String(), "taking shard 2/3 from CI_NODE_INDEX/CI_NODE_TOTAL")
	var p planOut
	require.NoError(t, json.Unmarshal(out.Bytes(), &p))
	assert.Len(t, p.Attempts, 13)
}

func TestRepeatFromEnvironmentAndFlag(t *testing.T) {
	t.Setenv("SXLAB_MATRIX_REPEAT", "2")
	assert.Len(t, planJSONOf(t).Attempts, 26, "environment beats the file's repeat 3")
	assert.Len(t, planJSONOf(t, "--repeat", "4").Attempts, 52, "the flag beats the environment")
}

func TestOnlyFilters(t *testing.T) {
	p := planJSONOf(t, "--only", "vpn=running,macos=macos-15.3")
	assert.Len(t, p.Attempts, 6, "2 paths × repeat 3")
	p = planJSONOf(t, "--only", "vpn=running,macos=macos-15.3", "--only", "approval=pending")
	assert.Len(t, p.Attempts, 6+12, "two --only are OR-ed")

	code, _, errs := sxlab(t, "plan", "--config", demoConfig, "--only", "vpn=up")
	assert.Equal(t, 3, code)
	assert.Contains(t, errs, "running, stopped")
}

func TestGitHubMatrix(t *testing.T) {
	code, out, _ := sxlab(t, "plan", "--config", demoConfig, "--format", "github-matrix", "--shards", "3")
	require.Equal(t, 0, code)
	assert.JSONEq(t, `{"include":[{"shard":"1/3"},{"shard":"2/3"},{"shard":"3/3"}]}`, out)

	code, _, errs := sxlab(t, "plan", "--config", demoConfig, "--format", "github-matrix")
	assert.Equal(t, 3, code)
	assert.Contains(t, errs, "--shards")
}

func TestShardByMacOSForRunnerLabels(t *testing.T) {
	code, out, errs := sxlab(t, "plan", "--config", demoConfig, "--format", "github-matrix", "--shards", "6", "--shard-by", "macos")
	require.Equal(t, 0, code, errs)
	assert.JSONEq(t, `{"include":[{"shard":"1/6","macos":"macos-15.3"},{"shard":"2/6","macos":"macos-15.3"},
		{"shard":"3/6","macos":"macos-15.4"},{"shard":"4/6","macos":"macos-15.4"},
		{"shard":"5/6","macos":"macos-15.4-tunnel"},{"shard":"6/6","macos":"macos-15.4-tunnel"}]}`, out)
	for _, s := range []string{"1/6", "3/6"} {
		p := planJSONOf(t, "--shard", s, "--shard-by", "macos")
		assert.Len(t, p.Attempts, 9, "each axis image has 6 cells × 3 repeats over 2 shards")
		want := "macos-15.3"
		if s == "3/6" {
			want = "macos-15.4"
		}
		for _, a := range p.Attempts {
			assert.Equal(t, want, a.Axes["macos"], "shard %s runs on the %s runner only", s, want)
		}
	}

	code, _, errs = sxlab(t, "plan", "--config", demoConfig, "--shard", "1/4", "--shard-by", "macos")
	assert.Equal(t, 3, code)
	assert.Contains(t, errs, "use a multiple of 3")
	code, _, errs = sxlab(t, "plan", "--config", demoConfig, "--shard", "1/2", "--shard-by", "mac")
	assert.Equal(t, 3, code)
	assert.Contains(t, errs, "no such axis (axes: macos, path, vpn, approval)")
}

func TestPlanTable(t *testing.T) {
	code, out, _ := sxlab(t, "plan", "--config", demoConfig, "--shard", "1/3")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "macos=macos-15.3 path=2->3 vpn=running approval=approved")
	assert.Contains(t, out, "13 attempt(s) of 13 cell(s), of a plan of 39 attempts, repeat 3")
}

func TestValidateDemo(t *testing.T) {
	code, out, _ := sxlab(t, "config", "validate", "--config", demoConfig)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "ok: lab example-vpn-upgrades")
	assert.Contains(t, out, "13 cells × 3 = 39 attempts")
}

// brokenConfig has an unknown key on line 12, a missing package and an
// unknown image.
const brokenConfig = `lab:
  name: broken
hosts:
  - {name: local, provider: sim}
images:
  macos-15.3:
    sim: {product_version: "15.3", build: 24D60}
app:
  name: Example VPN
  bundle_id: com.example.vpn
  extension: {bundle_id: com.example.vpn.tunnel, team_id: ABCDE12345, mach_service: X.com.example.vpn.tunnel}
  vpn_servise: Example VPN
  versions:
    "1": {package: gone-1.pkg}
matrix:
  axes:
    macos: [macos-15.3, macos-26.0]
`

func TestValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(brokenConfig), 0o644))
	code, out, errs := sxlab(t, "config", "validate", "--config", path)
	assert.Equal(t, 3, code)
	assert.Empty(t, out)
	assert.Contains(t, errs, path+`:12:3: unknown key "vpn_servise" in app; did you mean "vpn_service"?`)
	assert.Contains(t, errs, path+`:14:20: app.versions.1.package: `+filepath.Join(dir, "gone-1.pkg")+` does not exist`)
	assert.Contains(t, errs, path+`:17:25: matrix.axes.macos[1]: image "macos-26.0" is not defined under images`)
	assert.Contains(t, errs, "3 problem(s) in the configuration")
}

func TestMissingConfigFile(t *testing.T) {
	code, _, errs := sxlab(t, "plan", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
	assert.Equal(t, 3, code)
	assert.Contains(t, errs, "nope.yaml")
}

func TestConfigPrintRedacts(t *testing.T) {
	t.Setenv("SXLAB_LAB_SEED", "42")
	code, out, _ := sxlab(t, "config", "print", "--config", demoConfig)
	require.Equal(t, 0, code)
	assert.NotContains(t, out, "password: admin")
	assert.Contains(t, out, "password: <redacted>")
	assert.Contains(t, out, "seed: 42")
	assert.Contains(t, out, "# lab.seed from SXLAB_LAB_SEED")
}

func TestVersion(t *testing.T) {
	code, out, _ := sxlab(t, "version")
	require.Equal(t, 0, code)
	assert.Contains(t, out, runtime.Version())
	assert.Contains(t, out, runtime.GOOS+"/"+runtime.GOARCH)
	assert.True(t, strings.HasPrefix(out, "sxlab "))
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	code, _, _ := sxlab(t, "frobnicate")
	assert.Equal(t, 3, code)
	code, _, _ = sxlab(t, "plan", "--format", "yaml", "--config", demoConfig)
	assert.Equal(t, 3, code)
}
