package steps

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sxlab/sxlab/cmd/sxlab-probe/schema"
	"github.com/sxlab/sxlab/guest"
)

// Probe observes the guest and says whether the product behaves.
type Probe struct {
	Kind string // extension-state, mach-endpoint, mach-lookup, xpc-connect, vpn-status, xpc, command
	// extension-state
	State   string // default "activated enabled"
	Version string // "3.0" or "3.0/300"; default the target version's, when known
	Old     string // gone, pending-reboot, gone-or-pending-reboot, any (default any)
	// mach-endpoint, mach-lookup, xpc-connect (default: the app's Mach
	// service, for the enabled and active copy of the extension)
	Service string
	// vpn-status: the status (default Connected); xpc-connect: reachable
	// (default: the lookup found the service, whatever it made of the
	// message) or reply (it must answer the raw XPC message)
	Expect string
	// xpc, command
	Line         string
	ExpectExit   int
	ExpectStdout *regexp.Regexp
	// Timeout bounds a command probe (default CommandProbeTimeout) and
	// xpc-connect's wait for an answer (default 5s).
	Timeout time.Duration
}

// CommandProbeTimeout bounds a command probe that sets no timeout. A
// product's own check (teams ship hidden flags such as --check-xpc for
// this) that hangs must not hold a slot for lab.timeouts.command.
const CommandProbeTimeout = 60 * time.Second

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
	case schema.ProbeMachLookup, schema.ProbeXPCConnect:
		return p.guestProbe(ctx, env)
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

// The outcomes of a mach-endpoint probe, in Observations["outcome"].
const (
	EndpointServing        = "serving"         // the job lists the service
	EndpointNoActive       = "no-active-copy"  // no enabled and active copy of the extension
	EndpointNoJob          = "no-job"          // launchd has no job for the extension
	EndpointNone           = "no-endpoints"    // the job has no endpoints block
	EndpointOtherEndpoints = "other-endpoints" // the job serves other names
)

// launchctlNoSuchService is launchctl print's exit status for a label
// launchd does not know ("Could not find service ... in domain for
// system").
const launchctlNoSuchService = 113

// activeExtension is the enabled and active copy of the app's extension,
// or nil with the rows seen.
func activeExtension(ctx context.Context, env *Env, step string) (*guest.Extension, []guest.Extension, error) {
	rows, err := listExtensions(ctx, env, step)
	if err != nil {
		return nil, nil, err
	}
	for i, r := range rows {
		if r.Enabled && r.Active {
			return &rows[i], rows, nil
		}
	}
	return nil, rows, nil
}

// machEndpoint is the xpc-broken-20-percent check: the provider's launchd
// job must list the Mach service under endpoints. It needs no code in the
// guest. "No job for the extension" and "a job without endpoints" are
// different outcomes: the first means the provider was never started (or
// was torn down), the second that it runs but never registered.
func (p Probe) machEndpoint(ctx context.Context, env *Env) (ProbeResult, error) {
	active, rows, err := activeExtension(ctx, env, "probe mach-endpoint")
	if err != nil {
		return ProbeResult{}, err
	}
	if active == nil {
		return ProbeResult{Held: false, Message: fmt.Sprintf("no enabled and active copy of %s; rows: %s", env.App.Extension.BundleID, describeRows(rows)),
			Observations: map[string]string{"outcome": EndpointNoActive, "rows": describeRows(rows)}}, nil
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
	switch res.Exit {
	case 0:
	case launchctlNoSuchService:
		obs["outcome"] = EndpointNoJob
		return ProbeResult{Held: false, Message: fmt.Sprintf("no launchd job for the extension: launchd has no job %s (%s)", label, firstLine(res.Stderr, res.Stdout)), Observations: obs}, nil
	default:
		// sudo or launchctl itself failed: that says nothing of the job.
		return ProbeResult{}, fmt.Errorf("probe mach-endpoint: launchctl print system/%s exited %d: %s", label, res.Exit, firstLine(res.Stderr, res.Stdout))
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
			obs["outcome"] = EndpointServing
			return ProbeResult{Held: true, Message: fmt.Sprintf("job %s serves %s", label, service), Observations: obs}, nil
		}
	}
	obs["endpoints"] = strings.Join(names, ", ")
	if len(names) == 0 {
		obs["outcome"] = EndpointNone
		return ProbeResult{Held: false, Message: fmt.Sprintf("job %s has no endpoints block: the Mach service %s never registered with launchd", label, service), Observations: obs}, nil
	}
	obs["outcome"] = EndpointOtherEndpoints
	return ProbeResult{Held: false, Message: fmt.Sprintf("job %s does not serve %s (it serves %s)", label, service, obs["endpoints"]), Observations: obs}, nil
}

func (p Probe) command(ctx context.Context, env *Env) (ProbeResult, error) {
	line, err := env.Render(p.Line)
	if err != nil {
		return ProbeResult{}, err
	}
	timeout, byDefault := p.Timeout, p.Timeout <= 0
	if byDefault {
		timeout = CommandProbeTimeout
	}
	res, err := env.runCmd(ctx, "probe "+p.Kind, "probe", guest.Cmd{Line: line, Timeout: timeout})
	if err != nil {
		if byDefault && errors.Is(err, guest.ErrCommandTimeout) {
			err = fmt.Errorf("%w (a command probe's default; set timeout on the probe)", err)
		}
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

// listExtensions returns the rows of the app's extension. Within one
// probe step, probes that only read (see RunProbes) judge
// the same listing instead of each asking again.
func listExtensions(ctx context.Context, env *Env, step string) ([]guest.Extension, error) {
	all := env.probeListing
	if all == nil {
		res, err := env.run(ctx, step, "query", "systemextensionsctl list")
		if err != nil {
			return nil, err
		}
		if res.Exit != 0 {
			return nil, fmt.Errorf("%s: systemextensionsctl list exited %d: %s", step, res.Exit, firstLine(res.Stderr, res.Stdout))
		}
		if all, err = guest.ParseExtensions(strings.NewReader(res.Stdout)); err != nil {
			return nil, fmt.Errorf("%s: %w", step, err)
		}
		if env.inProbes {
			if all == nil {
				all = []guest.Extension{} // nothing installed is an answer too
			}
			env.probeListing = all
		}
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

// probePath is where sxlab-probe is uploaded in the guest.
const probePath = remoteDir + "/sxlab-probe"

// probeMargin is how much longer than the probe's own timeout the lab
// waits for it: launchctl, sudo and the process start.
const probeMargin = 30 * time.Second

// guestProbe runs sxlab-probe (mach-lookup or xpc-connect) in the guest
// as the console user and judges its JSON report. Whatever keeps the
// probe from reporting (it could not be uploaded or run, its output is
// unreadable, it ran as someone else) is the lab's error; only a report
// about the service is a verdict.
func (p Probe) guestProbe(ctx context.Context, env *Env) (ProbeResult, error) {
	step := "probe " + p.Kind
	service, err := p.service(ctx, env, step)
	if err != nil {
		return ProbeResult{}, err
	}
	remote, err := uploadProbe(ctx, env, step)
	if err != nil {
		return ProbeResult{}, err
	}
	uid, err := userID(ctx, env, step)
	if err != nil {
		return ProbeResult{}, err
	}
	args := []string{"sudo", "launchctl", "asuser", uid, "sudo", "-u", env.User, remote, p.Kind, service}
	wait := probeMargin
	if p.Kind == schema.ProbeXPCConnect {
		timeout := p.Timeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		args = append(args, "--timeout", timeout.String())
		wait += timeout
	}
	res, err := env.runCmd(ctx, step, "probe", guest.Cmd{Line: guest.Join(args...), Timeout: wait})
	if err != nil {
		return ProbeResult{}, err
	}
	rep, err := readProbeReport(res)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("%s: %w", step, err)
	}
	switch {
	case rep.Probe != p.Kind || rep.Service != service:
		return ProbeResult{}, fmt.Errorf("%s: sxlab-probe reported on %s %q, not %s %q", step, rep.Probe, rep.Service, p.Kind, service)
	case strconv.Itoa(rep.UID) != uid:
		return ProbeResult{}, fmt.Errorf("%s: sxlab-probe ran as uid %d, not as the console user %s (uid %s): launchctl asuser or sudo -u did not take effect", step, rep.UID, env.User, uid)
	case rep.Outcome == schema.Error:
		return ProbeResult{}, fmt.Errorf("%s: sxlab-probe could not do its job: %s", step, rep.Error)
	}
	return judgeProbeReport(p, rep), nil
}

// service is the Mach service the probe asks about: the probe's own, or
// the app's for the enabled and active copy of the extension (the name
// may depend on its version).
func (p Probe) service(ctx context.Context, env *Env, step string) (string, error) {
	if p.Service != "" {
		return env.Render(p.Service)
	}
	tmpl := env.App.Extension.MachService
	if tmpl == "" {
		return "", fmt.Errorf("%s: no service given and app.extension.mach_service is not configured", step)
	}
	if !strings.Contains(tmpl, "{{") {
		return tmpl, nil
	}
	active, rows, err := activeExtension(ctx, env, step)
	if err != nil {
		return "", err
	}
	if active == nil {
		// The name depends on a version nothing runs: ask for the one the
		// upgrade should have left.
		v, ok := env.App.Versions[env.To]
		if !ok || v.ExtShort == "" {
			return "", fmt.Errorf("%s: the Mach service name depends on the extension's version and no copy is active (rows: %s)", step, describeRows(rows))
		}
		return env.App.MachService(v.ExtShort, v.ExtBuild)
	}
	return env.App.MachService(active.ShortVersion, active.Build)
}

// uploadProbe puts sxlab-probe in the guest, once per attempt.
func uploadProbe(ctx context.Context, env *Env, step string) (string, error) {
	if env.probeRemote != "" {
		return env.probeRemote, nil
	}
	if env.ProbeBinary == nil {
		return "", fmt.Errorf("%s: this lab was started without an sxlab-probe binary", step)
	}
	local, err := env.ProbeBinary(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: %w", step, err)
	}
	if err := stagingDir(ctx, env, step); err != nil {
		return "", err
	}
	if err := env.upload(ctx, step, local, probePath); err != nil {
		return "", err
	}
	// SFTP does not promise to keep the mode; the console user runs it.
	res, err := env.run(ctx, step, "prepare", guest.Join("chmod", "755", probePath))
	if err != nil {
		return "", err
	}
	if res.Exit != 0 {
		return "", fmt.Errorf("%s: chmod 755 %s exited %d: %s", step, probePath, res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	env.probeRemote = probePath
	return probePath, nil
}

// userID is the uid of the image's user, whom the probe runs as.
func userID(ctx context.Context, env *Env, step string) (string, error) {
	if env.consoleUID != "" {
		return env.consoleUID, nil
	}
	res, err := env.run(ctx, step, "query", guest.Join("id", "-u", env.User))
	if err != nil {
		return "", err
	}
	uid := strings.TrimSpace(res.Stdout)
	if _, perr := strconv.Atoi(uid); res.Exit != 0 || perr != nil {
		return "", fmt.Errorf("%s: id -u %s (exit %d) gave no uid: %s", step, env.User, res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	env.consoleUID = uid
	return uid, nil
}

// readProbeReport decodes the probe's stdout, saying why a probe that did
// not report could not run.
func readProbeReport(res guest.Result) (schema.Report, error) {
	lower := strings.ToLower(res.Stderr)
	switch {
	case res.Exit == 126, strings.Contains(lower, "exec format error"), strings.Contains(lower, "cannot execute binary file"):
		return schema.Report{}, fmt.Errorf("sxlab-probe could not be executed (exit %d, %s): the uploaded file is not a darwin/arm64 program this Mac runs", res.Exit, firstLine(res.Stderr, res.Stdout))
	case res.Exit == 127:
		return schema.Report{}, fmt.Errorf("sxlab-probe was not found (exit 127): %s", firstLine(res.Stderr, res.Stdout))
	case res.Exit == schema.ExitUsage:
		return schema.Report{}, fmt.Errorf("sxlab-probe refused its command line (exit %d): %s", res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	rep, err := schema.Decode(strings.NewReader(res.Stdout))
	if err != nil {
		return schema.Report{}, fmt.Errorf("%w (exit %d; stderr: %s)", err, res.Exit, firstLine(res.Stderr))
	}
	if want := schema.ExitCode(rep.Outcome); res.Exit != want {
		return schema.Report{}, fmt.Errorf("sxlab-probe exited %d but reported %s (exit %d): its output is not to be trusted", res.Exit, rep.Outcome, want)
	}
	return rep, nil
}

// judgeProbeReport turns a report about the service into a probe result.
func judgeProbeReport(p Probe, rep schema.Report) ProbeResult {
	obs := map[string]string{"outcome": string(rep.Outcome), "service": rep.Service, "uid": strconv.Itoa(rep.UID), "caveat": rep.Caveat}
	if l := rep.Lookup; l != nil {
		obs["lookup"] = fmt.Sprintf("%s (%d)", l.Name, l.Code)
		obs["lookup_ms"] = strconv.FormatFloat(l.Millis, 'f', -1, 64)
	}
	if x := rep.XPC; x != nil {
		obs["xpc"] = string(x.Event)
		obs["xpc_ms"] = strconv.FormatFloat(x.Millis, 'f', -1, 64)
		if x.Description != "" {
			obs["xpc_description"] = x.Description
		}
	}
	held := false
	switch rep.Outcome {
	case schema.Found, schema.Reply:
		held = true
	case schema.Rejected, schema.Timeout:
		// The service is registered: reachable. Only a probe that needs an
		// answer to the raw message asks more.
		held = p.Expect != "reply"
	}
	return ProbeResult{Held: held, Message: rep.Summary(), Observations: obs}
}
