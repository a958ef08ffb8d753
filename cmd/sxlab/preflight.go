package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/packages"
)

// Exit code of preflight for a package it cannot read (the usage code,
// as for a configuration that names a file that is not there).
const exitUnreadable = exitUsage

func newPreflightCmd() *cobra.Command {
	var (
		config string
		only   []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Compare the packages of every upgrade path (versions, LC_UUID, Mach service, signing) before a VM boots",
		Long: `preflight reads the real packages (.pkg, .zip, .dmg) of every upgrade
path FROM->TO the matrix uses and prints one row per check: ok, warning or
error, the two builds' values, and where the rule comes from.

Exit status: 0 no error, 1 an error, 3 a package that cannot be read.
A simulated package manifest (.simpkg.json) has nothing to check; it is
listed as not checked.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&config, "config", "", "configuration file (default ./config.yaml, then $XDG_CONFIG_HOME/sxlab/config.yaml)")
	cmd.Flags().StringArrayVar(&only, "only", nil, "keep the paths of cells matching every axis=value of EXPR; repeat to OR")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the rows as JSON")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		l, err := load(config, nil)
		if err != nil {
			return err
		}
		rep, err := preflight(l, only)
		if err != nil {
			return usageError("%v", err)
		}
		out := c.OutOrStdout()
		if asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false) // "2->3", not "2-\u003e3"
			if err := enc.Encode(rep); err != nil {
				return err
			}
		} else {
			writePreflight(out, rep)
		}
		switch {
		case len(rep.Unreadable) > 0:
			return &exitError{code: exitUnreadable, err: fmt.Errorf("preflight: %d package(s) could not be read", len(rep.Unreadable))}
		case rep.Errors > 0:
			return &exitError{code: exitFindings, err: fmt.Errorf("preflight: %d error(s), %d warning(s)", rep.Errors, rep.Warnings)}
		}
		return nil
	}
	return cmd
}

// preflight maps the configuration onto the package reader's checks:
// the upgrade paths of the (--only filtered) plan, each with the images
// it runs on.
func preflight(l *lab.Loaded, only []string) (packages.Report, error) {
	cfg := l.Config
	_, plan, err := l.Plan(lab.PlanOptions{Only: only})
	if err != nil {
		return packages.Report{}, err
	}
	byPath := map[string]*packages.Upgrade{}
	for _, cell := range plan.Cells {
		p := cell.Values[cfg.Matrix.PathAxis]
		from, to, err := lab.ParsePath(p)
		if err != nil {
			return packages.Report{}, fmt.Errorf("cell %s: %w", cell.Label, err)
		}
		u := byPath[p]
		if u == nil {
			u = &packages.Upgrade{Path: p, From: from, To: to, Images: map[string]string{}}
			byPath[p] = u
		}
		if img := cell.Values[cfg.Matrix.ImageAxis]; img != "" {
			version := ""
			if im, ok := cfg.Images[img]; ok && im.Sim != nil {
				version = im.Sim.ProductVersion
			}
			u.Images[img] = version
		}
	}
	keys := make([]string, 0, len(byPath))
	for k := range byPath {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ups := make([]packages.Upgrade, 0, len(keys))
	for _, k := range keys {
		ups = append(ups, *byPath[k])
	}
	sources := map[string]packages.Source{}
	for v, ver := range cfg.App.Versions {
		sources[v] = packages.Source{File: l.Resolve(ver.Package), Kind: ver.Kind}
	}
	e := packages.Expect{AppBundleID: cfg.App.BundleID, ExtBundleID: cfg.App.Extension.BundleID, TeamID: cfg.App.Extension.TeamID, MachService: cfg.App.Extension.MachService}
	return packages.Check(ups, sources, e, packages.Limits{}), nil
}

func writePreflight(out io.Writer, rep packages.Report) {
	if len(rep.Rows) > 0 {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tSTATUS\tCHECK\tFROM\tTO")
		for _, r := range rep.Rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Path, r.Status, r.Check, r.From, r.To)
		}
		tw.Flush()
	}
	var notes []packages.Row
	for _, r := range rep.Rows {
		if r.Status != packages.OK {
			notes = append(notes, r)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(out)
		for _, r := range notes {
			fmt.Fprintf(out, "%s %s %s: %s\n    source: %s\n", r.Path, strings.ToUpper(string(r.Status)), r.Check, r.Message, r.Source)
		}
	}
	for _, p := range rep.NotChecked {
		fmt.Fprintf(out, "\nversion %s not checked: %s\n", p.Version, p.Reason)
	}
	for _, p := range rep.Unreadable {
		fmt.Fprintf(out, "\nversion %s UNREADABLE: %s\n", p.Version, p.Reason)
	}
	fmt.Fprintf(out, "\n%s\n", preflightLine(rep))
}

// preflightLine sums a report up in one line.
func preflightLine(rep packages.Report) string {
	paths := map[string]bool{}
	for _, r := range rep.Rows {
		paths[r.Path] = true
	}
	s := fmt.Sprintf("preflight: %d path(s) checked, %d row(s): %d error(s), %d warning(s)", len(paths), len(rep.Rows), rep.Errors, rep.Warnings)
	if n := len(rep.NotChecked); n > 0 {
		s += fmt.Sprintf("; %d version(s) not checked (simulated manifests)", n)
	}
	if n := len(rep.Unreadable); n > 0 {
		s += fmt.Sprintf("; %d package(s) unreadable", n)
	}
	return s
}
