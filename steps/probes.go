package steps

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// Probe observes the guest and says whether the product behaves.
type Probe struct {
	Kind string // extension-state, mach-endpoint, vpn-status, xpc, command
	// extension-state
	State   string // default "activated enabled"
	Version string // "3.0" or "3.0/300"; default the target version's, when known
	Old     string // gone, pending-reboot, gone-or-pending-reboot, any (default any)
	// mach-endpoint (default: the app's Mach service)
	Service string
	// vpn-status
	Expect string
	// xpc, command
	Line         string
	ExpectExit   int
	ExpectStdout *regexp.Regexp
	Timeout      time.Duration
}

// ProbeResult is what a probe saw and whether the product held up.
type ProbeResult struct {
	Name         string
	Held         bool
	Message      string
	Observations map[string]string
}

func (r ProbeResult) String() string {
	verdict := "held"
	if !r.Held {
		verdict = "did not hold"
	}
	return fmt.Sprintf("%s %s: %s", r.Name, verdict, r.Message)
}

// Check runs the probe. Its error is the lab's (the guest could not be
// asked); the product's state is in the result.
func (p Probe) Check(ctx context.Context, env *Env) (ProbeResult, error) {
	switch p.Kind {
	case "extension-state":
		return p.extensionState(ctx, env)
	case "mach-endpoint":
		return p.machEndpoint(ctx, env)
	case "vpn-status":
		st, err := vpnStatus(ctx, env, "probe vpn-status")
		if err != nil {
			return ProbeResult{}, err
		}
		want := p.Expect
		if want == "" {
			want = "Connected"
		}
		return ProbeResult{Held: st == want, Message: fmt.Sprintf("VPN %q is %s (expected %s)", env.App.VPNService, st, want),
			Observations: map[string]string{"status": st}}, nil
	case "xpc", "command":
		return p.command(ctx, env)
	}
	return ProbeResult{}, fmt.Errorf("unknown probe kind %q", p.Kind)
}

// targetVersion is the extension version the upgrade should have left.
func (p Probe) targetVersion(env *Env) (string, error) {
	if p.Version != "" {
		return env.Render(p.Version)
	}
	if v, ok := env.App.Versions[env.To]; ok && v.ExtShort != "" {
		if v.ExtBuild != "" {
			return v.ExtShort + "/" + v.ExtBuild, nil
		}
		return v.ExtShort, nil
	}
	return "", nil
}

func (p Probe) extensionState(ctx context.Context, env *Env) (ProbeResult, error) {
	rows, err := listExtensions(ctx, env, "probe extension-state")
	if err != nil {
		return ProbeResult{}, err
	}
	want := p.State
	if want == "" {
		want = "activated enabled"
	}
	version, err := p.targetVersion(env)
	if err != nil {
		return ProbeResult{}, err
	}
	obs := map[string]string{"rows": describeRows(rows)}
	var current *guest.Extension
	var others []guest.Extension
	for i, r := range rows {
		if current == nil && versionMatches(r, version) && r.State != "terminated waiting to uninstall on reboot" {
			current = &rows[i]
			continue
		}
		others = append(others, r)
	}
	switch {
	case len(rows) == 0:
		return ProbeResult{Held: false, Message: fmt.Sprintf("extension %s is not installed", env.App.Extension.BundleID), Observations: obs}, nil
	case current == nil:
		return ProbeResult{Held: false, Message: fmt.Sprintf("no row of %s at version %s; rows: %s", env.App.Extension.BundleID, version, obs["rows"]), Observations: obs}, nil
	case current.State != want:
		return ProbeResult{Held: false, Message: fmt.Sprintf("extension %s %s/%s is %q, expected %q", current.BundleID, current.ShortVersion, current.Build, current.State, want), Observations: obs}, nil
	}
	for _, o := range others {
		pending := o.State == "terminated waiting to uninstall on reboot"
		switch p.Old {
		case "gone":
			return ProbeResult{Held: false, Message: fmt.Sprintf("old copy %s/%s is still listed (%s)", o.ShortVersion, o.Build, o.State), Observations: obs}, nil
		case "pending-reboot", "gone-or-pending-reboot":
			if !pending {
				return ProbeResult{Held: false, Message: fmt.Sprintf("old copy %s/%s is %q, expected it gone or waiting to uninstall on reboot", o.ShortVersion, o.Build, o.State), Observations: obs}, nil
			}
		}
	}
	return ProbeResult{Held: true, Message: fmt.Sprintf("extension %s %s/%s is %q", current.BundleID, current.ShortVersion, current.Build, current.State), Observations: obs}, nil
}

// machEndpoint is the xpc-broken-20-percent check: the provider's launchd
// job must list the Mach service under endpoints. It needs no code in the
// guest.
func (p Probe) machEndpoint(ctx context.Context, env *Env) (ProbeResult, error) {
	rows, err := listExtensions(ctx, env, "probe mach-endpoint")
	if err != nil {
		return ProbeResult{}, err
	}
	var active *guest.Extension
	for i, r := range rows {
		if r.Enabled && r.Active {
			active = &rows[i]
			break
		}
	}
	if active == nil {
		return ProbeResult{Held: false, Message: fmt.Sprintf("no enabled and active copy of %s; rows: %s", env.App.Extension.BundleID, describeRows(rows))}, nil
	}
	service := p.Service
	if service == "" {
		if service, err = env.App.MachService(active.ShortVersion, active.Build); err != nil {
			return ProbeResult{}, err
		}
	}
	label := fmt.Sprintf("NetworkExtension.%s.%s.%s", active.BundleID, active.ShortVersion, active.Build)
	obs := map[string]string{"label": label, "service": service}
	res, err := env.run(ctx, "probe mach-endpoint", "probe", guest.Join("sudo", "launchctl", "print", "system/"+label))
	if err != nil {
		return ProbeResult{}, err
	}
	if res.Exit != 0 {
		return ProbeResult{Held: false, Message: fmt.Sprintf("launchd has no job %s (exit %d)", label, res.Exit), Observations: obs}, nil
	}
	job, err := guest.ParseLaunchdJob(strings.NewReader(res.Stdout))
	if err != nil {
		return ProbeResult{}, fmt.Errorf("launchctl print %s: %w", label, err)
	}
	var names []string
	for _, ep := range job.Endpoints {
		names = append(names, ep.Name)
		if ep.Name == service {
			obs["endpoints"] = strings.Join(names, ", ")
			return ProbeResult{Held: true, Message: fmt.Sprintf("job %s serves %s", label, service), Observations: obs}, nil
		}
	}
	obs["endpoints"] = strings.Join(names, ", ")
	if len(names) == 0 {
		return ProbeResult{Held: false, Message: fmt.Sprintf("job %s has no endpoints block: the Mach service %s never registered with launchd", label, service), Observations: obs}, nil
	}
	return ProbeResult{Held: false, Message: fmt.Sprintf("job %s does not serve %s (it serves %s)", label, service, obs["endpoints"]), Observations: obs}, nil
}

func (p Probe) command(ctx context.Context, env *Env) (ProbeResult, error) {
	line, err := env.Render(p.Line)
	if err != nil {
		return ProbeResult{}, err
	}
	res, err := env.runCmd(ctx, "probe "+p.Kind, "probe", guest.Cmd{Line: line, Timeout: p.Timeout})
	if err != nil {
		return ProbeResult{}, err
	}
	obs := map[string]string{"exit": fmt.Sprint(res.Exit), "output": firstLine(res.Stdout, res.Stderr)}
	if res.Exit != p.ExpectExit {
		return ProbeResult{Held: false, Message: fmt.Sprintf("exit %d, expected %d: %s", res.Exit, p.ExpectExit, firstLine(res.Stderr, res.Stdout)), Observations: obs}, nil
	}
	if p.ExpectStdout != nil && !p.ExpectStdout.MatchString(res.Stdout) {
		return ProbeResult{Held: false, Message: fmt.Sprintf("output does not match %q", p.ExpectStdout), Observations: obs}, nil
	}
	return ProbeResult{Held: true, Message: firstLine(res.Stdout, "exit 0"), Observations: obs}, nil
}

// listExtensions returns the rows of the app's extension.
func listExtensions(ctx context.Context, env *Env, step string) ([]guest.Extension, error) {
	res, err := env.run(ctx, step, "query", "systemextensionsctl list")
	if err != nil {
		return nil, err
	}
	if res.Exit != 0 {
		return nil, fmt.Errorf("%s: systemextensionsctl list exited %d: %s", step, res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	all, err := guest.ParseExtensions(strings.NewReader(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	var rows []guest.Extension
	for _, r := range all {
		if r.BundleID == env.App.Extension.BundleID {
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func vpnStatus(ctx context.Context, env *Env, step string) (string, error) {
	res, err := env.run(ctx, step, "query", guest.Join("scutil", "--nc", "status", env.App.VPNService))
	if err != nil {
		return "", err
	}
	st, err := guest.ParseVPNStatus(strings.NewReader(res.Stdout))
	if err != nil {
		return "", fmt.Errorf("%s: %w", step, err)
	}
	return st.Status, nil
}

// versionMatches accepts "3.0" (short version) or "3.0/300"; "" matches all.
func versionMatches(r guest.Extension, v string) bool {
	if v == "" {
		return true
	}
	short, build, hasBuild := strings.Cut(v, "/")
	return r.ShortVersion == short && (!hasBuild || r.Build == build)
}

func describeRows(rows []guest.Extension) string {
	if len(rows) == 0 {
		return "none"
	}
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = fmt.Sprintf("%s/%s [%s]", r.ShortVersion, r.Build, r.State)
	}
	return strings.Join(parts, "; ")
}

func sortStrings(s []string) { sort.Strings(s) }
