package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sxlab/sxlab/packages"
)

// Preflight in the reports: what `sxlab run` found in the packages before
// the first attempt (run.json's "preflight"). Its errors are product
// hazards seen before any VM booted, so the header shows them first; they
// never change a cell's verdict, which is what the lab saw.

// Preflight states, also the class of the header's block.
const (
	pfNotRun     = "not-run"     // run.json has no preflight (an older sxlab, or it could not run)
	pfNotChecked = "not-checked" // every package was a simulated manifest
	pfClean      = "clean"       // every check ok
	pfWarning    = "warning"     // warnings, or a package that could not be read
	pfError      = "error"       // at least one error
)

// preflightView is the header's preflight block and summary.md's section.
type preflightView struct {
	State    string
	Errors   int
	Warnings int
	OK       int // checks ok
	Checks   int
	// Paths are the upgrade paths with a warning or an error, in the
	// report's order, each with only those rows.
	Paths []preflightPath
	// NotChecked and Unreadable are the versions without rows, and why.
	NotChecked []packages.Problem
	Unreadable []packages.Problem
}

// preflightPath is one upgrade path's warnings and errors.
type preflightPath struct {
	Path     string // "2->3"
	From, To string // the versions, for the evidence's columns
	Rows     []packages.Row
}

// newPreflightView sums up run.json's preflight; nil means not run.
func newPreflightView(rep *packages.Report) preflightView {
	if rep == nil {
		return preflightView{State: pfNotRun}
	}
	v := preflightView{Checks: len(rep.Rows), NotChecked: rep.NotChecked, Unreadable: rep.Unreadable}
	byPath := map[string]int{}
	for _, r := range rep.Rows {
		switch r.Status {
		case packages.Error:
			v.Errors++
		case packages.Warning:
			v.Warnings++
		default:
			v.OK++
			continue
		}
		i, ok := byPath[r.Path]
		if !ok {
			from, to, _ := strings.Cut(r.Path, "->")
			i = len(v.Paths)
			byPath[r.Path] = i
			v.Paths = append(v.Paths, preflightPath{Path: r.Path, From: from, To: to})
		}
		v.Paths[i].Rows = append(v.Paths[i].Rows, r)
	}
	for _, p := range v.Paths {
		// Errors first: they are what a reader must not miss.
		slices.SortStableFunc(p.Rows, func(a, b packages.Row) int {
			return cmp.Compare(errorFirst(a.Status), errorFirst(b.Status))
		})
	}
	switch {
	case v.Errors > 0:
		v.State = pfError
	case v.Warnings > 0 || len(v.Unreadable) > 0:
		v.State = pfWarning
	case v.Checks == 0 && len(v.NotChecked) > 0:
		v.State = pfNotChecked
	default:
		v.State = pfClean
	}
	return v
}

// Line is the block's one-line summary.
func (v preflightView) Line() string {
	switch v.State {
	case pfNotRun:
		return "preflight: not run"
	case pfNotChecked:
		return "preflight: packages were simulated manifests, not checked"
	}
	var parts []string
	if v.Errors > 0 || v.Warnings > 0 {
		parts = append(parts, counted(v.Errors, "error")+", "+counted(v.Warnings, "warning")+fmt.Sprintf(" (%d of %d checks ok)", v.OK, v.Checks))
	} else if v.Checks > 0 {
		parts = append(parts, counted(v.Checks, "check")+" ok")
	}
	if n := len(v.Unreadable); n > 0 {
		parts = append(parts, counted(n, "package")+" unreadable")
	}
	if n := len(v.NotChecked); n > 0 {
		parts = append(parts, counted(n, "version")+" not checked (simulated manifests)")
	}
	if len(parts) == 0 {
		// A report without paths: nothing in the matrix to compare.
		return "preflight: no upgrade path to check"
	}
	return "preflight: " + strings.Join(parts, "; ")
}

// Hazard is what the block says about errors: the lab's verdicts stand,
// and so do these.
func (v preflightView) Hazard() string {
	if v.Errors == 0 {
		return ""
	}
	return "Found in the packages before any VM booted: a real product hazard in what you ship, whatever the cells below say. " +
		"Preflight never changes a cell's verdict; sxlab preflight shows every check."
}

func errorFirst(s packages.Status) int {
	if s == packages.Error {
		return 0
	}
	return 1
}

// counted is "1 error", "2 errors".
func counted(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
