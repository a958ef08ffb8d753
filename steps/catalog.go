package steps

import (
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

// SimMDMCommand approves a system extension on a simulated Mac the way an
// MDM system-extension policy would on a real one (profiles(1) cannot
// deliver that payload, so real images are pre-approved instead).
const SimMDMCommand = "sxlab-sim-mdm"

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
	if _, err := env.run(ctx, label, "prepare", guest.Join("mkdir", "-p", remoteDir)); err != nil {
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

// consoleUser runs a command as the logged-in user: apps and AppleScript
// UI automation only work in the GUI session. launchctl asuser keeps
// root's credentials (launchctl(1)), and the user's apps refuse root's
// Apple events, so sudo -u drops them inside the session.
func consoleUser(env *Env, args ...string) string {
	u := guest.Quote(env.User)
	return "sudo launchctl asuser $(id -u " + u + ") sudo -u " + u + " " + guest.Join(args...)
}

// Launch opens the app as the console user.
type Launch struct {
	Label string
	Wait  time.Duration
}

func (s Launch) Kind() string { return "launch" }

func (s Launch) Run(ctx context.Context, env *Env) error {
	res, err := env.run(ctx, s.Label, "launch", consoleUser(env, "open", "-a", env.App.Path))
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		return fail(s.Label, "the app would not launch (exit %d): %s", res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	return sleep(ctx, s.Wait)
}

// Quit quits the app.
type Quit struct {
	Label string
	Wait  time.Duration
}

func (s Quit) Kind() string { return "quit" }

func (s Quit) Run(ctx context.Context, env *Env) error {
	script := fmt.Sprintf("quit app id %q", env.App.BundleID)
	// Quitting an app that is not running is not an error worth a verdict.
	if _, err := env.run(ctx, s.Label, "quit", consoleUser(env, "osascript", "-e", script)); err != nil {
		return err
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

// Approve approves the extension by a strategy.
type Approve struct {
	Label    string
	Strategy string // mdm, prompt, command, none
	Script   string // AppleScript (prompt) or command line (command)
}

func (s Approve) Kind() string { return "approve" }

func (s Approve) Run(ctx context.Context, env *Env) error {
	var line string
	switch s.Strategy {
	case "none":
		return nil
	case "mdm":
		if !env.Simulated {
			// A real golden image is pre-approved by its MDM profile:
			// there is nothing to click, only the outcome to check later.
			env.record(Entry{Step: s.Label, Kind: "approve", Started: time.Now(), Note: "mdm: image is pre-approved; nothing to do"})
			return nil
		}
		line = guest.Join("sudo", SimMDMCommand, "approve", env.App.Extension.TeamID, env.App.Extension.BundleID)
	case "prompt":
		script, err := env.Render(s.Script)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Label, err)
		}
		line = consoleUser(env, "osascript", "-e", script)
	case "command":
		var err error
		if line, err = env.Render(s.Script); err != nil {
			return fmt.Errorf("%s: %w", s.Label, err)
		}
	default:
		return fmt.Errorf("%s: unknown approval strategy %q", s.Label, s.Strategy)
	}
	res, err := env.run(ctx, s.Label, "approve", line)
	if err != nil {
		return err
	}
	// A prompt that is not there to click is the product's problem
	// (approval-dialog-missing); the probes say what state resulted.
	if res.Exit != 0 {
		env.record(Entry{Step: s.Label, Kind: "approve", Started: time.Now(), Note: fmt.Sprintf("approval command exited %d: %s", res.Exit, firstLine(res.Stderr, res.Stdout))})
	}
	return nil
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
	for _, n := range names {
		p, ok := env.Probes[n]
		if !ok {
			return fmt.Errorf("%s: probe %q is not configured", s.Label, n)
		}
		res, err := p.Check(ctx, env)
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
	for _, o := range outs {
		if l := strings.TrimSpace(strings.SplitN(strings.TrimSpace(o), "\n", 2)[0]); l != "" {
			return l
		}
	}
	return "(no output)"
}

func errNote(err error) string {
	if err == nil {
		return ""
	}
	return "connection ended: " + err.Error()
}
