package guestbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("..")
	require.NoError(t, err)
	return r
}

func TestBuildsTheProbeOnceIntoTheCache(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the probe")
	}
	cache := t.TempDir()
	b := &Builder{CacheDir: cache} // Source found from this file's checkout
	p, err := b.Path(t.Context(), Probe)
	require.NoError(t, err)
	require.NoError(t, CheckExecutable(p), "the lab uploads only what a Mac runs")
	requireShippable(t, p, ModulePath+"/cmd/sxlab-probe/main.go")
	assert.Equal(t, cache, filepath.Dir(p))
	assert.Contains(t, filepath.Base(p), "sxlab-probe-darwin-arm64-")
	st, err := os.Stat(p)
	require.NoError(t, err)

	again, err := b.Path(t.Context(), Probe)
	require.NoError(t, err)
	assert.Equal(t, p, again)

	// Another run (another Builder) with the same sources finds the file
	// and does not build: a go command that cannot build proves it.
	other := &Builder{CacheDir: cache, Go: fakeGo(t, "go1.fake")}
	_, err = other.Path(t.Context(), Probe)
	require.Error(t, err, "another Go version is another key")
	real, err := exec.LookPath("go")
	require.NoError(t, err)
	third := &Builder{CacheDir: cache, Go: real}
	p3, err := third.Path(t.Context(), Probe)
	require.NoError(t, err)
	assert.Equal(t, p, p3)
	st3, err := os.Stat(p3)
	require.NoError(t, err)
	assert.Equal(t, st.ModTime(), st3.ModTime(), "a cached build is not rebuilt")
	left, _ := filepath.Glob(filepath.Join(cache, "*.tmp"))
	assert.Empty(t, left, "no temporary files are left behind")
}

// fakeGo is a go command that answers `go env GOVERSION` and fails to build.
func fakeGo(t *testing.T, version string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "go")
	script := "#!/bin/sh\nif [ \"$1\" = env ]; then echo " + version + "; exit 0; fi\necho 'build refused' >&2; exit 1\n"
	require.NoError(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

func TestBuildFailureNamesTheProgramAndIsRemembered(t *testing.T) {
	b := &Builder{CacheDir: t.TempDir(), Go: fakeGo(t, "go1.fake"), Source: root(t)}
	_, err := b.Path(t.Context(), Probe)
	require.Error(t, err)
	assert.ErrorContains(t, err, "building sxlab-probe for darwin/arm64")
	assert.ErrorContains(t, err, "build refused")
	_, err2 := b.Path(t.Context(), Probe)
	assert.Equal(t, err, err2, "a run does not retry a failed build for every attempt")
}

func TestNoCheckoutSaysHowToProvideTheProgram(t *testing.T) {
	b := &Builder{Source: t.TempDir(), CacheDir: t.TempDir()}
	_, err := b.Path(t.Context(), Probe)
	require.Error(t, err)
	assert.ErrorContains(t, err, "no checkout of github.com/sxlab/sxlab")
	assert.ErrorContains(t, err, `GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" ./cmd/sxlab-probe`)
}

func TestPrebuiltMustBeAnArm64MachO(t *testing.T) {
	self, err := os.Executable() // an ELF (or whatever this host runs)
	require.NoError(t, err)
	b := &Builder{Prebuilt: map[string]string{Probe: self}}
	_, err = b.Path(t.Context(), Probe)
	require.Error(t, err)
	assert.ErrorContains(t, err, "prebuilt sxlab-probe "+self)
	assert.ErrorContains(t, err, "not a Mach-O file")

	_, err = b.Path(t.Context(), "bash")
	assert.ErrorContains(t, err, `"bash" is not a guest program`)
}

func TestSourceHashFollowsTheProgramsFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
	}
	write("go.mod", "module "+ModulePath+"\n")
	write("go.sum", "")
	write("cmd/sxlab-probe/main.go", "package main\n")
	write("cmd/sxlab-probe/schema/schema.go", "package schema\n")
	write("lab/lab.go", "package lab\n")
	h1, err := SourceHash(dir, Probe, "go1.26")
	require.NoError(t, err)
	write("lab/lab.go", "package lab // edited\n")
	h2, err := SourceHash(dir, Probe, "go1.26")
	require.NoError(t, err)
	assert.Equal(t, h1, h2, "the rest of the module is not the probe's")
	write("cmd/sxlab-probe/schema/schema.go", "package schema // edited\n")
	h3, err := SourceHash(dir, Probe, "go1.26")
	require.NoError(t, err)
	assert.NotEqual(t, h1, h3)
	h4, err := SourceHash(dir, Probe, "go1.27")
	require.NoError(t, err)
	assert.NotEqual(t, h3, h4)
}

// TestGuestProgramsImportNothingElseOfTheModule keeps SourceHash honest:
// the key covers cmd/PROGRAM only.
func TestGuestProgramsImportNothingElseOfTheModule(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err)
	for _, program := range []string{Probe, Agent} {
		if _, err := os.Stat(filepath.Join(root(t), "cmd", program)); err != nil {
			t.Fatalf("cmd/%s is missing: %v", program, err)
		}
		cmd := exec.CommandContext(t.Context(), goCmd, "list", "-deps", "-f", "{{.ImportPath}}", "./cmd/"+program)
		cmd.Dir = root(t)
		cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		for _, pkg := range strings.Fields(string(out)) {
			if pkg == ModulePath || strings.HasPrefix(pkg, ModulePath+"/") {
				assert.True(t, pkg == ModulePath+"/cmd/"+program || strings.HasPrefix(pkg, ModulePath+"/cmd/"+program+"/"),
					"%s imports %s, outside cmd/%s: SourceHash would miss its edits", program, pkg, program)
			}
		}
	}
}

// BenchmarkPathCacheHit is what every run after the first pays for its
// probe: go env GOVERSION, hashing the sources, a stat and a Mach-O check.
func BenchmarkPathCacheHit(b *testing.B) {
	cache := b.TempDir()
	if _, err := (&Builder{CacheDir: cache}).Path(b.Context(), Probe); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := (&Builder{CacheDir: cache}).Path(b.Context(), Probe); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPathBuild is a run's first probe on a machine whose Go build
// cache already holds the probe's packages: a cross-link.
func BenchmarkPathBuild(b *testing.B) {
	for b.Loop() {
		if _, err := (&Builder{CacheDir: b.TempDir()}).Path(b.Context(), Probe); err != nil {
			b.Fatal(err)
		}
	}
}

// image warm uploads what this builds into every agent golden.
func TestBuildsTheAgentForTheGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the agent")
	}
	b := &Builder{CacheDir: t.TempDir()}
	p, err := b.Path(t.Context(), Agent)
	require.NoError(t, err)
	require.NoError(t, CheckExecutable(p), "a darwin/arm64 executable, as launchd will run it")
	requireShippable(t, p, ModulePath+"/cmd/sxlab-agent/main.go")
	assert.Contains(t, filepath.Base(p), "sxlab-agent-darwin-arm64-")
}
