package lab

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/internal/strictyaml"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/steps"
)

// applyDefaults fills the defaults of keys inside lists and maps, which the
// environment cannot reach and viper therefore does not layer.
func applyDefaults(c *Config) {
	for i := range c.Hosts {
		if c.Hosts[i].Slots == 0 {
			c.Hosts[i].Slots = 1
		}
	}
	for name, img := range c.Images {
		if img.User == "" {
			img.User = "admin"
		}
		c.Images[name] = img
	}
	if c.App.Path == "" && c.App.Name != "" {
		c.App.Path = "/Applications/" + c.App.Name + ".app"
	}
	for id, v := range c.App.Versions {
		if v.Kind == "" {
			v.Kind = kindFromPackage(v.Package)
		}
		c.App.Versions[id] = v
	}
	for i := range c.Probes {
		if c.Probes[i].Kind == "" {
			c.Probes[i].Kind = c.Probes[i].Name
		}
	}
}

func kindFromPackage(p string) string {
	switch lower := strings.ToLower(p); {
	case strings.HasSuffix(lower, ".dmg"):
		return "dmg"
	case strings.HasSuffix(lower, ".zip"):
		return "zip"
	}
	return "pkg"
}

// PathSep separates the two versions of an upgrade path: "1->3".
const PathSep = "->"

// ParsePath splits "1->3" into its versions.
func ParsePath(s string) (from, to string, err error) {
	from, to, ok := strings.Cut(s, PathSep)
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	if !ok || from == "" || to == "" || strings.Contains(to, PathSep) {
		return "", "", fmt.Errorf("%q is not an upgrade path (write it like \"1->3\": from version 1 to version 3)", s)
	}
	if from == to {
		return "", "", fmt.Errorf("%q upgrades a version to itself", s)
	}
	return from, to, nil
}

var (
	teamIDRe   = regexp.MustCompile(`^[A-Z0-9]{10}$`)
	bundleIDRe = regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`)
)

// validate cross-checks the decoded configuration. Every problem is
// collected; none stops the others from being found.
func (l *Loaded) validate() Problems {
	c := &l.Config
	var ps Problems
	add := func(p Problem) { ps = append(ps, p) }
	oneOf := func(path, what, val string, allowed []string) {
		if !slices.Contains(allowed, val) {
			add(l.at(path, "%s: %s %q is not one of %s", path, what, val, strings.Join(allowed, ", ")))
		}
	}

	// lab
	if strings.TrimSpace(c.Lab.Name) == "" {
		add(l.at("lab.name", "lab.name: must not be empty"))
	}
	if strings.TrimSpace(c.Lab.RunsDir) == "" {
		add(l.at("lab.runs_dir", "lab.runs_dir: must not be empty"))
	}
	for _, t := range []struct {
		key string
		d   Duration
	}{{"lab.timeouts.boot", c.Lab.Timeouts.Boot}, {"lab.timeouts.command", c.Lab.Timeouts.Command}} {
		if t.d <= 0 {
			add(l.at(t.key, "%s: must be more than 0: it bounds a wait that would otherwise have no end (write it like 10m)", t.key))
		}
	}

	// hosts
	if len(c.Hosts) == 0 {
		add(l.at("hosts", "hosts: at least one host is needed (for a first run: - {name: local, provider: sim, slots: 2})"))
	}
	hostNames := map[string]bool{}
	for i, h := range c.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if h.Name == "" {
			add(l.at(p, "%s: name is missing", p))
		} else if hostNames[h.Name] {
			add(l.at(p+".name", "%s.name: host %q is listed twice", p, h.Name))
		}
		hostNames[h.Name] = true
		if h.Provider == "" {
			add(l.at(p, "%s: provider is missing (one of %s)", p, strings.Join(Providers(), ", ")))
		} else {
			oneOf(p+".provider", "provider", h.Provider, Providers())
		}
		if h.Slots < 1 {
			add(l.at(p+".slots", "%s.slots: must be at least 1", p))
		}
		if (h.Provider == ProviderVZ || h.Provider == ProviderTart) && h.Slots > MaxMacOSGuests {
			add(l.at(p+".slots", "%s.slots: %d is more than %d: the macOS licence lets one host run at most %d macOS guests at once (Virtualization.framework refuses more with VZErrorVirtualMachineLimitExceeded); shard the plan across hosts instead", p, h.Slots, MaxMacOSGuests, MaxMacOSGuests))
		}
		if h.Provider == ProviderSSH && h.Slots > 1 {
			add(l.at(p+".slots", "%s.slots: %d is more than 1: an existing Mac runs one attempt at a time (each attempt resets the whole Mac); list each further Mac as a host of its own", p, h.Slots))
		}
		for name, set := range map[string]bool{ProviderSim: h.Sim != nil, ProviderVZ: h.VZ != nil, ProviderTart: h.Tart != nil, ProviderSSH: h.SSH != nil} {
			if set && name != h.Provider && h.Provider != "" {
				add(l.atKey(p+"."+name, "%s.%s: options for provider %s on a host whose provider is %s", p, name, name, h.Provider))
			}
		}
		if h.Sim != nil && h.Sim.TimeScale != nil && *h.Sim.TimeScale < 0 {
			add(l.at(p+".sim.time_scale", "%s.sim.time_scale: must be 0 (instant) or more", p))
		}
		if h.Provider == ProviderSSH {
			if h.SSH == nil || h.SSH.Address == "" {
				add(l.at(p, "%s: an ssh host needs ssh.address", p))
			} else {
				if err := checkSSHAddress(h.SSH.Address); err != nil {
					add(l.at(p+".ssh.address", "%s.ssh.address: %v", p, err))
				}
				ps = append(ps, l.checkAuth(p+".ssh.auth", h.SSH.Auth)...)
			}
		}
	}

	// images
	if len(c.Images) == 0 {
		add(l.at("images", "images: at least one image is needed"))
	}
	// An ssh host boots nothing: its image only names the Mac's macOS
	// and may give the login, so it needs no source; checkProviders
	// still asks other hosts' sources of it.
	onlySSH := len(c.Hosts) > 0 && !slices.ContainsFunc(c.Hosts, func(h Host) bool { return h.Provider != ProviderSSH })
	for _, name := range sortedKeys(c.Images) {
		img := c.Images[name]
		p := "images." + name
		if img.Sim == nil && img.VZ == nil && img.Tart == nil && !onlySSH {
			add(l.at(p, "%s: no source: give sim, vz or tart", p))
		}
		if s := img.Sim; s != nil {
			if s.ProductVersion == "" {
				add(l.at(p+".sim", "%s.sim.product_version: missing (the macOS version the sim reports, e.g. \"15.3\")", p))
			}
			if s.Build == "" {
				add(l.at(p+".sim", "%s.sim.build: missing (the macOS build the sim reports, e.g. 24D60)", p))
			}
			seen := map[string]bool{}
			for j, f := range s.Faults {
				fp := fmt.Sprintf("%s.sim.faults[%d]", p, j)
				if _, ok := simFaults[f.Name]; !ok {
					add(l.at(fp, "%s: unknown fault %q (known: %s)", fp, f.Name, strings.Join(SimFaults(), ", ")))
				} else if seen[f.Name] {
					add(l.at(fp, "%s: fault %q is listed twice", fp, f.Name))
				}
				seen[f.Name] = true
				if f.Probability != nil && (*f.Probability <= 0 || *f.Probability > 1) {
					add(l.at(fp+".probability", "%s.probability: must be above 0 and at most 1", fp))
				}
			}
			if g := s.Golden; g != nil && g.MDM != nil {
				gp := p + ".sim.golden.mdm"
				for j, pol := range g.MDM.SystemExtensionPolicies {
					pp := fmt.Sprintf("%s.system_extension_policies[%d]", gp, j)
					if !simTeamID.MatchString(pol.Team) {
						add(l.at(pp+".team", "%s.team: %q is not a team ID (10 uppercase letters or digits): the policy allows the extensions of this developer team", pp, pol.Team))
					}
				}
				for j, vp := range g.MDM.VPN {
					pp := fmt.Sprintf("%s.vpn[%d]", gp, j)
					if vp.Name == "" || vp.Provider == "" {
						add(l.at(pp, "%s: give name (the configuration's name) and provider (the extension's bundle ID)", pp))
					}
				}
			}
		}
		if v := img.VZ; v != nil {
			switch {
			case v.Bundle == "" && len(v.Bundles) == 0:
				add(l.at(p+".vz", "%s.vz.bundle: missing (the golden bundle's name or path; or bundles, a list of warm goldens)", p))
			case v.Bundle != "" && len(v.Bundles) > 0:
				add(l.at(p+".vz.bundles", "%s.vz: give bundle or bundles, not both", p))
			}
			seen := map[string]bool{}
			for j, b := range v.Bundles {
				bp := fmt.Sprintf("%s.vz.bundles[%d]", p, j)
				switch {
				case strings.TrimSpace(b) == "":
					add(l.at(bp, "%s: empty (a golden bundle's name or path)", bp))
				case seen[b]:
					add(l.at(bp, "%s: %q is listed twice; each warm golden restores into one clone at a time, so a pool needs distinct bundles", bp, b))
				}
				seen[b] = true
			}
		}
		for j, c := range img.Prepare {
			if strings.TrimSpace(c) == "" {
				cp := fmt.Sprintf("%s.prepare[%d]", p, j)
				add(l.at(cp, "%s: empty command", cp))
			}
		}
		if len(img.Prepare) > 0 && img.VZ == nil {
			add(l.at(p+".prepare", "%s.prepare: only vz images are warmed (sxlab image warm); give %s.vz or drop prepare", p, p))
		}
		if img.Tart != nil && img.Tart.VM == "" {
			add(l.at(p+".tart", "%s.tart.vm: missing (the tart VM to clone)", p))
		}
		ps = append(ps, l.checkAuth(p+".auth", img.Auth)...)
	}

	// app
	a := c.App
	if a.Name == "" {
		add(l.at("app", "app.name: missing (the app's name, e.g. \"Example VPN\")"))
	}
	if a.BundleID == "" {
		add(l.at("app", "app.bundle_id: missing"))
	} else if !bundleIDRe.MatchString(a.BundleID) {
		add(l.at("app.bundle_id", "app.bundle_id: %q is not a bundle identifier (like com.example.vpn)", a.BundleID))
	}
	if a.Extension.BundleID == "" {
		add(l.at("app.extension", "app.extension.bundle_id: missing"))
	} else if !bundleIDRe.MatchString(a.Extension.BundleID) {
		add(l.at("app.extension.bundle_id", "app.extension.bundle_id: %q is not a bundle identifier", a.Extension.BundleID))
	}
	if a.Extension.TeamID == "" {
		add(l.at("app.extension", "app.extension.team_id: missing (the 10-character Developer Team ID)"))
	} else if !teamIDRe.MatchString(a.Extension.TeamID) {
		add(l.at("app.extension.team_id", "app.extension.team_id: %q is not a Team ID (10 upper-case letters and digits)", a.Extension.TeamID))
	}
	if a.Extension.MachService == "" {
		add(l.at("app.extension", "app.extension.mach_service: missing (the Mach service the app connects to, e.g. TEAMID.com.example.vpn.tunnel)"))
	} else if err := checkTemplate(a.Extension.MachService, machServiceData()); err != nil {
		add(l.at("app.extension.mach_service", "app.extension.mach_service: %v", err))
	}
	if len(a.Versions) == 0 {
		add(l.at("app", "app.versions: at least one version is needed"))
	}
	for _, id := range sortedKeys(a.Versions) {
		v := a.Versions[id]
		p := "app.versions." + id
		if id == "" || strings.Contains(id, PathSep) {
			add(l.atKey(p, "%s: a version id must not be empty nor contain %q", p, PathSep))
		}
		if v.Package == "" {
			add(l.at(p, "%s.package: missing (the package file of this version)", p))
		} else if abs := l.Resolve(v.Package); !fileExists(abs) {
			add(l.at(p+".package", "%s.package: %s does not exist (relative paths are taken from the configuration's folder %s)", p, abs, l.Dir))
		}
		oneOf(p+".kind", "kind", v.Kind, packageKinds)
	}

	// matrix
	m := c.Matrix
	if len(m.Axes) == 0 {
		add(l.at("matrix", "matrix.axes: at least one axis is needed"))
	}
	if m.Repeat < 1 {
		add(l.at("matrix.repeat", "matrix.repeat: must be at least 1"))
	}
	axisValues := map[string][]string{}
	for _, ax := range m.Axes {
		axisValues[ax.Name] = ax.Values
		if len(ax.Values) == 0 {
			add(l.at("matrix.axes."+ax.Name, "matrix.axes.%s: an axis needs at least one value", ax.Name))
		}
	}
	checkValue := func(path, key, val string) {
		switch key {
		case m.ImageAxis:
			if m.Image != "" {
				return // matrix.image names the images; checked per cell below
			}
			if _, ok := c.Images[val]; !ok {
				add(l.at(path, "%s: image %q is not defined under images (defined: %s)", path, val, strings.Join(sortedKeys(c.Images), ", ")))
			}
		case m.PathAxis:
			from, to, err := ParsePath(val)
			if err != nil {
				add(l.at(path, "%s: %v", path, err))
				return
			}
			for _, v := range []string{from, to} {
				if _, ok := a.Versions[v]; !ok {
					add(l.at(path, "%s: upgrade path %q names version %q, which is not under app.versions (defined: %s)", path, val, v, strings.Join(sortedKeys(a.Versions), ", ")))
				}
			}
		}
	}
	for _, ax := range m.Axes {
		for j, v := range ax.Values {
			checkValue(fmt.Sprintf("matrix.axes.%s[%d]", ax.Name, j), ax.Name, v)
		}
	}
	// The matrix is expanded once here; Loaded.Plan uses these cells.
	spec := c.MatrixSpec()
	cells, cellsErr := matrices.Cells(spec)
	if cellsErr == nil {
		l.cells, l.cellsOf = cells, spec
	}
	cellImages, imgProblems := l.checkCellImages(cells, cellsErr)
	ps = append(ps, imgProblems...)
	if m.Image != "" {
		ps = append(ps, l.checkProviders(slices.Sorted(maps.Keys(cellImages)))...)
	} else {
		ps = append(ps, l.checkProviders(axisValues[m.ImageAxis])...)
	}
	if m.Image == "" && m.ImageAxis != "" && axisValues[m.ImageAxis] == nil && len(c.Images) > 1 {
		add(l.at("matrix", "matrix: no axis %q picks the image, and there are %d images; add the axis or set matrix.image_axis", m.ImageAxis, len(c.Images)))
	}
	if m.PathAxis != "" && axisValues[m.PathAxis] == nil && scenarioUsesPath(c.Scenario) {
		add(l.at("matrix", "matrix: the scenario uses {{.From}}/{{.To}} but no axis %q gives the upgrade path; add it or set matrix.path_axis", m.PathAxis))
	}
	for i, ex := range m.Exclude {
		p := fmt.Sprintf("matrix.exclude[%d]", i)
		for _, k := range sortedKeys(ex) {
			values, ok := axisValues[k]
			if !ok {
				msg := fmt.Sprintf("%s: %q is not an axis (axes: %s)", p, k, strings.Join(axisNames(m.Axes), ", "))
				if s := strictyaml.Suggest(k, axisNames(m.Axes)); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				add(l.atKey(p+"."+k, "%s", msg))
				continue
			}
			// An exclude value outside its axis removes nothing: on GitHub
			// as here, that is a typo that silently keeps the cells.
			if !slices.Contains(values, ex[k]) {
				msg := fmt.Sprintf("%s.%s: %q is not a value of axis %s, so this entry excludes nothing", p, k, ex[k], k)
				if s := strictyaml.Suggest(ex[k], values); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				add(l.at(p+"."+k, "%s (values: %s)", msg, strings.Join(values, ", ")))
			}
		}
	}
	for i, inc := range m.Include {
		p := fmt.Sprintf("matrix.include[%d]", i)
		for _, k := range sortedKeys(inc) {
			checkValue(p+"."+k, k, inc[k])
			// A new value of an axis is how include adds a combination;
			// one a typo away from an existing value is a typo.
			if values, ok := axisValues[k]; ok && !slices.Contains(values, inc[k]) {
				if s := strictyaml.Suggest(inc[k], values); s != "" {
					add(l.at(p+"."+k, "%s.%s: %q is not a value of axis %s; did you mean %q? (a new value would add a combination of its own)", p, k, inc[k], k, s))
				}
			}
		}
	}

	if len(ps) == 0 {
		// The planner's own errors matter only for a matrix that passed
		// the checks above: else they repeat those.
		switch {
		case cellsErr != nil:
			add(l.at("matrix", "matrix: %v", cellsErr))
		case len(cells) == 0:
			add(l.at("matrix", "matrix: no cells are left after exclude"))
		case m.Repeat > matrices.MaxAttempts/len(cells):
			add(l.at("matrix.repeat", "matrix.repeat: %d cells × repeat %d is more than the %d attempts one plan may hold", len(cells), m.Repeat, matrices.MaxAttempts))
		}
	}

	// scenario and probes
	probeNames := map[string]bool{}
	for i, pr := range c.Probes {
		p := fmt.Sprintf("probes[%d]", i)
		if pr.Name == "" {
			add(l.at(p, "%s: name is missing", p))
		} else if probeNames[pr.Name] {
			add(l.at(p+".name", "%s.name: probe %q is defined twice", p, pr.Name))
		}
		probeNames[pr.Name] = true
		allowed, ok := probeFields[pr.Kind]
		if !ok {
			add(l.at(p, "%s: kind %q is not a probe kind (%s); kind defaults to the name", p, pr.Kind, strings.Join(ProbeKinds(), ", ")))
			continue
		}
		for _, f := range probeSetFields(pr) {
			if !slices.Contains(allowed, f) {
				add(l.atKey(p+"."+f, "%s.%s: does not apply to a %s probe (it takes %s)", p, f, pr.Kind, strings.Join(allowed, ", ")))
			}
		}
		if (pr.Kind == "xpc" || pr.Kind == "command") && pr.Run == "" {
			add(l.at(p, "%s: a %s probe needs run (the command whose exit 0 means healthy)", p, pr.Kind))
		}
		if pr.Old != "" {
			oneOf(p+".old", "old", pr.Old, oldVersionRules)
		}
		if pr.Kind == "xpc-connect" && pr.Expect != "" {
			oneOf(p+".expect", "expect", pr.Expect, []string{"reachable", "reply"})
		}
		ps = append(ps, l.checkWhen(p+".when", pr.When, axisValues)...)
		ps = append(ps, l.checkTemplates(p, map[string]string{"state": pr.State, "version": pr.Version, "run": pr.Run})...)
	}
	for i, st := range c.Scenario {
		p := fmt.Sprintf("scenario[%d]", i)
		kinds := st.Kinds()
		switch len(kinds) {
		case 0:
			add(l.at(p, "%s: no step kind (one of %s)", p, strings.Join(StepKinds(), ", ")))
			continue
		case 1:
		default:
			add(l.at(p, "%s: one step per list item, found %s", p, strings.Join(kinds, " and ")))
			continue
		}
		ps = append(ps, l.checkWhen(p+".when", st.When, axisValues)...)
		kp := p + "." + kinds[0]
		switch {
		case st.Install != nil:
			ps = append(ps, l.checkVersionRef(kp+".version", st.Install.Version, a.Versions)...)
		case st.Upgrade != nil:
			ps = append(ps, l.checkVersionRef(kp+".version", st.Upgrade.Version, a.Versions)...)
			for j, b := range st.Upgrade.Before {
				oneOf(fmt.Sprintf("%s.before[%d]", kp, j), "before", b, upgradeBefore)
			}
		case st.Approve != nil:
			ps = append(ps, l.checkApprove(kp, st, cellImages)...)
		case st.VPN != nil:
			oneOf(kp+".action", "action", st.VPN.Action, vpnActions)
			if a.VPNService == "" {
				add(l.at(kp, "%s: a vpn step needs app.vpn_service (the name scutil --nc knows the VPN by)", kp))
			}
		case st.Shell != nil:
			if st.Shell.Run == "" {
				add(l.at(kp, "%s.run: missing", kp))
			}
			if _, err := regexp.Compile(st.Shell.ExpectStdout); err != nil {
				add(l.at(kp+".expect_stdout", "%s.expect_stdout: not a regular expression: %v", kp, err))
			}
			ps = append(ps, l.checkTemplates(kp, map[string]string{"run": st.Shell.Run})...)
		case st.Sleep != nil:
			if st.Sleep.For <= 0 {
				add(l.at(kp, "%s.for: missing (how long, e.g. 5s)", kp))
			}
		case st.WaitExtension != nil:
			if st.WaitExtension.State == "" {
				add(l.at(kp, "%s.state: missing (e.g. activated enabled)", kp))
			}
			ps = append(ps, l.checkTemplates(kp, map[string]string{"version": st.WaitExtension.Version})...)
		case st.Probe != nil:
			for j, name := range st.Probe.Probes {
				if !probeNames[name] {
					add(l.at(fmt.Sprintf("%s.probes[%d]", kp, j), "%s: probe %q is not defined under probes (%s)", kp, name, defined(sortedKeys(probeNames))))
				}
			}
		}
	}

	// collect and retry
	oneOf("collect.on", "on", c.Collect.On, collectOn)
	if len(c.Collect.Signatures) > 0 {
		if _, err := artifacts.LoadCatalog(c.Collect.Signatures...); err != nil {
			add(l.at("collect.signatures", "collect.signatures: %v", err))
		}
	}
	if c.Retry.Max < 0 || c.Retry.Max > MaxRetries {
		add(l.at("retry.max", "retry.max: %d is not from 0 to %d: a lab that errs on one attempt %d times in a row is broken, and more tries only hide it", c.Retry.Max, MaxRetries, MaxRetries+1))
	}
	return ps
}

// checkCellImages renders matrix.image over every cell (when set) and
// makes sure each names a defined image. It returns the cells by the
// image they run on, for the checks that depend on the image.
func (l *Loaded) checkCellImages(cells []matrices.Cell, cellsErr error) (map[string][]map[string]string, Problems) {
	c := &l.Config
	if cellsErr != nil {
		return nil, nil // reported with the matrix
	}
	cellImage, err := c.ImageNamer()
	if err != nil {
		return nil, Problems{l.at("matrix.image", "%v (matrix.image is a template over the cell's axes, like \"{{.Axis.macos}}-{{.Axis.approval}}\"; axes: %s)", err, strings.Join(axisNames(c.Matrix.Axes), ", "))}
	}
	var ps Problems
	out := map[string][]map[string]string{}
	bad := map[string]bool{}
	for _, cell := range cells {
		name, err := cellImage(cell.Values)
		if err != nil {
			return nil, Problems{l.at("matrix.image", "%v (matrix.image is a template over the cell's axes, like \"{{.Axis.macos}}-{{.Axis.approval}}\"; axes: %s)", err, strings.Join(axisNames(c.Matrix.Axes), ", "))}
		}
		if name == "" && len(c.Images) == 1 {
			name = sortedKeys(c.Images)[0] // the only image
		}
		if _, ok := c.Images[name]; !ok {
			if c.Matrix.Image != "" && !bad[name] {
				ps = append(ps, l.at("matrix.image", "matrix.image: cell %s runs on image %q, which is not defined under images (defined: %s)", cell.Label, name, strings.Join(sortedKeys(c.Images), ", ")))
			}
			bad[name] = true
			continue
		}
		out[name] = append(out[name], cell.Values)
	}
	return out, ps
}

// checkApprove checks an approve step, and that an mdm approval runs only
// on images whose golden has the policy it needs (as far as an image
// describes its golden: sim images do, in golden.mdm).
func (l *Loaded) checkApprove(kp string, st Step, cellImages map[string][]map[string]string) Problems {
	c := &l.Config
	ap := st.Approve
	var ps Problems
	if !slices.Contains(approveStrategies, ap.Strategy) {
		ps = append(ps, l.at(kp+".strategy", "%s.strategy: strategy %q is not one of mdm, ui, command, none", kp, ap.Strategy))
		return ps
	}
	switch ap.Strategy {
	case "prompt":
		w := l.at(kp+".strategy", "%s: strategy prompt is deprecated: it is now ui, which clicks the approval control in System Settings with built-in scripts (macOS %s)", kp, uiVersions())
		if ap.Run != "" {
			w = l.at(kp+".run", "%s: strategy prompt is deprecated: it is now ui, which clicks the approval control in System Settings with built-in scripts (macOS %s); its run is ignored", kp, uiVersions())
		}
		l.Warnings = append(l.Warnings, w.String())
	case "command":
		if ap.Run == "" {
			ps = append(ps, l.at(kp, "%s: strategy command needs run (the command that approves)", kp))
		}
	case "ui":
		if ap.Run != "" {
			ps = append(ps, l.at(kp+".run", "%s.run: strategy ui runs its built-in System Settings scripts and takes no run; use strategy command for a command of your own", kp))
		}
	}
	if ap.What != "" {
		if ap.Strategy != "ui" && ap.Strategy != "prompt" {
			ps = append(ps, l.at(kp+".what", "%s.what: only strategy ui answers something other than the extension's approval", kp))
		} else if !slices.Contains(approveWhat, ap.What) {
			ps = append(ps, l.at(kp+".what", "%s.what: %q is not one of %s", kp, ap.What, strings.Join(approveWhat, ", ")))
		}
	}
	if ap.Strategy != "mdm" {
		return ps
	}
	ext := c.App.Extension
	for _, name := range sortedKeys(cellImages) {
		img := c.Images[name]
		if img.Sim == nil {
			continue // a real golden says nothing of its profiles: the step checks them
		}
		cells := slices.DeleteFunc(slices.Clone(cellImages[name]), func(cell map[string]string) bool { return !Applies(st.When, cell) })
		if len(cells) == 0 || simAllows(img.Sim.Golden, ext.TeamID, ext.BundleID) {
			continue
		}
		ps = append(ps, l.at(kp, "%s: approve: mdm runs on image %s, whose golden has no system extension policy allowing team %s (%s): "+
			"add one under images.%s.sim.golden.mdm.system_extension_policies (- {team: %s}), run those cells on an MDM-enrolled image (matrix.image), or approve with ui",
			kp, name, ext.TeamID, ext.BundleID, name, ext.TeamID))
	}
	return ps
}

// simAllows says whether a sim golden's MDM installed a system extension
// policy for the team (all its extensions, or bundleID among them).
func simAllows(g *SimGolden, team, bundleID string) bool {
	if g == nil || g.MDM == nil {
		return false
	}
	for _, p := range g.MDM.SystemExtensionPolicies {
		if p.Team == team && (len(p.BundleIDs) == 0 || slices.Contains(p.BundleIDs, bundleID)) {
			return true
		}
	}
	return false
}

func uiVersions() string {
	var v []string
	for _, n := range steps.UIScriptVersions() {
		v = append(v, strconv.Itoa(n))
	}
	return strings.Join(v, ", ")
}

// checkProviders makes sure every host can boot every image the matrix
// uses: a vz host needs the image's vz bundle, and so on. ssh hosts are
// existing Macs and boot nothing.
func (l *Loaded) checkProviders(used []string) Problems {
	c := &l.Config
	if used == nil {
		used = sortedKeys(c.Images)
	}
	var ps Problems
	for i, h := range c.Hosts {
		for _, name := range used {
			img, ok := c.Images[name]
			if !ok {
				continue // reported with the axis value
			}
			var has bool
			switch h.Provider {
			case ProviderSim:
				has = img.Sim != nil
			case ProviderVZ:
				has = img.VZ != nil
			case ProviderTart:
				has = img.Tart != nil
			default:
				has = true
			}
			if !has {
				ps = append(ps, l.atKey("images."+name, "images.%s: host %s (hosts[%d]) uses provider %s, but the image has no %s source", name, h.Name, i, h.Provider, h.Provider))
			}
		}
	}
	return ps
}

// hostNameRe is what a host name or IP address may hold; a colon only
// in an IPv6 address, a percent sign only before its zone.
var hostNameRe = regexp.MustCompile(`^[A-Za-z0-9._%:-]+$`)

// checkSSHAddress accepts what the ssh provider dials: a host, or
// host:port with a numeric port (IPv6 as [addr]:port, or bare without a
// port). The errors say what to write instead.
func checkSSHAddress(addr string) error {
	a := strings.TrimSpace(addr)
	if strings.Contains(a, "://") {
		return fmt.Errorf("%q: no scheme, only host or host:port (like mac-mini.local or 192.168.64.5:22)", addr)
	}
	if user, _, ok := strings.Cut(a, "@"); ok {
		return fmt.Errorf("%q: the login goes in ssh.user (%q), the address is host or host:port", addr, user)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		// No port (or a bare IPv6 address): sshd's port 22.
		host, port = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), ""
		if strings.HasPrefix(a, "[") != strings.HasSuffix(a, "]") {
			return fmt.Errorf("%q is not a host or host:port: unbalanced brackets (write an IPv6 address as [fe80::1]:22)", addr)
		}
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port %q is not a number from 1 to 65535", addr, port)
	}
	if host == "" || !hostNameRe.MatchString(host) {
		return fmt.Errorf("%q is not a host or host:port (like mac-mini.local or 192.168.64.5:22)", addr)
	}
	if strings.Contains(host, ":") {
		ip, _, _ := strings.Cut(host, "%")
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%q is not a host or host:port: %q is neither a name nor an IPv6 address (a port follows the host after one colon, like mac-mini.local:2222)", addr, host)
		}
	}
	return nil
}

func (l *Loaded) checkAuth(path string, a Auth) Problems {
	var ps Problems
	if a.Password != "" && a.PasswordEnv != "" {
		ps = append(ps, l.at(path, "%s: give password or password_env, not both", path))
	}
	if a.Key != "" {
		if abs := l.Resolve(a.Key); !fileExists(abs) {
			ps = append(ps, l.at(path+".key", "%s.key: private key %s does not exist", path, abs))
		}
	}
	return ps
}

func (l *Loaded) checkWhen(path string, when map[string][]string, axes map[string][]string) Problems {
	var ps Problems
	for _, k := range sortedKeys(when) {
		values, ok := axes[k]
		if !ok {
			ps = append(ps, l.atKey(path+"."+k, "%s: %q is not an axis (axes: %s)", path, k, strings.Join(sortedKeys(axes), ", ")))
			continue
		}
		for j, v := range when[k] {
			if !slices.Contains(values, v) {
				ps = append(ps, l.at(fmt.Sprintf("%s.%s[%d]", path, k, j), "%s.%s: %q is not a value of axis %s (%s)", path, k, v, k, strings.Join(values, ", ")))
			}
		}
	}
	return ps
}

// checkVersionRef accepts a known version id or a template such as
// {{.From}}; a literal that is neither is an error.
func (l *Loaded) checkVersionRef(path, ref string, versions map[string]Version) Problems {
	if ref == "" {
		return Problems{l.at(path, "%s: missing (a version id, or {{.From}} / {{.To}})", path)}
	}
	if strings.Contains(ref, "{{") {
		if err := checkTemplate(ref, stepData()); err != nil {
			return Problems{l.at(path, "%s: %v", path, err)}
		}
		return nil
	}
	if _, ok := versions[ref]; !ok {
		return Problems{l.at(path, "%s: version %q is not under app.versions (defined: %s)", path, ref, strings.Join(sortedKeys(versions), ", "))}
	}
	return nil
}

func (l *Loaded) checkTemplates(path string, fields map[string]string) Problems {
	var ps Problems
	for _, k := range sortedKeys(fields) {
		if err := checkTemplate(fields[k], stepData()); err != nil {
			ps = append(ps, l.at(path+"."+k, "%s.%s: %v", path, k, err))
		}
	}
	return ps
}

// stepData is the shape of what step templates see; checking a template
// against it catches {{.Form}} before a run starts.
func stepData() any {
	return struct {
		Axis     map[string]string
		From, To string
		App      App
		Version  string
		Build    string
	}{Axis: map[string]string{}}
}

func machServiceData() any {
	return struct{ Version, Build string }{}
}

func checkTemplate(s string, data any) error {
	if !strings.Contains(s, "{{") {
		return nil
	}
	t, err := template.New("").Option("missingkey=error").Parse(s)
	if err != nil {
		return fmt.Errorf("template: %v", strings.TrimPrefix(err.Error(), "template: :"))
	}
	if err := t.Execute(nopWriter{}, data); err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return fmt.Errorf("template: %s", msg)
	}
	return nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func scenarioUsesPath(steps []Step) bool {
	for _, s := range steps {
		for _, v := range []string{versionOf(s.Install), versionOfUpgrade(s.Upgrade)} {
			if strings.Contains(v, ".From") || strings.Contains(v, ".To") {
				return true
			}
		}
	}
	return false
}

func versionOf(s *InstallStep) string {
	if s == nil {
		return ""
	}
	return s.Version
}

func versionOfUpgrade(s *UpgradeStep) string {
	if s == nil {
		return ""
	}
	return s.Version
}

func probeSetFields(p Probe) []string {
	var out []string
	for name, set := range map[string]bool{
		"state": p.State != "", "version": p.Version != "", "old": p.Old != "", "service": p.Service != "",
		"expect": p.Expect != "", "run": p.Run != "", "expect_exit": p.ExpectExit != nil, "expect_stdout": p.ExpectStdout != "",
	} {
		if set {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func axisNames(axes OrderedAxes) []string {
	out := make([]string, len(axes))
	for i, a := range axes {
		out[i] = a.Name
	}
	return out
}

// Resolve returns a path from the configuration, relative ones taken from
// the configuration file's folder.
func (l *Loaded) Resolve(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[2:])
		}
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.Dir, p)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func defined(names []string) string {
	if len(names) == 0 {
		return "none is defined"
	}
	return "defined: " + strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// simTeamID is an Apple developer team ID, as a system extension policy
// names it.
var simTeamID = regexp.MustCompile(`^[A-Z0-9]{10}$`)
