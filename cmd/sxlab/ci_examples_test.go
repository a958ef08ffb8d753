package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sxlab/sxlab/lab"
)

// The CI examples are exercised for real: their shell lines run against
// the simulated Macs, with `sxlab` on PATH being this test binary, and the
// CI system's own parts (artifacts, outputs, caches, buildkite-agent)
// played by the test.

// TestMain lets the test binary stand in for the sxlab executable that
// the CI examples' shell lines call.
func TestMain(m *testing.M) {
	if os.Getenv("SXLAB_TEST_AS_CLI") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// ciHost is a fake CI machine: a bin folder with sxlab on it, an
// artifact store and a template workspace holding the demo, made
// instant (time_scale 0) so the whole matrix runs in seconds.
type ciHost struct {
	t         *testing.T
	root      string
	bin       string
	artifacts string
	template  string
}

func newCIHost(t *testing.T) *ciHost {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is needed to run the CI examples' shell lines")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	h := &ciHost{t: t, root: t.TempDir()}
	h.bin = filepath.Join(h.root, "bin")
	h.artifacts = filepath.Join(h.root, "artifacts")
	h.template = filepath.Join(h.root, "template")
	require.NoError(t, os.MkdirAll(h.bin, 0o755))
	require.NoError(t, os.MkdirAll(h.artifacts, 0o755))
	writeExe(t, filepath.Join(h.bin, "sxlab"), fmt.Sprintf("#!/bin/sh\nSXLAB_TEST_AS_CLI=1 exec %q \"$@\"\n", exe))

	src, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	cfg := regexp.MustCompile(`time_scale: [0-9.]+`).ReplaceAllString(string(src), "time_scale: 0")
	require.NotEqual(t, string(src), cfg, "the demo config sets a time_scale")
	require.NoError(t, os.MkdirAll(filepath.Join(h.template, "examples"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(h.template, "config.yaml"), []byte(cfg), 0o644))
	require.NoError(t, os.CopyFS(filepath.Join(h.template, "examples", "pkg"), os.DirFS("../../examples/pkg")))
	return h
}

func writeExe(t *testing.T, path, script string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(script), 0o755))
}

// workspace is a fresh checkout for one job.
func (h *ciHost) workspace(name string) string {
	dir := filepath.Join(h.root, "ws", name)
	require.NoError(h.t, os.CopyFS(dir, os.DirFS(h.template)))
	return dir
}

// sh runs one script the way the CI would (bash, errexit, pipefail) and
// returns its exit code.
func (h *ciHost) sh(dir, script string, env map[string]string) (int, string) {
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + h.bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + h.root}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	require.NoError(h.t, err)
	return 0, out.String()
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	st, err := os.Stat(src)
	if err != nil {
		return
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	if !st.IsDir() {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, b, 0o644))
		return
	}
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
}

// The GitHub Actions workflow, as far as the test needs it.
type ghWorkflow struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]struct {
		Needs    any `yaml:"needs"`
		Strategy struct {
			Matrix any `yaml:"matrix"`
		} `yaml:"strategy"`
		RunsOn any `yaml:"runs-on"`
		Steps  []struct {
			ID   string            `yaml:"id"`
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

var ghExpr = regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)

// ghJob runs the steps of one job in a fresh workspace: run steps through
// bash with ${{ matrix.* }} and ${{ strategy.job-index }} filled in, and
// the actions the workflow uses played by the test. It returns the job's
// outputs (GITHUB_OUTPUT) and step summary.
func (h *ciHost) ghJob(wf ghWorkflow, job string, matrix map[string]string, index int, cache string) (map[string]string, string) {
	t := h.t
	ws := h.workspace(fmt.Sprintf("%s-%d", job, index))
	outFile := filepath.Join(ws, ".github_output")
	summaryFile := filepath.Join(ws, ".github_step_summary")
	env := map[string]string{"GITHUB_OUTPUT": outFile, "GITHUB_STEP_SUMMARY": summaryFile}
	for k, v := range wf.Env {
		env[k] = v
	}
	expand := func(s string) string {
		return ghExpr.ReplaceAllStringFunc(s, func(m string) string {
			expr := ghExpr.FindStringSubmatch(m)[1]
			switch {
			case strings.HasPrefix(expr, "matrix."):
				v, ok := matrix[strings.TrimPrefix(expr, "matrix.")]
				require.True(t, ok, "%s: matrix has no %s", job, expr)
				return v
			case expr == "strategy.job-index":
				return strconv.Itoa(index)
			case expr == "github.run_id":
				return "42"
			}
			t.Fatalf("%s: the test does not know the expression %q", job, expr)
			return ""
		})
	}
	for _, st := range wf.Jobs[job].Steps {
		with := map[string]string{}
		for k, v := range st.With {
			with[k] = expand(v)
		}
		switch {
		case st.Run != "":
			code, out := h.sh(ws, expand(st.Run), env)
			require.Equal(t, 0, code, "%s step %q failed:\n%s", job, st.Run, out)
		case strings.HasPrefix(st.Uses, "actions/checkout@"):
			// the workspace is the checkout
		case strings.HasPrefix(st.Uses, "actions/upload-artifact@"):
			for _, p := range strings.Fields(with["path"]) {
				copyDir(t, filepath.Join(ws, p), filepath.Join(h.artifacts, with["name"], p))
			}
		case strings.HasPrefix(st.Uses, "actions/download-artifact@"):
			entries, err := os.ReadDir(h.artifacts)
			require.NoError(t, err)
			for _, e := range entries {
				if ok, _ := filepath.Match(with["pattern"], e.Name()); ok {
					// One folder per artifact, holding what its path held.
					src := filepath.Join(h.artifacts, e.Name())
					inner, err := os.ReadDir(src)
					require.NoError(t, err)
					require.Len(t, inner, 1)
					copyDir(t, filepath.Join(src, inner[0].Name()), filepath.Join(ws, with["path"], e.Name()))
				}
			}
		case strings.HasPrefix(st.Uses, "actions/cache/restore@"):
			copyDir(t, cache, filepath.Join(ws, with["path"]))
		case strings.HasPrefix(st.Uses, "actions/cache/save@"):
			require.NoError(t, os.RemoveAll(cache))
			copyDir(t, filepath.Join(ws, with["path"]), cache)
		default:
			t.Fatalf("%s: the test does not play the action %q", job, st.Uses)
		}
	}
	outputs := map[string]string{}
	if b, err := os.ReadFile(outFile); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				outputs[k] = v
			}
		}
	}
	summary, _ := os.ReadFile(summaryFile)
	return outputs, string(summary)
}

func finalTotals(t *testing.T, dir string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, lab.JournalFile))
	require.NoError(t, err)
	defer f.Close()
	recs, damage, err := lab.ReadJournal(f)
	require.NoError(t, err)
	require.Empty(t, damage)
	out := map[string]string{}
	for _, c := range lab.Summarise(recs) {
		out[c.Label] = fmt.Sprintf("%s %d/%d", c.Verdict, c.Failures, c.Attempts)
	}
	return out
}

// runFolders lists the run folders under dir/runs.
func runFolders(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(filepath.Join(dir, "runs"))
	require.NoError(t, err)
	for _, e := range entries {
		out = append(out, filepath.Join(dir, "runs", e.Name()))
	}
	return out
}

// unshardedTotals runs the whole demo once, for the shards to be compared
// with.
func (h *ciHost) unshardedTotals() map[string]string {
	ws := h.workspace("unsharded")
	code, out := h.sh(ws, "sxlab run --progress none", nil)
	require.Equal(h.t, 1, code, "the demo has failing cells:\n%s", out)
	runs := runFolders(h.t, ws)
	require.Len(h.t, runs, 1)
	return finalTotals(h.t, runs[0])
}

func TestGitHubActionsExampleRunsOnTheSim(t *testing.T) {
	h := newCIHost(t)
	b, err := os.ReadFile("../../examples/ci/github-actions.yml")
	require.NoError(t, err)
	var wf ghWorkflow
	require.NoError(t, yaml.Unmarshal(b, &wf))
	cache := filepath.Join(h.root, "cache")

	out, _ := h.ghJob(wf, "plan", nil, 0, cache)
	var matrix struct {
		Include []map[string]string `json:"include"`
	}
	require.NoError(t, json.Unmarshal([]byte(out["matrix"]), &matrix), "plan's matrix output: %q", out["matrix"])
	require.Len(t, matrix.Include, 6)
	for i, entry := range matrix.Include {
		assert.NotEmpty(t, entry["macos"], "every shard names its runner label")
		h.ghJob(wf, "lab", entry, i, cache)
	}
	_, summary := h.ghJob(wf, "merge", nil, 0, cache)
	assert.Contains(t, summary, "SIMULATED", "the step summary says the Macs were simulated")

	merged := filepath.Join(h.root, "ws", "merge-0", "merged")
	for _, f := range []string{"report.html", "junit.xml", "summary.md"} {
		assert.FileExists(t, filepath.Join(merged, f))
	}
	assert.Equal(t, h.unshardedTotals(), finalTotals(t, merged), "merged shards agree with one unsharded run")
	assert.FileExists(t, filepath.Join(cache, lab.RunFile), "the merged run became the next baseline")

	// The next night diffs against it (same seed: nothing changed).
	require.NoError(t, os.RemoveAll(h.artifacts))
	require.NoError(t, os.RemoveAll(filepath.Join(h.root, "ws")))
	for i, entry := range matrix.Include {
		h.ghJob(wf, "lab", entry, i, cache)
	}
	h.ghJob(wf, "merge", nil, 0, cache) // fails the test if diff exits non-zero
}

// The Buildkite pipeline, as far as the test needs it.
type bkPipeline struct {
	Env   map[string]string `yaml:"env"`
	Steps []struct {
		Label         string `yaml:"label"`
		Command       string `yaml:"command"`
		Parallelism   int    `yaml:"parallelism"`
		ArtifactPaths string `yaml:"artifact_paths"`
	} `yaml:"steps"`
}

func TestBuildkiteExampleRunsOnTheSim(t *testing.T) {
	h := newCIHost(t)
	b, err := os.ReadFile("../../examples/ci/buildkite.yml")
	require.NoError(t, err)
	var p bkPipeline
	require.NoError(t, yaml.Unmarshal(b, &p))
	annotation := filepath.Join(h.root, "annotation.md")
	// buildkite-agent: artifacts live in the host's store under the
	// paths they were uploaded with.
	writeExe(t, filepath.Join(h.bin, "buildkite-agent"), fmt.Sprintf(`#!/bin/bash
set -e
store=%q
case "$1 $2" in
"artifact download") mkdir -p "$4"; cp -R "$store"/. "$4"/ ;;
"artifact upload") ;;
"annotate "*) cat > %q ;;
*) echo "fake buildkite-agent: unknown $*" >&2; exit 2 ;;
esac
`, h.artifacts, annotation))

	for i, st := range p.Steps {
		if st.Command == "" {
			continue // wait
		}
		n := max(st.Parallelism, 1)
		for job := range n {
			ws := h.workspace(fmt.Sprintf("step%d-%d", i, job))
			env := map[string]string{}
			for k, v := range p.Env {
				env[k] = v
			}
			if st.Parallelism > 0 {
				env["BUILDKITE_PARALLEL_JOB"] = strconv.Itoa(job)
				env["BUILDKITE_PARALLEL_JOB_COUNT"] = strconv.Itoa(n)
			}
			code, out := h.sh(ws, st.Command, env)
			require.Equal(t, 0, code, "step %q job %d:\n%s", st.Label, job, out)
			if st.ArtifactPaths != "" {
				// Uploaded paths keep their names: every shard's runs/<id>.
				root := strings.SplitN(st.ArtifactPaths, "/", 2)[0]
				copyDir(t, filepath.Join(ws, root), filepath.Join(h.artifacts, root))
			}
		}
	}
	merged := filepath.Join(h.root, "ws", fmt.Sprintf("step%d-0", len(p.Steps)-1), "merged")
	require.DirExists(t, merged)
	var shards []string
	require.NoError(t, filepath.WalkDir(h.artifacts, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == lab.RunFile {
			shards = append(shards, filepath.Dir(path))
		}
		return err
	}))
	sort.Strings(shards)
	assert.Len(t, shards, 3, "parallelism 3 made three shards")
	assert.Equal(t, h.unshardedTotals(), finalTotals(t, merged), "three shards merged agree with one unsharded run")
	note, err := os.ReadFile(annotation)
	require.NoError(t, err)
	assert.Contains(t, string(note), "SIMULATED")
}

// TestDiffReportsTheVersionedMachServiceAsAFix runs the demo, then the
// demo with package 4 (Coder Desktop's fix: a versioned Mach service name)
// in place of 3, and diffs them as the nightly gate would.
func TestDiffReportsTheVersionedMachServiceAsAFix(t *testing.T) {
	h := newCIHost(t)
	ws := h.workspace("diff")
	// Paths to version 3 only: 3->5 tests another hazard (package 5
	// keeps package 3's LC_UUID), and package 4 in place of 3 is no fix
	// for it.
	demo, err := os.ReadFile(filepath.Join(ws, "config.yaml"))
	require.NoError(t, err)
	twoPaths := strings.Replace(string(demo), `path: ["2->3", "3->5"]`, `path: ["2->3", "1->3"]`, 1)
	require.NotEqual(t, string(demo), twoPaths)
	require.NoError(t, os.WriteFile(filepath.Join(ws, "config.yaml"), []byte(twoPaths), 0o644))
	code, out := h.sh(ws, "sxlab run --progress none --only vpn=running --only approval=pending", nil)
	require.Equal(t, 1, code, out)
	base := runFolders(t, ws)
	require.Len(t, base, 1)

	cfg, err := os.ReadFile(filepath.Join(ws, "config.yaml"))
	require.NoError(t, err)
	fixed := strings.Replace(string(cfg), "example-vpn-3.pkg", "example-vpn-4.pkg", 1)
	fixed = strings.Replace(fixed, "mach_service: ABCDE12345.com.example.vpn.tunnel\n", "mach_service: ABCDE12345.com.example.vpn.tunnel.{{.Version}}\n", 1)
	require.NotEqual(t, string(cfg), fixed)
	require.NoError(t, os.WriteFile(filepath.Join(ws, "config.yaml"), []byte(fixed), 0o644))
	code, out = h.sh(ws, "sxlab run --progress none --only vpn=running --only approval=pending", nil)
	require.Equal(t, 1, code, "the pending cells still fail (approval-coalesced is not about the Mach service):\n%s", out)
	runs := runFolders(t, ws)
	require.Len(t, runs, 2)
	newRun := runs[0]
	if newRun == base[0] {
		newRun = runs[1]
	}

	code, out = h.sh(ws, fmt.Sprintf("sxlab diff %q %q", base[0], newRun), nil)
	require.Equal(t, 0, code, "nothing newly fails:\n%s", out)
	fixedLines := regexp.MustCompile(`(?m)^\s+FIXED\s+(.*vpn=running.*)$`).FindAllStringSubmatch(out, -1)
	assert.Len(t, fixedLines, 2, "both vpn=running cells (paths 2->3 and 1->3) are fixed:\n%s", out)
	assert.NotContains(t, out, "approval=pending", "the pending cells did not change")
	assert.Contains(t, out, "SIMULATED")

	code, out = h.sh(ws, fmt.Sprintf("sxlab diff %q %q", newRun, base[0]), nil)
	assert.Equal(t, 1, code, "going back to package 3 is the regression the gate catches:\n%s", out)
	assert.Contains(t, out, "NEWLY-FAILING")
}
