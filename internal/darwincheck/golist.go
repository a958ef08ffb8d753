package darwincheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// listedPackage is the part of `go list -json` output that Check uses.
type listedPackage struct {
	Dir        string
	ImportPath string
	Name       string
	ForTest    string // for test variants: the package under test
	Standard   bool
	Module     *listedModule
	Match      []string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string          // resolved import paths (after ImportMap)
	ImportMap  map[string]string // source import path → resolved path
	Error      *listError
	DepsErrors []*listError
}

type listedModule struct {
	Path      string
	Main      bool
	GoVersion string
}

type listError struct {
	ImportStack []string
	Pos         string // "file:line:col", relative to the go list directory
	Err         string
}

// listFields names the fields requested from go list; asking only for these
// keeps the output small.
var listFields = []string{
	"Dir", "ImportPath", "Name", "ForTest", "Standard", "Module", "Match",
	"GoFiles", "CgoFiles", "Imports", "ImportMap", "Error", "DepsErrors",
}

func (p *listedPackage) inMainModule() bool {
	return p.Module != nil && p.Module.Main
}

// goVersion is the language version for go/types: the one its module's go.mod
// declares. Standard-library packages have no module; "" lets go/types use
// its own (the toolchain's) version.
func (p *listedPackage) goVersion() string {
	if p.Module == nil || p.Module.GoVersion == "" {
		return ""
	}
	return "go" + p.Module.GoVersion
}

// goList runs `go list -e -json -deps` for the target platform (with or
// without cgo) in dir and returns the packages in go list's order
// (dependencies first).
func goList(ctx context.Context, dir string, cgo bool, patterns []string) ([]*listedPackage, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("darwincheck: the go command is needed to list packages but was not found on PATH: %w", err)
	}
	args := []string{
		// -test adds the test variants of the matched packages, so that
		// darwin-only _test.go files are checked too.
		"list", "-e", "-deps", "-test",
		"-json=" + strings.Join(listFields, ","),
		// -compiled is deliberately absent: it would run cgo, which needs a
		// darwin C toolchain.
		modFlag(dir),
		"--",
	}
	args = append(args, patterns...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	cmd.Env = listEnv(os.Environ(), dir, cgo)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("darwincheck: go list interrupted: %w", ctxErr)
		}
		return nil, fmt.Errorf("darwincheck: go %s in %s: %w\n%s",
			strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []*listedPackage
	dec := json.NewDecoder(&stdout)
	for {
		p := new(listedPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("darwincheck: decoding go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	matched := false
	forTest := make(map[string]bool)
	var patternErrs []error
	for _, p := range pkgs {
		matched = matched || len(p.Match) > 0
		if p.ForTest != "" {
			forTest[p.ForTest] = true
		}
		// A pattern that resolves to no package of the main module (a
		// missing directory, a dir outside the module, an unknown import
		// path) means the check cannot run as asked; reporting it as a
		// problem would mix it up with the module's own errors, and
		// ignoring it would let a test pass vacuously.
		if len(p.Match) > 0 && p.Error != nil && !p.inMainModule() {
			patternErrs = append(patternErrs, fmt.Errorf("%s: %s", strings.Join(p.Match, ", "), p.Error.Err))
		}
	}
	if len(patternErrs) > 0 {
		return nil, fmt.Errorf("darwincheck: go list in %s could not load the requested packages: %w", dir, errors.Join(patternErrs...))
	}
	if !matched {
		// Otherwise a mistyped pattern would make a test pass vacuously.
		return nil, fmt.Errorf("darwincheck: patterns %q matched no packages in %s\n%s",
			patterns, dir, strings.TrimSpace(stderr.String()))
	}
	// Drop the generated test main packages ("p.test", whose only file is
	// in the build cache): they are not the module's code.
	kept := pkgs[:0]
	for _, p := range pkgs {
		// (Only those: a main package under test, such as a command with
		// tests, has ForTest "" too and is the module's code.)
		if p.ForTest == "" && p.Name == "main" && strings.HasSuffix(p.ImportPath, ".test") && forTest[strings.TrimSuffix(p.ImportPath, ".test")] {
			continue
		}
		kept = append(kept, p)
	}
	return kept, nil
}

// listEnv returns env with the settings that make go list describe a
// darwin/arm64 build of the module in dir, with cgo or without, whatever
// the caller's environment says.
func listEnv(env []string, dir string, cgo bool) []string {
	cgoEnabled := "0"
	if cgo {
		cgoEnabled = "1"
	}
	override := map[string]string{
		"GOOS":        targetOS,
		"GOARCH":      targetArch,
		"CGO_ENABLED": cgoEnabled,
		// The module's own go.mod decides, not a go.work found above it.
		"GOWORK":      "off",
		"GO111MODULE": "on",
		// os/exec does not update an inherited PWD when cmd.Dir is set.
		"PWD": dir,
	}
	out := make([]string, 0, len(env)+len(override))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := override[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range override {
		out = append(out, k+"="+v)
	}
	// GOFLAGS (from the environment or `go env -w`) is kept: a -mod flag
	// in it is overridden by modFlag's command-line flag, which takes
	// precedence, and other flags (-tags, -buildvcs, ...) still apply.
	return out
}

// modFlag picks the -mod mode explicitly, so that a GOFLAGS=-mod=mod cannot
// make a test rewrite go.mod and a stray -mod=vendor cannot fail a module
// without a vendor directory: vendor when the module vendors its
// dependencies, readonly otherwise.
func modFlag(dir string) string {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "vendor", "modules.txt")); err == nil {
				return "-mod=vendor"
			}
			return "-mod=readonly"
		}
		parent := filepath.Dir(d)
		if parent == d {
			// No go.mod: go list will say so itself.
			return "-mod=readonly"
		}
		d = parent
	}
}
