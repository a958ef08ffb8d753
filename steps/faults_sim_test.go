package steps_test

// The four field reports replayed on simulated Macs over SSH: each test
// boots a machine with the sim provider, dials it with the lab's client,
// runs the demo lab's steps for the report's sequence, and reads the
// symptoms back with the guest parsers; a control shows the symptoms
// depend on the report's condition. Everything here is simulated.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/steps"
)

// requireEndpointLost checks the XPC reports' symptoms on version
// short/build: the probes see no endpoints block and an invalidated
// connection; launchctl print has no endpoints block; the XPC check
// fails at once.
func (l *simLab) requireEndpointLost(rs map[string]steps.ProbeResult, short, build string) {
	l.t.Helper()
	assert.False(l.t, rs["mach-endpoint"].Held)
	assert.Contains(l.t, rs["mach-endpoint"].Message, "job "+jobLabel(short, build)+" has no endpoints block: the Mach service "+machService+" never registered with launchd")
	assert.False(l.t, rs["xpc"].Held)
	assert.Equal(l.t, "lookup-failed", rs["xpc"].Observations["outcome"], "sxlab-probe finds no Mach service")
	assert.Equal(l.t, "BOOTSTRAP_UNKNOWN_SERVICE (1102)", rs["xpc"].Observations["lookup"])

	job, exit := l.job(short, build)
	require.Equal(l.t, 0, exit, "the job exists: the extension is enabled")
	assert.False(l.t, job.HasEndpointsBlock(), "launchctl print must have no endpoints block")
	res := l.checkXPC()
	assert.Equal(l.t, 1, res.Exit)
	assert.Equal(l.t, "xpc: "+machService+": connection invalidated\n", res.Stderr)
}

// requireEndpointWorks checks the healthy outcome: every probe held and
// the job lists service under endpoints.
func (l *simLab) requireEndpointWorks(rs map[string]steps.ProbeResult, short, build, service string) {
	l.t.Helper()
	for _, name := range []string{"extension-state", "mach-endpoint", "xpc"} {
		assert.True(l.t, rs[name].Held, "%s", rs[name])
	}
	job, exit := l.job(short, build)
	require.Equal(l.t, 0, exit)
	require.True(l.t, job.HasEndpointsBlock(), "launchctl print must list the endpoint")
	require.Len(l.t, job.Endpoints, 1)
	assert.Equal(l.t, service, job.Endpoints[0].Name)
	res := l.checkXPC()
	assert.Equal(l.t, 0, res.Exit, res.Stderr)
	assert.Equal(l.t, "xpc: connected to "+service+" (extension "+short+"/"+build+")\n", res.Stdout)
}

// TestSimEndpointLostOnReplaceWhileRunning replays xpc-invalidated-on-
// upgrade: on macos-15.3 the demo's approved cell upgrades while the VPN
// runs; the new provider's job has no endpoints block and XPC is
// invalidated, for good, while the tunnel itself stays up.
func TestSimEndpointLostOnReplaceWhileRunning(t *testing.T) {
	simNoLeaks(t)
	app := exampleApp(t, nil)
	for _, from := range []string{"2", "1"} {
		t.Run(from+"->3", func(t *testing.T) {
			c := cell{from: from, to: "3", vpn: "running", approval: "approved"}
			l := bootLab(t, image153(), 1, "lost-"+from, app, c)
			l.do(scenario(c)...)

			rs := l.lastProbes()
			assert.Equal(t, map[string]bool{"extension-state": true, "mach-endpoint": false, "xpc": false}, held(rs))
			assert.Equal(t, `extension com.example.vpn.tunnel 3.0/300 is "activated enabled"`, rs["extension-state"].Message)
			l.requireEndpointLost(rs, "3.0", "300")
			assert.Equal(t, []string{"3.0/300 activated enabled", from + ".0/" + from + "00 " + terminated}, l.rows(),
				"systemextensionsctl shows the new version activated: the report's confusing part")
			assert.Equal(t, "Connected", l.vpnStatus(), "the tunnel works; only XPC is broken")

			msgs := messages(l.logs())
			conflict := indexOf(msgs, 0, "sysextd: notifying client of activation conflict")
			require.GreaterOrEqual(t, conflict, 0, "the replacement of the running extension")
			listener := indexOf(msgs, conflict, "com.example.vpn.tunnel: listener failed to activate: xpc_error=[1: Operation not permitted]")
			require.Greater(t, listener, conflict, "the new provider could not take the Mach service")
			lookup := indexOf(msgs, listener, "failed to do a bootstrap look-up: xpc_error=[3: No such process]")
			require.Greater(t, lookup, listener, "the app's look-up finds no listener")
			require.Less(t, lookup+1, len(msgs))
			assert.True(t, strings.HasPrefix(msgs[lookup], "Example VPN: [0x"), msgs[lookup])
			assert.True(t, strings.HasSuffix(msgs[lookup+1], "] invalidated after a failed init"), msgs[lookup+1])
		})
	}

	t.Run("retries, relaunch and VPN restart do not help", func(t *testing.T) {
		c := cell{from: "2", to: "3", vpn: "running", approval: "approved"}
		l := bootLab(t, image153(), 1, "lost-for-good", app, c)
		l.do(scenario(c)...)
		for range 3 {
			assert.Equal(t, 1, l.checkXPC().Exit, "every retry is invalidated")
		}
		l.do(
			steps.Quit{Label: "quit"}, steps.Launch{Label: "relaunch"},
			steps.VPN{Label: "vpn stop", Action: "stop"}, steps.VPN{Label: "vpn start", Action: "start"},
		)
		l.requireEndpointLost(l.probe("extension-state", "mach-endpoint", "xpc"), "3.0", "300")
	})

	t.Run("control: VPN stopped during the upgrade", func(t *testing.T) {
		c := cell{from: "2", to: "3", vpn: "stopped", approval: "approved"}
		l := bootLab(t, image153(), 1, "lost-control-stopped", app, c)
		l.do(scenario(c)...)
		l.requireEndpointWorks(l.lastProbes(), "3.0", "300", machService)
		assert.Equal(t, []string{"3.0/300 activated enabled"}, l.rows(), "an old copy that did not run is gone at once")
		msgs := messages(l.logs())
		assert.GreaterOrEqual(t, indexOf(msgs, 0, "sysextd: notifying client of activation conflict"), 0, "the extension was replaced")
		assert.Equal(t, -1, indexOf(msgs, 0, "listener failed to activate"))
	})

	t.Run("control: versioned Mach service (package 4)", func(t *testing.T) {
		// The app reaches version 4's provider on its versioned name: the
		// configuration says so with a template, as the README allows.
		versioned := exampleApp(t, nil)
		versioned.Extension.MachService = machService + ".{{.Version}}"
		c := cell{from: "3", to: "4", vpn: "running", approval: "approved"}
		l := bootLab(t, image153(), 1, "lost-control-versioned", versioned, c)
		l.do(scenario(c)...)
		rs := l.lastProbes()
		l.requireEndpointWorks(rs, "4.0", "400", machService+".4.0")
		assert.Equal(t, "job "+jobLabel("4.0", "400")+" serves "+machService+".4.0", rs["mach-endpoint"].Message)
		assert.Equal(t, []string{"4.0/400 activated enabled", "3.0/300 " + terminated}, l.rows(), "replaced while running, like the failing cells")
		assert.Equal(t, -1, indexOf(messages(l.logs()), 0, "listener failed to activate"))
	})
}

// TestSimRegistrationRace replays xpc-broken-20-percent: on macos-15.4 a
// replacement loses the endpoint with probability 0.2, drawn from the
// run's seed and the machine's name, so an outcome replays exactly. A
// broken machine stays broken until it reboots.
func TestSimRegistrationRace(t *testing.T) {
	simNoLeaks(t)
	app := exampleApp(t, nil)
	c := cell{from: "2", to: "3", vpn: "stopped", approval: "approved"}
	// Found by running seeds 1 to 12 on both names: 7 and 8 break race-a,
	// 3 and 9 break race-b. Each seed appears once broken and once
	// healthy, so both the seed and the name decide.
	tests := []struct {
		seed   int64
		name   string
		broken bool
	}{
		{7, "race-a", true},
		{7, "race-b", false},
		{3, "race-b", true},
		{3, "race-a", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("seed %d %s", tt.seed, tt.name), func(t *testing.T) {
			l := bootLab(t, image154(), tt.seed, tt.name, app, c)
			l.do(scenario(c)...)
			rs := l.lastProbes()
			if !tt.broken {
				l.requireEndpointWorks(rs, "3.0", "300", machService)
				return
			}
			require.Equal(t, map[string]bool{"extension-state": true, "mach-endpoint": false, "xpc": false}, held(rs),
				"seed %d on %s no longer breaks the upgrade: the sim's draws changed; pick a seed again", tt.seed, tt.name)
			l.requireEndpointLost(rs, "3.0", "300")
			assert.Equal(t, []string{"3.0/300 activated enabled"}, l.rows())

			// "once its broken its broken": restarting the extension's VPN
			// and the app does not bring the endpoint back.
			l.do(steps.VPN{Label: "vpn start", Action: "start"}, steps.Quit{Label: "quit"}, steps.Launch{Label: "relaunch"})
			l.requireEndpointLost(l.probe("extension-state", "mach-endpoint", "xpc"), "3.0", "300")

			// "all that fixes it is a machine restart".
			l.do(steps.Reboot{Label: "reboot"})
			l.requireEndpointWorks(l.probe("extension-state", "mach-endpoint", "xpc"), "3.0", "300", machService)
			assert.Contains(t, l.ran(), "sudo shutdown -r now")
		})
	}

	t.Run("the same seed and name replay the same outcome", func(t *testing.T) {
		for range 2 {
			l := bootLab(t, image154(), 7, "race-a", app, c)
			l.do(scenario(c)...)
			assert.False(t, l.lastProbes()["mach-endpoint"].Held)
		}
	})
}

// TestSimApprovalCoalesced replays approval-dialog-missing: on macos-15.3
// the demo's pending cell updates the app while its extension waits for
// approval; the new copy waits with no prompt, later requests coalesce
// into it, and clicking Allow does nothing until a reboot.
func TestSimApprovalCoalesced(t *testing.T) {
	simNoLeaks(t)
	app := exampleApp(t, nil)
	for _, from := range []string{"2", "1"} {
		t.Run(from+"->3", func(t *testing.T) {
			c := cell{from: from, to: "3", approval: "pending", vpn: "stopped"}
			l := bootLab(t, image153(), 1, "coalesced-"+from, app, c)
			l.do(scenario(c)...)
			assert.Contains(t, l.ran(), "sudo launchctl asuser 501 sudo -u admin osascript -e "+guest.Quote(`tell application "System Events" to tell process "System Settings" to click checkbox "Example VPN" of window 1`), "the ui step looked for the switch")
			assert.Contains(t, l.notes(), "no approval control: Login Items & Extensions shows no checkbox \"Example VPN\" or checkbox \"com.example.vpn.tunnel\" for com.example.vpn.tunnel 3.0/300",
				"found through the missing control")
			assert.Contains(t, l.notes(), `its window is "Login Items & Extensions"`, "on the pane the script opened: the miss is macOS's, not the lab's")

			rs := l.lastProbes()
			assert.Equal(t, map[string]bool{"extension-state": false, "mach-endpoint": false, "xpc": false}, held(rs))
			assert.Equal(t, `extension com.example.vpn.tunnel 3.0/300 is "activated waiting for user", expected "activated enabled"`, rs["extension-state"].Message)
			assert.Contains(t, rs["mach-endpoint"].Message, "no enabled and active copy of com.example.vpn.tunnel")
			assert.Equal(t, "lookup-failed", rs["xpc"].Observations["outcome"])
			assert.Equal(t, []string{"3.0/300 activated waiting for user"}, l.rows(), "the click found no prompt")
			_, exit := l.job("3.0", "300")
			assert.Equal(t, 113, exit, "no provider job while the extension waits")

			entries := l.logs()
			msgs := messages(entries)
			removing := indexOf(msgs, 0, "sysextd: \nRemoving tree at\n  path: /Library/SystemExtensions/")
			require.GreaterOrEqual(t, removing, 0, "the staging failure of the report, item (e)")
			assert.Contains(t, msgs[removing], "\nResetting flags and trying again!")
			found := indexOf(msgs, removing, "sysextd: activateDecision found existing entry of same version: state activated_waiting_for_user, ID ")
			require.Greater(t, found, removing, "the report's item (f)")
			require.Less(t, found+1, len(msgs))
			assert.True(t, strings.HasPrefix(msgs[found+1], "sysextd: initial activation decision: coalesceWithActivationInProgress(<sysextd.Extension: 0x"), msgs[found+1])
			id := msgs[found][strings.LastIndex(msgs[found], " ")+1:]
			assert.Contains(t, msgs[removing], "/Library/SystemExtensions/"+id+"\n", "the coalesced entry is the one whose tree could not be removed")
			assert.Equal(t, "Error", entries[removing].Type)
		})
	}

	t.Run("ui approval has no effect until reboot", func(t *testing.T) {
		c := cell{from: "2", to: "3", approval: "pending", vpn: "stopped"}
		l := bootLab(t, image153(), 1, "coalesced-reboot", app, c)
		l.do(scenario(c)...)
		allow := steps.Approve{Label: "approve", Strategy: "ui"}

		l.do(steps.Quit{Label: "quit"}, steps.Launch{Label: "relaunch"}, allow)
		assert.Equal(t, []string{"3.0/300 activated waiting for user"}, l.rows())
		assert.Equal(t, 2, countOf(messages(l.logs()), "coalesceWithActivationInProgress"), "the relaunch's request is coalesced too")

		l.do(steps.Reboot{Label: "reboot"}, steps.Launch{Label: "launch"}, allow,
			steps.WaitExtension{Label: "wait", State: "activated enabled", Version: "3.0/300"})
		l.requireEndpointWorks(l.probe("extension-state", "mach-endpoint", "xpc"), "3.0", "300", machService)
	})

	t.Run("control: an MDM-enrolled golden approves at once", func(t *testing.T) {
		// The policy approves every activation as it comes: nothing ever
		// waits, so there is nothing to coalesce.
		c := cell{from: "2", to: "3", approval: "pending", vpn: "stopped"}
		l := bootImage(t, withMDM(image153()), "macos-15.3", 1, "coalesced-control-mdm", app, c)
		l.do(scenario(c)...)
		assert.Contains(t, l.notes(), "ui: nothing waits for approval")
		assert.Equal(t, []string{"3.0/300 activated enabled"}, l.rows())
		l.requireEndpointWorks(l.lastProbes(), "3.0", "300", machService)
	})

	t.Run("control: ui approves on macos-15.4", func(t *testing.T) {
		c := cell{from: "2", to: "3", approval: "pending", vpn: "stopped"}
		l := bootLab(t, image154(), 1, "coalesced-control-154", app, c)
		l.do(scenario(c)...)
		l.requireEndpointWorks(l.lastProbes(), "3.0", "300", machService)
		msgs := messages(l.logs())
		assert.Equal(t, -1, indexOf(msgs, 0, "Removing tree at"))
		assert.Equal(t, -1, indexOf(msgs, 0, "coalesceWithActivationInProgress"))
	})
}

// TestSimDelegateNoCallback replays delegate-no-callback: an app that
// holds its activation request's delegate weakly (package flag
// retains_activation_delegate: false) cancels its connection to sysextd
// right after sysextd asks it about the replacement, so the new version
// never replaces the old one.
func TestSimDelegateNoCallback(t *testing.T) {
	simNoLeaks(t)
	weak := packageVariant(t, "3", "example-vpn-3-weak-delegate.simpkg.json", func(doc map[string]any) {
		doc["app"].(map[string]any)["retains_activation_delegate"] = false
	})
	app := exampleApp(t, map[string]string{"3-weak": weak})
	conflictLines := []string{
		`sysextd: activateDecision found entry to replace: com.example.vpn.tunnel, BundleVersion(CFBundleShortVersionString: "2.0", CFBundleVersion: "200")`,
		"sysextd: initial activation decision: requestAppReplaceAction(<sysextd.Extension: 0x",
		"sysextd: notifying client of activation conflict",
	}

	t.Run("weak delegate", func(t *testing.T) {
		c := cell{from: "2", to: "3-weak", vpn: "running", approval: "approved"}
		l := bootLab(t, imageHealthy(), 1, "delegate-weak", app, c)
		l.do(scenario(c)...)
		assert.Contains(t, l.ran(), "sudo installer -pkg /tmp/sxlab/example-vpn-3-weak-delegate.simpkg.json -target /")

		rs := l.lastProbes()
		assert.Equal(t, map[string]bool{"extension-state": false, "mach-endpoint": true, "xpc": true}, held(rs))
		assert.Equal(t, "no row of com.example.vpn.tunnel at version 3.0/300; rows: 2.0/200 [activated enabled]", rs["extension-state"].Message)
		assert.Equal(t, "rejected", rs["xpc"].Observations["outcome"], "the old provider still serves the name")
		res := l.checkXPC()
		assert.Equal(t, "xpc: connected to "+machService+" (extension 2.0/200)\n", res.Stdout, "the new app still talks to the old provider")
		assert.Equal(t, []string{"2.0/200 activated enabled"}, l.rows(), "nothing was replaced")

		entries := l.logs()
		msgs := messages(entries)
		at := indexOf(msgs, 0, conflictLines[0])
		require.GreaterOrEqual(t, at, 0)
		require.Less(t, at+5, len(msgs))
		for i, want := range conflictLines {
			assert.True(t, strings.HasPrefix(msgs[at+i], want), "line %d: %q, want prefix %q", i, msgs[at+i], want)
		}
		// Right after the conflict: the app cancels, sysextd sees it go.
		cancel, sysextdSide, client := entries[at+3], entries[at+4], entries[at+5]
		assert.Equal(t, "Example VPN", cancel.Process)
		assert.Equal(t, "com.apple.xpc", cancel.Subsystem)
		assert.True(t, strings.HasSuffix(cancel.Message, "] invalidated because the current process cancelled the connection by calling xpc_connection_cancel()"), cancel.Message)
		assert.Equal(t, "sysextd", sysextdSide.Process)
		assert.Contains(t, sysextdSide.Message, fmt.Sprintf("invalidated because the client process (pid %d) either cancelled the connection or exited", cancel.PID))
		assert.Equal(t, fmt.Sprintf("client connection (pid %d) invalidated", cancel.PID), client.Message)
		conflictAt, err := entries[at+2].Time()
		require.NoError(t, err)
		cancelAt, err := cancel.Time()
		require.NoError(t, err)
		assert.False(t, cancelAt.Before(conflictAt))
		assert.Less(t, cancelAt.Sub(conflictAt), time.Second, "within a second of the conflict, as GUEST-REFERENCE says")
		assert.Equal(t, -1, indexOf(msgs, at, "Replacing com.example.vpn.tunnel"), "the delegate never answered")
		assert.Equal(t, -1, indexOf(msgs, at, "SystemExtension activated"))
	})

	t.Run("control: delegate retained", func(t *testing.T) {
		c := cell{from: "2", to: "3", vpn: "running", approval: "approved"}
		l := bootLab(t, imageHealthy(), 1, "delegate-retained", app, c)
		l.do(scenario(c)...)
		l.requireEndpointWorks(l.lastProbes(), "3.0", "300", machService)
		assert.Equal(t, []string{"3.0/300 activated enabled", "2.0/200 " + terminated}, l.rows())
		msgs := messages(l.logs())
		at := indexOf(msgs, 0, conflictLines[0])
		require.GreaterOrEqual(t, at, 0, "the same replacement path")
		assert.Greater(t, indexOf(msgs, at, "Example VPN: Replacing com.example.vpn.tunnel v2.0 with v3.0"), at, "the delegate answers")
		assert.Equal(t, -1, indexOf(msgs, 0, "xpc_connection_cancel"))
	})
}

// TestSimLabIsTheDemo: the images, app, probes and scenario these tests
// replay are what the lab builds from the demo configuration, so the
// command lines above are the ones `sxlab run` sends.
func TestSimLabIsTheDemo(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	file, err := filepath.Abs(filepath.Join("..", "config.yaml"))
	require.NoError(t, err)
	l, err := lab.Load(lab.LoadOptions{File: file, LookupEnv: noEnv})
	require.NoError(t, err)

	images, err := l.ResolveImages(noEnv)
	require.NoError(t, err)
	assert.Equal(t, image153(), images["macos-15.3"])
	assert.Equal(t, image154(), images["macos-15.4"])
	assert.Equal(t, withMDM(image153()), images["macos-15.3-mdm"])
	assert.Equal(t, withMDM(image154()), images["macos-15.4-mdm"])
	for cellImage, want := range map[[2]string]string{
		{"macos-15.3", "approved"}: "macos-15.3-mdm", {"macos-15.3", "pending"}: "macos-15.3",
		{"macos-15.4", "approved"}: "macos-15.4-mdm", {"macos-15.4", "pending"}: "macos-15.4",
	} {
		got, err := l.Config.CellImage(map[string]string{"macos": cellImage[0], "approval": cellImage[1]})
		require.NoError(t, err)
		assert.Equal(t, want, got, "the approval axis picks the golden")
	}

	app, err := l.StepsApp()
	require.NoError(t, err)
	assert.Equal(t, exampleApp(t, nil), app)
	probes, err := l.Config.StepsProbes()
	require.NoError(t, err)
	assert.Equal(t, labProbes(), probes)

	for _, c := range []cell{
		{from: "2", to: "3", vpn: "running", approval: "approved"},
		{from: "1", to: "3", vpn: "stopped", approval: "approved"},
		{from: "2", to: "3", vpn: "stopped", approval: "pending"},
	} {
		got, err := l.Config.CellSteps(map[string]string{"macos": "macos-15.3", "path": c.from + "->" + c.to, "vpn": c.vpn, "approval": c.approval})
		require.NoError(t, err)
		assert.Equal(t, scenario(c), got, "%+v", c)
	}
}
