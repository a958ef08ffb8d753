package macos

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

var updateGolden = flag.Bool("update-mac-golden", false, "rewrite the Mac model's golden files under testdata/")

// fakeHost is a machine for the model alone: its clock moves only when
// something sleeps, and a reboot boots the model at once.
type fakeHost struct {
	mu      sync.Mutex
	now     time.Time
	reboots int
	mac     *Mac
}

func (h *fakeHost) Now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *fakeHost) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.advance(d)
	return nil
}

func (h *fakeHost) advance(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(d)
}

func (h *fakeHost) Reboot() {
	h.mu.Lock()
	h.reboots++
	h.mu.Unlock()
	h.advance(h.mac.BootDelay())
	h.mac.Boot()
}

// testStart is the guest clock at first boot, in a zone that shows the
// offset in timestamps the way the reports do.
var testStart = time.Date(2025, 7, 27, 15, 41, 33, 0, time.FixedZone("EDT", -4*3600))

// simMac is one simulated Mac under test, driven command by command.
type simMac struct {
	t    testing.TB
	m    *Mac
	host *fakeHost
	fs   *shell.FS
}

type macOption func(*Config)

func withFaults(f ...vm.Fault) macOption {
	return func(c *Config) { c.Faults = f }
}

func withSeed(seed int64) macOption { return func(c *Config) { c.Seed = seed } }

func withVersion(v, build string) macOption {
	return func(c *Config) { c.ProductVersion, c.Build = v, build }
}

func newSimMac(t testing.TB, opts ...macOption) *simMac {
	t.Helper()
	return newSimMacIn(t, shell.NewFS(), opts...)
}

// newSimMacIn makes a Mac on an existing file tree. Tests that run many
// machines one after another share one tree: file system calls are most
// of their cost, and the model keeps its state in memory.
func newSimMacIn(t testing.TB, fs *shell.FS, opts ...macOption) *simMac {
	t.Helper()
	cfg := Config{Name: "sim-test-1", User: "admin", ProductVersion: "15.3", Build: "24D60", Seed: 1}
	for _, o := range opts {
		o(&cfg)
	}
	host := &fakeHost{now: testStart}
	m := New(cfg, host, fs)
	host.mac = m
	m.Boot()
	s := &simMac{t: t, m: m, host: host, fs: fs}
	for n := 1; n <= 4; n++ {
		if _, err := fs.Stat("/Users/admin/example-vpn-" + string(rune('0'+n)) + ".simpkg.json"); err == nil {
			continue
		}
		s.addPackage(filepath.Join("testdata", "simpkg", "example-vpn-"+string(rune('0'+n))+".simpkg.json"), "/Users/admin/example-vpn-"+string(rune('0'+n))+".simpkg.json")
	}
	// The demo's real packages (examples/pkg), made by the generator.
	for n := 1; n <= 5; n++ {
		gp := "/Users/admin/example-vpn-" + string(rune('0'+n)) + ".pkg"
		if _, err := fs.Stat(gp); err == nil {
			continue
		}
		s.addPackage(filepath.Join("..", "..", "..", "examples", "pkg", "example-vpn-"+string(rune('0'+n))+".pkg"), gp)
	}
	return s
}

// addPackage copies a host file into the guest.
func (s *simMac) addPackage(hostPath, guestPath string) {
	s.t.Helper()
	data, err := os.ReadFile(hostPath)
	require.NoError(s.t, err)
	s.put(guestPath, data)
}

func (s *simMac) put(guestPath string, data []byte) {
	s.t.Helper()
	require.NoError(s.t, s.fs.MkdirAll(path.Dir(guestPath), 0o755))
	require.NoError(s.t, s.fs.WriteFile(guestPath, data, 0o644))
}

// variant writes a copy of example package n with edit applied to its
// decoded JSON, and returns its guest path.
func (s *simMac) variant(n int, name string, edit func(map[string]any)) string {
	s.t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "simpkg", "example-vpn-"+string(rune('0'+n))+".simpkg.json"))
	require.NoError(s.t, err)
	var doc map[string]any
	require.NoError(s.t, json.Unmarshal(data, &doc))
	edit(doc)
	out, err := json.Marshal(doc)
	require.NoError(s.t, err)
	gp := "/Users/admin/" + name + ".simpkg.json"
	s.put(gp, out)
	return gp
}

// result is what a command printed and returned.
type result struct {
	out, err string
	code     int
}

// exec runs one command line (split like a shell would, without one).
func (s *simMac) exec(root bool, line string) result {
	s.t.Helper()
	return s.execArgs(root, splitArgs(line)...)
}

func (s *simMac) execArgs(root bool, args ...string) result {
	s.t.Helper()
	var out, errb bytes.Buffer
	p := &shell.Proc{Args: args, Env: map[string]string{}, Root: root, User: "admin", Dir: "/Users/admin", Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, FS: s.fs}
	var cmd shell.Command
	if strings.Contains(args[0], "/") {
		c, ok := s.m.Program(args[0])
		require.True(s.t, ok, "no program at %s", args[0])
		cmd = c
	} else {
		c, ok := s.m.Commands()[args[0]]
		require.True(s.t, ok, "no command %s", args[0])
		cmd = c
	}
	code := cmd(context.Background(), p)
	return result{out.String(), errb.String(), code}
}

func (s *simMac) run(line string) result  { s.t.Helper(); return s.exec(false, line) }
func (s *simMac) sudo(line string) result { s.t.Helper(); return s.exec(true, line) }

// ok runs a command that must succeed and returns its stdout.
func (s *simMac) ok(root bool, line string) string {
	s.t.Helper()
	r := s.exec(root, line)
	require.Equal(s.t, 0, r.code, "%s\nstdout: %s\nstderr: %s", line, r.out, r.err)
	return r.out
}

// splitArgs splits on spaces outside single or double quotes.
func splitArgs(line string) []string {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inArg = r, true
		case r == ' ':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// --- the lab's scenario steps, as the lab sends them ------------------------

const (
	appPath   = "/Applications/Example VPN.app"
	appExec   = appPath + "/Contents/MacOS/Example VPN"
	extBundle = "com.example.vpn.tunnel"
)

func (s *simMac) install(n int) string {
	s.t.Helper()
	return s.ok(true, "installer -pkg /Users/admin/example-vpn-"+string(rune('0'+n))+".simpkg.json -target /")
}

// installPkg installs the demo's real package n (examples/pkg).
func (s *simMac) installPkg(n int) string {
	s.t.Helper()
	return s.ok(true, "installer -pkg /Users/admin/example-vpn-"+string(rune('0'+n))+".pkg -target /")
}

func (s *simMac) installPath(gp string) string {
	s.t.Helper()
	return s.ok(true, "installer -pkg "+gp+" -target /")
}

func (s *simMac) launch() {
	s.t.Helper()
	s.ok(true, `launchctl asuser 501 open -a "`+appPath+`"`)
}

func (s *simMac) quitApp() {
	s.t.Helper()
	s.ok(false, `osascript -e 'quit app id "com.example.vpn"'`)
}

// withMDM is a golden whose MDM enrolment installed a system extension
// policy for the app's team: activations are approved at once.
var withMDM = withGolden(func(g *Golden) {
	g.MDMEnrolled = true
	g.Policies = append(g.Policies, Policy{Team: "ABCDE12345"})
})

// approveInSettings approves the waiting extension as the lab's ui step
// does, with the same command lines: System Settings on the pane of the
// version, the approval control, then the password sheet. It reports
// whether the pane offered a control (false: -1728, nothing approved).
func (s *simMac) approveInSettings() bool {
	s.t.Helper()
	url, control := settingsLoginItemsURL, `checkbox "Example VPN"`
	if s.m.majorVersion() < 15 {
		url, control = settingsSecurityURL, `button "Allow"`
	}
	s.ok(false, `open "`+url+`"`)
	r := s.run("osascript -e '" + `tell application "System Events" to tell process "System Settings" to click ` + control + ` of window 1` + "'")
	if r.code != 0 {
		require.Contains(s.t, r.err, "(-1728)", "only a missing control may fail the click")
		return false
	}
	s.ok(false, "osascript -e '"+settingsAnswerSheet+"'")
	return true
}

// approve approves the extension if it waits, in System Settings.
func (s *simMac) approve() {
	s.t.Helper()
	if exts := s.extensions(); len(exts) > 0 && exts[0].State == "activated waiting for user" {
		require.True(s.t, s.approveInSettings(), "System Settings offers no approval control")
	}
}

// removeExtension deletes every copy of the extension from the model, as
// removing it in System Settings would. A test-only hook: no command line
// of the simulated Mac does this.
func (s *simMac) removeExtension() {
	s.t.Helper()
	s.m.begin()
	n := s.m.removeExtension(extBundle)
	s.m.mu.Unlock()
	require.Positive(s.t, n, "no copy of %s to remove", extBundle)
}

const (
	settingsLoginItemsURL = "x-apple.systempreferences:com.apple.LoginItems-Settings.extension"
	settingsSecurityURL   = "x-apple.systempreferences:com.apple.preference.security?Security"
	settingsAnswerSheet   = `tell application "System Events"
tell process "System Settings"
set value of text field 1 of sheet 1 of window 1 to "admin"
click button "OK" of sheet 1 of window 1
end tell
end tell`
	vpnAlertAllow = `tell application "System Events" to tell process "UserNotificationCenter" to click button "Allow" of window 1`
)

// vpnStart starts the VPN and polls until it is Connected, as the lab's
// vpn step does.
func (s *simMac) vpnStart() {
	s.t.Helper()
	s.ok(false, `scutil --nc start "Example VPN"`)
	for i := 0; i < 10; i++ {
		st, err := guest.ParseVPNStatus(strings.NewReader(s.ok(false, `scutil --nc status "Example VPN"`)))
		require.NoError(s.t, err)
		if st.Status == "Connected" {
			return
		}
		s.host.advance(time.Second)
	}
	s.t.Fatalf("VPN never connected")
}

func (s *simMac) vpnStop() {
	s.t.Helper()
	s.ok(false, `scutil --nc stop "Example VPN"`)
}

func (s *simMac) vpnStatus() string {
	s.t.Helper()
	st, err := guest.ParseVPNStatus(strings.NewReader(s.ok(false, `scutil --nc status "Example VPN"`)))
	require.NoError(s.t, err)
	return st.Status
}

func (s *simMac) extensions() []guest.Extension {
	s.t.Helper()
	exts, err := guest.ParseExtensions(strings.NewReader(s.ok(false, "systemextensionsctl list")))
	require.NoError(s.t, err)
	return exts
}

// extState is "short/build state" per row, newest first: compact to assert.
func (s *simMac) extStates() []string {
	s.t.Helper()
	var out []string
	for _, e := range s.extensions() {
		out = append(out, e.ShortVersion+"/"+e.Build+" "+e.State)
	}
	return out
}

func jobLabel(version string) string { return "NetworkExtension." + extBundle + "." + version }

func (s *simMac) job(version string) guest.LaunchdJob {
	s.t.Helper()
	job, err := guest.ParseLaunchdJob(strings.NewReader(s.ok(true, "launchctl print system/"+jobLabel(version))))
	require.NoError(s.t, err)
	return job
}

func (s *simMac) checkXPC() result {
	s.t.Helper()
	return s.execArgs(false, appExec, "--check-xpc")
}

// logs is the whole log as the lab reads it.
func (s *simMac) logs() []guest.LogEntry {
	s.t.Helper()
	entries, err := guest.ParseLog(strings.NewReader(s.ok(false, "log show --style ndjson --info --debug")))
	require.NoError(s.t, err)
	return entries
}

// messages are "process: message" lines of the log, in order.
func (s *simMac) messages() []string {
	s.t.Helper()
	var out []string
	for _, e := range s.logs() {
		out = append(out, e.Process+": "+e.Message)
	}
	return out
}

// indexOf is the index of the first message at or after from that
// contains sub, -1 when none does.
func indexOf(msgs []string, from int, sub string) int {
	for i := max(from, 0); i < len(msgs); i++ {
		if strings.Contains(msgs[i], sub) {
			return i
		}
	}
	return -1
}

func countOf(msgs []string, sub string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// golden compares got with testdata/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *updateGolden {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(p, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err, "missing golden file; run go test -run %s -update-mac-golden", t.Name())
	require.Equal(t, string(want), got, "output differs from %s (rerun with -update-mac-golden after checking the change)", p)
}
