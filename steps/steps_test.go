package steps

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
)

// fakeGuest answers command lines from a script; a line with several
// answers gives them in turn (the last one repeats), for polling steps.
type fakeGuest struct {
	mu       sync.Mutex
	answers  map[string][]guest.Result
	ran      []string
	uploads  []string
	runErr   map[string]error
	uploadEr error
}

func newFake() *fakeGuest {
	return &fakeGuest{answers: map[string][]guest.Result{}, runErr: map[string]error{}}
}

func (f *fakeGuest) on(line string, out ...guest.Result) *fakeGuest {
	f.answers[line] = append(f.answers[line], out...)
	return f
}

func ok(stdout string) guest.Result { return guest.Result{Stdout: stdout} }

func (f *fakeGuest) Run(ctx context.Context, c guest.Cmd) (guest.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ran = append(f.ran, c.Line)
	if err := f.runErr[c.Line]; err != nil {
		return guest.Result{Line: c.Line}, err
	}
	as, found := f.answers[c.Line]
	if !found {
		return guest.Result{Line: c.Line, Exit: 127, Stderr: "zsh: command not found"}, nil
	}
	r := as[0]
	if len(as) > 1 {
		f.answers[c.Line] = as[1:]
	}
	r.Line = c.Line
	return r, nil
}

// count is how many times line was run.
func (f *fakeGuest) count(line string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, l := range f.ran {
		if l == line {
			n++
		}
	}
	return n
}

func (f *fakeGuest) Upload(ctx context.Context, local, remote string, p guest.Progress) error {
	f.uploads = append(f.uploads, local+" -> "+remote)
	return f.uploadEr
}

func (f *fakeGuest) Download(ctx context.Context, remote, local string, p guest.Progress) error {
	return errors.New("not scripted")
}

func (f *fakeGuest) Close() error { return nil }

func testEnv(g *fakeGuest) *Env {
	return &Env{
		Guest: g, User: "admin", From: "2", To: "3",
		Axes: map[string]string{"vpn": "running"},
		App: App{
			Name: "Example VPN", BundleID: "com.example.vpn", Path: "/Applications/Example VPN.app", VPNService: "Example VPN",
			Extension: Extension{BundleID: "com.example.vpn.tunnel", TeamID: "ABCDE12345", MachService: "ABCDE12345.com.example.vpn.tunnel"},
			Versions: map[string]Version{
				"2": {ID: "2", Package: "/pkgs/Example VPN-2.pkg", Kind: "pkg", ExtShort: "2.0", ExtBuild: "200"},
				"3": {ID: "3", Package: "/pkgs/Example VPN-3.pkg", Kind: "pkg", ExtShort: "3.0", ExtBuild: "300"},
			},
		},
		Poll: time.Millisecond, Wait: 50 * time.Millisecond,
	}
}

const header = "2 extension(s)\n--- com.apple.system_extension.network_extension\nenabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n"

const afterUpgrade = header +
	"*\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n" +
	"\t\tABCDE12345\tcom.example.vpn.tunnel (2.0/200)\tExample VPN\t[terminated waiting to uninstall on reboot]\n"

const jobWithEndpoint = "system/NetworkExtension.com.example.vpn.tunnel.3.0.300 = {\n\tstate = running\n\tendpoints = {\n\t\t\"ABCDE12345.com.example.vpn.tunnel\" = {\n\t\t\tport = 0x2ed07\n\t\t\tactive = 1\n\t\t}\n\t}\n}\n"
const jobWithoutEndpoint = "system/NetworkExtension.com.example.vpn.tunnel.3.0.300 = {\n\tstate = running\n\tpid = 812\n}\n"

const printLine = "sudo launchctl print system/NetworkExtension.com.example.vpn.tunnel.3.0.300"

func TestInstallUploadsAndQuotes(t *testing.T) {
	g := newFake().on("mkdir -p /tmp/sxlab", ok("")).
		on("sudo installer -pkg '/tmp/sxlab/Example VPN-2.pkg' -target /", ok("installer: The install was successful.\n"))
	require.NoError(t, Install{Label: "install", Version: "{{.From}}"}.Run(context.Background(), testEnv(g)))
	assert.Equal(t, []string{"/pkgs/Example VPN-2.pkg -> /tmp/sxlab/Example VPN-2.pkg"}, g.uploads)
}

func TestInstallerRefusalIsAProductFailure(t *testing.T) {
	g := newFake().on("mkdir -p /tmp/sxlab", ok("")).
		on("sudo installer -pkg '/tmp/sxlab/Example VPN-3.pkg' -target /", guest.Result{Exit: 1, Stdout: "installer: Error - the package is damaged\n"})
	err := Install{Label: "upgrade", Version: "3"}.Run(context.Background(), testEnv(g))
	require.True(t, IsProductFailure(err), "%v", err)
	assert.ErrorContains(t, err, "installer: Error - the package is damaged")
}

func TestLostConnectionIsTheLabsError(t *testing.T) {
	g := newFake()
	g.runErr["mkdir -p /tmp/sxlab"] = errors.New("connection lost")
	err := Install{Label: "install", Version: "2"}.Run(context.Background(), testEnv(g))
	require.Error(t, err)
	assert.False(t, IsProductFailure(err), "infrastructure errors are retried, not verdicts")
}

func TestUpgradeDoesWhatTheInstallerDoesFirst(t *testing.T) {
	g := userFake().
		on(listApps, ok(appRunning), ok(appsNone)).
		on(userPrefix+"osascript -e 'quit app id \"com.example.vpn\"'", ok("")).
		on("mkdir -p /tmp/sxlab", ok("")).
		on("sudo installer -pkg '/tmp/sxlab/Example VPN-3.pkg' -target /", ok("installer: The upgrade was successful.\n"))
	require.NoError(t, Upgrade{Label: "upgrade", Version: "{{.To}}", Before: []string{"quit-app"}}.Run(context.Background(), testEnv(g)))
	quit := slices.Index(g.ran, userPrefix+"osascript -e 'quit app id \"com.example.vpn\"'")
	install := slices.Index(g.ran, "sudo installer -pkg '/tmp/sxlab/Example VPN-3.pkg' -target /")
	require.GreaterOrEqual(t, quit, 0)
	assert.Less(t, quit, install, "the app is quit before the package is installed")
}

func TestVPNPollsUntilConnected(t *testing.T) {
	g := newFake().on("scutil --nc start 'Example VPN'", ok("")).
		on("scutil --nc status 'Example VPN'", ok("Connecting\n"), ok("Connecting\n"), ok("Connected\nExtended Status <dictionary> {\n}\n"))
	require.NoError(t, VPN{Label: "vpn", Action: "start"}.Run(context.Background(), testEnv(g)))
}

func TestVPNThatNeverConnectsIsAProductFailure(t *testing.T) {
	g := newFake().on("scutil --nc start 'Example VPN'", ok("")).
		on("scutil --nc status 'Example VPN'", ok("Disconnected\n"))
	err := VPN{Label: "vpn", Action: "start", Timeout: 5 * time.Millisecond}.Run(context.Background(), testEnv(g))
	require.True(t, IsProductFailure(err), "%v", err)
	assert.ErrorContains(t, err, "did not become Connected")
}

func TestWaitExtensionStuck(t *testing.T) {
	stuck := header + "\t*\tABCDE12345\tcom.example.vpn.tunnel (2.0/200)\tExample VPN\t[activated waiting for user]\n"
	g := newFake().on("systemextensionsctl list", ok(stuck))
	err := WaitExtension{Label: "wait", State: "activated enabled", Timeout: 5 * time.Millisecond}.Run(context.Background(), testEnv(g))
	require.True(t, IsProductFailure(err))
	assert.ErrorContains(t, err, "activated waiting for user")
}

func TestMachEndpointProbe(t *testing.T) {
	probe := Probe{Kind: "mach-endpoint"}
	g := newFake().on("systemextensionsctl list", ok(afterUpgrade)).on(printLine, ok(jobWithEndpoint))
	res, err := probe.Check(context.Background(), testEnv(g))
	require.NoError(t, err)
	assert.True(t, res.Held, res.Message)

	g = newFake().on("systemextensionsctl list", ok(afterUpgrade)).on(printLine, ok(jobWithoutEndpoint))
	res, err = probe.Check(context.Background(), testEnv(g))
	require.NoError(t, err)
	assert.False(t, res.Held)
	assert.Contains(t, res.Message, "no endpoints block")
	assert.Equal(t, "NetworkExtension.com.example.vpn.tunnel.3.0.300", res.Observations["label"])

	g = newFake().on("systemextensionsctl list", ok(afterUpgrade)).on(printLine, guest.Result{Exit: 113, Stderr: "Could not find service"})
	res, err = probe.Check(context.Background(), testEnv(g))
	require.NoError(t, err)
	assert.False(t, res.Held)
	assert.Contains(t, res.Message, "no job")
}

func TestMachEndpointProbeRendersAVersionedService(t *testing.T) {
	job := strings.Replace(jobWithEndpoint, `"ABCDE12345.com.example.vpn.tunnel"`, `"ABCDE12345.com.example.vpn.tunnel.3.0"`, 1)
	g := newFake().on("systemextensionsctl list", ok(afterUpgrade)).on(printLine, ok(job))
	env := testEnv(g)
	env.App.Extension.MachService = "ABCDE12345.com.example.vpn.tunnel.{{.Version}}"
	res, err := Probe{Kind: "mach-endpoint"}.Check(context.Background(), env)
	require.NoError(t, err)
	assert.True(t, res.Held, res.Message)
}

func TestExtensionStateProbe(t *testing.T) {
	check := func(list string, p Probe) ProbeResult {
		t.Helper()
		res, err := p.Check(context.Background(), testEnv(newFake().on("systemextensionsctl list", ok(list))))
		require.NoError(t, err)
		return res
	}
	assert.True(t, check(afterUpgrade, Probe{Kind: "extension-state", Old: "gone-or-pending-reboot"}).Held)
	assert.False(t, check(afterUpgrade, Probe{Kind: "extension-state", Old: "gone"}).Held, "the old copy is still listed")

	pending := header + "\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated waiting for user]\n"
	res := check(pending, Probe{Kind: "extension-state"})
	assert.False(t, res.Held)
	assert.Contains(t, res.Message, `"activated waiting for user", expected "activated enabled"`)

	notUpgraded := header + "*\t*\tABCDE12345\tcom.example.vpn.tunnel (2.0/200)\tExample VPN\t[activated enabled]\n"
	res = check(notUpgraded, Probe{Kind: "extension-state"})
	assert.False(t, res.Held, "the replacement never happened (delegate-no-callback)")
	assert.Contains(t, res.Message, "version 3.0/300")

	assert.False(t, check("0 extension(s)\n", Probe{Kind: "extension-state"}).Held)
}

func TestCommandProbeAndProbeStep(t *testing.T) {
	line := `"/Applications/Example VPN.app/Contents/MacOS/Example VPN" --check-xpc`
	g := newFake().on(line, guest.Result{Exit: 1, Stderr: "connection invalidated\n"})
	env := testEnv(g)
	env.Probes = map[string]Probe{"xpc": {Kind: "xpc", Line: `"{{.App.Path}}/Contents/MacOS/Example VPN" --check-xpc`}}
	var entries []Entry
	env.Record = func(e Entry) { entries = append(entries, e) }
	require.NoError(t, RunProbes{Label: "probe", Names: []string{"xpc"}}.Run(context.Background(), env))
	require.Len(t, env.Results, 1)
	assert.Equal(t, "xpc", env.Results[0].Name)
	assert.False(t, env.Results[0].Held)
	assert.Contains(t, env.Results[0].Message, "connection invalidated")
	assert.NotEmpty(t, entries, "probe commands are recorded for steps.jsonl")

	err := RunProbes{Label: "probe", Names: []string{"nope"}}.Run(context.Background(), env)
	assert.ErrorContains(t, err, `"nope" is not configured`)
}

// Probes that only read, one after another in a step, judge one
// listing; a probe that acts in the guest makes the next one ask again,
// and the next step asks anew.
func TestReadingProbesOfAStepShareOneListing(t *testing.T) {
	xpcLine := `"/Applications/Example VPN.app/Contents/MacOS/Example VPN" --check-xpc`
	g := newFake().on("systemextensionsctl list", ok(afterUpgrade)).on(printLine, ok(jobWithEndpoint)).on(xpcLine, ok("ok\n"))
	env := testEnv(g)
	env.Probes = map[string]Probe{
		"extension-state": {Kind: "extension-state", Old: "gone-or-pending-reboot"},
		"mach-endpoint":   {Kind: "mach-endpoint"},
		"xpc":             {Kind: "xpc", Line: `"{{.App.Path}}/Contents/MacOS/Example VPN" --check-xpc`},
	}
	lists := func() int { return g.count("systemextensionsctl list") }
	require.NoError(t, RunProbes{Label: "probe", Names: []string{"extension-state", "mach-endpoint"}}.Run(context.Background(), env))
	assert.Equal(t, 1, lists(), "two reading probes, one listing")
	for _, r := range env.Results {
		assert.True(t, r.Held, r.Message)
	}
	require.NoError(t, RunProbes{Label: "probe", Names: []string{"extension-state", "xpc", "mach-endpoint"}}.Run(context.Background(), env))
	assert.Equal(t, 3, lists(), "a new step lists again, and so does a probe after one that acts")
}

func TestShellStep(t *testing.T) {
	g := newFake().on("sw_vers", ok("ProductName:\t\tmacOS\nProductVersion:\t\t15.3\n"))
	env := testEnv(g)
	require.NoError(t, Shell{Label: "shell", Line: "sw_vers", ExpectStdout: regexp.MustCompile(`15\.3`)}.Run(context.Background(), env))
	err := Shell{Label: "shell", Line: "sw_vers", ExpectStdout: regexp.MustCompile(`26\.0`)}.Run(context.Background(), env)
	assert.True(t, IsProductFailure(err))
	err = Shell{Label: "shell", Line: "{{.Nope}}"}.Run(context.Background(), env)
	assert.ErrorContains(t, err, "template")
}

func TestRebootReconnects(t *testing.T) {
	g := newFake()
	g.runErr["sudo shutdown -r now"] = errors.New("connection lost")
	env := testEnv(g)
	reconnected := false
	env.Reconnect = func(context.Context) error { reconnected = true; return nil }
	require.NoError(t, Reboot{Label: "reboot"}.Run(context.Background(), env), "the dropped connection is the expected end")
	assert.True(t, reconnected)

	env.Reconnect = func(context.Context) error { return errors.New("host key changed") }
	err := Reboot{Label: "reboot"}.Run(context.Background(), env)
	assert.ErrorContains(t, err, "host key changed")
	assert.False(t, IsProductFailure(err))
}

func TestPollingStartsShortAndBacksOffToPoll(t *testing.T) {
	p := (&Env{Poll: 100 * time.Millisecond}).poller()
	var waits []time.Duration
	for range 6 {
		waits = append(waits, p.next)
		require.NoError(t, p.wait(context.Background(), time.Now())) // deadline now: no sleep, next wait set
	}
	assert.Equal(t, []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond,
		80 * time.Millisecond, 100 * time.Millisecond}, waits, "the second check at once, then backing off")

	// Never past the step's deadline: the last check comes at it.
	p = (&Env{Poll: time.Hour}).poller()
	p.next = time.Hour
	start := time.Now()
	require.NoError(t, p.wait(context.Background(), start.Add(30*time.Millisecond)))
	assert.Less(t, time.Since(start), 10*time.Second, "the wait was cut at the deadline, not an hour")

	// A Poll shorter than the first wait wins.
	p = (&Env{Poll: time.Millisecond}).poller()
	require.NoError(t, p.wait(context.Background(), time.Now()))
	assert.Equal(t, time.Millisecond, p.next)
}
