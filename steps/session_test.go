package steps

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
)

// The command lines of the user's session, as docs/macos-behaviour.md
// lists them, answered by a fake guest.
const (
	userPrefix  = "sudo launchctl asuser 501 sudo -u admin "
	listApps    = userPrefix + "launchctl list"
	appsNone    = "PID\tStatus\tLabel\n-\t0\tcom.apple.SafariHistoryServiceAgent\n"
	appRunning  = appsNone + "412\t0\tapplication.com.example.vpn.1000412.1002884\n"
	openApp     = userPrefix + "open -a '/Applications/Example VPN.app'"
	consoleLine = "stat -f %Su /dev/console"
	noSessionLS = "_LSOpenURLsWithCompletionHandler() failed for the application /Applications/Example VPN.app with error -600.\n"
)

// userFake knows the uid of admin.
func userFake() *fakeGuest { return newFake().on("id -u admin", ok("501\n")) }

func TestSessionCheck(t *testing.T) {
	g := newFake().on(consoleLine, ok("admin\n"))
	require.NoError(t, SessionCheck{Label: "0 session"}.Run(context.Background(), testEnv(g)))

	g = newFake().on(consoleLine, ok("root\n"))
	err := SessionCheck{Label: "0 session"}.Run(context.Background(), testEnv(g))
	require.Error(t, err)
	assert.False(t, IsProductFailure(err), "nobody logged in is the lab's problem")
	assert.ErrorContains(t, err, "automatic login is off")
	assert.ErrorContains(t, err, "nobody is logged in")
	assert.ErrorContains(t, err, "Automatically log in as")
}

func TestLaunchRunsAsTheUserAndWaitsForTheApp(t *testing.T) {
	g := userFake().on(openApp, ok("")).on(listApps, ok(appsNone), ok(appRunning))
	env := testEnv(g)
	require.NoError(t, Launch{Label: "launch"}.Run(context.Background(), env))
	assert.Equal(t, []string{"id -u admin", openApp, listApps, listApps}, g.ran, "uid asked once; polled until the app's job has a pid")
}

func TestLaunchWithoutSessionIsTheLabsError(t *testing.T) {
	g := userFake().on(openApp, guest.Result{Exit: 1, Stderr: noSessionLS}).on(consoleLine, ok("root\n"))
	err := Launch{Label: "launch"}.Run(context.Background(), testEnv(g))
	require.Error(t, err)
	assert.False(t, IsProductFailure(err), "an open nobody could see is not an app that would not launch: %v", err)
	assert.ErrorContains(t, err, "automatic login")
}

func TestLaunchRefusedWithASessionIsTheProducts(t *testing.T) {
	g := userFake().on(openApp, guest.Result{Exit: 1, Stderr: "The application cannot be opened because it is damaged. (-10810)\n"}).on(consoleLine, ok("admin\n"))
	err := Launch{Label: "launch"}.Run(context.Background(), testEnv(g))
	require.True(t, IsProductFailure(err), "%v", err)
	assert.ErrorContains(t, err, "would not launch")
}

func TestLaunchWhoseAppNeverAppearsIsAnError(t *testing.T) {
	g := userFake().on(openApp, ok("")).on(listApps, ok(appsNone))
	env := testEnv(g)
	env.Wait = 5e6 // 5ms bounds the wait for the process
	err := Launch{Label: "launch"}.Run(context.Background(), env)
	require.Error(t, err)
	assert.False(t, IsProductFailure(err))
	assert.ErrorContains(t, err, "no application.com.example.vpn.* job")
}

func TestQuitIsVerified(t *testing.T) {
	quit := userPrefix + "osascript -e 'quit app id \"com.example.vpn\"'"
	g := userFake().on(listApps, ok(appRunning)).on(quit, ok(""))
	env := testEnv(g)
	env.Wait = 5e6
	err := Quit{Label: "quit"}.Run(context.Background(), env)
	require.Error(t, err, "the app never went")
	assert.False(t, IsProductFailure(err))
	assert.ErrorContains(t, err, "still runs")
	assert.ErrorContains(t, err, "application.com.example.vpn.1000412.1002884 (pid 412)")

	g = userFake().on(listApps, ok(appRunning)).on(quit, guest.Result{Exit: 1, Stderr: "0:28: execution error: Not authorized to send Apple events to Example VPN. (-1743)\n"})
	err = Quit{Label: "quit"}.Run(context.Background(), testEnv(g))
	require.Error(t, err)
	assert.ErrorContains(t, err, "Apple Events grant")

	g = userFake().on(listApps, ok(appsNone))
	require.NoError(t, Quit{Label: "quit"}.Run(context.Background(), testEnv(g)))
	assert.NotContains(t, g.ran, quit, "nothing to quit: no Apple event is sent")
}

// profilesXML is a plist as `sudo profiles show -output stdout-xml`
// prints it, with one payload.
func profilesXML(payloadType, content string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>_computerlevel</key><array><dict>
<key>ProfileIdentifier</key><string>com.corp.sysext</string>
<key>ProfileItems</key><array><dict>
<key>PayloadContent</key><dict>` + content + `</dict>
<key>PayloadType</key><string>` + payloadType + `</string>
</dict></array></dict></array></dict></plist>`
}

const profilesLine = "sudo profiles show -output stdout-xml"

func TestApproveMDMVerifiesThePolicy(t *testing.T) {
	team := `<key>AllowedTeamIdentifiers</key><array><string>ABCDE12345</string></array>`
	var notes []string
	env := testEnv(newFake().on(profilesLine, ok(profilesXML("com.apple.system-extension-policy", team))))
	env.Record = func(e Entry) { notes = append(notes, e.Note) }
	require.NoError(t, Approve{Label: "approve", Strategy: "mdm"}.Run(context.Background(), env))
	assert.Contains(t, strings.Join(notes, "\n"), "profile com.corp.sysext allows team ABCDE12345")

	bundle := `<key>AllowedSystemExtensions</key><dict><key>ABCDE12345</key><array><string>com.example.vpn.tunnel</string></array></dict>`
	env = testEnv(newFake().on(profilesLine, ok(profilesXML("com.apple.system-extension-policy", bundle))))
	require.NoError(t, Approve{Label: "approve", Strategy: "mdm"}.Run(context.Background(), env))

	for name, out := range map[string]string{
		"another team":         profilesXML("com.apple.system-extension-policy", `<key>AllowedTeamIdentifiers</key><array><string>ZZZZZ99999</string></array>`),
		"another payload type": profilesXML("com.apple.security.firewall", team),
		"nothing installed":    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict/></plist>\n",
	} {
		env := testEnv(newFake().on(profilesLine, ok(out)))
		env.Image = "macos-15.3"
		err := Approve{Label: "approve", Strategy: "mdm"}.Run(context.Background(), env)
		require.Error(t, err, name)
		assert.False(t, IsProductFailure(err), "%s: a golden without the policy is the lab's problem", name)
		assert.ErrorContains(t, err, "com.apple.system-extension-policy", name)
		assert.ErrorContains(t, err, "image macos-15.3", name)
	}
}

const (
	listLine   = "systemextensionsctl list"
	waitingRow = "1 extension(s)\n--- com.apple.system_extension.network_extension\nenabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated waiting for user]\n"
	enabledRow = "1 extension(s)\n--- com.apple.system_extension.network_extension\nenabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n*\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n"
	loginPane  = userPrefix + "open x-apple.systempreferences:com.apple.LoginItems-Settings.extension"
	clickApp   = userPrefix + `osascript -e 'tell application "System Events" to tell process "System Settings" to click checkbox "Example VPN" of window 1'`
	clickExt   = userPrefix + `osascript -e 'tell application "System Events" to tell process "System Settings" to click checkbox "com.example.vpn.tunnel" of window 1'`
	sheetLine  = userPrefix + `osascript -e 'tell application "System Events"' -e 'tell process "System Settings"' -e 'set value of text field 1 of sheet 1 of window 1 to "s3cret"' -e 'click button "Modify Settings" of sheet 1 of window 1' -e 'end tell' -e 'end tell'`
	missing    = "76:110: execution error: System Events got an error: Can’t get checkbox \"Example VPN\" of window 1 of process \"System Settings\". (-1728)\n"
	noAssist   = "0:110: execution error: System Events got an error: osascript is not allowed assistive access. (-1719)\n"
	windowName = userPrefix + `osascript -e 'tell application "System Events" to get name of window 1 of process "System Settings"'`
)

// contentsLine is the listing of System Settings' window, as the user.
var contentsLine = func() string {
	args := []string{"osascript"}
	for _, l := range settingsContents {
		args = append(args, "-e", l)
	}
	return userPrefix + guest.Join(args...)
}()

// loginItemsWithoutApp is a Login Items & Extensions window that names
// neither the app nor its extension.
const loginItemsWithoutApp = "static text\t\t\tLogin Items & Extensions\nstatic text\t\t\tOpen at Login\ncheckbox\tOther VPN\t\t1\n"

func uiFake() *fakeGuest {
	return userFake().on("sw_vers -productVersion", ok("15.3\n")).on(loginPane, ok(""))
}

func uiEnv(g *fakeGuest) (*Env, *[]Entry) {
	env := testEnv(g)
	env.Password, env.Image = "s3cret", "macos-15.3"
	var entries []Entry
	env.Record = func(e Entry) { entries = append(entries, e) }
	return env, &entries
}

func TestApproveUIApproves(t *testing.T) {
	g := uiFake().on(listLine, ok(waitingRow), ok(enabledRow)).on(clickApp, ok("")).on(sheetLine, ok(""))
	env, entries := uiEnv(g)
	require.NoError(t, Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env))
	assert.Contains(t, g.ran, sheetLine)
	var all []string
	for _, e := range *entries {
		all = append(all, e.Note, e.Error)
		if e.Result != nil {
			all = append(all, e.Result.Line, e.Result.Stdout, e.Result.Stderr)
		}
	}
	text := strings.Join(all, "\n")
	assert.NotContains(t, text, "s3cret", "the password is never recorded")
	assert.Contains(t, text, "approved com.example.vpn.tunnel 3.0/300 through System Settings > Login Items & Extensions")
	assert.Contains(t, text, "unverified on macOS 15")
}

func TestApproveUIWithNoControlGoesOn(t *testing.T) {
	g := uiFake().on(listLine, ok(waitingRow)).
		on(clickApp, guest.Result{Exit: 1, Stderr: missing}).on(clickExt, guest.Result{Exit: 1, Stderr: missing}).
		on(windowName, ok("Login Items & Extensions\n")).on(contentsLine, ok(loginItemsWithoutApp))
	env, entries := uiEnv(g)
	require.NoError(t, Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env), "no control is the product's state: the probes judge it")
	last := (*entries)[len(*entries)-1]
	assert.Contains(t, last.Note, "no approval control")
	assert.Contains(t, last.Note, `its window is "Login Items & Extensions"`)
	assert.Contains(t, last.Note, `none of its 3 elements names "Example VPN" or "com.example.vpn.tunnel"`)
	assert.Contains(t, g.ran, contentsLine, "the window's elements are read as the user")
	assert.Contains(t, last.Note, "activated waiting for user")
	assert.Contains(t, g.ran, windowName, "the landmark is read as the user")
	assert.NotContains(t, g.ran, sheetLine)
}

// TestApproveUIOnTheWrongPaneIsTheLabsError: when every click misses but
// System Settings does not show the pane the script opened, the script
// does not match this macOS: an error the lab retries and names, never
// "no approval control", which the probes would turn into a product fail.
func TestApproveUIOnTheWrongPaneIsTheLabsError(t *testing.T) {
	for name, tt := range map[string]struct {
		answer guest.Result
		found  string
	}{
		"another pane":    {ok("Privacy & Security\n"), `front window is "Privacy & Security"`},
		"no window":       {guest.Result{Exit: 1, Stderr: "57:88: execution error: System Events got an error: Can’t get window 1 of process \"System Settings\". Invalid index. (-1728)\n"}, "front window is no window (-1728"},
		"no name":         {ok("\n"), "front window is a window with no name"},
		"something else":  {guest.Result{Exit: 1, Stderr: "0:88: execution error: System Events got an error: AppleEvent timed out. (-1712)\n"}, "front window is unknown (exit 1"},
		"not yet a title": {ok("System Settings\n"), `front window is "System Settings"`},
	} {
		g := uiFake().on(listLine, ok(waitingRow)).
			on(clickApp, guest.Result{Exit: 1, Stderr: missing}).on(clickExt, guest.Result{Exit: 1, Stderr: missing}).
			on(windowName, tt.answer)
		env, entries := uiEnv(g)
		err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
		require.Error(t, err, name)
		assert.False(t, IsProductFailure(err), "%s: a script that misses is the lab's problem", name)
		assert.ErrorContains(t, err, tt.found, name)
		assert.ErrorContains(t, err, `not "Login Items & Extensions"`, "%s: names what it expected", name)
		assert.ErrorContains(t, err, "may not match this macOS's UI", name)
		assert.ErrorContains(t, err, "scripts/mac-acceptance.sh", name)
		assert.ErrorContains(t, err, "approve: command", name)
		for _, e := range *entries {
			assert.NotContains(t, e.Note, "no approval control", "%s: never noted as macOS offering nothing", name)
		}
	}

	g := uiFake().on(listLine, ok(waitingRow)).
		on(clickApp, guest.Result{Exit: 1, Stderr: missing}).on(clickExt, guest.Result{Exit: 1, Stderr: missing}).
		on(windowName, guest.Result{Exit: 1, Stderr: noAssist})
	env, _ := uiEnv(g)
	err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
	require.Error(t, err)
	assert.False(t, IsProductFailure(err))
	assert.ErrorContains(t, err, "needs the Accessibility grant", "-1719 on the landmark stays the cannot-script error")
}

// TestApproveUIWithTheAppOutOfReachIsTheLabsError: every click misses on
// the right pane, but something in the window is the control or names the
// app or its extension: the script's references do not reach it (a
// control nested in groups, a renamed or re-labelled switch), which is
// the lab's error, never "no approval control".
func TestApproveUIWithTheAppOutOfReachIsTheLabsError(t *testing.T) {
	for name, tt := range map[string]struct{ contents, shown string }{
		"a nested switch":             {"group\t\t\t\ncheckbox\tExample VPN\t\t0\n", `checkbox "Example VPN" (value "0")`},
		"named by its description":    {"checkbox\t\tExample VPN switch\t0\n", `checkbox (description "Example VPN switch") (value "0")`},
		"the bundle ID in a text":     {"static text\t\t\tcom.example.vpn.tunnel wants to run\n", `static text (value "com.example.vpn.tunnel wants to run")`},
		"the app, not as a switch":    {"static text\tEXAMPLE VPN\t\t\nbutton\tinfo\t\t\n", `static text "EXAMPLE VPN"`},
		"a line with missing columns": {"checkbox\tExample VPN\n", `checkbox "Example VPN"`},
	} {
		g := uiFake().on(listLine, ok(waitingRow)).
			on(clickApp, guest.Result{Exit: 1, Stderr: missing}).on(clickExt, guest.Result{Exit: 1, Stderr: missing}).
			on(windowName, ok("Login Items & Extensions\n")).on(contentsLine, ok(loginItemsWithoutApp+tt.contents))
		env, entries := uiEnv(g)
		err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
		require.Error(t, err, name)
		assert.False(t, IsProductFailure(err), "%s: a control the script does not reach is the lab's problem", name)
		assert.ErrorContains(t, err, "System Settings > Login Items & Extensions shows "+tt.shown, name)
		assert.ErrorContains(t, err, "do not reach", name)
		assert.ErrorContains(t, err, "unverified on macOS 15", name)
		assert.ErrorContains(t, err, "scripts/mac-acceptance.sh", name)
		assert.ErrorContains(t, err, "approve: command", name)
		assert.NotContains(t, err.Error(), "Other VPN", "%s: another app's switch is not named", name)
		for _, e := range *entries {
			assert.NotContains(t, e.Note, "no approval control", name)
		}
	}

	for name, tt := range map[string]struct {
		answer guest.Result
		want   string
	}{
		"the listing fails": {guest.Result{Exit: 1, Stderr: "0:88: execution error: System Events got an error: AppleEvent timed out. (-1712)\n"},
			"listing what its Login Items & Extensions window holds failed (exit 1: 0:88: execution error: System Events got an error: AppleEvent timed out. (-1712))"},
		"no Accessibility": {guest.Result{Exit: 1, Stderr: noAssist}, "needs the Accessibility grant"},
	} {
		g := uiFake().on(listLine, ok(waitingRow)).
			on(clickApp, guest.Result{Exit: 1, Stderr: missing}).on(clickExt, guest.Result{Exit: 1, Stderr: missing}).
			on(windowName, ok("Login Items & Extensions\n")).on(contentsLine, tt.answer)
		env, _ := uiEnv(g)
		err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
		require.Error(t, err, name)
		assert.False(t, IsProductFailure(err), name)
		assert.ErrorContains(t, err, tt.want, name)
	}
}

// TestApproveUIOnPrivacySecurityTellsAllowFromAllowText: on 13 and 14 the
// control is the Allow button, and Privacy & Security has other texts
// that start with "Allow": only a button named Allow, or the app's name,
// keeps the miss from being macOS offering nothing.
func TestApproveUIOnPrivacySecurityTellsAllowFromAllowText(t *testing.T) {
	security := userPrefix + "open 'x-apple.systempreferences:com.apple.preference.security?Security'"
	allow := userPrefix + `osascript -e 'tell application "System Events" to tell process "System Settings" to click button "Allow" of window 1'`
	missingAllow := "76:103: execution error: System Events got an error: Can’t get button \"Allow\" of window 1 of process \"System Settings\". (-1728)\n"
	pane := "static text\t\t\tPrivacy & Security\nstatic text\t\t\tAllow applications from\npop up button\t\t\tApp Store and identified developers\n"
	run := func(contents string) (error, []Entry) {
		g := userFake().on("sw_vers -productVersion", ok("14.7.1\n")).on(security, ok("")).on(listLine, ok(waitingRow)).
			on(allow, guest.Result{Exit: 1, Stderr: missingAllow}).on(windowName, ok("Privacy & Security\n")).on(contentsLine, ok(contents))
		env, entries := uiEnv(g)
		err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
		return err, *entries
	}

	err, entries := run(pane)
	require.NoError(t, err, "texts that merely start with Allow are not the control")
	assert.Contains(t, entries[len(entries)-1].Note, `none of its 3 elements names "Example VPN" or "com.example.vpn.tunnel" or "Allow"`)

	err, _ = run(pane + "static text\t\t\tSystem software from application “Example VPN” was blocked from loading.\nbutton\tAllow\t\t\n")
	require.Error(t, err)
	assert.False(t, IsProductFailure(err))
	assert.ErrorContains(t, err, `shows static text (value "System software from application “Example VPN” was blocked from loading."); button "Allow", but button "Allow" found nothing`)
}

func TestApproveUICannotScript(t *testing.T) {
	for name, tt := range map[string]struct{ stderr, want string }{
		"accessibility": {noAssist, "/usr/libexec/sshd-keygen-wrapper, needs the Accessibility grant"},
		"apple events":  {"0:110: execution error: Not authorized to send Apple events to System Events. (-1743)\n", "Apple Events grant"},
		"no session":    {"0:110: execution error: System Events got an error: Connection is invalid. (-609)\n", "automatic login"},
	} {
		g := uiFake().on(listLine, ok(waitingRow)).on(clickApp, guest.Result{Exit: 1, Stderr: tt.stderr})
		env, _ := uiEnv(g)
		err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
		require.Error(t, err, name)
		assert.False(t, IsProductFailure(err), name)
		assert.ErrorContains(t, err, tt.want, name)
	}
	g := uiFake().on(listLine, ok(waitingRow)).on(clickApp, guest.Result{Exit: 1, Stderr: noAssist})
	env, _ := uiEnv(g)
	err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
	assert.ErrorContains(t, err, "update-tcc-database.sh", "says how to add the grant")
}

func TestApproveUIWrongPasswordIsAnError(t *testing.T) {
	g := uiFake().on(listLine, ok(waitingRow)).on(clickApp, ok("")).on(sheetLine, ok(""))
	env, _ := uiEnv(g)
	env.Wait = 5e6
	err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
	require.Error(t, err)
	assert.False(t, IsProductFailure(err))
	assert.ErrorContains(t, err, "password may be wrong")
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestApproveUIPicksTheScriptByVersion(t *testing.T) {
	security := userPrefix + "open 'x-apple.systempreferences:com.apple.preference.security?Security'"
	allow := userPrefix + `osascript -e 'tell application "System Events" to tell process "System Settings" to click button "Allow" of window 1'`
	g := userFake().on("sw_vers -productVersion", ok("14.7.1\n")).on(security, ok("")).
		on(listLine, ok(waitingRow), ok(enabledRow)).on(allow, ok("")).on(sheetLine, ok(""))
	env, _ := uiEnv(g)
	require.NoError(t, Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env))
	assert.Contains(t, g.ran, allow, "macOS 14: Allow in Privacy & Security")

	g = userFake().on("sw_vers -productVersion", ok("12.7\n")).on(listLine, ok(waitingRow))
	env, _ = uiEnv(g)
	err := Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env)
	require.Error(t, err)
	assert.ErrorContains(t, err, "no System Settings script for macOS 12")
}

func TestApproveUINothingWaiting(t *testing.T) {
	g := userFake().on(listLine, ok(enabledRow))
	env, entries := uiEnv(g)
	require.NoError(t, Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env))
	assert.Equal(t, []string{listLine}, g.ran, "nothing waits: nothing is opened or clicked")
	assert.Contains(t, (*entries)[len(*entries)-1].Note, "nothing waits for approval")
}

func TestApproveUIVPNConfigurationAlert(t *testing.T) {
	alert := userPrefix + `osascript -e 'tell application "System Events" to tell process "UserNotificationCenter" to click button "Allow" of window 1'`
	g := userFake().on(alert, ok(""))
	env, entries := uiEnv(g)
	require.NoError(t, Approve{Label: "approve", Strategy: "ui", What: WhatVPNConfig}.Run(context.Background(), env))
	assert.Contains(t, (*entries)[len(*entries)-1].Note, "unverified on macOS")

	g = userFake().on(alert, guest.Result{Exit: 1, Stderr: noAssist})
	env, _ = uiEnv(g)
	err := Approve{Label: "approve", Strategy: "ui", What: WhatVPNConfig}.Run(context.Background(), env)
	require.Error(t, err)
	assert.ErrorContains(t, err, "Accessibility")
}

func TestUIScriptNoteSaysUnverified(t *testing.T) {
	for _, v := range UIScriptVersions() {
		assert.Contains(t, UIScriptNote(v), fmt.Sprintf("unverified on macOS %d", v))
	}
	assert.Contains(t, UIScriptNote(14), `button "Allow"`)
	assert.Contains(t, UIScriptNote(26), `checkbox "APP" or checkbox "EXTENSION"`)
	assert.Empty(t, UIScriptNote(12))
}

func TestApproveUIRedactsAPasswordWithQuotes(t *testing.T) {
	pw := `it's "x"`
	sheet := userPrefix + guest.Join("osascript", "-e", `tell application "System Events"`, "-e", `tell process "System Settings"`,
		"-e", `set value of text field 1 of sheet 1 of window 1 to "it's \"x\""`,
		"-e", `click button "Modify Settings" of sheet 1 of window 1`, "-e", "end tell", "-e", "end tell")
	g := uiFake().on(listLine, ok(waitingRow), ok(enabledRow)).on(clickApp, ok("")).on(sheet, ok(""))
	env, entries := uiEnv(g)
	env.Password = pw
	require.NoError(t, Approve{Label: "approve", Strategy: "ui"}.Run(context.Background(), env))
	require.Contains(t, g.ran, sheet, "the password reaches the sheet as typed")
	for _, e := range *entries {
		if e.Result != nil {
			assert.NotContains(t, e.Result.Line, "it's", "steps.jsonl never shows the password")
			assert.NotContains(t, e.Result.Line, `it'\''s`)
		}
	}
}
