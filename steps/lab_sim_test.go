package steps_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/guestbin"
	"github.com/sxlab/sxlab/lab"
	pkgreader "github.com/sxlab/sxlab/packages"
	"github.com/sxlab/sxlab/steps"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim"
)

// The demo lab (config.yaml) as the steps see it: the app, its probes,
// the images and the scenario. Values are copied from config.yaml rather
// than loaded through lab, so these tests pin the command lines the steps
// send, not the configuration loader; only the log predicate comes from
// lab, where it is defined.
const (
	appPath     = "/Applications/Example VPN.app"
	extBundle   = "com.example.vpn.tunnel"
	teamID      = "ABCDE12345"
	machService = "ABCDE12345.com.example.vpn.tunnel"
	xpcLine     = `"{{.App.Path}}/Contents/MacOS/Example VPN" --check-xpc`
	// terminated is the state of a replaced copy whose provider ran.
	terminated = "terminated waiting to uninstall on reboot"
)

// image153 and image154 are the demo's images with their faults.
func image153() vm.Image {
	return vm.Image{Name: "macos-15.3", User: "admin", Password: "admin", Sim: &vm.SimImage{
		ProductVersion: "15.3", Build: "24D60",
		Faults: []vm.Fault{{Name: sim.FaultEndpointLost}, {Name: sim.FaultApprovalCoalesced}},
	}}
}

func image154() vm.Image {
	return vm.Image{Name: "macos-15.4", User: "admin", Password: "admin", Sim: &vm.SimImage{
		ProductVersion: "15.4", Build: "24E248",
		Faults: []vm.Fault{{Name: sim.FaultRegistrationRace, Probability: 0.2}},
	}}
}

// withMDM is img's MDM-enrolled golden, as config.yaml names it
// (IMAGE-mdm): a system extension policy for the app's team approves the
// extension at once. The demo's approved cells run on it.
func withMDM(img vm.Image) vm.Image {
	sim := *img.Sim
	sim.Golden.MDM = &vm.SimMDM{SystemExtensionPolicies: []vm.SimSysextPolicy{{Team: teamID}}}
	img.Name, img.Sim = img.Name+"-mdm", &sim
	return img
}

// imageHealthy has no fault: what remains is the app's own behaviour.
func imageHealthy() vm.Image {
	return vm.Image{Name: "macos-15.6", User: "admin", Password: "admin", Sim: &vm.SimImage{ProductVersion: "15.6", Build: "24G84"}}
}

// examplePackage is the path of the demo's real examples/pkg/example-vpn-ID.pkg.
func examplePackage(t *testing.T, id string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "examples", "pkg", "example-vpn-"+id+".pkg"))
	require.NoError(t, err)
	return p
}

// exampleManifest is the sim's test manifest of version id, for app
// behaviours a real package cannot express (a weak activation delegate).
func exampleManifest(t *testing.T, id string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "vm", "sim", "macos", "testdata", "simpkg", "example-vpn-"+id+".simpkg.json"))
	require.NoError(t, err)
	return p
}

// exampleApp is config.yaml's app with versions 1 to 5, plus extra
// versions (id to package file). Each version's extension version is read
// from its package with the packages reader, as lab.StepsApp does.
func exampleApp(t *testing.T, extra map[string]string) steps.App {
	t.Helper()
	app := steps.App{
		Name: "Example VPN", BundleID: "com.example.vpn", Path: appPath, VPNService: "Example VPN",
		Extension: steps.Extension{BundleID: extBundle, TeamID: teamID, MachService: machService},
		Versions:  map[string]steps.Version{},
	}
	packages := map[string]string{}
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		packages[id] = examplePackage(t, id)
	}
	for id, p := range extra {
		packages[id] = p
	}
	for id, p := range packages {
		if strings.HasSuffix(p, ".simpkg.json") {
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			pkg, err := sim.ParseSimPkg(data)
			require.NoError(t, err, p)
			app.Versions[id] = steps.Version{ID: id, Package: p, Kind: "pkg", ExtShort: pkg.Extension.ShortVersion, ExtBuild: pkg.Extension.Build, PackageID: pkg.PackageID}
			continue
		}
		pkg, err := pkgreader.Open(p, pkgreader.Limits{})
		require.NoError(t, err, p)
		ident, err := pkgreader.IdentityOf(pkg, "com.example.vpn", extBundle)
		require.NoError(t, err, p)
		app.Versions[id] = steps.Version{ID: id, Package: p, Kind: "pkg", ExtShort: ident.Extension.ShortVersion, ExtBuild: ident.Extension.Version, PackageID: pkg.Components[0].ID}
	}
	return app
}

// packageVariant writes the sim's test manifest of version id with edit
// applied to its JSON
// into a temporary folder, under name, and returns its path.
func packageVariant(t *testing.T, id, name string, edit func(doc map[string]any)) string {
	t.Helper()
	data, err := os.ReadFile(exampleManifest(t, id))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	edit(doc)
	out, err := json.MarshalIndent(doc, "", "  ")
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, out, 0o644))
	return p
}

// labProbes are config.yaml's probes.
func labProbes() map[string]steps.Probe {
	return map[string]steps.Probe{
		"extension-state": {Kind: "extension-state", State: "activated enabled", Old: "gone-or-pending-reboot"},
		"mach-endpoint":   {Kind: "mach-endpoint"},
		"xpc":             {Kind: "xpc-connect"},
	}
}

// testProbe builds the real sxlab-probe once per test binary, into the
// user's guestbin cache as `sxlab run` does; the demo's xpc probe
// uploads it.
var testProbe = &guestbin.Builder{}

func testProbeBinary(ctx context.Context) (string, error) { return testProbe.Path(ctx, guestbin.Probe) }

// cell is one cell of the demo matrix.
type cell struct {
	from, to string
	vpn      string // running, stopped
	approval string // approved, pending
}

// scenario is config.yaml's scenario for a cell, with its `when` filters
// applied, built the way lab.CellSteps builds it.
func scenario(c cell) []steps.Step {
	approved, pending, running := c.approval == "approved", c.approval == "pending", c.vpn == "running"
	var out []steps.Step
	add := func(when bool, s steps.Step) {
		if when {
			out = append(out, s)
		}
	}
	add(true, steps.SessionCheck{Label: lab.SessionStep})
	add(true, steps.Install{Label: "1 install", Version: "{{.From}}"})
	add(true, steps.Launch{Label: "2 launch"})
	add(approved, steps.Approve{Label: "3 approve", Strategy: "mdm"})
	add(approved, steps.WaitExtension{Label: "4 wait-extension", State: "activated enabled"})
	add(running, steps.VPN{Label: "5 vpn", Action: "start"})
	add(true, steps.Upgrade{Label: "6 upgrade", Version: "{{.To}}", Before: []string{"quit-app"}})
	add(true, steps.Launch{Label: "7 launch"})
	add(pending, steps.Approve{Label: "8 approve", Strategy: "ui"})
	add(true, steps.RunProbes{Label: "9 probe", Names: []string{"extension-state", "mach-endpoint", "xpc"}})
	return out
}

// simNoLeaks checks, after every other cleanup, that the test left no
// goroutine behind (the machines' sshd, the client's keepalive).
func simNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// simLab is one simulated Mac from the sim provider, reached over SSH
// with the lab's client, and the Env the lab's steps run in.
type simLab struct {
	t       *testing.T
	client  *guest.Client
	env     *steps.Env
	entries []steps.Entry
}

// bootLab clones and boots a machine named name from img with the
// provider's seed, dials it as the lab does (host key pinned) and prepares
// the cell's Env. time_scale 0: simulated durations take no real time.
// An approved cell runs on img's MDM-enrolled golden, as in config.yaml.
func bootLab(t *testing.T, img vm.Image, seed int64, name string, app steps.App, c cell) *simLab {
	t.Helper()
	axisImage := img.Name
	if c.approval == "approved" && img.Sim != nil && img.Sim.Golden.MDM == nil {
		img = withMDM(img)
	}
	return bootImage(t, img, axisImage, seed, name, app, c)
}

// bootImage is bootLab on exactly img; axisImage is the cell's macos value.
func bootImage(t *testing.T, img vm.Image, axisImage string, seed int64, name string, app steps.App, c cell) *simLab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := sim.NewProvider(sim.Options{BaseDir: t.TempDir(), Seed: seed, TimeScale: 0})
	m, err := p.Clone(ctx, img, name)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Delete(context.Background())) })
	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	require.True(t, ep.Simulated)
	client, err := guest.Dial(ctx, ep, guest.Options{
		ConnectTimeout: 20 * time.Second, BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		HostKeyAlias: name,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })

	l := &simLab{t: t, client: client}
	l.env = &steps.Env{
		Guest: client, User: img.User, Password: img.Password, Image: img.Name, From: c.from, To: c.to, App: app, Probes: labProbes(),
		Axes:   map[string]string{"macos": axisImage, "path": c.from + "->" + c.to, "vpn": c.vpn, "approval": c.approval},
		Record: func(e steps.Entry) { l.entries = append(l.entries, e) }, Reconnect: client.Reconnect,
		// Polling steps poll quickly; Wait only bounds a step that hangs.
		Poll: time.Millisecond, Wait: 10 * time.Second, ProbeBinary: testProbeBinary,
	}
	// A line the simulated shell does not know would pass unnoticed where
	// a step ignores the exit (quit, approve): every line must be known.
	t.Cleanup(func() {
		for _, e := range l.entries {
			if e.Result != nil {
				assert.NotEqual(t, 127, e.Result.Exit, "step %s ran an unknown command: %s: %s", e.Step, e.Result.Line, e.Result.Stderr)
			}
		}
	})
	return l
}

// do runs steps in order; none may fail (the sequences end in probes,
// whose outcomes are results, not errors).
func (l *simLab) do(ss ...steps.Step) {
	l.t.Helper()
	for _, s := range ss {
		require.NoError(l.t, s.Run(context.Background(), l.env), "step %s", s.Kind())
	}
}

// probe runs the named probes with the lab's RunProbes step and returns
// their results by name.
func (l *simLab) probe(names ...string) map[string]steps.ProbeResult {
	l.t.Helper()
	before := len(l.env.Results)
	l.do(steps.RunProbes{Label: "probe", Names: names})
	out := map[string]steps.ProbeResult{}
	for _, r := range l.env.Results[before:] {
		out[r.Name] = r
	}
	return out
}

// held is each probe's outcome, compact to assert.
func held(rs map[string]steps.ProbeResult) map[string]bool {
	out := map[string]bool{}
	for n, r := range rs {
		out[n] = r.Held
	}
	return out
}

// lastProbes are the results of the scenario's final probe step.
func (l *simLab) lastProbes() map[string]steps.ProbeResult {
	out := map[string]steps.ProbeResult{}
	for _, r := range l.env.Results {
		out[r.Name] = r
	}
	return out
}

// sh runs one command line with the lab's client; its exit is the
// caller's to judge.
func (l *simLab) sh(line string) guest.Result {
	l.t.Helper()
	res, err := l.client.Run(context.Background(), guest.Cmd{Line: line})
	require.NoError(l.t, err, line)
	return res
}

// rows are the extension's rows of `systemextensionsctl list` as
// "short/build state", in the order listed.
func (l *simLab) rows() []string {
	l.t.Helper()
	res := l.sh("systemextensionsctl list")
	require.Equal(l.t, 0, res.Exit, res.Stderr)
	exts, err := guest.ParseExtensions(strings.NewReader(res.Stdout))
	require.NoError(l.t, err)
	var out []string
	for _, e := range exts {
		if e.BundleID == extBundle {
			out = append(out, e.ShortVersion+"/"+e.Build+" "+e.State)
		}
	}
	return out
}

// jobLabel is the provider's launchd job for an extension version.
func jobLabel(short, build string) string {
	return "NetworkExtension." + extBundle + "." + short + "." + build
}

// job prints the provider's launchd job; exit is launchctl's, non-zero
// (113) when launchd has no such job.
func (l *simLab) job(short, build string) (job guest.LaunchdJob, exit int) {
	l.t.Helper()
	res := l.sh(guest.Join("sudo", "launchctl", "print", "system/"+jobLabel(short, build)))
	if res.Exit != 0 {
		return guest.LaunchdJob{}, res.Exit
	}
	job, err := guest.ParseLaunchdJob(strings.NewReader(res.Stdout))
	require.NoError(l.t, err)
	return job, 0
}

// checkXPC runs the xpc probe's command line directly.
func (l *simLab) checkXPC() guest.Result {
	l.t.Helper()
	line, err := l.env.Render(xpcLine)
	require.NoError(l.t, err)
	return l.sh(line)
}

func (l *simLab) vpnStatus() string {
	l.t.Helper()
	res := l.sh(guest.Join("scutil", "--nc", "status", "Example VPN"))
	st, err := guest.ParseVPNStatus(strings.NewReader(res.Stdout))
	require.NoError(l.t, err)
	return st.Status
}

// logPredicate is the lab's log predicate plus the app's own subsystem,
// as GUEST-REFERENCE.md says evidence collection should ask for.
const logPredicate = lab.DefaultLogPredicate + ` OR subsystem == "com.example.vpn"`

// logs is the guest's unified log as the lab collects it.
func (l *simLab) logs() []guest.LogEntry {
	l.t.Helper()
	res := l.sh(guest.Join("log", "show", "--style", "ndjson", "--info", "--debug", "--predicate", logPredicate))
	require.Equal(l.t, 0, res.Exit, res.Stderr)
	entries, err := guest.ParseLog(strings.NewReader(res.Stdout))
	require.NoError(l.t, err)
	return entries
}

// messages are the log's events as "process: message", in order.
func messages(entries []guest.LogEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Process + ": " + e.Message
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

// notes are the steps' notes, one a line.
func (l *simLab) notes() string {
	var out []string
	for _, e := range l.entries {
		if e.Note != "" {
			out = append(out, e.Note)
		}
	}
	return strings.Join(out, "\n")
}

// ran are the command lines the steps sent, in order.
func (l *simLab) ran() []string {
	var out []string
	for _, e := range l.entries {
		if e.Result != nil {
			out = append(out, e.Result.Line)
		}
	}
	return out
}
