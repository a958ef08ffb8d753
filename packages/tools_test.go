package packages

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// needTool returns the path of an outside tool, or skips the test; in CI
// (CI=true), where .ci/run installs it, a missing tool fails the test.
func needTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing in CI: %s", name, hint)
	}
	t.Skipf("%s is missing (%s); skipped", name, hint)
	return ""
}

// sh runs a shell command in dir and fails the test on error.
func sh(t *testing.T, dir, cmd string) {
	t.Helper()
	c := exec.Command("sh", "-c", cmd)
	c.Dir = dir
	out, err := c.CombinedOutput()
	require.NoError(t, err, "%s\n%s", cmd, out)
}

var goMachO struct {
	once sync.Once
	dir  string
	err  error
	out  string
}

// goDarwinBinaryFor builds the same tiny main for another darwin
// architecture (not cached: one test uses it).
func goDarwinBinaryFor(t *testing.T, goarch string) string {
	t.Helper()
	goDarwinBinary(t)
	out := filepath.Join(t.TempDir(), "tunnel-"+goarch)
	c := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "main.go")
	c.Dir = goMachO.dir
	c.Env = append(os.Environ(), "GOOS=darwin", "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
	b, err := c.CombinedOutput()
	require.NoError(t, err, "%s", b)
	return out
}

// goDarwinBinary builds a tiny main for darwin/arm64 with the Go
// toolchain (once per test binary) and returns its path: a Mach-O this
// project did not write, with the linker's LC_UUID, LC_BUILD_VERSION and
// ad-hoc signature.
func goDarwinBinary(t *testing.T) string {
	t.Helper()
	goMachO.once.Do(func() {
		goMachO.dir, goMachO.err = os.MkdirTemp("", "sxlab-gomacho-")
		if goMachO.err != nil {
			return
		}
		src := filepath.Join(goMachO.dir, "main.go")
		goMachO.err = os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"tunnel\") }\n"), 0o644)
		if goMachO.err != nil {
			return
		}
		gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		c := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", "tunnel", "main.go")
		c.Dir = goMachO.dir
		c.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
		out, err := c.CombinedOutput()
		goMachO.err, goMachO.out = err, strings.TrimSpace(string(out))
	})
	require.NoError(t, goMachO.err, goMachO.out)
	return filepath.Join(goMachO.dir, "tunnel")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if goMachO.dir != "" {
		os.RemoveAll(goMachO.dir)
	}
	os.Exit(code)
}
