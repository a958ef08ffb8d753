package steps

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// Approval by UI scripting: System Settings is opened on the pane where
// this macOS version offers the extension's approval control, the control
// is clicked through System Events, the administrator password sheet is
// answered with the image's password, and systemextensionsctl confirms.
//
// Three outcomes are kept apart:
//   - approved;
//   - no approval control (System Events answers -1728 "Can't get …"
//     for every control while System Settings' window is titled after
//     the pane the script opened, and nothing in that window names the
//     control, the app or the extension): macOS offers nothing to click,
//     the product/OS problem of the field report approval-dialog-missing.
//     It is noted and the scenario goes on, so the probes record the
//     state it leaves;
//   - a script that does not match this macOS (the clicks answer -1728
//     but the window is another pane, or none, or it shows the control
//     or the app somewhere the script's references do not reach): the
//     lab's error, never "no approval control", or every pending cell on
//     that version would read as a product failure;
//   - cannot script (-1719, -1743, -609, no GUI session, a sheet that
//     does not come up or does not take the password): the lab's error,
//     naming the grant or setting the golden lacks.
//
// None of these scripts has run on a Mac yet: each is "unverified on
// macOS N" (docs/approval.md), and the first Mac run should correct the
// element names from the accessibility tree scripts/mac-acceptance.sh
// saves.

// uiScript is the built-in approval script of one macOS major version.
type uiScript struct {
	major int
	// pane is the x-apple.systempreferences: URL of the pane with the
	// approval control, paneName what System Settings calls it: the
	// name of its window while it shows the pane (the landmark).
	pane, paneName string
	// controls are the elements to try, in order, for the app's
	// extension: the first that exists is clicked.
	controls func(app App) []control
	// sheetButton confirms the administrator password sheet.
	sheetButton string
}

// privacySecurity is macOS 13 and 14: Privacy & Security shows "System
// software from application … was blocked from loading" with an Allow
// button (Tailscale KB 1340). Unverified on macOS 13 and 14.
func privacySecurity(major int) uiScript {
	return uiScript{
		major: major, pane: "x-apple.systempreferences:com.apple.preference.security?Security", paneName: "Privacy & Security",
		controls:    func(App) []control { return []control{{"button", "Allow"}} },
		sheetButton: "Modify Settings",
	}
}

// loginItems is macOS 15 and later: General > Login Items & Extensions
// lists the extension with a switch, named after the app (or its bundle
// ID) (Tailscale KB 1340; Apple macOS User Guide mtusr003). Unverified on
// macOS 15 and 26.
func loginItems(major int) uiScript {
	return uiScript{
		major: major, pane: "x-apple.systempreferences:com.apple.LoginItems-Settings.extension", paneName: "Login Items & Extensions",
		controls: func(app App) []control {
			return []control{{"checkbox", app.Name}, {"checkbox", app.Extension.BundleID}}
		},
		sheetButton: "Modify Settings",
	}
}

// control is a UI element by its class and name, as System Events
// addresses it: checkbox "Example VPN".
type control struct{ class, name string }

// ref is the control's reference as a script's click names it.
func (c control) ref() string { return c.class + " " + appleString(c.name) }

// refs are the references of controls, joined with " or ".
func refs(cs []control) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ref()
	}
	return strings.Join(out, " or ")
}

// uiScripts are the built-in scripts by macOS major version.
var uiScripts = map[int]uiScript{13: privacySecurity(13), 14: privacySecurity(14), 15: loginItems(15), 26: loginItems(26)}

// UIScriptVersions lists the macOS major versions with a built-in script.
func UIScriptVersions() []int { return []int{13, 14, 15, 26} }

// UIScriptNote describes the built-in approve: ui script for a macOS major
// version and says no Mac has run it yet, for `image check` and run
// output; "" when there is no script for that version.
func UIScriptNote(major int) string {
	sc, ok := uiScripts[major]
	if !ok {
		return ""
	}
	return fmt.Sprintf("approve: ui on macOS %d opens %s (%s) and clicks %s: unverified on macOS %d",
		major, sc.paneName, sc.pane, refs(sc.controls(App{Name: "APP", Extension: Extension{BundleID: "EXTENSION"}})), major)
}

// Approval targets of the ui strategy.
const (
	WhatExtension = "extension"
	WhatVPNConfig = "vpn-configuration"
)

// appleString quotes s for AppleScript.
func appleString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// settingsClick is the System Events line that clicks ref in System
// Settings' front window.
func settingsClick(ref string) string {
	return `tell application "System Events" to tell process "System Settings" to click ` + ref + ` of window 1`
}

// settingsWindowName is the System Events line that prints the name of
// System Settings' front window. System Settings titles its window after
// the pane it shows: scripts wait for `name of window 1 of process
// "System Settings"` to become "Accessibility" after opening
// …security?Privacy_Accessibility (adrienm7/ergopti
// tools/diagnostics/hs274_accessibility.py) and address `window
// "Privacy & Security" of application process "System Settings"`
// (Ryan-the-hito/Shameplant). That Login Items & Extensions titles it so
// on 15 and 26 is unverified on macOS.
const settingsWindowName = `tell application "System Events" to get name of window 1 of process "System Settings"`

// macOSMajor is the guest's major version, from `sw_vers -productVersion`.
func macOSMajor(ctx context.Context, env *Env, step string) (int, error) {
	res, err := env.run(ctx, step, "query", guest.Join("sw_vers", "-productVersion"))
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(res.Stdout)
	major, perr := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if res.Exit != 0 || perr != nil {
		return 0, fmt.Errorf("%s: sw_vers -productVersion (exit %d) gave no version: %s", step, res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	return major, nil
}

// errCode is the "(-NNNN)" of an osascript error, "" when there is none.
func errCode(stderr string) string {
	i := strings.LastIndex(stderr, "(-")
	if i < 0 {
		return ""
	}
	j := strings.Index(stderr[i:], ")")
	if j < 0 {
		return ""
	}
	return stderr[i+1 : i+j]
}

// approveUI approves the extension (or answers the VPN-configuration
// alert) through the user's GUI.
func approveUI(ctx context.Context, env *Env, label, what string) error {
	if what == WhatVPNConfig {
		return answerVPNAlert(ctx, env, label)
	}
	rows, err := listExtensions(ctx, env, label)
	if err != nil {
		return err
	}
	var waiting *guest.Extension
	for i, r := range rows {
		if r.State == "activated waiting for user" {
			waiting = &rows[i]
		}
	}
	if waiting == nil {
		// Nothing asks for approval: already enabled, or never requested.
		// The probes say which and whether that is right.
		env.record(Entry{Step: label, Kind: "approve", Started: time.Now(), Note: "ui: nothing waits for approval; rows: " + describeRows(rows)})
		return nil
	}
	major, err := macOSMajor(ctx, env, label)
	if err != nil {
		return err
	}
	sc, ok := uiScripts[major]
	if !ok {
		return fmt.Errorf("%s: approve: ui has no System Settings script for macOS %d (built in: 13, 14, 15, 26); use approve: command with your own", label, major)
	}
	unverified := fmt.Sprintf("the macOS %d script is unverified on macOS %d", major, major)

	// The pane.
	res, err := runAsUser(ctx, env, label, "approve", "open", sc.pane)
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		if console, cerr := consoleUserOf(ctx, env, label); cerr != nil {
			return cerr
		} else if console != env.User {
			return noSession(env, label, console)
		}
		why := scriptError(res.Stderr)
		if why == "" {
			why = fmt.Sprintf("exit %d: %s", res.Exit, firstLine(res.Stderr, res.Stdout))
		}
		return fmt.Errorf("%s: could not open System Settings on %s (%s): %s", label, sc.paneName, sc.pane, why)
	}

	// The control.
	clicked := ""
	var missing []string
	controls := sc.controls(env.App)
	for _, c := range controls {
		ref := c.ref()
		res, err := runAsUser(ctx, env, label, "approve", "osascript", "-e", settingsClick(ref))
		if err != nil {
			return err
		}
		if res.Exit == 0 {
			clicked = ref
			break
		}
		if why := scriptError(res.Stderr); why != "" {
			return fmt.Errorf("%s: cannot script System Settings: %s", label, why)
		}
		if errCode(res.Stderr) != "-1728" {
			return fmt.Errorf("%s: clicking %s in %s failed (exit %d): %s (%s)", label, ref, sc.paneName, res.Exit, firstLine(res.Stderr, res.Stdout), unverified)
		}
		missing = append(missing, ref)
	}
	if clicked == "" {
		// Nothing to click. Only when System Settings shows the pane the
		// script meant is that macOS's doing (approval-dialog-missing);
		// otherwise the script is looking at the wrong thing.
		if err := settingsLandmark(ctx, env, label, sc, missing); err != nil {
			return err
		}
		elements, err := settingsUnreached(ctx, env, label, sc, controls, missing, unverified)
		if err != nil {
			return err
		}
		// macOS offers nothing to click for the waiting copy: the
		// product/OS problem of approval-dialog-missing. The probes
		// record the state it leaves.
		env.record(Entry{Step: label, Kind: "approve", Started: time.Now(), Note: fmt.Sprintf(
			"no approval control: %s shows no %s for %s %s (%s, -1728; its window is %q, and none of its %d elements names %s); %s; the extension stays %q",
			sc.paneName, strings.Join(missing, " or "), waiting.BundleID, rowVersion(*waiting), sc.pane, sc.paneName, elements, mentionNames(env.App, controls), unverified, waiting.State)})
		return nil
	}

	// The administrator password sheet.
	if env.Password == "" {
		return fmt.Errorf("%s: the approval control asks for an administrator password and image %s has none configured (give the image auth.password or auth.password_env)", label, env.Image)
	}
	sheet := []string{"osascript",
		"-e", `tell application "System Events"`, "-e", `tell process "System Settings"`,
		"-e", "set value of text field 1 of sheet 1 of window 1 to " + appleString(env.Password),
		"-e", "click button " + appleString(sc.sheetButton) + " of sheet 1 of window 1",
		"-e", "end tell", "-e", "end tell"}
	line, err := asUser(ctx, env, label, sheet...)
	if err != nil {
		return err
	}
	// The password is on the command line (the guest's osascript takes -e
	// scripts); steps.jsonl and messages show it redacted, as it appears
	// in the script and as the shell quoting spells it.
	lit := appleString(env.Password)
	secrets := []string{strings.ReplaceAll(lit, "'", `'\''`), lit}
	res, err = env.runCmd(ctx, label, "approve", guest.Cmd{Line: line}, secrets...)
	if err != nil {
		return err
	}
	if res.Exit != 0 {
		if why := scriptError(res.Stderr); why != "" {
			return fmt.Errorf("%s: cannot answer the password sheet: %s", label, why)
		}
		return fmt.Errorf("%s: the password sheet after clicking %s could not be answered (exit %d): %s (%s)",
			label, clicked, res.Exit, firstLine(redact(res.Stderr, secrets...), redact(res.Stdout, secrets...)), unverified)
	}

	// The outcome, as systemextensionsctl sees it.
	deadline := time.Now().Add(env.processBound())
	poll := env.poller()
	for {
		rows, err := listExtensions(ctx, env, label)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.BundleID == waiting.BundleID && rowVersion(r) == rowVersion(*waiting) && r.State == "activated enabled" {
				env.record(Entry{Step: label, Kind: "approve", Started: time.Now(), Note: fmt.Sprintf(
					"approved %s %s through System Settings > %s (%s)", r.BundleID, rowVersion(r), sc.paneName, unverified)})
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: clicked %s in %s and answered the password sheet, but %s %s is not enabled within %s (rows: %s): the image's password may be wrong, or %s",
				label, clicked, sc.paneName, waiting.BundleID, rowVersion(*waiting), env.processBound(), describeRows(rows), unverified)
		}
		if err := poll.wait(ctx, deadline); err != nil {
			return err
		}
	}
}

// settingsLandmark asks System Events, as the user, for the name of
// System Settings' front window after every click found nothing (-1728),
// and returns nil only when it is the pane the script opened. Anything
// else (another pane, no window, no name) is the lab's error: the
// built-in script may not match this macOS's UI, and reporting its miss
// as "no approval control" would turn every pending cell of the version
// into a product failure.
func settingsLandmark(ctx context.Context, env *Env, label string, sc uiScript, missing []string) error {
	res, err := runAsUser(ctx, env, label, "query", "osascript", "-e", settingsWindowName)
	if err != nil {
		return err
	}
	name := strings.TrimSpace(res.Stdout)
	if res.Exit == 0 && name == sc.paneName {
		return nil
	}
	if why := scriptError(res.Stderr); why != "" {
		return fmt.Errorf("%s: cannot script System Settings: %s", label, why)
	}
	var found string
	switch {
	case res.Exit == 0 && name == "":
		found = "a window with no name"
	case res.Exit == 0:
		found = fmt.Sprintf("%q", name)
	case errCode(res.Stderr) == "-1728":
		found = "no window (-1728: " + firstLine(res.Stderr) + ")"
	default:
		found = fmt.Sprintf("unknown (exit %d: %s)", res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	return fmt.Errorf("%s: System Settings has no %s (-1728), but its front window is %s, not %q as after opening %s: "+
		"the built-in macOS %d script may not match this macOS's UI (unverified on macOS %d), so this is the lab's error, not a missing approval control. "+
		"Compare the element names with the accessibility tree scripts/mac-acceptance.sh saves for the pane (figures.txt), or approve with approve: command",
		label, strings.Join(missing, " or "), found, sc.paneName, sc.pane, sc.major, sc.major)
}

// settingsContents is the script that lists every element of System
// Settings' front window, one line each: its class, name, description
// and value, tab-separated ("" for none, "?" for one that cannot be
// read). A click on `checkbox "X" of window 1` finds only a direct child
// of the window, while System Settings nests its controls in groups and
// scroll areas (public scripts click `checkbox 1 of row 9 of table 1 of
// scroll area 1 of group 1 of window "Sharing"`, NightMachinery/.shells
// network_sharing_enable.as), so a miss alone does not show that macOS
// offers nothing. Walking `entire contents of window 1` for a checkbox
// by name is how public scripts find an app's switch in System Settings
// (mac-grant-accessibility.sh, for Privacy & Security > Accessibility);
// it indexes the list, as others warn that `repeat with e in (entire
// contents …)` yields references whose name does not resolve. The
// script and its output are unverified on macOS;
// scripts/mac-acceptance.sh saves the same properties of every element
// of each pane (walking `UI elements`), which settles what a pane holds.
var settingsContents = []string{
	"on t(x)",
	"try",
	`if x is missing value then return ""`,
	"return x as text",
	"on error",
	`return "?"`,
	"end try",
	"end t",
	`tell application "System Events" to tell process "System Settings"`,
	"set out to {}",
	"set els to entire contents of window 1",
	"repeat with i from 1 to count of els",
	"set el to item i of els",
	`set {c, n, d, v} to {"?", "", "", ""}`,
	"try",
	"set c to my t(class of el)",
	"end try",
	"try",
	"set n to my t(name of el)",
	"end try",
	"try",
	"set d to my t(description of el)",
	"end try",
	"try",
	"set v to my t(value of el)",
	"end try",
	"set end of out to c & tab & n & tab & d & tab & v",
	"end repeat",
	"set AppleScript's text item delimiters to linefeed",
	"return out as text",
	"end tell",
}

// uiElement is one line of settingsContents' output.
type uiElement struct{ class, name, description, value string }

func (e uiElement) String() string {
	s := e.class
	if e.name != "" {
		s += " " + appleString(e.name)
	}
	for _, x := range []struct{ what, v string }{{"description", e.description}, {"value", e.value}} {
		if x.v != "" && x.v != e.name {
			if len(x.v) > 100 {
				x.v = strings.ToValidUTF8(x.v[:100], "") + "…" // a long text, cut on a rune
			}
			s += fmt.Sprintf(" (%s %s)", x.what, appleString(x.v))
		}
	}
	return s
}

// mentionNames are the names whose mention in the pane means the
// script's control, or something about the app, is there: the app's
// name, the extension's bundle ID, and the controls' own names.
func mentionNames(app App, controls []control) string {
	candidates := []string{app.Name, app.Extension.BundleID}
	for _, c := range controls {
		candidates = append(candidates, c.name)
	}
	var names []string
	seen := map[string]bool{}
	for _, n := range candidates {
		if n != "" && !seen[strings.ToLower(n)] {
			seen[strings.ToLower(n)] = true
			names = append(names, appleString(n))
		}
	}
	return strings.Join(names, " or ")
}

// mentions says whether e is one of the controls (its class and name,
// wherever it sits in the window) or names the app or the extension in
// its name, description or value.
func (e uiElement) mentions(app App, controls []control) bool {
	for _, c := range controls {
		if strings.EqualFold(e.class, c.class) && strings.EqualFold(e.name, c.name) {
			return true
		}
	}
	for _, n := range []string{app.Name, app.Extension.BundleID} {
		n = strings.ToLower(n)
		if n == "" {
			continue
		}
		for _, text := range []string{e.name, e.description, e.value} {
			if strings.Contains(strings.ToLower(text), n) {
				return true
			}
		}
	}
	return false
}

// settingsUnreached reads every element of System Settings' window (on
// the pane the script opened, every click having missed) and returns how
// many there are when none of them is the control or names the app or
// the extension: then macOS offers nothing to approve. When something
// does, the control is there and the script's references do not reach
// it, which is the lab's error; so is a window that cannot be read.
func settingsUnreached(ctx context.Context, env *Env, label string, sc uiScript, controls []control, missing []string, unverified string) (int, error) {
	args := []string{"osascript"}
	for _, l := range settingsContents {
		args = append(args, "-e", l)
	}
	res, err := runAsUser(ctx, env, label, "query", args...)
	if err != nil {
		return 0, err
	}
	if why := scriptError(res.Stderr); why != "" {
		return 0, fmt.Errorf("%s: cannot script System Settings: %s", label, why)
	}
	if res.Exit != 0 {
		return 0, fmt.Errorf("%s: System Settings has no %s (-1728), and listing what its %s window holds failed (exit %d: %s), so a missing approval control cannot be told from one the script does not reach: the lab's error (%s)",
			label, strings.Join(missing, " or "), sc.paneName, res.Exit, firstLine(res.Stderr, res.Stdout), unverified)
	}
	elements := 0
	var found []uiElement
	for _, line := range strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		elements++
		f := append(strings.SplitN(line, "\t", 4), "", "", "")
		if e := (uiElement{class: f[0], name: f[1], description: f[2], value: f[3]}); e.mentions(env.App, controls) {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		return elements, nil
	}
	shown := make([]string, 0, 3)
	for _, e := range found[:min(3, len(found))] {
		shown = append(shown, e.String())
	}
	if len(found) > 3 {
		shown = append(shown, fmt.Sprintf("and %d more", len(found)-3))
	}
	return 0, fmt.Errorf("%s: System Settings > %s shows %s, but %s found nothing (-1728): the control may be there where the built-in macOS %d script's references do not reach (%s), so this is the lab's error, not a missing approval control. "+
		"Correct the script from the accessibility tree scripts/mac-acceptance.sh saves for the pane (figures.txt), or approve with approve: command",
		label, sc.paneName, strings.Join(shown, "; "), strings.Join(missing, " and "), sc.major, unverified)
}

// vpnAlertProcess shows "“App” Would Like to Add VPN Configurations" after
// the app's first save of its VPN configuration. Unverified on macOS
// (every version): which process owns the alert, and its button names.
const vpnAlertProcess = "UserNotificationCenter"

// answerVPNAlert clicks Allow in the VPN-configuration alert. The
// simulated Mac models it (vm/sim/macos/vpnalert.go); no Mac has run
// this path yet.
func answerVPNAlert(ctx context.Context, env *Env, label string) error {
	script := `tell application "System Events" to tell process "` + vpnAlertProcess + `" to click button "Allow" of window 1`
	res, err := runAsUser(ctx, env, label, "approve", "osascript", "-e", script)
	if err != nil {
		return err
	}
	switch {
	case res.Exit == 0:
		env.record(Entry{Step: label, Kind: "approve", Started: time.Now(), Note: "answered Allow in the VPN-configuration alert (unverified on macOS)"})
		return nil
	case scriptError(res.Stderr) != "":
		return fmt.Errorf("%s: cannot script the VPN-configuration alert: %s", label, scriptError(res.Stderr))
	case errCode(res.Stderr) == "-1728":
		env.record(Entry{Step: label, Kind: "approve", Started: time.Now(), Note: "no VPN-configuration alert to answer (-1728): " + firstLine(res.Stderr)})
		return nil
	}
	return fmt.Errorf("%s: answering the VPN-configuration alert failed (exit %d): %s (unverified on macOS)", label, res.Exit, firstLine(res.Stderr, res.Stdout))
}

func rowVersion(r guest.Extension) string { return r.ShortVersion + "/" + r.Build }
