package steps

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/cmd/sxlab-probe/schema"
	"github.com/sxlab/sxlab/guest"
)

// timedGuest is a fakeGuest that also remembers each command's timeout.
type timedGuest struct {
	*fakeGuest
	mu       sync.Mutex
	timeouts map[string]time.Duration
}

func newTimed(f *fakeGuest) *timedGuest {
	return &timedGuest{fakeGuest: f, timeouts: map[string]time.Duration{}}
}

func (g *timedGuest) Run(ctx context.Context, c guest.Cmd) (guest.Result, error) {
	g.mu.Lock()
	g.timeouts[c.Line] = c.Timeout
	g.mu.Unlock()
	return g.fakeGuest.Run(ctx, c)
}

const (
	svc        = "ABCDE12345.com.example.vpn.tunnel"
	lookupLine = "sudo launchctl asuser 501 sudo -u admin /tmp/sxlab/sxlab-probe mach-lookup ABCDE12345.com.example.vpn.tunnel"
	connectLn  = "sudo launchctl asuser 501 sudo -u admin /tmp/sxlab/sxlab-probe xpc-connect ABCDE12345.com.example.vpn.tunnel --timeout 5s"
)

// report is what sxlab-probe prints for a lookup code and, for
// xpc-connect, an XPC event: built with the probe's own schema and
// classification, with the exit status the probe would give.
func report(t *testing.T, probe string, code int32, ev schema.Event) guest.Result {
	t.Helper()
	rep := schema.Report{Schema: schema.Version, Probe: probe, Service: svc, UID: 501, Caveat: schema.Caveat,
		Lookup: schema.NewLookup(code, "", 0.4)}
	if probe == schema.ProbeMachLookup {
		rep.Outcome, rep.Meaning = schema.ClassifyLookup(*rep.Lookup)
	} else {
		rep.XPC = &schema.XPC{Event: ev, TimeoutMS: 5000, Millis: 2}
		rep.Outcome, rep.Meaning = schema.ClassifyConnect(*rep.Lookup, *rep.XPC)
	}
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	return guest.Result{Stdout: string(b), Exit: schema.ExitCode(rep.Outcome)}
}

// probeGuest answers the upload's preparation and the uid.
func probeGuest() *fakeGuest {
	return newFake().on("mkdir -p /tmp/sxlab", ok("")).on("chmod 755 /tmp/sxlab/sxlab-probe", ok("")).on("id -u admin", ok("501\n"))
}

func probeEnv(g guest.Guest) *Env {
	env := testEnv(nil)
	env.Guest = g
	env.ProbeBinary = func(context.Context) (string, error) { return "/cache/sxlab-probe-darwin-arm64", nil }
	return env
}

func TestMachLookupUploadsOnceAndRunsAsTheConsoleUser(t *testing.T) {
	g := probeGuest().on(lookupLine, report(t, schema.ProbeMachLookup, 0, ""))
	env := probeEnv(g)
	for range 2 {
		res, err := Probe{Kind: "mach-lookup"}.Check(t.Context(), env)
		require.NoError(t, err)
		assert.True(t, res.Held, res.Message)
		assert.Equal(t, "found", res.Observations["outcome"])
		assert.Equal(t, "KERN_SUCCESS (0)", res.Observations["lookup"])
		assert.Contains(t, res.Observations["caveat"], "unverified on macOS")
	}
	assert.Equal(t, []string{"/cache/sxlab-probe-darwin-arm64 -> /tmp/sxlab/sxlab-probe"}, g.uploads, "one upload per attempt")
	assert.Equal(t, []string{"mkdir -p /tmp/sxlab", "chmod 755 /tmp/sxlab/sxlab-probe", "id -u admin", lookupLine, lookupLine}, g.ran)
}

func TestMachLookupFailureIsTheProducts(t *testing.T) {
	g := probeGuest().on(lookupLine, report(t, schema.ProbeMachLookup, schema.BootstrapUnknownService, ""))
	res, err := Probe{Kind: "mach-lookup"}.Check(t.Context(), probeEnv(g))
	require.NoError(t, err, "a failed lookup is an observation, not the lab's problem")
	assert.False(t, res.Held)
	assert.Equal(t, "lookup-failed", res.Observations["outcome"])
	assert.Contains(t, res.Message, "lookup failed")
	assert.Contains(t, res.Message, "BOOTSTRAP_UNKNOWN_SERVICE (1102)")
}

func TestXPCConnectVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int32
		ev     schema.Event
		expect string
		held   bool
		says   string
	}{
		{"reply", 0, schema.EventReply, "", true, "answered"},
		{"nsxpc-only service is reachable", 0, schema.EventInvalid, "", true, "reachable, rejected the message"},
		{"rejection fails a probe that needs a reply", 0, schema.EventInvalid, "reply", false, "reachable, rejected the message"},
		{"registered but silent", 0, schema.EventTimeout, "", true, "neither answered"},
		{"silence fails a probe that needs a reply", 0, schema.EventTimeout, "reply", false, "neither answered"},
		{"unregistered service", schema.BootstrapUnknownService, schema.EventInvalid, "", false, "lookup failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTimed(probeGuest().on(connectLn, report(t, schema.ProbeXPCConnect, tc.code, tc.ev)))
			res, err := Probe{Kind: "xpc-connect", Expect: tc.expect}.Check(t.Context(), probeEnv(g))
			require.NoError(t, err)
			assert.Equal(t, tc.held, res.Held, res.Message)
			assert.Contains(t, res.Message, tc.says)
			assert.Equal(t, string(tc.ev), res.Observations["xpc"])
			assert.Equal(t, 35*time.Second, g.timeouts[connectLn], "the lab waits the probe's timeout and a margin")
		})
	}
}

func TestProbeThatCannotRunIsTheLabsError(t *testing.T) {
	good := report(t, schema.ProbeMachLookup, 0, "")
	otherUser := good
	otherUser.Stdout = `{"schema":1,"probe":"mach-lookup","service":"` + svc + `","outcome":"found","meaning":"m","uid":0,"caveat":"c"}`
	for name, tc := range map[string]struct {
		answer guest.Result
		says   string
	}{
		"linux elf":       {guest.Result{Exit: 126, Stderr: "zsh: exec format error: /tmp/sxlab/sxlab-probe\n"}, "not a darwin/arm64 program"},
		"sudo's words":    {guest.Result{Exit: 1, Stderr: "sudo: unable to execute /tmp/sxlab/sxlab-probe: Exec format error\n"}, "not a darwin/arm64 program"},
		"missing":         {guest.Result{Exit: 127, Stderr: "sudo: /tmp/sxlab/sxlab-probe: command not found\n"}, "not found"},
		"unreadable":      {guest.Result{Exit: 0, Stdout: "hello\n"}, "not its JSON report"},
		"nothing":         {guest.Result{Exit: 1, Stderr: "sudo: a password is required\n"}, "sudo: a password is required"},
		"probe error":     {guest.Result{Exit: 2, Stdout: `{"schema":1,"probe":"mach-lookup","service":"` + svc + `","outcome":"error","meaning":"m","uid":501,"error":"loading libSystem: no","caveat":"c"}`}, "could not do its job: loading libSystem"},
		"wrong user":      {otherUser, "ran as uid 0, not as the console user admin (uid 501)"},
		"exit disagrees":  {guest.Result{Exit: 1, Stdout: good.Stdout}, "exited 1 but reported found"},
		"usage":           {guest.Result{Exit: 64, Stderr: "sxlab-probe: unknown probe"}, "refused its command line"},
		"another service": {guest.Result{Exit: 0, Stdout: `{"schema":1,"probe":"mach-lookup","service":"x","outcome":"found","meaning":"m","uid":501,"caveat":"c"}`}, `not mach-lookup "` + svc},
	} {
		t.Run(name, func(t *testing.T) {
			g := probeGuest().on(lookupLine, tc.answer)
			_, err := Probe{Kind: "mach-lookup"}.Check(t.Context(), probeEnv(g))
			require.Error(t, err)
			assert.False(t, IsProductFailure(err))
			assert.ErrorContains(t, err, tc.says)
		})
	}
}

func TestProbeBinaryProblemsAreTheLabs(t *testing.T) {
	env := probeEnv(probeGuest())
	env.ProbeBinary = nil
	_, err := Probe{Kind: "mach-lookup"}.Check(t.Context(), env)
	assert.ErrorContains(t, err, "without an sxlab-probe binary")

	env = probeEnv(probeGuest())
	env.ProbeBinary = func(context.Context) (string, error) {
		return "", errors.New("no checkout of github.com/sxlab/sxlab found")
	}
	_, err = Probe{Kind: "xpc-connect"}.Check(t.Context(), env)
	assert.ErrorContains(t, err, "no checkout")

	g := probeGuest()
	g.uploadEr = errors.New("sftp: disk full")
	_, err = Probe{Kind: "mach-lookup"}.Check(t.Context(), probeEnv(g))
	assert.ErrorContains(t, err, "disk full")

	g = newFake().on("mkdir -p /tmp/sxlab", ok("")).on("chmod 755 /tmp/sxlab/sxlab-probe", ok("")).on("id -u admin", guest.Result{Exit: 1, Stderr: "id: admin: no such user"})
	_, err = Probe{Kind: "mach-lookup"}.Check(t.Context(), probeEnv(g))
	assert.ErrorContains(t, err, "no such user")
}

func TestGuestProbeServiceFollowsTheActiveCopy(t *testing.T) {
	line := "sudo launchctl asuser 501 sudo -u admin /tmp/sxlab/sxlab-probe mach-lookup ABCDE12345.com.example.vpn.tunnel.3.0"
	rep := report(t, schema.ProbeMachLookup, 0, "")
	rep.Stdout = `{"schema":1,"probe":"mach-lookup","service":"ABCDE12345.com.example.vpn.tunnel.3.0","outcome":"found","meaning":"m","uid":501,"caveat":"c"}`
	g := probeGuest().on("systemextensionsctl list", ok(afterUpgrade)).on(line, rep)
	env := probeEnv(g)
	env.App.Extension.MachService = "ABCDE12345.com.example.vpn.tunnel.{{.Version}}"
	res, err := Probe{Kind: "mach-lookup"}.Check(t.Context(), env)
	require.NoError(t, err)
	assert.True(t, res.Held, res.Message)

	// An explicit service is rendered over the cell.
	g = probeGuest().on("sudo launchctl asuser 501 sudo -u admin /tmp/sxlab/sxlab-probe mach-lookup svc.running", guest.Result{Exit: 1,
		Stdout: `{"schema":1,"probe":"mach-lookup","service":"svc.running","outcome":"lookup-failed","meaning":"m","uid":501,"caveat":"c"}`})
	res, err = Probe{Kind: "mach-lookup", Service: "svc.{{.Axis.vpn}}"}.Check(t.Context(), probeEnv(g))
	require.NoError(t, err)
	assert.False(t, res.Held)
}

func TestCommandProbeDefaultTimeout(t *testing.T) {
	g := newTimed(newFake().on("check", ok("fine")))
	env := testEnv(nil)
	env.Guest = g
	env.CommandTimeout = 30 * time.Minute
	_, err := Probe{Kind: "command", Line: "check"}.Check(t.Context(), env)
	require.NoError(t, err)
	assert.Equal(t, CommandProbeTimeout, g.timeouts["check"], "not the 30-minute command default")
	_, err = Probe{Kind: "xpc", Line: "check", Timeout: 2 * time.Second}.Check(t.Context(), env)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, g.timeouts["check"])

	h := newFake()
	h.runErr["hang"] = guest.ErrCommandTimeout
	env.Guest = h
	_, err = Probe{Kind: "command", Line: "hang"}.Check(t.Context(), env)
	require.ErrorIs(t, err, guest.ErrCommandTimeout)
	assert.ErrorContains(t, err, "a command probe's default; set timeout on the probe")
}

func TestMachEndpointOutcomes(t *testing.T) {
	for name, tc := range map[string]struct {
		answer  guest.Result
		outcome string
		says    string
	}{
		"serving":      {ok(jobWithEndpoint), EndpointServing, "serves"},
		"no endpoints": {ok(jobWithoutEndpoint), EndpointNone, "has no endpoints block"},
		"no job": {guest.Result{Exit: 113, Stderr: "Could not find service \"NetworkExtension.com.example.vpn.tunnel.3.0.300\" in domain for system\n"},
			EndpointNoJob, "no launchd job for the extension"},
	} {
		t.Run(name, func(t *testing.T) {
			g := newFake().on("systemextensionsctl list", ok(afterUpgrade)).on(printLine, tc.answer)
			res, err := Probe{Kind: "mach-endpoint"}.Check(t.Context(), testEnv(g))
			require.NoError(t, err)
			assert.Equal(t, tc.outcome, res.Observations["outcome"])
			assert.Contains(t, res.Message, tc.says)
		})
	}
	g := newFake().on("systemextensionsctl list", ok(afterUpgrade)).on(printLine, guest.Result{Exit: 1, Stderr: "sudo: a password is required"})
	_, err := Probe{Kind: "mach-endpoint"}.Check(t.Context(), testEnv(g))
	require.Error(t, err, "sudo failing says nothing about the job")
	assert.False(t, IsProductFailure(err))

	g = newFake().on("systemextensionsctl list", ok(header+"\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated waiting for user]\n"))
	res, err := Probe{Kind: "mach-endpoint"}.Check(t.Context(), testEnv(g))
	require.NoError(t, err)
	assert.Equal(t, EndpointNoActive, res.Observations["outcome"])
}

// The staging folder is made once per boot: install, upgrade and the
// probe share it, and after a reboot (which empties /tmp on macOS) it is
// made again and the probe uploaded again before it runs.
func TestStagingFolderOncePerBoot(t *testing.T) {
	g := probeGuest().on(lookupLine, report(t, schema.ProbeMachLookup, 0, "")).
		on("sudo installer -pkg '/tmp/sxlab/Example VPN-2.pkg' -target /", ok("installer: The install was successful.\n")).
		on("sudo installer -pkg '/tmp/sxlab/Example VPN-3.pkg' -target /", ok("installer: The upgrade was successful.\n")).
		on("sudo shutdown -r now", ok(""))
	env := probeEnv(g)
	reconnects := 0
	env.Reconnect = func(context.Context) error { reconnects++; return nil }
	ctx := t.Context()
	require.NoError(t, Install{Label: "install", Version: "2"}.Run(ctx, env))
	require.NoError(t, Install{Label: "upgrade", Version: "3"}.Run(ctx, env))
	_, err := Probe{Kind: "mach-lookup"}.Check(ctx, env)
	require.NoError(t, err)
	mkdirs := func() int { return g.count("mkdir -p /tmp/sxlab") }
	assert.Equal(t, 1, mkdirs(), "one mkdir before the first upload: %q", g.ran)
	assert.Len(t, g.uploads, 3)

	require.NoError(t, Reboot{Label: "reboot"}.Run(ctx, env))
	require.Equal(t, 1, reconnects)
	_, err = Probe{Kind: "mach-lookup"}.Check(ctx, env)
	require.NoError(t, err)
	assert.Equal(t, 2, mkdirs(), "the folder is made again after the reboot")
	assert.Equal(t, "/cache/sxlab-probe-darwin-arm64 -> /tmp/sxlab/sxlab-probe", g.uploads[len(g.uploads)-1], "the probe is uploaded again")
	assert.Len(t, g.uploads, 4)
}

// A staging folder the guest refuses to make is the lab's error, named.
func TestStagingFolderRefused(t *testing.T) {
	g := newFake().on("mkdir -p /tmp/sxlab", guest.Result{Exit: 1, Stderr: "mkdir: /tmp/sxlab: Read-only file system"})
	err := Install{Label: "install", Version: "2"}.Run(t.Context(), testEnv(g))
	require.Error(t, err)
	assert.False(t, IsProductFailure(err))
	assert.ErrorContains(t, err, "mkdir -p /tmp/sxlab exited 1: mkdir: /tmp/sxlab: Read-only file system")
	assert.Empty(t, g.uploads)
}
