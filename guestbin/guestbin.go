// Package guestbin gets the programs that run inside a macOS guest
// (cmd/sxlab-probe, cmd/sxlab-agent) to the lab as darwin/arm64 files,
// so that a user never cross-compiles them by hand.
//
// The lab builds them on demand with the user's own Go toolchain, from
// the checkout sxlab itself runs from, into a cache keyed by a hash of
// the program's sources, go.mod, go.sum and the Go version. Why this and
// not a committed binary behind //go:embed:
//   - sxlab is run from a checkout (`go run ./cmd/sxlab run`), so a Go
//     toolchain and the sources are always there; the cross-build needs
//     no C toolchain (the programs are CGO_ENABLED=0, purego).
//   - a committed binary goes stale the moment someone edits the probe
//     without regenerating it, and a test that compares it byte for byte
//     fails under every other Go release; building from source cannot
//     drift, and the cache makes every run after the first free.
//   - the cache is shared by concurrent runs: files are written under a
//     temporary name and renamed into place.
//
// Where no checkout is found (an installed sxlab), a prebuilt file can be
// named instead (Builder.Prebuilt); it is checked to be an arm64 Mach-O
// executable like a built one.
package guestbin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/macho"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// ModulePath is the module whose checkout holds the guest programs.
const ModulePath = "github.com/sxlab/sxlab"

// The programs that run in the guest.
const (
	Probe = "sxlab-probe"
	Agent = "sxlab-agent"
)

// Builder finds or builds guest programs. Its zero value works from a
// checkout; it is safe for concurrent use and builds each program once.
type Builder struct {
	// Source is the module's root directory; "" means the checkout this
	// sxlab was built from, else the one around the working directory.
	Source string
	// CacheDir holds the built files; "" means sxlab/guestbin under the
	// user's cache directory.
	CacheDir string
	// Go is the go command; "" looks it up on PATH.
	Go string
	// Prebuilt maps a program to a file to use instead of building it
	// (an empty path is ignored).
	Prebuilt map[string]string

	mu   sync.Mutex
	done map[string]result
}

type result struct {
	path string
	err  error
}

// Path returns a local darwin/arm64 executable of program (Probe or
// Agent), building it the first time.
func (b *Builder) Path(ctx context.Context, program string) (string, error) {
	if program != Probe && program != Agent {
		return "", fmt.Errorf("guestbin: %q is not a guest program (%s, %s)", program, Probe, Agent)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.done[program]; ok {
		return r.path, r.err
	}
	path, err := b.path(ctx, program)
	if ctx.Err() == nil { // an interrupted build is not an answer
		if b.done == nil {
			b.done = map[string]result{}
		}
		b.done[program] = result{path, err}
	}
	return path, err
}

func (b *Builder) path(ctx context.Context, program string) (string, error) {
	if p := b.Prebuilt[program]; p != "" {
		if err := CheckExecutable(p); err != nil {
			return "", fmt.Errorf("prebuilt %s %s: %w", program, p, err)
		}
		return p, nil
	}
	src, err := b.source(program)
	if err != nil {
		return "", err
	}
	goCmd := b.Go
	if goCmd == "" {
		if goCmd, err = exec.LookPath("go"); err != nil {
			return "", fmt.Errorf("building %s for the guest needs the go command: %w", program, err)
		}
	}
	goVersion, err := output(ctx, goCmd, src, "env", "GOVERSION")
	if err != nil {
		return "", fmt.Errorf("building %s: %w", program, err)
	}
	key, err := SourceHash(src, program, goVersion)
	if err != nil {
		return "", fmt.Errorf("building %s: %w", program, err)
	}
	cache := b.CacheDir
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("building %s: no cache directory: %w", program, err)
		}
		cache = filepath.Join(base, "sxlab", "guestbin")
	}
	final := filepath.Join(cache, program+"-darwin-arm64-"+key[:16])
	if CheckExecutable(final) == nil {
		return final, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("building %s: %w", program, err)
	}
	tmp, err := os.CreateTemp(cache, program+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("building %s: %w", program, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // after a successful rename: a no-op
	args := append(append([]string{"build"}, BuildFlags()...), "-o", tmp.Name(), "./cmd/"+program)
	if _, err := output(ctx, goCmd, src, args...); err != nil {
		return "", fmt.Errorf("building %s for darwin/arm64 in %s: %w", program, src, err)
	}
	if err := CheckExecutable(tmp.Name()); err != nil {
		return "", fmt.Errorf("building %s: the go command's output is %w", program, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", fmt.Errorf("building %s: %w", program, err)
	}
	return final, nil
}

// BuildFlags are the go build flags of every guest program. -trimpath
// keeps the builder's paths out of the file. -ldflags=-s -w drop the
// symbol table and DWARF: the probe, uploaded in every attempt, is 2.5 MB
// instead of 3.7 MB. What stays is what a Mac and a reader of a panic
// need: the linker still signs the file ad hoc (LC_CODE_SIGNATURE; Apple
// silicon kills unsigned code) and keeps the pclntab, from which the
// runtime prints function names, files and lines in a panic's trace.
// Only a debugger (lldb, dlv) loses its DWARF. A test checks all three.
func BuildFlags() []string { return []string{"-trimpath", "-ldflags=-s -w"} }

// output runs the go command for darwin/arm64 without cgo in dir.
func output(ctx context.Context, goCmd, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	// The module's own go.mod decides, not a go.work found above it.
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0", "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// source finds the module root that holds cmd/program.
func (b *Builder) source(program string) (string, error) {
	var tried []string
	candidates := []string{b.Source}
	if b.Source == "" {
		candidates = nil
		// Where this file was compiled from: the checkout `go run` uses.
		// Under -trimpath the name is not a path and is skipped.
		if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
			candidates = append(candidates, filepath.Dir(filepath.Dir(file)))
		}
		if wd, err := os.Getwd(); err == nil {
			for d := wd; ; d = filepath.Dir(d) {
				if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
					candidates = append(candidates, d)
					break
				}
				if filepath.Dir(d) == d {
					break
				}
			}
		}
	}
	for _, dir := range candidates {
		if err := isCheckout(dir, program); err != nil {
			tried = append(tried, err.Error())
			continue
		}
		return dir, nil
	}
	if len(tried) == 0 {
		tried = append(tried, "no go.mod above the working directory")
	}
	return "", fmt.Errorf("cannot build %s: no checkout of %s found (%s); run sxlab from a checkout, or give a prebuilt file made with `GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -w\" ./cmd/%s`",
		program, ModulePath, strings.Join(tried, "; "), program)
}

func isCheckout(dir, program string) error {
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	first, _, _ := strings.Cut(string(mod), "\n")
	if strings.TrimSpace(first) != "module "+ModulePath {
		return fmt.Errorf("%s is not %s", dir, ModulePath)
	}
	if _, err := os.Stat(filepath.Join(dir, "cmd", program)); err != nil {
		return fmt.Errorf("%s has no cmd/%s", dir, program)
	}
	return nil
}

// SourceHash is the cache key of program: every file under cmd/program
// (its sources and its own packages), go.mod, go.sum, the Go version and
// BuildFlags (a file built with other flags is another file).
// A guest program must import nothing else of the module, or an edit
// there would not rebuild it; a test holds the programs to that.
func SourceHash(root, program, goVersion string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00darwin/arm64\x00%s\x00%q\x00", program, goVersion, BuildFlags())
	var files []string
	dir := filepath.Join(root, "cmd", program)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	files = append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	for _, p := range files {
		rel, _ := filepath.Rel(root, p)
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckExecutable says whether path is what a Mac with Apple silicon runs:
// a thin arm64 Mach-O executable (or a universal file with an arm64
// slice). The simulated Mac applies the same rule.
func CheckExecutable(path string) error {
	if f, err := macho.OpenFat(path); err == nil {
		defer f.Close()
		for _, a := range f.Arches {
			if a.Cpu == macho.CpuArm64 && a.Type == macho.TypeExec {
				return nil
			}
		}
		return errors.New("a universal Mach-O without an arm64 executable")
	}
	f, err := macho.Open(path)
	if err != nil {
		var fe *macho.FormatError
		if errors.As(err, &fe) {
			return fmt.Errorf("not a Mach-O file (%v)", err)
		}
		return err
	}
	defer f.Close()
	if f.Cpu != macho.CpuArm64 {
		return fmt.Errorf("a Mach-O for %v, not arm64", f.Cpu)
	}
	if f.Type != macho.TypeExec {
		return fmt.Errorf("a Mach-O of type %v, not an executable", f.Type)
	}
	return nil
}
