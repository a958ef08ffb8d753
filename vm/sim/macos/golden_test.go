package macos

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

func withGolden(edit func(*Golden)) macOption {
	return func(c *Config) {
		g := DefaultGolden()
		edit(&g)
		c.Golden = &g
	}
}

var noAutoLogin = withGolden(func(g *Golden) { g.AutoLogin = false })

// shellRun runs a command line through the real shell over this Mac, as
// sshd does: builtins, sudo and launchctl asuser's nested command
// included.
func (s *simMac) shellRun(line string) result {
	s.t.Helper()
	sh := shell.New(shell.Config{FS: s.fs, Programs: s.m, Clock: s.host, User: "admin", Hostname: "sim-test-1.local", Release: "24.3.0"})
	var out, errb bytes.Buffer
	code := sh.Run(context.Background(), line, nil, shell.IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return result{out.String(), errb.String(), code}
}

func TestConsoleUserIsWhoAutomaticLoginLoggedIn(t *testing.T) {
	s := newSimMac(t)
	assert.Equal(t, result{"admin\n", "", 0}, s.shellRun("stat -f %Su /dev/console"))

	nobody := newSimMac(t, noAutoLogin)
	assert.Equal(t, result{"root\n", "", 0}, nobody.shellRun("stat -f %Su /dev/console"), "the login window owns the console as root")

	fv := newSimMac(t, withGolden(func(g *Golden) { g.FileVault = true }))
	assert.Equal(t, "root\n", fv.shellRun("stat -f %Su /dev/console").out, "FileVault turns automatic login off")
	assert.Equal(t, "FileVault is On.\n", fv.ok(false, "fdesetup status"))
	assert.Equal(t, "FileVault is Off.\n", s.ok(false, "fdesetup status"))
	assert.Equal(t, "System Integrity Protection status: enabled.\n", s.ok(false, "csrutil status"))
}

func TestLaunchAndQuitAsTheUserInTheSession(t *testing.T) {
	s := newSimMac(t)
	s.install(1)
	r := s.shellRun(`sudo launchctl asuser 501 sudo -u admin open -a "` + appPath + `"`)
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, []string{"1.0/100 activated waiting for user"}, s.extStates(), "the app ran and asked for its extension")

	r = s.shellRun(`sudo launchctl asuser 501 sudo -u admin osascript -e 'quit app id "com.example.vpn"'`)
	assert.Equal(t, 0, r.code, r.err)

	r = s.shellRun(`sudo launchctl asuser 501 osascript -e 'quit app id "com.example.vpn"'`)
	assert.Equal(t, result{"", "0:29: execution error: Not authorized to send Apple events to Example VPN. (-1743)\n", 1}, r,
		"asuser keeps root's credentials: root inside the session is still root")

	r = s.shellRun(`sudo osascript -e 'quit app id "com.example.vpn"'`)
	assert.Equal(t, result{"", "0:29: execution error: Not authorized to send Apple events to Example VPN. (-1743)\n", 1}, r, "root's Apple events do not reach the user's app")
}

func TestNoGUISessionRefusesToOpen(t *testing.T) {
	s := newSimMac(t, noAutoLogin)
	s.install(1)
	r := s.shellRun(`sudo launchctl asuser 501 sudo -u admin open -a "` + appPath + `"`)
	assert.Equal(t, result{"", "_LSOpenURLsWithCompletionHandler() failed for the application " + appPath + " with error -600.\n", 1}, r)
	assert.Empty(t, s.extStates(), "nothing launched")
	r = s.shellRun(`open "x-apple.systempreferences:com.apple.LoginItems-Settings.extension"`)
	assert.Equal(t, 1, r.code)

	r = s.shellRun(`sudo launchctl asuser 501 sudo -u admin osascript -e '` + vpnAlertAllow + `'`)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "Connection is invalid. (-609)")
}

func TestUIScriptingNeedsTheTCCGrants(t *testing.T) {
	noAX := newSimMac(t, withGolden(func(g *Golden) { g.Accessibility = []string{"/usr/bin/osascript"} }))
	r := noAX.run("osascript -e '" + vpnAlertAllow + "'")
	assert.Equal(t, result{"", "0:" + strconv.Itoa(len(vpnAlertAllow)) + ": execution error: System Events got an error: osascript is not allowed assistive access. (-1719)\n", 1}, r,
		"over SSH the client TCC asks about is sshd-keygen-wrapper, not osascript")

	noAE := newSimMac(t, withGolden(func(g *Golden) { g.AppleEvents = nil }))
	r = noAE.run("osascript -e '" + vpnAlertAllow + "'")
	assert.Equal(t, result{"", "0:" + strconv.Itoa(len(vpnAlertAllow)) + ": execution error: Not authorized to send Apple events to System Events. (-1743)\n", 1}, r)
	r = noAE.run(`osascript -e 'quit app id "com.example.vpn"'`)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "(-1743)")

	s := newSimMac(t)
	r = s.sudo("osascript -e '" + vpnAlertAllow + "'")
	assert.Equal(t, 1, r.code, "root's System Events is not the user's session")
	assert.Contains(t, r.err, "Not authorized to send Apple events to System Events. (-1743)")
}

func TestAnInstalledPolicyApprovesAtOnce(t *testing.T) {
	s := newSimMac(t, withGolden(func(g *Golden) {
		g.MDMEnrolled = true
		g.Policies = []Policy{{Team: "ABCDE12345", BundleIDs: []string{extBundle}}}
	}))
	s.install(1)
	s.launch()
	assert.Equal(t, []string{"1.0/100 activated enabled"}, s.extStates())

	other := newSimMac(t, withGolden(func(g *Golden) {
		g.MDMEnrolled = true
		g.Policies = []Policy{{Team: "ZZZZZ99999"}}
	}))
	other.install(1)
	other.launch()
	assert.Equal(t, []string{"1.0/100 activated waiting for user"}, other.extStates(), "another team's policy does not cover it")
}

// plistKeys decodes a plist's XML into its keys and strings, in order,
// to show the structure a reader would walk.
func plistKeys(t *testing.T, doc string) []string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	var out []string
	var in string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		switch tok := tok.(type) {
		case xml.StartElement:
			in = tok.Name.Local
		case xml.CharData:
			if v := strings.TrimSpace(string(tok)); v != "" && (in == "key" || in == "string") {
				out = append(out, v)
			}
		}
	}
}

func TestProfilesListsTheMDMPayloads(t *testing.T) {
	s := newSimMac(t, withGolden(func(g *Golden) {
		g.MDMEnrolled = true
		g.Policies = []Policy{{Team: "ABCDE12345", BundleIDs: []string{extBundle}}}
		g.VPNs = []VPNPayload{{Name: "Corp VPN", Provider: extBundle}}
	}))
	out := s.ok(true, "profiles show -output stdout-xml")
	keys := plistKeys(t, out)
	assert.Contains(t, keys, "_computerlevel")
	assert.Contains(t, keys, "com.apple.system-extension-policy")
	assert.Contains(t, keys, "AllowedSystemExtensions")
	assert.Contains(t, keys, "com.apple.vpn.managed")
	assert.Equal(t, out, s.ok(true, "profiles -C -o stdout-xml"), "the older spelling")
	assert.Contains(t, s.ok(false, "scutil --nc list"), `"Corp VPN"`, "the MDM's VPN configuration is there")
	assert.Equal(t, "Enrolled via DEP: No\nMDM enrollment: Yes (User Approved)\nMDM server: https://mdm.sxlab.invalid/mdm\n", s.ok(false, "profiles status -type enrollment"))

	plain := newSimMac(t)
	assert.NotContains(t, plistKeys(t, plain.ok(true, "profiles show -output stdout-xml")), "_computerlevel")
	assert.Equal(t, "Enrolled via DEP: No\nMDM enrollment: No\n", plain.ok(false, "profiles status -type enrollment"))
}

const (
	loginItemsURL = "x-apple.systempreferences:com.apple.LoginItems-Settings.extension"
	securityURL   = "x-apple.systempreferences:com.apple.preference.security?Security"
	clickSwitch   = `tell application "System Events" to tell process "System Settings" to click checkbox "Example VPN" of group 1 of sheet 1 of window 1`
	clickAllowIn  = `tell application "System Events" to tell process "System Settings" to click button "Allow" of group 1 of scroll area 1 of group 1 of window 1`
	answerSheet   = `tell application "System Events"
tell process "System Settings"
set value of text field 1 of sheet 1 of window 1 to "admin"
click button "OK" of sheet 1 of window 1
end tell
end tell`
)

func TestSystemSettingsApprovesOnThePaneOfTheVersion(t *testing.T) {
	s := newSimMac(t) // 15.3
	s.install(1)
	s.launch()
	s.ok(false, `open "`+securityURL+`"`)
	r := s.run("osascript -e '" + clickAllowIn + "'")
	assert.Equal(t, 1, r.code, "macOS 15 has no Allow button in Privacy & Security")
	assert.Contains(t, r.err, `Can’t get button "Allow" of group 1 of scroll area 1 of group 1 of window 1 of process "System Settings". (-1728)`)

	s.ok(false, `open "`+loginItemsURL+`"`)
	s.ok(false, "osascript -e '"+clickSwitch+"'")
	assert.Equal(t, []string{"1.0/100 activated waiting for user"}, s.extStates(), "the password sheet is up")
	wrong := strings.Replace(answerSheet, `"admin"`, `"nope"`, 1)
	s.ok(false, "osascript -e '"+wrong+"'")
	assert.Equal(t, []string{"1.0/100 activated waiting for user"}, s.extStates(), "a wrong password changes nothing")
	s.ok(false, "osascript -e '"+answerSheet+"'")
	assert.Equal(t, []string{"1.0/100 activated enabled"}, s.extStates())

	old := newSimMac(t, withVersion("14.7", "23H124"))
	old.install(1)
	old.launch()
	old.ok(false, `open "`+loginItemsURL+`"`)
	assert.Equal(t, 1, old.run("osascript -e '"+clickSwitch+"'").code, "macOS 14 approves in Privacy & Security")
	old.ok(false, `open "`+securityURL+`"`)
	old.ok(false, "osascript -e '"+clickAllowIn+"\n"+answerSheet+"'")
	assert.Equal(t, []string{"1.0/100 activated enabled"}, old.extStates())
}

func TestSystemSettingsOffersNothingForACoalescedCopy(t *testing.T) {
	s := newSimMac(t, faultCoalesced)
	s.pendingUpgrade(2, 3)
	require.Equal(t, []string{"3.0/300 activated waiting for user"}, s.extStates())
	s.ok(false, `open "`+loginItemsURL+`"`)
	r := s.run("osascript -e '" + clickSwitch + "'")
	assert.Equal(t, 1, r.code, "the copy whose request was never presented has no switch")
	assert.Contains(t, r.err, "(-1728)")

	r = s.run(`osascript -e 'tell application "System Events" to tell process "System Settings" to click UI element 3 of window 1'`)
	assert.Equal(t, 127, r.code, "a click the sim cannot follow is unsupported, not a silent success")

	closed := newSimMac(t)
	r = closed.run("osascript -e '" + clickSwitch + "'")
	assert.Equal(t, result{"", "0:" + strconv.Itoa(len(clickSwitch)) + ": execution error: System Events got an error: Can’t get process \"System Settings\". (-1728)\n", 1}, r)
}

func TestNEDebugLoggingOfTheGolden(t *testing.T) {
	on := newSimMac(t, withGolden(func(g *Golden) { g.NEDebugLogging = true }))
	assert.Equal(t, "Mode for 'com.apple.networkextension'  DEBUG PERSIST_DEBUG\n", on.ok(true, "log config --status --subsystem com.apple.networkextension"))
	off := newSimMac(t)
	assert.Equal(t, "Mode for 'com.apple.networkextension'  DEFAULT PERSIST_DEFAULT\n", off.ok(true, "log config --status --subsystem com.apple.networkextension"))
}

// TestTheDocumentedCommandLines runs docs/macos-behaviour.md's command
// lines, as the steps would send them, through the shell.
func TestTheDocumentedCommandLines(t *testing.T) {
	const asUser = "sudo launchctl asuser $(id -u admin) sudo -u admin "
	for _, v := range []struct{ version, build, pane, click string }{
		{"14.7", "23H124", "x-apple.systempreferences:com.apple.preference.security?Security",
			`tell application "System Events" to tell process "System Settings" to click button "Allow" of window 1`},
		{"15.3", "24D60", "x-apple.systempreferences:com.apple.LoginItems-Settings.extension",
			`tell application "System Events" to tell process "System Settings" to click checkbox "Example VPN" of window 1`},
	} {
		t.Run(v.version, func(t *testing.T) {
			s := newSimMac(t, withVersion(v.version, v.build))
			require.Equal(t, result{"admin\n", "", 0}, s.shellRun("stat -f %Su /dev/console"))
			for _, line := range []string{
				"sudo installer -pkg /Users/admin/example-vpn-1.pkg -target /",
				"pkgutil --pkg-info com.example.vpn.pkg",
				asUser + `open -a "/Applications/Example VPN.app"`,
				asUser + `open "` + v.pane + `"`,
				asUser + `osascript -e '` + windowNameQuery + `'`,
				asUser + `osascript -e '` + v.click + `'`,
				asUser + `osascript -e 'tell application "System Events"' -e 'tell process "System Settings"' -e 'set value of text field 1 of sheet 1 of window 1 to "admin"' -e 'click button "OK" of sheet 1 of window 1' -e 'end tell' -e 'end tell'`,
				asUser + `osascript -e 'quit app id "com.example.vpn"'`,
			} {
				r := s.shellRun(line)
				require.Equal(t, 0, r.code, "%s\n%s", line, r.err)
			}
			assert.Equal(t, []string{"1.0/100 activated enabled"}, s.extStates())
		})
	}
}

func TestTheGoldenCanBeRead(t *testing.T) {
	s := newSimMac(t)
	q := `"/Library/Application Support/com.apple.TCC/TCC.db" "SELECT client,auth_value FROM access WHERE service='kTCCServiceAccessibility'"`
	assert.Equal(t, "/usr/libexec/sshd-keygen-wrapper|2\n/usr/bin/osascript|2\n", s.ok(true, "sqlite3 "+q))
	r := s.run("sqlite3 " + q)
	assert.Equal(t, 1, r.code, "TCC.db is root's to read")
	assert.Contains(t, r.err, "authorization denied")
	assert.Equal(t, "admin\n", s.ok(false, "defaults read /Library/Preferences/com.apple.loginwindow autoLoginUser"))

	none := newSimMac(t, noAutoLogin, withGolden(func(g *Golden) { g.AutoLogin = false; g.Accessibility = nil }))
	assert.Equal(t, "", none.ok(true, "sqlite3 "+q))
	r = none.run("defaults read /Library/Preferences/com.apple.loginwindow autoLoginUser")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "The domain/default pair of (/Library/Preferences/com.apple.loginwindow, autoLoginUser) does not exist")
}
