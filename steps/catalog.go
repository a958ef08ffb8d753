package steps

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// remoteDir is where packages are uploaded in the guest.
const remoteDir = "/tmp/sxlab"

// Install uploads a version's package and installs it.
type Install struct {
	Label   string
	Version string // version id or template ({{.From}})
}

func (s Install) Kind() string { return "install" }

func (s Install) Run(ctx context.Context, env *Env) error {
	return install(ctx, env, s.Label, s.Version)
}

func install(ctx context.Context, env *Env, label, ref string) error {
	id, err := env.Render(ref)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	v, ok := env.App.Versions[id]
	if !ok {
		return fmt.Errorf("%s: version %q is not configured", label, id)
	}
	remote := path.Join(remoteDir, filepath.Base(v.Package))
	if err := stagingDir(ctx, env, label); err != nil {
		return err
	}
	if err := env.upload(ctx, label, v.Package, remote); err != nil {
		return err
	}

	var lines []string
	switch v.Kind {
	case "dmg":
		mnt := path.Join(remoteDir, "mnt-"+id)
		app := path.Join(mnt, path.Base(env.App.Path))
		lines = []string{
			guest.Join("hdiutil", "attach", "-nobrowse", "-readonly", "-mountpoint", mnt, remote),
			guest.Join("sudo", "ditto", app, env.App.Path),
			guest.Join("hdiutil", "detach", mnt),
		}
	case "zip":
		lines = []string{guest.Join("sudo", "ditto", "-x", "-k", remote, path.Dir(env.App.Path))}
	default:
		lines = []string{guest.Join("sudo", "installer", "-pkg", remote, "-target", "/")}
	}
	for _, line := range lines {
		res, err := env.run(ctx, label, "install", line)
		if err != nil {
			return err
		}
		if res.Exit != 0 {
			return fail(label, "installing version %s failed (exit %d): %s", id, res.Exit, firstLine(res.Stderr, res.Stdout))
		}
	}
	return nil
}

// Upgrade installs a newer version over the old one, first doing what
// the app's installer does (stop the VPN, quit the app) when asked.
type Upgrade struct {
	Label   string
	Version string
	Before  []string // stop-vpn, quit-app
}

func (s Upgrade) Kind() string { return "upgrade" }

func (s Upgrade) Run(ctx context.Context, env *Env) error {
	for _, b := range s.Before {
		switch b {
		case "stop-vpn":
			if err := (VPN{Label: s.Label, Action: "stop"}).Run(ctx, env); err != nil {
				return err
			}
		case "quit-app":
			if err := (Quit{Label: s.Label}).Run(ctx, env); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unknown before action %q", s.Label, b)
		}
	}
	return install(ctx, env, s.Label, s.Version)
}

// Launch opens the app as the console user, in their session, and waits
// for its process.
type Launch struct {
	Label string
	Wait  time.Duration
}

func (s Launch) Kind() string { return "launch" }

func (s Launch) Run(ctx context.Context, env *Env) error {
	res, err := runAsUser(ctx, env, s.Label, "launch", "open", "-a", env.App.Path)
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		// Nobody logged in is the lab's problem, not an app that would not
		// launch: ask the console before blaming the product.
		if console, cerr := consoleUserOf(ctx, env, s.Label); cerr != nil {
			return cerr
		} else if console != env.User {
			return noSession(env, s.Label, console)
		}
		if why := scriptError(res.Stderr); why != "" {
			return fmt.Errorf("%s: open -a %s: %s", s.Label, env.App.Path, why)
		}
		return fail(s.Label, "the app would not launch (exit %d): %s", res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	jobs, ok, err := waitApp(ctx, env, s.Label, true)
	if err != nil {
		return err
	}
	if !ok {
		// How the lab sees a running app is unverified on macOS: a miss
		// is the lab's until a Mac has shown it to be the product's.
		return fmt.Errorf("%s: open -a %s succeeded but no application.%s.* job with a pid appeared in the user's launchd domain within %s (launchctl list)",
			s.Label, env.App.Path, env.App.BundleID, env.processBound())
	}
	env.record(Entry{Step: s.Label, Kind: "launch", Started: time.Now(), Note: "running: " + describeJobs(jobs)})
	return sleep(ctx, s.Wait)
}

// Quit quits the app as the console user (Apple events from root to the
// user's app are refused) and waits for its process to go.
type Quit struct {
	Label string
	Wait  time.Duration
}

func (s Quit) Kind() string { return "quit" }

func (s Quit) Run(ctx context.Context, env *Env) error {
	jobs, err := runningApp(ctx, env, s.Label)
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		// Not running: nothing to quit (and no Apple event that might
		// launch it to deliver the quit).
		env.record(Entry{Step: s.Label, Kind: "quit", Started: time.Now(), Note: "the app is not running"})
		return sleep(ctx, s.Wait)
	}
	script := fmt.Sprintf("quit app id %q", env.App.BundleID)
	res, err := runAsUser(ctx, env, s.Label, "quit", "osascript", "-e", script)
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		if why := scriptError(res.Stderr); why != "" {
			return fmt.Errorf("%s: quit the app: %s", s.Label, why)
		}
	}
	left, gone, err := waitApp(ctx, env, s.Label, false)
	if err != nil {
		return err
	}
	if !gone {
		msg := fmt.Sprintf("%s: the app still runs %s after quit: %s", s.Label, env.processBound(), describeJobs(left))
		if res.Exit != 0 {
			msg += fmt.Sprintf(" (osascript exited %d: %s)", res.Exit, firstLine(res.Stderr, res.Stdout))
		}
		return fmt.Errorf("%s; an upgrade must not run under it", msg)
	}
	return sleep(ctx, s.Wait)
}

// WaitExtension polls systemextensionsctl until the extension is in State
// (and Version, when given), or the timeout passes: then the product is
// stuck.
type WaitExtension struct {
	Label   string
	State   string
	Version string // "3.0" or "3.0/300"; template allowed
	Timeout time.Duration
}

func (s WaitExtension) Kind() string { return "wait-extension" }

func (s WaitExtension) Run(ctx context.Context, env *Env) error {
	version, err := env.Render(s.Version)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Label, err)
	}
	deadline := time.Now().Add(env.wait(s.Timeout))
	poll := env.poller()
	last := "not installed"
	for {
		rows, err := listExtensions(ctx, env, s.Label)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.State == s.State && versionMatches(r, version) {
				return nil
			}
		}
		if len(rows) > 0 {
			last = describeRows(rows)
		}
		if time.Now().After(deadline) {
			return fail(s.Label, "extension %s did not reach %q within %s; last seen: %s", env.App.Extension.BundleID, s.State, env.wait(s.Timeout), last)
		}
		if err := poll.wait(ctx, deadline); err != nil {
			return err
		}
	}
}

// Approve approves the extension by a strategy:
//   - mdm: a system extension policy from the golden's MDM enrolment has
//     approved it already; the step verifies the policy is installed
//     (a golden without one can never be approved by "mdm");
//   - ui (prompt is its deprecated alias): System Settings, scripted
//     (approval_ui.go); What vpn-configuration answers the
//     VPN-configuration alert instead;
//   - command: a command line of the user's;
//   - none.
type Approve struct {
	Label    string
	Strategy string // mdm, ui, prompt, command, none
	What     string // ui: extension (default) or vpn-configuration
	Script   string // command: the command line
}

func (s Approve) Kind() string { return "approve" }

func (s Approve) Run(ctx context.Context, env *Env) error {
	switch s.Strategy {
	case "none":
		return nil
	case "mdm":
		return approveMDM(ctx, env, s.Label)
	case "ui", "prompt":
		return approveUI(ctx, env, s.Label, s.What)
	case "command":
		line, err := env.Render(s.Script)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Label, err)
		}
		res, err := env.run(ctx, s.Label, "approve", line)
		if err != nil {
			return err
		}
		// The probes say what state the user's command left.
		if res.Exit != 0 {
			env.record(Entry{Step: s.Label, Kind: "approve", Started: time.Now(), Note: fmt.Sprintf("approval command exited %d: %s", res.Exit, firstLine(res.Stderr, res.Stdout))})
		}
		return nil
	}
	return fmt.Errorf("%s: unknown approval strategy %q", s.Label, s.Strategy)
}

// approveMDM verifies that the golden's MDM enrolment installed a system
// extension policy (com.apple.system-extension-policy) allowing the
// extension: such a policy approves matching activations at once (macOS
// 11.3+, Apple DeviceManagement SystemExtensions), so there is nothing to
// click, only the policy to check. Without it "mdm" cannot approve
// anything: the lab's error, never the product's failure.
func approveMDM(ctx context.Context, env *Env, label string) error {
	res, err := env.run(ctx, label, "approve", guest.Join("sudo", "profiles", "show", "-output", "stdout-xml"))
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		return fmt.Errorf("%s: sudo profiles show -output stdout-xml exited %d: %s", label, res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	ps, err := guest.ParseProfiles(strings.NewReader(res.Stdout))
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	ext := env.App.Extension
	if id := ps.Allows(ext.TeamID, ext.BundleID); id != "" {
		env.record(Entry{Step: label, Kind: "approve", Started: time.Now(), Note: fmt.Sprintf("mdm: profile %s allows team %s (%s): its system extension policy approves the extension", id, ext.TeamID, ext.BundleID)})
		return nil
	}
	return fmt.Errorf("%s: approve: mdm needs a system extension policy (%s) allowing team %s (AllowedTeamIdentifiers) or %s (AllowedSystemExtensions), installed by a user-approved MDM enrolment; image %s has %d profiles and %d system extension policies, none for this extension: enrol its golden and install the policy (sim images: images.%s.sim.golden.mdm.system_extension_policies), or approve with ui",
		label, guest.SystemExtensionPolicyType, ext.TeamID, ext.BundleID, env.Image, len(ps.Computer), ps.Policies(), env.Image)
}

// VPN starts or stops the app's VPN and waits for the state.
type VPN struct {
	Label   string
	Action  string // start, stop
	Timeout time.Duration
}

func (s VPN) Kind() string { return "vpn" }

func (s VPN) Run(ctx context.Context, env *Env) error {
	want := map[string]string{"start": "Connected", "stop": "Disconnected"}[s.Action]
	if want == "" {
		return fmt.Errorf("%s: unknown vpn action %q", s.Label, s.Action)
	}
	if _, err := env.run(ctx, s.Label, "vpn", guest.Join("scutil", "--nc", s.Action, env.App.VPNService)); err != nil {
		return err
	}
	deadline := time.Now().Add(env.wait(s.Timeout))
	poll := env.poller()
	for {
		st, err := vpnStatus(ctx, env, s.Label)
		if err != nil {
			return err
		}
		if st == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fail(s.Label, "VPN %q did not become %s within %s: status %s", env.App.VPNService, want, env.wait(s.Timeout), st)
		}
		if err := poll.wait(ctx, deadline); err != nil {
			return err
		}
	}
}

// Reboot restarts the guest and reconnects; the host key must match.
type Reboot struct {
	Label string
	Wait  time.Duration
}

func (s Reboot) Kind() string { return "reboot" }

func (s Reboot) Run(ctx context.Context, env *Env) error {
	// The connection drops under the command: that is the expected end,
	// not an error.
	res, err := env.Guest.Run(ctx, guest.Cmd{Line: "sudo shutdown -r now", Timeout: 30 * time.Second})
	env.record(Entry{Step: s.Label, Kind: "reboot", Started: time.Now(), Result: &res, Note: errNote(err)})
	if err := sleep(ctx, s.Wait); err != nil {
		return err
	}
	if env.Reconnect == nil {
		return fmt.Errorf("%s: cannot reconnect after reboot", s.Label)
	}
	if err := env.Reconnect(ctx); err != nil {
		return fmt.Errorf("%s: reconnect after reboot: %w", s.Label, err)
	}
	// macOS empties /tmp when it starts (reported, not documented by
	// Apple; unverified on macOS), so nothing uploaded before is assumed
	// to be there after.
	env.staged, env.probeRemote = false, ""
	return nil
}

// stagingDir makes sure remoteDir exists in the guest: once per boot of
// the attempt's machine, not before every upload.
func stagingDir(ctx context.Context, env *Env, label string) error {
	if env.staged {
		return nil
	}
	res, err := env.run(ctx, label, "prepare", guest.Join("mkdir", "-p", remoteDir))
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		return fmt.Errorf("%s: mkdir -p %s exited %d: %s", label, remoteDir, res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	env.staged = true
	return nil
}

// Shell runs a command and checks its exit and output.
type Shell struct {
	Label        string
	Line         string
	ExpectExit   int
	ExpectStdout *regexp.Regexp
}

func (s Shell) Kind() string { return "shell" }

func (s Shell) Run(ctx context.Context, env *Env) error {
	line, err := env.Render(s.Line)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Label, err)
	}
	res, err := env.run(ctx, s.Label, "shell", line)
	if err != nil {
		return err
	}
	if res.Exit != s.ExpectExit {
		return fail(s.Label, "exit %d, expected %d: %s", res.Exit, s.ExpectExit, firstLine(res.Stderr, res.Stdout))
	}
	if s.ExpectStdout != nil && !s.ExpectStdout.MatchString(res.Stdout) {
		return fail(s.Label, "output does not match %q: %s", s.ExpectStdout, firstLine(res.Stdout))
	}
	return nil
}

// Sleep waits.
type Sleep struct {
	Label string
	For   time.Duration
}

func (s Sleep) Kind() string { return "sleep" }

func (s Sleep) Run(ctx context.Context, env *Env) error { return sleep(ctx, s.For) }

// RunProbes runs probes by name (every configured probe when empty),
// appending to env.Results. A probe that does not hold is an outcome, not
// an error: all probes run, and the lab decides the verdict.
type RunProbes struct {
	Label string
	Names []string
}

func (s RunProbes) Kind() string { return "probe" }

func (s RunProbes) Run(ctx context.Context, env *Env) error {
	names := s.Names
	if len(names) == 0 {
		for n := range env.Probes {
			names = append(names, n)
		}
		sortStrings(names)
	}
	// Probes that only read share one systemextensionsctl listing; one
	// that acts on the guest (runs sxlab-probe or a command, which can
	// start the extension) makes the next ask again.
	env.inProbes = true
	defer func() { env.inProbes, env.probeListing = false, nil }()
	for _, n := range names {
		p, ok := env.Probes[n]
		if !ok {
			return fmt.Errorf("%s: probe %q is not configured", s.Label, n)
		}
		res, err := p.Check(ctx, env)
		if p.Kind != "extension-state" && p.Kind != "mach-endpoint" {
			env.probeListing = nil
		}
		if err != nil {
			return fmt.Errorf("%s: probe %s: %w", s.Label, n, err)
		}
		res.Name = n
		env.Results = append(env.Results, res)
		env.record(Entry{Step: s.Label, Kind: "probe", Started: time.Now(), Note: res.String()})
	}
	return nil
}

func firstLine(outs ...string) string {
	return cmp.Or(guest.FirstLine(outs...), "(no output)")
}

func errNote(err error) string {
	if err == nil {
		return ""
	}
	return "connection ended: " + err.Error()
}
