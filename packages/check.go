package packages

import (
	"errors"
	"sort"
)

// Upgrade is one upgrade path of the matrix.
type Upgrade struct {
	Path     string // "2->3"
	From, To string // version keys
	// Images are the macOS versions of the images this path runs on, by
	// image name ("" when unknown).
	Images map[string]string
}

// Report is preflight over every upgrade path.
type Report struct {
	Rows []Row `json:"rows"`
	// NotChecked lists versions whose package is a simulated manifest:
	// there is nothing in them to check.
	NotChecked []Problem `json:"not_checked,omitempty"`
	// Unreadable lists packages that could not be read.
	Unreadable []Problem `json:"unreadable,omitempty"`
	Errors     int       `json:"errors"`
	Warnings   int       `json:"warnings"`
	// Identities are each read version's app and extension as the
	// package holds them (versions, LC_UUIDs, team, signing): what a bug
	// report names as "both builds", kept in run.json with the rows.
	Identities map[string]Identity `json:"identities,omitempty"`
}

// Problem is a version whose package could not be checked.
type Problem struct {
	Version string `json:"version"`
	File    string `json:"file"`
	Reason  string `json:"reason"`
}

// Source is where a version's package is.
type Source struct {
	File string
	Kind string // pkg, zip, dmg; "" means by the file's name
}

// Check reads each version's package once (sources maps version keys
// to their packages) and runs Preflight on every upgrade. A path with a
// package that is unreadable or simulated has no rows; the Report says
// why.
func Check(ups []Upgrade, sources map[string]Source, e Expect, lim Limits) Report {
	var rep Report
	pkgs := map[string]*Package{}
	failed := map[string]bool{}
	var versions []string
	for _, u := range ups {
		versions = append(versions, u.From, u.To)
	}
	sort.Strings(versions)
	for _, v := range versions {
		if pkgs[v] != nil || failed[v] {
			continue
		}
		src := sources[v]
		p, err := OpenAs(src.File, src.Kind, lim)
		switch {
		case errors.Is(err, ErrSimulated):
			failed[v] = true
			rep.NotChecked = append(rep.NotChecked, Problem{Version: v, File: src.File, Reason: err.Error()})
		case err != nil:
			failed[v] = true
			rep.Unreadable = append(rep.Unreadable, Problem{Version: v, File: src.File, Reason: err.Error()})
		default:
			pkgs[v] = p
			if id, err := IdentityOf(p, e.AppBundleID, e.ExtBundleID); err == nil {
				if rep.Identities == nil {
					rep.Identities = map[string]Identity{}
				}
				rep.Identities[v] = id
			}
		}
	}
	for _, u := range ups {
		if failed[u.From] || failed[u.To] {
			continue
		}
		ex := e
		ex.Images = u.Images
		for _, r := range Preflight(u.Path, Build{Version: u.From, Package: pkgs[u.From]}, Build{Version: u.To, Package: pkgs[u.To]}, ex) {
			switch r.Status {
			case Error:
				rep.Errors++
			case Warning:
				rep.Warnings++
			}
			rep.Rows = append(rep.Rows, r)
		}
	}
	return rep
}
