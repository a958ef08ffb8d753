package lab

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/sxlab/sxlab/packages"
	"github.com/sxlab/sxlab/steps"
)

// Applies reports whether a `when` filter lets a step or probe run in a
// cell: every named axis must have one of the listed values.
func Applies(when map[string][]string, cell map[string]string) bool {
	for axis, values := range when {
		if !slices.Contains(values, cell[axis]) {
			return false
		}
	}
	return true
}

// StepsApp describes the app for the steps, with each version's package
// resolved to a local path and the extension's version and the receipt
// id read from the package itself (the packages reader), so probes can
// check what the guest shows against what was shipped. A package the
// reader cannot read leaves them unknown: preflight reports it, and it
// is no reason not to run, since the lab is what tests the upgrade.
func (l *Loaded) StepsApp() (steps.App, error) {
	a := l.Config.App
	out := steps.App{
		Name: a.Name, BundleID: a.BundleID, Path: a.Path, VPNService: a.VPNService,
		Extension: steps.Extension{BundleID: a.Extension.BundleID, TeamID: a.Extension.TeamID, MachService: a.Extension.MachService},
		Versions:  map[string]steps.Version{},
	}
	for id, v := range a.Versions {
		sv := steps.Version{ID: id, Package: l.Resolve(v.Package), Kind: v.Kind}
		_ = readVersion(&sv, a.BundleID, a.Extension.BundleID)
		out.Versions[id] = sv
	}
	return out, nil
}

// readVersion fills in what the package says of the extension's version
// and its receipt.
func readVersion(sv *steps.Version, appID, extID string) error {
	pkg, err := packages.OpenAs(sv.Package, sv.Kind, packages.Limits{})
	if err != nil {
		return fmt.Errorf("read package: %w", err)
	}
	ident, err := packages.IdentityOf(pkg, appID, extID)
	if err != nil {
		return fmt.Errorf("package %s: %w", sv.Package, err)
	}
	sv.ExtShort, sv.ExtBuild = ident.Extension.ShortVersion, ident.Extension.Version
	if app, err := pkg.App(appID); err == nil {
		for _, c := range pkg.Components {
			if loc := strings.TrimSuffix(c.InstallLocation, "/") + "/"; strings.HasPrefix(app.Path, loc) && c.ID != "" {
				sv.PackageID = c.ID
				break
			}
		}
	}
	return nil
}

// CellImage names the image a cell runs on: matrix.image rendered over
// the cell's axes when set, else the value of the image axis.
func (c *Config) CellImage(cell map[string]string) (string, error) {
	name, err := c.ImageNamer()
	if err != nil {
		return "", err
	}
	return name(cell)
}

// ImageNamer is CellImage with matrix.image parsed once, for naming the
// image of many cells: at 100,000 cells, parsing the template per cell
// was most of `sxlab plan`'s time. When the template reads the cell only
// as .Axis.NAME, one rendering per combination of those axes' values
// serves every cell that has it.
func (c *Config) ImageNamer() (func(cell map[string]string) (string, error), error) {
	if c.Matrix.Image == "" {
		axis := c.Matrix.ImageAxis
		return func(cell map[string]string) (string, error) { return cell[axis], nil }, nil
	}
	t, err := template.New("matrix.image").Option("missingkey=error").Parse(c.Matrix.Image)
	if err != nil {
		return nil, fmt.Errorf("matrix.image: %w", err)
	}
	render := func(cell map[string]string) (string, error) {
		var b strings.Builder
		if err := t.Execute(&b, struct{ Axis map[string]string }{cell}); err != nil {
			return "", fmt.Errorf("matrix.image: %w", err)
		}
		return strings.TrimSpace(b.String()), nil
	}
	axes, ok := axisFields(t.Root)
	if !ok {
		return render, nil
	}
	memo := map[string]string{}
	var key []byte
	return func(cell map[string]string) (string, error) {
		key = key[:0]
		for _, a := range axes {
			v, present := cell[a]
			if !present {
				// missingkey=error words this; no memo for errors.
				return render(cell)
			}
			key = append(append(key, v...), 0)
		}
		if name, ok := memo[string(key)]; ok {
			return name, nil
		}
		name, err := render(cell)
		if err != nil {
			return "", err
		}
		memo[string(key)] = name
		return name, nil
	}, nil
}

// axisFields lists the NAMEs of every .Axis.NAME in a template, and
// whether that is all it reads of its data: anything else (.Axis whole,
// $, index, a variable) makes the result depend on more than those axes.
func axisFields(root *parse.ListNode) ([]string, bool) {
	seen := map[string]bool{}
	var names []string
	ok := true
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		if n == nil || !ok {
			return
		}
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			if len(n.Decl) > 0 {
				ok = false
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			if len(n.Ident) < 2 || n.Ident[0] != "Axis" {
				ok = false
				return
			}
			if !seen[n.Ident[1]] {
				seen[n.Ident[1]] = true
				names = append(names, n.Ident[1])
			}
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TextNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode, *parse.IdentifierNode:
		default:
			// range, with, template, variables, dot, chains: not worth
			// reasoning about; render every cell.
			ok = false
		}
	}
	walk(root)
	return names, ok
}

// SessionStep is the label of the check every attempt starts with.
const SessionStep = "0 session"

// CellSteps returns the steps a cell runs, in order, with `when` applied.
// Every cell starts by checking the image's user is logged in to the GUI:
// without the session, launch, approval and probes would all fail and
// read as the product's failures.
func (c *Config) CellSteps(cell map[string]string) ([]steps.Step, error) {
	out := []steps.Step{steps.SessionCheck{Label: SessionStep}}
	for i, s := range c.Scenario {
		if !Applies(s.When, cell) {
			continue
		}
		kinds := s.Kinds()
		if len(kinds) != 1 {
			return nil, fmt.Errorf("scenario[%d]: expected one step kind, found %d", i, len(kinds))
		}
		label := s.Name
		if label == "" {
			label = fmt.Sprintf("%d %s", i+1, kinds[0])
		}
		timeout := time.Duration(s.Timeout)
		var st steps.Step
		switch {
		case s.Install != nil:
			st = steps.Install{Label: label, Version: s.Install.Version}
		case s.Upgrade != nil:
			st = steps.Upgrade{Label: label, Version: s.Upgrade.Version, Before: s.Upgrade.Before}
		case s.Launch != nil:
			st = steps.Launch{Label: label, Wait: time.Duration(s.Launch.Wait)}
		case s.Quit != nil:
			st = steps.Quit{Label: label, Wait: time.Duration(s.Quit.Wait)}
		case s.WaitExtension != nil:
			st = steps.WaitExtension{Label: label, State: s.WaitExtension.State, Version: s.WaitExtension.Version, Timeout: timeout}
		case s.Approve != nil:
			st = steps.Approve{Label: label, Strategy: s.Approve.Strategy, What: s.Approve.What, Script: s.Approve.Run}
			if st.(steps.Approve).Strategy == "prompt" {
				st = steps.Approve{Label: label, Strategy: "ui", What: s.Approve.What}
			}
		case s.VPN != nil:
			st = steps.VPN{Label: label, Action: s.VPN.Action, Timeout: timeout}
		case s.Reboot != nil:
			st = steps.Reboot{Label: label, Wait: time.Duration(s.Reboot.Wait)}
		case s.Shell != nil:
			sh := steps.Shell{Label: label, Line: s.Shell.Run}
			if s.Shell.Sudo {
				sh.Line = "sudo " + sh.Line
			}
			if s.Shell.ExpectExit != nil {
				sh.ExpectExit = *s.Shell.ExpectExit
			}
			if s.Shell.ExpectStdout != "" {
				re, err := regexp.Compile(s.Shell.ExpectStdout)
				if err != nil {
					return nil, fmt.Errorf("scenario[%d].shell.expect_stdout: %w", i, err)
				}
				sh.ExpectStdout = re
			}
			st = sh
		case s.Sleep != nil:
			st = steps.Sleep{Label: label, For: time.Duration(s.Sleep.For)}
		case s.Probe != nil:
			names := s.Probe.Probes
			if len(names) == 0 {
				for _, p := range c.Probes {
					names = append(names, p.Name)
				}
			}
			var applicable []string
			for _, n := range names {
				if p, ok := c.probe(n); ok && Applies(p.When, cell) {
					applicable = append(applicable, n)
				}
			}
			st = steps.RunProbes{Label: label, Names: applicable}
		}
		// wait-extension and vpn give the product their timeout to reach a
		// state (missing it is a fail); past it and a grace for the last
		// check, a hung command is the lab's error, as in every step.
		if s.WaitExtension != nil || s.VPN != nil {
			st = steps.WithTimeoutGrace(st, label, timeout, pollGrace)
		} else {
			st = steps.WithTimeout(st, label, timeout)
		}
		out = append(out, st)
	}
	return out, nil
}

// pollGrace is how long a polling step (wait-extension, vpn) may go on
// past its timeout for the check at the deadline to answer.
const pollGrace = 30 * time.Second

func (c *Config) probe(name string) (Probe, bool) {
	for _, p := range c.Probes {
		if p.Name == name {
			return p, true
		}
	}
	return Probe{}, false
}

// StepsProbes converts the probes section for the steps.
func (c *Config) StepsProbes() (map[string]steps.Probe, error) {
	out := map[string]steps.Probe{}
	for _, p := range c.Probes {
		sp := steps.Probe{Kind: p.Kind, State: p.State, Version: p.Version, Old: p.Old, Service: p.Service,
			Expect: p.Expect, Line: p.Run, Timeout: time.Duration(p.Timeout)}
		if p.ExpectExit != nil {
			sp.ExpectExit = *p.ExpectExit
		}
		if p.ExpectStdout != "" {
			re, err := regexp.Compile(p.ExpectStdout)
			if err != nil {
				return nil, fmt.Errorf("probe %s: expect_stdout: %w", p.Name, err)
			}
			sp.ExpectStdout = re
		}
		out[p.Name] = sp
	}
	return out, nil
}
