package steps

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// The user's GUI session. Apps, System Settings and UI scripting exist
// only in the console user's Aqua session, and Apple events from root to
// that user's apps are refused (-1743), so every command meant for the
// user runs as `sudo launchctl asuser UID sudo -u USER …`: asuser puts
// it in the user's bootstrap, sudo -u makes it the user's own.

// autoLoginHelp says how to give a golden its GUI session.
const autoLoginHelp = "turn FileVault off and automatic login on in the golden " +
	"(System Settings > Users & Groups > \"Automatically log in as\"; Apple HT201476: it is dimmed while FileVault is on), then save the golden again"

// asUser is the command line that runs args as the image's user inside
// their GUI session. The uid comes from `id -u USER`, asked once per
// attempt.
func asUser(ctx context.Context, env *Env, step string, args ...string) (string, error) {
	uid, err := userID(ctx, env, step)
	if err != nil {
		return "", err
	}
	return guest.Join(append([]string{"sudo", "launchctl", "asuser", uid, "sudo", "-u", env.User}, args...)...), nil
}

// runAsUser runs args as the image's user in their session.
func runAsUser(ctx context.Context, env *Env, step, kind string, args ...string) (guest.Result, error) {
	line, err := asUser(ctx, env, step, args...)
	if err != nil {
		return guest.Result{}, err
	}
	return env.run(ctx, step, kind, line)
}

// consoleUserOf asks who owns the console: the GUI session's user, or
// root at the login window (Apple Technical Q&A QA1133).
func consoleUserOf(ctx context.Context, env *Env, step string) (string, error) {
	res, err := env.run(ctx, step, "session", guest.Join("stat", "-f", "%Su", "/dev/console"))
	if err != nil {
		return "", err
	}
	if res.Exit != 0 {
		return "", fmt.Errorf("%s: stat -f %%Su /dev/console exited %d: %s", step, res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	return strings.TrimSpace(res.Stdout), nil
}

// noSession is the lab's error for a guest where nobody (or someone
// else) is logged in to the GUI.
func noSession(env *Env, step, console string) error {
	who := fmt.Sprintf("the console belongs to %q", console)
	if console == "" || console == "root" {
		who = "nobody is logged in to the GUI (the console belongs to root: the login window)"
	}
	return fmt.Errorf("%s: %s, not to the image's user %s: automatic login is off; apps, System Settings and UI scripting need the user's session; %s",
		step, who, env.User, autoLoginHelp)
}

// SessionCheck makes sure the image's user is logged in to the GUI, the
// first step of every attempt: without the session every launch,
// approval and probe would fail and read as the product's failure.
type SessionCheck struct {
	Label string
}

func (s SessionCheck) Kind() string { return "session" }

func (s SessionCheck) Run(ctx context.Context, env *Env) error {
	console, err := consoleUserOf(ctx, env, s.Label)
	if err != nil {
		return err
	}
	if console != env.User {
		return noSession(env, s.Label, console)
	}
	return nil
}

// appJob is one running app in the user's launchd domain.
type appJob struct {
	Label string
	PID   int
}

// runningApp lists the app's processes as the user's launchd domain has
// them: LaunchServices starts each app as a job labelled
// application.BUNDLEID.N.N, with its pid in `launchctl list` run in the
// user's session. (pgrep or ps would do on a Mac; the simulated Mac has
// neither, and this is what both answer.) Unverified on macOS: that
// label form over `launchctl asuser`.
func runningApp(ctx context.Context, env *Env, step string) ([]appJob, error) {
	res, err := runAsUser(ctx, env, step, "query", "launchctl", "list")
	if err != nil {
		return nil, err
	}
	if res.Exit != 0 {
		return nil, fmt.Errorf("%s: launchctl list in the user's session exited %d: %s", step, res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	prefix := "application." + env.App.BundleID + "."
	var out []appJob
	for _, l := range strings.Split(res.Stdout, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || !strings.HasPrefix(f[2], prefix) {
			continue
		}
		if pid, err := strconv.Atoi(f[0]); err == nil && pid > 0 {
			out = append(out, appJob{Label: f[2], PID: pid})
		}
	}
	return out, nil
}

// processBound is how long a launched app gets to show up, and a quit
// one to go: apps take seconds, a wedged one much longer.
const processBound = 60 * time.Second

func (e *Env) processBound() time.Duration {
	if e.Wait > 0 && e.Wait < processBound {
		return e.Wait
	}
	return processBound
}

// waitApp polls runningApp until running says what is wanted or the
// bound passes; it returns the last jobs seen and whether they matched.
func waitApp(ctx context.Context, env *Env, step string, running bool) ([]appJob, bool, error) {
	deadline := time.Now().Add(env.processBound())
	poll := env.poller()
	for {
		jobs, err := runningApp(ctx, env, step)
		if err != nil {
			return nil, false, err
		}
		if (len(jobs) > 0) == running {
			return jobs, true, nil
		}
		if time.Now().After(deadline) {
			return jobs, false, nil
		}
		if err := poll.wait(ctx, deadline); err != nil {
			return nil, false, err
		}
	}
}

func describeJobs(jobs []appJob) string {
	var parts []string
	for _, j := range jobs {
		parts = append(parts, fmt.Sprintf("%s (pid %d)", j.Label, j.PID))
	}
	return strings.Join(parts, ", ")
}

// scriptError is what osascript's "(-NNNN)" code says of the lab: the
// grant or session it lacks and how to add it, or "" when the error is
// not the lab's.
func scriptError(stderr string) string {
	switch {
	case strings.Contains(stderr, "(-1719)"):
		return "osascript is not allowed assistive access (-1719): the session's responsible client over SSH, /usr/libexec/sshd-keygen-wrapper, needs the Accessibility grant (TCC kTCCServiceAccessibility). " +
			"Grant it in the golden: System Settings > Privacy & Security > Accessibility, add /usr/libexec/sshd-keygen-wrapper; or, with SIP disabled, write it into TCC.db as tart's base images do " +
			"(cirruslabs/macos-image-templates scripts/update-tcc-database.sh; actions/runner-images configure-tccdb-macos.sh)"
	case strings.Contains(stderr, "(-1743)"):
		return "not authorized to send Apple events (-1743): /usr/libexec/sshd-keygen-wrapper needs the Apple Events grant (TCC kTCCServiceAppleEvents) for System Events and the app, " +
			"and the script must run as the user (sudo launchctl asuser UID sudo -u USER), not as root. Grant it in the golden: System Settings > Privacy & Security > Automation; or, with SIP disabled, in TCC.db as tart's base images do " +
			"(cirruslabs/macos-image-templates scripts/update-tcc-database.sh)"
	case strings.Contains(stderr, "(-609)"):
		return "System Events' connection is invalid (-609): there is no GUI session to script; " + autoLoginHelp
	case strings.Contains(stderr, "(-600)"):
		return "LaunchServices found no GUI session (-600): " + autoLoginHelp
	}
	return ""
}
