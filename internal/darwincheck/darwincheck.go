// Package darwincheck type-checks Go code for darwin/arm64 with cgo enabled
// while running on any platform, so that code behind `//go:build darwin &&
// arm64` (for example code using Apple's Virtualization.framework through
// github.com/Code-Hex/vz/v3) is verified by a plain `go test ./...` on Linux.
//
// It asks `go list` for the darwin/arm64 file selection and type-checks those
// files from source with go/types. Nothing is compiled and no C toolchain is
// needed: files that import "C" are checked with types.Config.FakeImportC.
package darwincheck

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The target that the checked code is built for.
const (
	targetOS   = "darwin"
	targetArch = "arm64"
)

// Problem is one error found in the checked module: a type error, a syntax
// error or a `go list` error (such as an import that no module provides).
type Problem struct {
	// Pos locates the problem. Filename is relative to the directory given to
	// Check when the file lies inside it, so output is stable across
	// checkouts; Line and Column are 0 when unknown.
	Pos token.Position
	Msg string
}

// String formats p as "file:line:col: msg", the form editors and CI logs
// recognise.
func (p Problem) String() string {
	if !p.Pos.IsValid() && p.Pos.Filename == "" {
		return p.Msg
	}
	return p.Pos.String() + ": " + p.Msg
}

// Check loads every package matching patterns in the module rooted at dir for
// GOOS=darwin GOARCH=arm64 CGO_ENABLED=1, type-checks them (with their test
// files) and their dependencies from source with go/types (FakeImportC for cgo
// files), and returns the problems located in the module's own packages,
// sorted by position.
//
// Type errors in dependencies are ignored: dependencies are checked without
// function bodies, for speed, and under FakeImportC every C.xxx has an invalid
// type, which makes cgo-heavy code such as vz's own function bodies report
// spurious conversion errors. `go list` errors that the module's packages see
// (their own, or those of packages they import, such as an import that no
// required module provides) are reported, as `go build` would fail on them.
//
// The returned error is for failures to run the check at all (no go command,
// a broken go.mod, patterns that match no package of the module, a cancelled
// ctx), never for problems in the checked code.
func Check(ctx context.Context, dir string, patterns ...string) ([]Problem, error) {
	return checkFor(ctx, dir, true, patterns)
}

// CheckPureGo is Check for code built with CGO_ENABLED=0, as the guest
// programs (cmd/sxlab-probe, cmd/sxlab-agent) are: the file selection
// then differs (purego, for one, swaps in its fakecgo runtime), so a
// check with cgo on does not prove that build.
func CheckPureGo(ctx context.Context, dir string, patterns ...string) ([]Problem, error) {
	return checkFor(ctx, dir, false, patterns)
}

func checkFor(ctx context.Context, dir string, cgo bool, patterns []string) ([]Problem, error) {
	if len(patterns) == 0 {
		return nil, errors.New("darwincheck: no package patterns given")
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("darwincheck: resolving directory %q: %w", dir, err)
	}
	pkgs, err := goList(ctx, absDir, cgo, patterns)
	if err != nil {
		return nil, err
	}
	c := &checker{dir: absDir, fset: token.NewFileSet(), sizes: types.SizesFor("gc", targetArch)}
	if c.sizes == nil {
		// Cannot happen with the gc compiler's table, but must not panic.
		return nil, fmt.Errorf("darwincheck: no type sizes for gc/%s", targetArch)
	}
	nodes, err := c.run(ctx, pkgs)
	if err != nil {
		return nil, err
	}
	return c.problems(nodes), nil
}

// checker holds the state of one Check call.
type checker struct {
	dir   string // absolute directory given to Check
	fset  *token.FileSet
	sizes types.Sizes
}

// node is one package in the type-checking graph. done is closed once the
// fields below it are final; nothing may read them before.
type node struct {
	pkg  *listedPackage
	deps []*node // imports listed before this package
	done chan struct{}

	types *types.Package
	// Syntax and type errors; collected for main-module packages only.
	syntaxProblems, typeProblems []Problem
}

// run type-checks all packages, each as soon as its dependencies are done,
// using up to GOMAXPROCS goroutines at a time.
func (c *checker) run(ctx context.Context, pkgs []*listedPackage) ([]*node, error) {
	nodes := make([]*node, len(pkgs))
	index := make(map[string]int, len(pkgs))
	for i, p := range pkgs {
		nodes[i] = &node{pkg: p, done: make(chan struct{})}
		index[p.ImportPath] = i
	}
	for i, n := range nodes {
		for _, imp := range n.pkg.Imports {
			// `go list -deps` prints dependencies first. Waiting only on
			// earlier packages keeps the wait graph acyclic even when the
			// code has an import cycle (which go list reports as an error).
			if j, ok := index[imp]; ok && j < i {
				n.deps = append(n.deps, nodes[j])
			}
		}
	}

	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	// withSlot runs f holding a slot of sem; false if ctx ended first.
	withSlot := func(f func()) bool {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		defer func() { <-sem }()
		if ctx.Err() != nil {
			return false
		}
		f()
		return true
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(n.done)
			var files []*ast.File
			// Parse while dependencies may still be checking.
			if !withSlot(func() { files, n.syntaxProblems = c.parse(n.pkg) }) {
				return
			}
			for _, d := range n.deps {
				select {
				case <-d.done:
				case <-ctx.Done():
					return
				}
			}
			withSlot(func() { n.types, n.typeProblems = c.typeCheck(n, files) })
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("darwincheck: type-checking interrupted: %w", err)
	}
	return nodes, nil
}

// parse parses the package's files for the target, as selected by go list.
// Syntax errors are returned as problems for main-module packages only.
func (c *checker) parse(p *listedPackage) ([]*ast.File, []Problem) {
	var files []*ast.File
	var problems []Problem
	names := append(append([]string(nil), p.GoFiles...), p.CgoFiles...)
	for _, name := range names {
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.Dir, name)
		}
		// Comments are not needed: //go:build Go versions are recorded in
		// ast.File.GoVersion regardless, and cgo preambles are not used.
		f, err := parser.ParseFile(c.fset, path, nil, parser.SkipObjectResolution)
		if err != nil && p.inMainModule() {
			var list scanner.ErrorList
			if errors.As(err, &list) {
				for _, e := range list {
					problems = append(problems, c.problemAt(e.Pos, e.Msg))
				}
			} else {
				problems = append(problems, c.problemAt(token.Position{Filename: path}, err.Error()))
			}
		}
		if f != nil {
			// A partial AST still lets the rest of the package be checked.
			files = append(files, f)
		}
	}
	return files, problems
}

// typeCheck type-checks n's files: fully for main-module packages, and only
// declarations (not function bodies, errors ignored) for dependencies.
func (c *checker) typeCheck(n *node, files []*ast.File) (pkg *types.Package, problems []Problem) {
	p := n.pkg
	main := p.inMainModule()
	defer func() {
		// A go/types bug must not take the whole test binary down with it.
		// Without a package, importers of this one report it.
		if r := recover(); r != nil {
			pkg = nil
			if main {
				problems = append(problems, Problem{
					Pos: token.Position{Filename: c.rel(p.Dir)},
					Msg: fmt.Sprintf("internal error: go/types panicked: %v", r),
				})
			}
		}
	}()
	conf := types.Config{
		Importer: &importer{pkg: p, deps: n.deps},
		// FakeImportC only where cgo is used: it makes every C.xxx valid but
		// of invalid type, which can hide or cause errors elsewhere.
		FakeImportC:      len(p.CgoFiles) > 0,
		IgnoreFuncBodies: !main,
		Sizes:            c.sizes,
		GoVersion:        p.goVersion(),
		// A non-nil Error makes the checker go on after the first error.
		Error: func(err error) {
			if !main {
				return
			}
			var terr types.Error
			if errors.As(err, &terr) {
				problems = append(problems, c.problemAt(terr.Fset.Position(terr.Pos), terr.Msg))
				return
			}
			problems = append(problems, Problem{Pos: token.Position{Filename: c.rel(p.Dir)}, Msg: err.Error()})
		},
	}
	// Check's error is the first one already passed to conf.Error.
	pkg, _ = conf.Check(p.ImportPath, c.fset, files, nil)
	return pkg, problems
}

// problemAt makes a Problem, expressing the file relative to c.dir.
func (c *checker) problemAt(pos token.Position, msg string) Problem {
	pos.Filename = c.rel(pos.Filename)
	pos.Offset = 0 // not shown, and would make equal problems differ
	return Problem{Pos: pos, Msg: msg}
}

// rel returns path (absolute or relative to c.dir) relative to c.dir if it
// lies inside it, and as an absolute path otherwise.
func (c *checker) rel(path string) string {
	if path == "" {
		return ""
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(c.dir, path)
	}
	r, err := filepath.Rel(c.dir, path)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return path
	}
	return r
}

// problems gathers the problems of main-module packages, sorted by position
// and without duplicates (a dependency's go list error shows up in the
// DepsErrors of every package that imports it, and files are checked again
// in test variants). Like the compiler, it leaves out errors that only
// follow from ones already reported.
func (c *checker) problems(nodes []*node) []Problem {
	var all []Problem
	for _, n := range nodes {
		p := n.pkg
		if !p.inMainModule() {
			continue
		}
		for _, e := range append([]*listError{p.Error}, p.DepsErrors...) {
			if e == nil {
				continue
			}
			pos := token.Position{Filename: p.Dir}
			if e.Pos != "" {
				pos = parsePos(e.Pos)
			}
			all = append(all, c.problemAt(pos, e.Err))
		}
		switch {
		case len(n.syntaxProblems) > 0:
			// The parser's recovery makes type errors after a syntax
			// error unreliable.
			all = append(all, n.syntaxProblems...)
		case p.Error != nil:
			// The package itself is malformed (mixed package names, an
			// import cycle...): go build stops there too.
		default:
			for _, tp := range n.typeProblems {
				// An import fails only when go list could not load the
				// package, which DepsErrors already reports.
				if len(p.DepsErrors) > 0 && strings.HasPrefix(tp.Msg, "could not import ") {
					continue
				}
				all = append(all, tp)
			}
		}
	}
	return sortProblems(all)
}

// importer resolves the imports of one package to already checked packages,
// applying the package's ImportMap (vendored std packages, for example
// "golang.org/x/net/dns/dnsmessage" → "vendor/golang.org/x/net/dns/dnsmessage").
type importer struct {
	pkg  *listedPackage
	deps []*node
}

func (im *importer) Import(path string) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	if mapped, ok := im.pkg.ImportMap[path]; ok {
		path = mapped
	}
	for _, d := range im.deps {
		if d.pkg.ImportPath == path {
			if d.types == nil {
				break
			}
			return d.types, nil
		}
	}
	// go list reports why (a missing package, an import cycle).
	return nil, fmt.Errorf("no type information for %s", path)
}

// parsePos parses a go list error position ("file:line:col", "file:line" or
// "file"), with file relative to the go list working directory.
func parsePos(s string) token.Position {
	var pos token.Position
	rest := s
	var nums []int
	for range 2 {
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			break
		}
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil {
			break
		}
		nums = append([]int{n}, nums...)
		rest = rest[:i]
	}
	pos.Filename = rest
	if len(nums) > 0 {
		pos.Line = nums[0]
	}
	if len(nums) > 1 {
		pos.Column = nums[1]
	}
	return pos
}

// sortProblems sorts by file, line, column and message, and drops duplicates.
func sortProblems(ps []Problem) []Problem {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Pos.Filename != b.Pos.Filename {
			return a.Pos.Filename < b.Pos.Filename
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Column != b.Pos.Column {
			return a.Pos.Column < b.Pos.Column
		}
		return a.Msg < b.Msg
	})
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}
