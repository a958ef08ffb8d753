package artifacts_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/guestbin"
	"github.com/sxlab/sxlab/packages"
	"github.com/sxlab/sxlab/steps"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim"
)

// The demo lab (config.yaml) as these tests need it, copied rather than
// loaded so that artifacts does not depend on lab.
const (
	appPath   = "/Applications/Example VPN.app"
	extBundle = "com.example.vpn.tunnel"
	teamID    = "ABCDE12345"
	service   = "ABCDE12345.com.example.vpn.tunnel"
)

// mdmGolden is the demo's MDM-enrolled golden: a system extension policy
// for the app's team approves the extension at once (approved cells).
var mdmGolden = vm.SimGolden{MDM: &vm.SimMDM{SystemExtensionPolicies: []vm.SimSysextPolicy{{Team: teamID}}}}

// image153 is the demo's MDM-enrolled 15.3 golden (approved cells).
func image153() vm.Image {
	return vm.Image{Name: "macos-15.3-mdm", User: "admin", Password: "admin", Sim: &vm.SimImage{
		ProductVersion: "15.3", Build: "24D60",
		Faults: []vm.Fault{{Name: sim.FaultEndpointLost}, {Name: sim.FaultApprovalCoalesced}},
		Golden: mdmGolden,
	}}
}

// image154 has the registration race; p = 1 makes it strike every time.
func image154(p float64) vm.Image {
	return vm.Image{Name: "macos-15.4-mdm", User: "admin", Password: "admin", Sim: &vm.SimImage{
		ProductVersion: "15.4", Build: "24E248",
		Faults: []vm.Fault{{Name: sim.FaultRegistrationRace, Probability: p}},
		Golden: mdmGolden,
	}}
}

// plain is img's golden without MDM, where the extension waits for the
// user (pending cells).
func plain(img vm.Image) vm.Image {
	sim := *img.Sim
	sim.Golden.MDM = nil
	img.Name, img.Sim = strings.TrimSuffix(img.Name, "-mdm"), &sim
	return img
}

func demoApp(t *testing.T) steps.App {
	t.Helper()
	app := steps.App{
		Name: "Example VPN", BundleID: "com.example.vpn", Path: appPath, VPNService: "Example VPN",
		Extension: steps.Extension{BundleID: extBundle, TeamID: teamID, MachService: service},
		Versions:  map[string]steps.Version{},
	}
	for _, id := range []string{"1", "2", "3"} {
		p, err := filepath.Abs(filepath.Join("..", "examples", "pkg", "example-vpn-"+id+".pkg"))
		require.NoError(t, err)
		pkg, err := packages.Open(p, packages.Limits{})
		require.NoError(t, err)
		ident, err := packages.IdentityOf(pkg, "com.example.vpn", extBundle)
		require.NoError(t, err)
		app.Versions[id] = steps.Version{ID: id, Package: p, Kind: "pkg", ExtShort: ident.Extension.ShortVersion, ExtBuild: ident.Extension.Version}
	}
	return app
}

func demoProbes() map[string]steps.Probe {
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

// demoCollector is the collector the lab would build from config.yaml.
func demoCollector(on string) *artifacts.Collector {
	return &artifacts.Collector{
		Policy: artifacts.Policy{On: on, Sysdiagnose: true, Timeout: time.Minute},
		App: artifacts.App{BundleID: "com.example.vpn", ExtensionBundleID: extBundle, TeamID: teamID,
			VPNService: "Example VPN", Packages: []string{"com.example.vpn.pkg"}},
	}
}

// cell is one cell of the demo matrix.
type cell struct {
	from, to      string
	vpn, approval string
}

// scenario is config.yaml's scenario for a cell, split at the upgrade:
// the lab snapshots the state right before it.
func scenario(c cell) (before, rest []steps.Step) {
	approved, pending, running := c.approval == "approved", c.approval == "pending", c.vpn == "running"
	add := func(list *[]steps.Step, when bool, s steps.Step) {
		if when {
			*list = append(*list, s)
		}
	}
	add(&before, true, steps.SessionCheck{Label: "0 session"})
	add(&before, true, steps.Install{Label: "1 install", Version: "{{.From}}"})
	add(&before, true, steps.Launch{Label: "2 launch"})
	add(&before, approved, steps.Approve{Label: "3 approve", Strategy: "mdm"})
	add(&before, approved, steps.WaitExtension{Label: "4 wait-extension", State: "activated enabled"})
	add(&before, running, steps.VPN{Label: "5 vpn", Action: "start"})
	add(&rest, true, steps.Upgrade{Label: "6 upgrade", Version: "{{.To}}", Before: []string{"quit-app"}})
	add(&rest, true, steps.Launch{Label: "7 launch"})
	add(&rest, pending, steps.Approve{Label: "8 approve", Strategy: "ui"})
	add(&rest, true, steps.RunProbes{Label: "9 probe", Names: []string{"extension-state", "mach-endpoint", "xpc"}})
	return before, rest
}

// simNoLeaks checks, after every other cleanup, that the test left no
// goroutine behind.
func simNoLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// simMac is one simulated Mac reached with the lab's SSH client.
type simMac struct {
	m      vm.Machine
	client *guest.Client
}

// bootSim clones and boots a machine at time_scale 0 and dials it as the
// lab does.
func bootSim(t *testing.T, img vm.Image, seed int64, name string) simMac {
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
	client, err := guest.Dial(ctx, ep, guest.Options{
		ConnectTimeout: 20 * time.Second, BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		HostKeyAlias: name, ProgressInterval: time.Nanosecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	return simMac{m: m, client: client}
}

// attempt is one attempt as the lab runs it: the guest's clock at the
// first step, the scenario with the before-snapshot right before the
// upgrade, the verdict from the probes, then After and triage.
type attempt struct {
	dir      string
	failed   bool
	result   artifacts.Result
	before   []artifacts.Missing
	triage   *artifacts.Triage
	progress [][2]int64
}

func runAttempt(t *testing.T, g guest.Guest, col *artifacts.Collector, cat *artifacts.Catalog, c cell, img vm.Image) attempt {
	t.Helper()
	ctx := context.Background()
	a := attempt{dir: t.TempDir()}
	// The lab writes steps.jsonl; a stand-in keeps the manifest honest.
	// As in the lab, one Written serves the attempt's files, Before and
	// After, so the manifest takes their sums from it.
	w := &artifacts.Written{}
	require.NoError(t, w.WriteFile(a.dir, artifacts.StepsFile, []byte("{}\n")))
	since, err := artifacts.GuestNow(ctx, g)
	require.NoError(t, err)

	env := &steps.Env{
		Guest: g, User: img.User, Password: img.Password, Image: img.Name, From: c.from, To: c.to, App: demoApp(t), Probes: demoProbes(),
		Axes:   map[string]string{"macos": strings.TrimSuffix(img.Name, "-mdm"), "path": c.from + "->" + c.to, "vpn": c.vpn, "approval": c.approval},
		Record: func(steps.Entry) {}, Poll: time.Millisecond, Wait: 10 * time.Second, ProbeBinary: testProbeBinary,
	}
	before, rest := scenario(c)
	for _, s := range before {
		require.NoError(t, s.Run(ctx, env), s.Kind())
	}
	a.before = col.Before(ctx, g, a.dir, artifacts.WithWritten(w))
	for _, s := range rest {
		require.NoError(t, s.Run(ctx, env), s.Kind())
	}
	var probes []artifacts.Probe
	for _, r := range env.Results {
		a.failed = a.failed || !r.Held
		probes = append(probes, artifacts.Probe{Name: r.Name, Kind: env.Probes[r.Name].Kind, Held: r.Held, Message: r.Message})
	}
	a.result = col.After(ctx, g, a.dir, a.failed, since, artifacts.WithWritten(w), artifacts.WithProgress(func(done, total int64) {
		a.progress = append(a.progress, [2]int64{done, total})
	}))
	facts := a.result.Facts
	facts.Probes = probes
	a.triage = cat.Triage(facts)
	return a
}
