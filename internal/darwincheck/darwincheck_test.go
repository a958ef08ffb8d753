package darwincheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixture is the testdata module; see the package comments of its files.
const fixture = "testdata/broken"

// requireGo fails the test, rather than skipping it, when go is missing: a
// check that silently does not run would prove nothing.
func requireGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command must be on PATH for darwincheck (it runs go list): %v", err)
	}
}

// check runs Check and fails the test on an error.
func check(t *testing.T, dir string, patterns ...string) []Problem {
	t.Helper()
	start := time.Now()
	problems, err := Check(t.Context(), dir, patterns...)
	require.NoError(t, err)
	t.Logf("Check(%s, %q) took %v", dir, patterns, time.Since(start).Round(time.Millisecond))
	return problems
}

// TestModuleTypeChecksOnDarwin is the point of this package: the whole
// module, including its darwin/arm64-only files, must type-check.
func TestModuleTypeChecksOnDarwin(t *testing.T) {
	requireGo(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	problems := check(t, root, "./...")
	if len(problems) > 0 {
		var b strings.Builder
		for _, p := range problems {
			b.WriteString(p.String())
			b.WriteByte('\n')
		}
		t.Fatalf("the module does not type-check for GOOS=%s GOARCH=%s CGO_ENABLED=1 (paths relative to %s):\n%s",
			targetOS, targetArch, root, b.String())
	}
}

// where is a problem's file and line, which the fixtures pin down exactly;
// messages are only matched loosely, as go/types may reword them.
type where struct {
	File string
	Line int
}

func wheres(problems []Problem) []where {
	out := make([]where, 0, len(problems))
	for _, p := range problems {
		out = append(out, where{filepath.ToSlash(p.Pos.Filename), p.Pos.Line})
	}
	return out
}

// TestCatchesBrokenDarwinFile checks the whole fixture module at once (each
// Check type-checks vz and the standard library, so one call is cheaper than
// one per package) and pins down every problem in it.
func TestCatchesBrokenDarwinFile(t *testing.T) {
	requireGo(t)
	problems := check(t, fixture, "./...")
	require.Equal(t, []where{
		// The root package: ok.go and vm_darwin.go are fine.
		{"bad_darwin.go", 8},
		{"bad_darwin.go", 9},
		// Test files are checked too.
		{"badtest/answer_darwin_test.go", 8},
		// go list errors, one per bad import; the type checker's "could not
		// import" on the same lines is left out.
		{"missingimport/vm_darwin.go", 6},
		{"missingimport/vm_darwin.go", 7},
	}, wheres(problems), "%v", problems)

	assert.Equal(t, "bad_darwin.go:8:5: undefined: vz.NoSuchFunction", problems[0].String())
	assert.Contains(t, problems[1].Msg, `cannot use "not an int"`)
	assert.Contains(t, problems[1].Msg, "as int value")
	assert.Equal(t, 14, problems[1].Pos.Column)
	assert.Contains(t, problems[2].Msg, "as string value")
	assert.Contains(t, problems[3].Msg, "example.com/broken/nosuch")
	assert.Contains(t, problems[4].Msg, "github.com/sxlab/no-such-module/vm")
}

func TestFinePackageHasNoProblems(t *testing.T) {
	requireGo(t)
	// fine uses vz (with an arm64-only method), cgo and a darwin-only test.
	assert.Empty(t, check(t, fixture, "./fine"))
}

func TestReportsGoListErrors(t *testing.T) {
	requireGo(t)
	problems := check(t, fixture, "./missingimport")
	require.Len(t, problems, 2, "%v", problems)
	for i, path := range []string{"example.com/broken/nosuch", "github.com/sxlab/no-such-module/vm"} {
		assert.Equal(t, where{"missingimport/vm_darwin.go", 6 + i}, wheres(problems)[i])
		assert.Contains(t, problems[i].Msg, path)
	}
}

// The caller's build environment must not change what is checked: Check
// always targets darwin/arm64 with cgo, in module mode, ignoring go.work and
// -mod flags.
func TestIgnoresCallersBuildEnv(t *testing.T) {
	requireGo(t)
	t.Setenv("GOOS", "windows")
	t.Setenv("GOARCH", "386")
	t.Setenv("CGO_ENABLED", "0")
	t.Setenv("GOWORK", filepath.Join(t.TempDir(), "missing.work"))
	t.Setenv("GOFLAGS", "-mod=vendor") // the fixture has no vendor directory
	t.Setenv("GO111MODULE", "off")
	// badtest's error is in a darwin && arm64 file, and badtest only
	// depends on the standard library, which keeps this test fast.
	problems := check(t, fixture, "./badtest")
	assert.Equal(t, []where{{"badtest/answer_darwin_test.go", 8}}, wheres(problems), "%v", problems)
}

func TestCheckErrors(t *testing.T) {
	requireGo(t)
	t.Run("no patterns", func(t *testing.T) {
		_, err := Check(t.Context(), fixture)
		assert.ErrorContains(t, err, "no package patterns")
	})
	t.Run("pattern matches nothing", func(t *testing.T) {
		_, err := Check(t.Context(), fixture, "example.com/broken/nosuch...")
		assert.ErrorContains(t, err, "matched no packages")
	})
	t.Run("missing directory", func(t *testing.T) {
		for _, pattern := range []string{"./nonexistent", "./nonexistent/..."} {
			_, err := Check(t.Context(), fixture, pattern)
			assert.ErrorContains(t, err, pattern)
		}
	})
	t.Run("unknown import path", func(t *testing.T) {
		_, err := Check(t.Context(), fixture, "example.org/not/required")
		assert.ErrorContains(t, err, "example.org/not/required")
	})
	t.Run("not a module", func(t *testing.T) {
		_, err := Check(t.Context(), t.TempDir(), "./...")
		assert.ErrorContains(t, err, "main module")
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Check(ctx, fixture, ".")
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestCheckWithoutGo(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Check(t.Context(), fixture, ".")
	assert.ErrorContains(t, err, "not found on PATH")
}

func TestListEnv(t *testing.T) {
	env := listEnv([]string{
		"HOME=/home/x", "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0",
		"GOWORK=/w/go.work", "GOFLAGS=-tags=foo", "PWD=/elsewhere", "GO111MODULE=off",
	}, "/mod", true)
	got := make(map[string]string)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		_, dup := got[k]
		require.False(t, dup, "duplicate %s in %q", k, env)
		got[k] = v
	}
	assert.Equal(t, map[string]string{
		"HOME": "/home/x", "GOOS": "darwin", "GOARCH": "arm64", "CGO_ENABLED": "1",
		"GOWORK": "off", "GOFLAGS": "-tags=foo", "PWD": "/mod", "GO111MODULE": "on",
	}, got)
}

func TestModFlag(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "a", "b")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644))
	assert.Equal(t, "-mod=readonly", modFlag(sub))

	require.NoError(t, os.MkdirAll(filepath.Join(root, "vendor"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "vendor", "modules.txt"), nil, 0o644))
	assert.Equal(t, "-mod=vendor", modFlag(sub))
	assert.Equal(t, "-mod=vendor", modFlag(root))
}

func TestParsePos(t *testing.T) {
	for in, want := range map[string]where{
		"a/b.go:3:7":       {"a/b.go", 3},
		"a/b.go:3":         {"a/b.go", 3},
		"a/b.go":           {"a/b.go", 0},
		`C:\x\b.go:12:1`:   {`C:\x\b.go`, 12},
		"dir with: colon":  {"dir with: colon", 0},
		"/abs/x_test.go:9": {"/abs/x_test.go", 9},
	} {
		p := parsePos(in)
		assert.Equal(t, want, where{p.Filename, p.Line}, in)
	}
	assert.Equal(t, 7, parsePos("a/b.go:3:7").Column)
}

func TestProblemString(t *testing.T) {
	p := Problem{Msg: "boom"}
	assert.Equal(t, "boom", p.String())
	p.Pos.Filename = "pkg"
	assert.Equal(t, "pkg: boom", p.String())
	p.Pos.Filename, p.Pos.Line, p.Pos.Column = "x.go", 4, 2
	assert.Equal(t, "x.go:4:2: boom", p.String())
}
