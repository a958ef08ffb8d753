package golden

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
)

// fakeMac answers command lines by their first matching prefix, like a
// Mac whose answers were recorded.
type fakeMac struct {
	answers []answer
	ran     []string
}

type answer struct {
	prefix string
	res    guest.Result
	err    error
}

func (f *fakeMac) Run(_ context.Context, c guest.Cmd) (guest.Result, error) {
	f.ran = append(f.ran, c.Line)
	for _, a := range f.answers {
		if strings.Contains(c.Line, a.prefix) {
			return a.res, a.err
		}
	}
	return guest.Result{Exit: 127, Stderr: "zsh: command not found"}, nil
}

func out(s string) guest.Result { return guest.Result{Stdout: s} }

// goodMac is a well-prepared golden as macOS 15 would answer; outputs
// follow the formats of docs/macos-behaviour.md and the tools' man pages.
func goodMac(now time.Time) *fakeMac {
	return &fakeMac{answers: []answer{
		{"sw_vers", out("ProductName:\t\tmacOS\nProductVersion:\t\t15.3\nBuildVersion:\t\t24D60\n"), nil},
		{"sudo -n true", out(""), nil},
		{"stat -f %Su /dev/console", out("admin\n"), nil},
		{"fdesetup status", out("FileVault is Off.\n"), nil},
		{"csrutil status", out("System Integrity Protection status: enabled.\n"), nil},
		{"osascript", out("3\n"), nil},
		{"sqlite3", out(sshClient + "|kTCCServiceAccessibility|2\n" + sshClient + "|kTCCServiceSystemPolicyAllFiles|2\n"), nil},
		{"profiles status", out("Enrolled via DEP: No\nMDM enrollment: No\n"), nil},
		{"log config", out("Mode for 'com.apple.networkextension'  DEBUG PERSIST_DEBUG\n"), nil},
		{"pmset -g", out("System-wide power settings:\nCurrently in use:\n standby              0\n sleep                0\n displaysleep         0\n disksleep            10\n"), nil},
		{"sysadminctl", guest.Result{Stderr: "2026-12-02 03:00:00.000 sysadminctl[123:456] screenLock is off\n"}, nil},
		{"df -k /", out("Filesystem     1024-blocks     Used Available Capacity iused ifree %iused  Mounted on\n/dev/disk3s1s1   97640448 10485760  52428800    17%  404k  524M    0%   /\n"), nil},
		{"sysdiagnose -h", guest.Result{Stderr: "usage: sysdiagnose [-h] [-f results_directory] ...\n"}, nil},
		{"date -u +%s", out(strconv.FormatInt(now.Unix(), 10) + "\n"), nil},
	}}
}

func target(now time.Time) Target {
	return Target{Image: "macos-15.3", User: "admin", Address: "10.0.0.2:22", Team: "ABCDE12345",
		Extension: "com.example.vpn.tunnel", Needs: Needs{UI: true}, Now: func() time.Time { return now }}
}

func byName(cs []Check) map[string]Check {
	m := map[string]Check{}
	for _, c := range cs {
		m[c.Name] = c
	}
	return m
}

func TestAllOnAGoodGoldenIsOKAndRecordsEveryCommand(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mac := goodMac(now)
	cs := All(context.Background(), mac, target(now))
	require.Len(t, cs, len(all))
	for _, c := range cs {
		assert.Equal(t, OK, c.Status, "%s: %s", c.Name, c.Detail)
		assert.NotEmpty(t, c.Commands, c.Name)
		assert.Equal(t, c.Name != "remote-login", c.Unverified, c.Name)
	}
	assert.False(t, Failed(cs))
	assert.Contains(t, byName(cs)["remote-login"].Detail, "macOS 15.3 (24D60)")
	assert.Contains(t, byName(cs)["disk"].Detail, "50.0 GiB free")
	// The user's session commands go through launchctl asuser as the user.
	tcc := byName(cs)["tcc"].Commands
	assert.Contains(t, tcc[0].Command, "launchctl asuser $(id -u admin) sudo -n -u admin open 'x-apple.systempreferences:")
	assert.Contains(t, tcc[1].Command, "launchctl asuser $(id -u admin) sudo -n -u admin osascript")
}

func TestBrokenGoldenNamesEachProblemWithItsFix(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mac := goodMac(now)
	mac.answers = append([]answer{
		{"stat -f %Su /dev/console", out("root\n"), nil},
		{"fdesetup status", out("FileVault is On.\n"), nil},
		{"osascript", guest.Result{Exit: 1, Stderr: "0:62: execution error: Not authorized to send Apple events to System Events. (-1743)\n"}, nil},
		{"df -k /", out("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/disk3s1s1 97640448 93000000 2097152 98% /\n"), nil},
		{"date -u +%s", out(strconv.FormatInt(now.Unix()+3600, 10) + "\n"), nil},
		{"log config", out("Mode for 'com.apple.networkextension'  DEFAULT PERSIST_DEFAULT\n"), nil},
	}, mac.answers...)
	cs := byName(All(context.Background(), mac, target(now)))
	assert.Equal(t, Failure, cs["console-user"].Status)
	assert.Contains(t, cs["console-user"].Detail, "automatic login is off")
	assert.Contains(t, cs["console-user"].Fix, "Automatically log in as admin")
	assert.Equal(t, Failure, cs["filevault"].Status)
	assert.Contains(t, cs["filevault"].Fix, "fdesetup disable")
	assert.Equal(t, Failure, cs["tcc"].Status)
	assert.Contains(t, cs["tcc"].Detail, "Apple Events")
	assert.Contains(t, cs["tcc"].Fix, "sshd-keygen-wrapper")
	assert.Equal(t, Failure, cs["disk"].Status)
	assert.Equal(t, Warning, cs["clock"].Status)
	assert.Contains(t, cs["clock"].Detail, "+3600 s")
	assert.Equal(t, Warning, cs["ne-logging"].Status)
	assert.Contains(t, cs["ne-logging"].Fix, "persist:debug")
}

func TestTCCReadsTheDatabaseWhenScriptingIsInconclusive(t *testing.T) {
	inconclusive := Exec{Command: "osascript", Exit: 1, Stderr: "execution error: something else (-2700)", finished: true}
	db := func(rows string) Exec { return Exec{Exit: 0, Stdout: rows, finished: true} }
	none := Exec{}
	ok := tccVerdict(none, inconclusive, db(sshClient+"|kTCCServiceAccessibility|2\n"), db(sshClient+"|kTCCServiceAppleEvents|2\n"))
	assert.Equal(t, OK, ok.Status, ok.Detail)
	denied := tccVerdict(none, inconclusive, db(sshClient+"|kTCCServiceAccessibility|0\n"), db(""))
	assert.Equal(t, Failure, denied.Status)
	assert.Contains(t, denied.Detail, "Accessibility")
	assert.Contains(t, denied.Detail, "Apple Events")
	unreadable := tccVerdict(none, inconclusive, Exec{Exit: 1, Stderr: "Error: unable to open database file\n", finished: true}, Exec{Exit: 1, finished: true})
	assert.Equal(t, Unknown, unreadable.Status)
	assert.Contains(t, unreadable.Detail, "Full Disk Access")
	ax := tccVerdict(none, Exec{Exit: 1, Stderr: "0:60: execution error: System Events got an error: osascript is not allowed assistive access. (-1719)", finished: true}, Exec{}, Exec{})
	assert.Equal(t, Failure, ax.Status)
	assert.Contains(t, ax.Detail, "Accessibility")
}

func TestTCCIsOnlyAWarningWhenNoStepScriptsTheUI(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mac := goodMac(now)
	mac.answers = append([]answer{{"osascript", guest.Result{Exit: 1, Stderr: "(-1719)"}, nil}}, mac.answers...)
	tg := target(now)
	tg.Needs = Needs{MDM: false, UI: false}
	cs := byName(All(context.Background(), mac, tg))
	assert.Equal(t, Warning, cs["tcc"].Status)
}

const profilesXML = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>_computerlevel</key>
	<array>
		<dict>
			<key>ProfileIdentifier</key>
			<string>com.example.sysext</string>
			<key>ProfileItems</key>
			<array>
				<dict>
					<key>PayloadContent</key>
					<dict>
						<key>AllowedSystemExtensions</key>
						<dict>
							<key>ABCDE12345</key>
							<array><string>com.example.vpn.tunnel</string></array>
						</dict>
					</dict>
					<key>PayloadType</key>
					<string>com.apple.system-extension-policy</string>
				</dict>
			</array>
		</dict>
	</array>
</dict>
</plist>
`

func TestMDMNeedsAUserApprovedEnrolmentAndAPolicyForTheTeam(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	enrolled := answer{"profiles status", out("Enrolled via DEP: No\nMDM enrollment: Yes (User Approved)\nMDM server: https://mdm.example.com/mdm\n"), nil}
	policy := answer{"profiles show", out(profilesXML), nil}
	tg := target(now)
	tg.Needs = Needs{MDM: true}

	mac := goodMac(now)
	mac.answers = append([]answer{enrolled, policy}, mac.answers...)
	c := byName(Preflight(context.Background(), mac, tg))["mdm"]
	assert.Equal(t, OK, c.Status, c.Detail)

	none := goodMac(now)
	c = byName(Preflight(context.Background(), none, tg))["mdm"]
	assert.Equal(t, Failure, c.Status)
	assert.Contains(t, c.Fix, "by a person")

	other := tg
	other.Team = "ZZZZZ99999"
	c = byName(Preflight(context.Background(), mac, other))["mdm"]
	assert.Equal(t, Failure, c.Status)
	assert.Contains(t, c.Detail, "none for it")

	// A policy on a golden whose cells approve through System Settings:
	// macOS approves at once, so those cells cannot mean anything.
	ui := tg
	ui.Needs = Needs{UI: true}
	c = byName(Preflight(context.Background(), mac, ui))["mdm"]
	assert.Equal(t, Failure, c.Status)
	assert.Contains(t, c.Detail, "approves the extension at once")
}

func TestPreflightRunsOnlyTheCheapSubset(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mac := goodMac(now)
	tg := target(now)
	tg.Needs = Needs{}
	cs := Preflight(context.Background(), mac, tg)
	require.Len(t, cs, 1)
	assert.Equal(t, "console-user", cs[0].Name)
	assert.Equal(t, []string{"stat -f %Su /dev/console"}, mac.ran)
}

func TestACommandThatDoesNotFinishIsUnknownNotFailure(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mac := &fakeMac{answers: []answer{{"", guest.Result{}, errors.New("connection lost")}}}
	cs := All(context.Background(), mac, target(now))
	for _, c := range cs[1:] {
		assert.Equal(t, Unknown, c.Status, c.Name)
		assert.Contains(t, c.Detail, "connection lost", c.Name)
	}
	assert.False(t, Failed(cs))
}

func TestMissingProgramsAreUnknown(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mac := &fakeMac{} // everything exits 127
	cs := byName(All(context.Background(), mac, target(now)))
	for _, n := range []string{"disk", "sleep", "sysdiagnose", "filevault", "sip"} {
		assert.Equal(t, Unknown, cs[n].Status, n)
		assert.Contains(t, cs[n].Detail, "cannot run it", n)
	}
}

func TestParsers(t *testing.T) {
	e, a := parseEnrollment("Enrolled via DEP: No\nMDM enrollment: Yes\n")
	assert.True(t, e)
	assert.False(t, a)
	_, err := parseDfAvail("nothing")
	assert.Error(t, err)
	_, err = parseTCCRows("a|b")
	assert.Error(t, err)
}

// slowSettings is a Mac whose System Settings takes a few tries to come
// up after open: System Events cannot get its process until then.
type slowSettings struct {
	*fakeMac
	left int
}

func (f *slowSettings) Run(ctx context.Context, c guest.Cmd) (guest.Result, error) {
	if strings.Contains(c.Line, "count windows") && f.left > 0 {
		f.left--
		f.ran = append(f.ran, c.Line)
		return guest.Result{Exit: 1, Stderr: "0:80: execution error: System Events got an error: Can’t get process \"System Settings\". (-1728)\n"}, nil
	}
	return f.fakeMac.Run(ctx, c)
}

func TestTCCWaitsForSystemSettingsToComeUp(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mac := &slowSettings{fakeMac: goodMac(now), left: 2}
	tg := target(now)
	tg.Poll = time.Millisecond
	c := byName(Preflight(context.Background(), mac, tg))["tcc"]
	assert.Equal(t, OK, c.Status, c.Detail)
	assert.Len(t, c.Commands, 1+3+2, "open, three scripting tries, two TCC.db reads")
}

func TestTCCWithoutAGUISessionSaysSo(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	mac := goodMac(now)
	mac.answers = append([]answer{
		{"open", guest.Result{Exit: 1, Stderr: "_LSOpenURLsWithCompletionHandler() failed for the application x-apple.systempreferences:com.apple.preference.security?Security with error -600.\n"}, nil},
		{"osascript", guest.Result{Exit: 1, Stderr: "0:80: execution error: System Events got an error: Connection is invalid. (-609)\n"}, nil},
	}, mac.answers...)
	c := byName(Preflight(context.Background(), mac, target(now)))["tcc"]
	assert.Equal(t, Failure, c.Status)
	assert.Contains(t, c.Detail, "nobody is logged in")
	assert.Contains(t, c.Fix, "automatic login")
}
