package macos

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// installedApp is an app bundle a package put in /Applications.
type installedApp struct {
	pkg  SimPkg
	dir  string // /Applications/<name>.app
	exec string // dir/Contents/MacOS/<name>
}

// appProcess is a running app. It keeps the package it was launched
// from: replacing the bundle on disk does not change a running process.
type appProcess struct {
	pkg        SimPkg
	exec       string
	proc       process
	sysextConn uint64  // its connection to sysextd, as libxpc logs it
	awaiting   *extRow // activation the delegate waits to hear about
	xpcRow     *extRow // provider it holds an XPC connection to
}

func (m *Mac) isRunning(app *appProcess) bool { return m.running[app.pkg.App.BundleID] == app }

// appLog is the app's own Logger (subsystem = its bundle ID), with the
// messages Coder Desktop logs around its activation request.
func (m *Mac) appLog(app *appProcess, typ msgType, format string, args ...any) {
	m.logf(app.proc, "", typ, app.pkg.App.BundleID, "vpn-installer", format, args...)
}

func (m *Mac) newAppPtr() uint64 { return 0x100000000 + uint64(m.detailRand.IntN(0x0fffffff))<<4 }

// findApp resolves what `open -a` accepts: a name ("Example VPN"), a
// bundle name ("Example VPN.app") or a path to the bundle.
func (m *Mac) findApp(p *shell.Proc, arg string) *installedApp {
	if strings.Contains(arg, "/") {
		want := strings.TrimSuffix(guestPath(p, arg), "/")
		for _, app := range m.apps {
			if app.dir == want {
				return app
			}
		}
		return nil
	}
	name := strings.TrimSuffix(arg, ".app")
	for _, app := range m.apps {
		if strings.EqualFold(app.pkg.App.Name, name) {
			return app
		}
	}
	return nil
}

// launchApp starts the app unless it runs already (then `open` only
// brings it to the front). A new process submits its extension's
// activation request, as Coder Desktop does at every launch.
func (m *Mac) launchApp(ctx context.Context, bundleID string) int {
	m.begin()
	app, ok := m.apps[bundleID]
	if !ok || m.running[bundleID] != nil {
		m.mu.Unlock()
		return exitOK
	}
	gen := m.bootGen
	m.mu.Unlock()

	if !m.lockedAfter(ctx, m.dur.launch, gen) {
		return exitInterrupted
	}
	if m.running[bundleID] != nil {
		m.mu.Unlock()
		return exitOK
	}
	proc := process{path: app.exec, pid: m.newPID(), thread: m.threadID(), uuid: hashUUID(app.pkg.App.BundleID + " " + app.pkg.App.Build)}
	run := &appProcess{pkg: app.pkg, exec: app.exec, proc: proc, sysextConn: m.newAppPtr()}
	m.running[bundleID] = run
	m.submitActivation(run)
	m.mu.Unlock()

	// The request is asynchronous in the app; the model waits for
	// sysextd's decision so that `open` returns with the outcome settled.
	if !m.lockedAfter(ctx, m.dur.activation, gen) {
		return exitInterrupted
	}
	m.decideActivation(run)
	m.mu.Unlock()
	return exitOK
}

// appExtensionReady is what the app does once its extension is enabled:
// create its VPN configuration (first time only) and connect to the
// provider's Mach service. Callers hold mu.
func (m *Mac) appExtensionReady(app *appProcess) {
	if name := app.pkg.VPNService; name != "" && m.vpnByName(name) == nil {
		v := &vpnConfig{id: m.newUUID(), name: name, appBundle: app.pkg.App.BundleID, provider: app.pkg.Extension.BundleID}
		m.vpns = append(m.vpns, v)
		m.logf(app.proc, libNE, typeDefault, "com.apple.networkextension", "", "Saving configuration %{public}@ with existing signature (null)", name)
		m.nesm(typeDefault, "Added configuration %{public}@ (%{public}@) for %{public}@", name, v.id, app.pkg.App.BundleID)
	}
	app.xpcRow = m.xpcConnect(app.proc, app.pkg)
	m.reconcile()
}

// xpcConnect is libxpc's bootstrap look-up of the app's Mach service, with
// the lines libxpc and the app log when it fails.
func (m *Mac) xpcConnect(p process, pkg SimPkg) *extRow {
	service := pkg.Extension.MachService
	conn := m.newAppPtr()
	m.logf(p, libXPC, typeInfo, "com.apple.xpc", "connection", "[0x%llx] activating connection: mach=true listener=false peer=false name=%{public}@", conn, service)
	row := m.lookupService(service)
	if row == nil {
		m.logf(p, libXPC, typeDefault, "com.apple.xpc", "connection", "[0x%llx] failed to do a bootstrap look-up: xpc_error=[3: No such process]", conn)
		m.logf(p, libXPC, typeDefault, "com.apple.xpc", "connection", "[0x%llx] invalidated after a failed init", conn)
		m.logf(p, "", typeError, pkg.App.BundleID, "xpc", "XPC connection to %{public}@ invalidated", service)
		return nil
	}
	m.logf(p, "", typeInfo, pkg.App.BundleID, "xpc", "connected to %{public}@ (extension %{public}@)", service, row.ext.version())
	return row
}

// quitApp is `quit app id …`; false when the app does not run.
func (m *Mac) quitApp(ctx context.Context, bundleID string) bool {
	m.begin()
	app := m.running[bundleID]
	gen := m.bootGen
	m.mu.Unlock()
	if app == nil {
		return false
	}
	if !m.lockedAfter(ctx, m.dur.quit, gen) {
		return true
	}
	if m.running[bundleID] == app {
		delete(m.running, bundleID)
		m.appLog(app, typeInfo, "application will terminate")
		m.reconcile()
	}
	m.mu.Unlock()
	return true
}

// runAppBinary runs the app's executable directly: without arguments it
// launches the app like `open -a`; --check-xpc is the lab's XPC probe.
func (m *Mac) runAppBinary(ctx context.Context, p *shell.Proc, bundleID string) int {
	args := cmdArgs(p)
	switch {
	case len(args) == 0 || (len(args) == 1 && strings.HasPrefix(args[0], "-psn_")):
		return m.launchApp(ctx, bundleID)
	case len(args) == 1 && args[0] == "--check-xpc":
		return m.checkXPC(ctx, p, bundleID)
	}
	name := "app"
	if len(p.Args) > 0 {
		name = path.Base(p.Args[0])
	}
	fmt.Fprintf(stderr(p), "usage: %s [--check-xpc]\n", name)
	return exitUsage
}

// checkXPC connects to the extension's Mach service the way the app does
// and reports the provider's version: exit 0 when the connection works,
// 1 with "connection invalidated" when it is invalidated at once.
func (m *Mac) checkXPC(ctx context.Context, p *shell.Proc, bundleID string) int {
	m.begin()
	app, ok := m.apps[bundleID]
	gen := m.bootGen
	m.mu.Unlock()
	if !ok {
		fmt.Fprintf(stderr(p), "xpc: the app is not installed\n")
		return exitFailure
	}
	if !m.lockedAfter(ctx, m.dur.xpc, gen) {
		return exitInterrupted
	}
	proc := process{path: app.exec, pid: m.newPID(), thread: m.threadID(), uuid: hashUUID(app.pkg.App.BundleID + " " + app.pkg.App.Build)}
	row := m.xpcConnect(proc, app.pkg)
	m.mu.Unlock()
	service := app.pkg.Extension.MachService
	if row == nil {
		fmt.Fprintf(stderr(p), "xpc: %s: connection invalidated\n", service)
		return exitFailure
	}
	fmt.Fprintf(stdout(p), "xpc: connected to %s (extension %s)\n", service, row.ext.version())
	return exitOK
}

// cmdOpen is open(1): -a APP, -b BUNDLEID or a path to an .app.
func (m *Mac) cmdOpen(ctx context.Context, p *shell.Proc) int {
	var appArg, bundleArg string
	var paths []string
	args := cmdArgs(p)
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-a", "-b":
			if i+1 >= len(args) {
				fmt.Fprintf(stderr(p), "open: option requires an argument -- %s\n", strings.TrimPrefix(a, "-"))
				return exitFailure
			}
			i++
			if a == "-a" {
				appArg = args[i]
			} else {
				bundleArg = args[i]
			}
		case "-g", "-j", "-F", "-n", "--fresh", "--background", "--hide", "--new":
		case "-W", "--wait-apps":
			fmt.Fprintln(stderr(p), "open: -W is not supported by the simulated Mac")
			return exitFailure
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr(p), "open: unrecognized option `%s'\n", a)
				return exitFailure
			}
			paths = append(paths, a)
		}
	}
	if len(paths) == 1 && strings.HasPrefix(paths[0], "x-apple.systempreferences:") && appArg == "" {
		pane, ok := settingsURLs[paths[0]]
		if !ok {
			pane = "General" // an anchor the sim does not know opens System Settings all the same
		}
		return m.openSettings(p, paths[0], pane)
	}
	if strings.EqualFold(strings.TrimSuffix(path.Base(appArg), ".app"), settingsApp) || bundleArg == settingsBundleID {
		return m.openSettings(p, "/System/Applications/System Settings.app", "")
	}
	m.begin()
	var app *installedApp
	switch {
	case bundleArg != "":
		app = m.apps[bundleArg]
		if app == nil {
			m.mu.Unlock()
			fmt.Fprintf(stderr(p), "Unable to find application with bundle identifier %s\n", bundleArg)
			return exitFailure
		}
	case appArg != "":
		app = m.findApp(p, appArg)
		if app == nil {
			m.mu.Unlock()
			if strings.Contains(appArg, "/") {
				fmt.Fprintf(stderr(p), "The application %s does not exist.\n", guestPath(p, appArg))
			} else {
				fmt.Fprintf(stderr(p), "Unable to find application named '%s'\n", appArg)
			}
			return exitFailure
		}
	case len(paths) == 1 && strings.HasSuffix(strings.TrimSuffix(paths[0], "/"), ".app"):
		app = m.findApp(p, paths[0])
		if app == nil {
			m.mu.Unlock()
			fmt.Fprintf(stderr(p), "The file %s does not exist.\n", guestPath(p, paths[0]))
			return exitFailure
		}
	default:
		m.mu.Unlock()
		fmt.Fprintln(stderr(p), "Usage: open [-e] [-t] [-f] [-W] [-R] [-n] [-g] [-h] [-s <partial SDK name>][-b <bundle identifier>] [-a <application>] [-u URL] [filenames] [--args arguments]")
		fmt.Fprintln(stderr(p), "(the simulated Mac opens applications only)")
		return exitFailure
	}
	bundleID, dir := app.pkg.App.BundleID, app.dir
	m.mu.Unlock()
	if !m.exists(dir) {
		fmt.Fprintf(stderr(p), "The application %s does not exist.\n", dir)
		return exitFailure
	}
	if m.consoleUser() == "" {
		return noSessionOpen(p, dir) // nobody is logged in: no GUI session to open it in
	}
	return m.launchApp(ctx, bundleID)
}

var (
	quitAppID   = regexp.MustCompile(`(?i)\bquit\s+(?:app|application)\s+id\s+"([^"]*)"`)
	quitAppName = regexp.MustCompile(`(?i)\bquit\s+(?:app|application)\s+"([^"]*)"`)
	tellQuit    = regexp.MustCompile(`(?i)\btell\s+(?:app|application)\s+(id\s+)?"([^"]*)"\s+to\s+quit\b`)
)

// cmdOsascript understands the two kinds of script the lab sends:
// quitting an app, and UI scripting of the approval prompt. A click
// script counts as approval when it clicks "Allow" (and not "Don't
// Allow"); while a prompt is on screen it approves that extension,
// otherwise — no prompt, as with approval-coalesced — it changes
// nothing and, like a script whose target vanished quietly, exits 0.
func (m *Mac) cmdOsascript(ctx context.Context, p *shell.Proc) int {
	var lines []string
	args := cmdArgs(p)
	for i := 0; i < len(args); i++ {
		if args[i] == "-e" && i+1 < len(args) {
			lines = append(lines, args[i+1])
			i++
			continue
		}
		fmt.Fprintln(stderr(p), "osascript: the simulated Mac runs -e scripts only")
		return exitFailure
	}
	script := strings.Join(lines, "\n")
	if script == "" {
		fmt.Fprintln(stderr(p), "usage: osascript [-l language] [-e script] [-i] [-s {ehso}] [programfile] [argument ...]")
		return exitFailure
	}
	lower := strings.ToLower(script)
	if strings.Contains(lower, `"system events"`) {
		if code := m.mayScriptUI(p, script); code != exitOK {
			return code
		}
		if strings.Contains(lower, `process "system settings"`) {
			return m.settingsScript(ctx, p, script)
		}
	}
	if target, byID, ok := quitTarget(script); ok {
		if code := m.mayAppleEvent(p, script, target, byID); code != exitOK {
			return code
		}
		m.begin()
		bundleID := ""
		if byID {
			if _, known := m.apps[target]; known || m.running[target] != nil {
				bundleID = target
			}
		} else {
			for id, app := range m.apps {
				if strings.EqualFold(app.pkg.App.Name, target) {
					bundleID = id
				}
			}
		}
		m.mu.Unlock()
		if bundleID == "" {
			kind := "application"
			if byID {
				kind = "application id"
			}
			fmt.Fprintf(stderr(p), "0:%d: execution error: Can’t get %s \"%s\". (-1728)\n", len(script), kind, target)
			return exitFailure
		}
		m.quitApp(ctx, bundleID)
		return exitOK
	}
	if strings.Contains(lower, "click") {
		allow := strings.Contains(lower, `"allow"`) && !strings.Contains(lower, "don't allow") && !strings.Contains(lower, "don’t allow")
		return m.clickPrompt(ctx, allow)
	}
	fmt.Fprintf(stderr(p), "0:%d: execution error: the simulated Mac runs only `quit app` and approval-prompt click scripts. (-2700)\n", len(script))
	return exitFailure
}

func quitTarget(script string) (target string, byID, ok bool) {
	if m := quitAppID.FindStringSubmatch(script); m != nil {
		return m[1], true, true
	}
	if m := tellQuit.FindStringSubmatch(script); m != nil {
		return m[2], m[1] != "", true
	}
	if m := quitAppName.FindStringSubmatch(script); m != nil {
		return m[1], false, true
	}
	return "", false, false
}

// clickPrompt answers the on-screen approval prompt: Allow approves the
// extension, any other button dismisses the prompt (the extension keeps
// waiting; System Settings can still approve it).
func (m *Mac) clickPrompt(ctx context.Context, allow bool) int {
	m.begin()
	row := m.prompt
	gen := m.bootGen
	m.mu.Unlock()
	if row == nil {
		return exitOK
	}
	if !m.lockedAfter(ctx, m.dur.approval, gen) {
		return exitInterrupted
	}
	defer m.mu.Unlock()
	if m.prompt != row || row.state != stateWaiting {
		return exitOK
	}
	if !allow {
		m.prompt = nil
		return exitOK
	}
	m.approve(row)
	return exitOK
}

// mayScriptUI applies macOS's rules to UI scripting through System
// Events: root's Apple events do not reach the user's session (-1743),
// there must be a GUI session, and the session's responsible client
// (sshd-keygen-wrapper over SSH) needs Apple Events and Accessibility in
// TCC (-1743, -1719).
func (m *Mac) mayScriptUI(p *shell.Proc, script string) int {
	at := scriptRange(script, "")
	switch {
	case p.Root, !granted(m.golden.AppleEvents):
		fmt.Fprintf(stderr(p), "%s: execution error: Not authorized to send Apple events to System Events. (-1743)\n", at)
	case m.consoleUser() == "":
		fmt.Fprintf(stderr(p), "%s: execution error: System Events got an error: Connection is invalid. (-609)\n", at)
	case !granted(m.golden.Accessibility):
		fmt.Fprintf(stderr(p), "%s: execution error: System Events got an error: osascript is not allowed assistive access. (-1719)\n", at)
	default:
		return exitOK
	}
	return exitFailure
}

// mayAppleEvent applies the rules to an Apple event sent to an app (quit):
// refused from root, and without the Apple Events grant (-1743).
func (m *Mac) mayAppleEvent(p *shell.Proc, script, target string, byID bool) int {
	if !p.Root && granted(m.golden.AppleEvents) {
		return exitOK
	}
	name := target
	if byID {
		m.begin()
		if app, ok := m.apps[target]; ok {
			name = app.pkg.App.Name
		}
		m.mu.Unlock()
	}
	fmt.Fprintf(stderr(p), "%s: execution error: Not authorized to send Apple events to %s. (-1743)\n", scriptRange(script, ""), name)
	return exitFailure
}
