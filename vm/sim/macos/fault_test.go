package macos

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

// upgradeWithVPN replays the lab's approved cell: install FROM, launch,
// approve (in System Settings, unless the golden's MDM policy did),
// start the VPN (when vpn), quit the app, install TO, launch.
func (s *simMac) upgradeWithVPN(from, to int, vpn bool) {
	s.t.Helper()
	s.install(from)
	s.launch()
	s.approve()
	if vpn {
		s.vpnStart()
	}
	s.quitApp()
	s.install(to)
	s.launch()
}

// requireEndpointLost checks the report's symptoms: the new version is
// activated enabled, its job has no endpoints block, and the app's XPC
// connection is invalidated at once.
func (s *simMac) requireEndpointLost(version string) {
	s.t.Helper()
	exts := s.extensions()
	require.NotEmpty(s.t, exts)
	assert.Equal(s.t, "activated enabled", exts[0].State)
	assert.Equal(s.t, version, exts[0].ShortVersion+"."+exts[0].Build)
	job := s.job(version)
	assert.False(s.t, job.HasEndpointsBlock(), "launchctl print must have no endpoints block")
	r := s.checkXPC()
	assert.NotEqual(s.t, 0, r.code)
	assert.Contains(s.t, r.err, "connection invalidated")
}

func (s *simMac) requireEndpointWorks(version, service string) {
	s.t.Helper()
	job := s.job(version)
	require.True(s.t, job.HasEndpointsBlock(), "launchctl print must list the endpoint")
	require.Len(s.t, job.Endpoints, 1)
	assert.Equal(s.t, service, job.Endpoints[0].Name)
	r := s.checkXPC()
	assert.Equal(s.t, 0, r.code, r.err)
	assert.Contains(s.t, r.out, "xpc: connected to "+service)
}

const service = "ABCDE12345.com.example.vpn.tunnel"

var faultEndpointLost = withFaults(vm.Fault{Name: FaultEndpointLost})

func TestEndpointLostOnReplaceWhileRunningReproducesTheReport(t *testing.T) {
	for _, from := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d->3", from), func(t *testing.T) {
			s := newSimMac(t, faultEndpointLost)
			s.upgradeWithVPN(from, 3, true)

			s.requireEndpointLost("3.0.300")
			assert.Equal(t, []string{"3.0/300 activated enabled", fmt.Sprintf("%d.0/%d00 terminated waiting to uninstall on reboot", from, from)}, s.extStates())
			assert.Equal(t, "Connected", s.vpnStatus(), "the tunnel itself works; only XPC is broken")

			msgs := s.messages()
			conflict := indexOf(msgs, 0, "notifying client of activation conflict")
			require.GreaterOrEqual(t, conflict, 0)
			assert.Greater(t, indexOf(msgs, conflict, "listener failed to activate: xpc_error=[1: Operation not permitted]"), conflict)
			lookup := indexOf(msgs, conflict, "failed to do a bootstrap look-up: xpc_error=[3: No such process]")
			assert.Greater(t, lookup, conflict)
			assert.Greater(t, indexOf(msgs, lookup, "invalidated after a failed init"), lookup)
		})
	}
}

func TestEndpointLostSurvivesEverythingButRemovalAndReapproval(t *testing.T) {
	s := newSimMac(t, faultEndpointLost)
	// Approve in System Settings, so that nothing pre-approves the
	// re-activation.
	s.install(2)
	s.launch()
	s.approve()
	s.vpnStart()
	s.quitApp()
	s.install(3)
	s.launch()
	s.requireEndpointLost("3.0.300")

	t.Run("every retry", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			assert.NotEqual(t, 0, s.checkXPC().code)
		}
	})
	t.Run("app relaunch", func(t *testing.T) {
		s.quitApp()
		s.launch()
		s.requireEndpointLost("3.0.300")
	})
	t.Run("VPN stop and start", func(t *testing.T) {
		s.vpnStop()
		assert.Equal(t, "Disconnected", s.vpnStatus())
		s.vpnStart()
		s.requireEndpointLost("3.0.300")
	})
	t.Run("reinstalling the same version", func(t *testing.T) {
		s.quitApp()
		s.install(3)
		s.launch()
		s.requireEndpointLost("3.0.300")
	})
	t.Run("reboot", func(t *testing.T) {
		s.ok(true, "shutdown -r now")
		assert.Equal(t, 1, s.host.reboots)
		assert.Equal(t, []string{"3.0/300 activated enabled"}, s.extStates(), "the old copy is gone after reboot")
		s.launch()
		s.requireEndpointLost("3.0.300")
	})
	t.Run("systemextensionsctl uninstall is refused with SIP on", func(t *testing.T) {
		r := s.sudo("systemextensionsctl uninstall ABCDE12345 " + extBundle)
		assert.NotEqual(t, 0, r.code)
		assert.Contains(t, r.err, "System Integrity Protection is enabled")
		s.requireEndpointLost("3.0.300")
	})
	t.Run("removing in System Settings and approving again cures it", func(t *testing.T) {
		s.removeExtension()
		assert.Empty(t, s.extensions())
		assert.Equal(t, "Disconnected", s.vpnStatus())
		s.quitApp()
		s.launch()
		assert.Equal(t, []string{"3.0/300 activated waiting for user"}, s.extStates())
		s.approve()
		s.requireEndpointWorks("3.0.300", service)
		s.vpnStart()
		s.requireEndpointWorks("3.0.300", service)
	})
}

func TestEndpointLostOnlyOnTheFirstUpgradeToAVersion(t *testing.T) {
	s := newSimMac(t, faultEndpointLost)
	s.upgradeWithVPN(2, 3, true)
	s.requireEndpointLost("3.0.300")

	// Start over on the same machine: remove, go back to 2, upgrade again.
	s.removeExtension()
	s.quitApp()
	s.install(2)
	s.launch()
	s.approve()
	s.vpnStart()
	s.quitApp()
	s.install(3)
	s.launch()
	s.requireEndpointWorks("3.0.300", service)
}

func TestEndpointLostControls(t *testing.T) {
	t.Run("VPN stopped during the upgrade", func(t *testing.T) {
		s := newSimMac(t, faultEndpointLost)
		s.upgradeWithVPN(2, 3, false)
		s.requireEndpointWorks("3.0.300", service)
		assert.Equal(t, []string{"3.0/300 activated enabled"}, s.extStates(), "an old copy that did not run is gone at once")
		assert.Equal(t, -1, indexOf(s.messages(), 0, "listener failed to activate"))
	})
	t.Run("versioned Mach service (package 4)", func(t *testing.T) {
		s := newSimMac(t, faultEndpointLost)
		s.upgradeWithVPN(3, 4, true)
		s.requireEndpointWorks("4.0.400", service+".4.0")
	})
	t.Run("fault off", func(t *testing.T) {
		s := newSimMac(t)
		s.upgradeWithVPN(2, 3, true)
		s.requireEndpointWorks("3.0.300", service)
	})
}

// raceOutcome runs the approved upgrade on one machine and reports whether
// the endpoint went missing.
func raceOutcome(t testing.TB, fs *shell.FS, seed int64, name string) bool {
	s := newSimMacIn(t, fs, withSeed(seed), withFaults(vm.Fault{Name: FaultRegistrationRace}), func(c *Config) { c.Name = name })
	s.upgradeWithVPN(2, 3, false)
	job := s.job("3.0.300")
	return !job.HasEndpointsBlock()
}

func TestRegistrationRaceRateIsTheReportsFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1000 machines")
	}
	const machines = 1000
	fs := shell.NewFS()
	broken := 0
	for seed := int64(1); seed <= machines; seed++ {
		if raceOutcome(t, fs, seed, "race") {
			broken++
		}
	}
	rate := float64(broken) / machines
	assert.InDelta(t, 0.2, rate, 0.05, "broken upgrades: %d of %d", broken, machines)
}

func TestRegistrationRaceIsDeterministic(t *testing.T) {
	fs := shell.NewFS()
	var first, again []bool
	for seed := int64(1); seed <= 40; seed++ {
		first = append(first, raceOutcome(t, fs, seed, "mac-a"))
		again = append(again, raceOutcome(t, fs, seed, "mac-a"))
	}
	assert.Equal(t, first, again, "same seed and name, same outcomes")
	assert.Contains(t, first, true)
	assert.Contains(t, first, false)

	var other []bool
	for seed := int64(1); seed <= 40; seed++ {
		other = append(other, raceOutcome(t, fs, seed, "mac-b"))
	}
	assert.NotEqual(t, first, other, "the machine name is part of the seed")
}

func TestRegistrationRaceSymptomsAndRebootCure(t *testing.T) {
	fs := shell.NewFS()
	seed := int64(0)
	for s := int64(1); s < 200; s++ {
		if raceOutcome(t, fs, s, "race") {
			seed = s
			break
		}
	}
	require.NotZero(t, seed, "no broken upgrade in 200 seeds")
	s := newSimMac(t, withSeed(seed), withFaults(vm.Fault{Name: FaultRegistrationRace}), func(c *Config) { c.Name = "race" })
	s.upgradeWithVPN(2, 3, false)
	s.requireEndpointLost("3.0.300")
	s.vpnStart()
	s.requireEndpointLost("3.0.300") // "once it's broken it's broken"
	s.ok(true, "reboot")
	s.requireEndpointWorks("3.0.300", service)

	t.Run("probability 1 always strikes, a versioned name is not immune", func(t *testing.T) {
		s := newSimMac(t, withFaults(vm.Fault{Name: FaultRegistrationRace, Probability: 1}))
		s.upgradeWithVPN(3, 4, false)
		assert.False(t, s.job("4.0.400").HasEndpointsBlock())
	})
	t.Run("no replacement, no race", func(t *testing.T) {
		s := newSimMac(t, withFaults(vm.Fault{Name: FaultRegistrationRace, Probability: 1}))
		s.install(3)
		s.launch()
		s.approve()
		s.requireEndpointWorks("3.0.300", service)
	})
}

// pendingUpgrade replays the lab's pending cell: install FROM, launch (no
// approval), quit, install TO, launch, approve in System Settings (which
// may offer no control: then nothing changes).
func (s *simMac) pendingUpgrade(from, to int) {
	s.t.Helper()
	s.install(from)
	s.launch()
	s.quitApp()
	s.install(to)
	s.launch()
	s.approveInSettings()
}

var faultCoalesced = withFaults(vm.Fault{Name: FaultApprovalCoalesced})

func TestApprovalCoalescedReproducesTheReport(t *testing.T) {
	for _, from := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d->3", from), func(t *testing.T) {
			s := newSimMac(t, faultCoalesced)
			s.pendingUpgrade(from, 3)

			assert.Equal(t, []string{"3.0/300 activated waiting for user"}, s.extStates(), "System Settings offered no control")
			assert.NotEqual(t, 0, s.checkXPC().code)
			r := s.sudo("launchctl print system/" + jobLabel("3.0.300"))
			assert.Equal(t, 113, r.code, "no job while the extension waits")

			msgs := s.messages()
			removing := indexOf(msgs, 0, "sysextd: \nRemoving tree at\n  path: /Library/SystemExtensions/")
			require.GreaterOrEqual(t, removing, 0, "the staging failure of the report")
			assert.Contains(t, msgs[removing], "failed with\n  error: “")
			assert.Contains(t, msgs[removing], "” couldn’t be removed.\nResetting flags and trying again!")
			found := indexOf(msgs, removing, "sysextd: activateDecision found existing entry of same version: state activated_waiting_for_user, ID ")
			require.Greater(t, found, removing)
			assert.True(t, strings.HasPrefix(msgs[found+1], "sysextd: initial activation decision: coalesceWithActivationInProgress(<sysextd.Extension: 0x"), msgs[found+1])
			// The coalesced entry is the one whose tree could not be removed.
			id := strings.TrimPrefix(msgs[found], "sysextd: activateDecision found existing entry of same version: state activated_waiting_for_user, ID ")
			assert.Contains(t, msgs[removing], "/Library/SystemExtensions/"+id+"\n")
		})
	}
}

func TestApprovalCoalescedLastsUntilReboot(t *testing.T) {
	s := newSimMac(t, faultCoalesced)
	s.pendingUpgrade(2, 3)

	s.quitApp()
	s.launch()
	assert.False(t, s.approveInSettings(), "still no control")
	assert.Equal(t, []string{"3.0/300 activated waiting for user"}, s.extStates())
	assert.Equal(t, 2, countOf(s.messages(), "coalesceWithActivationInProgress"), "the relaunch's request is coalesced too")

	s.ok(true, "shutdown -r now")
	s.launch()
	assert.True(t, s.approveInSettings(), "after a reboot the request is presented again")
	assert.Equal(t, []string{"3.0/300 activated enabled"}, s.extStates())
	s.requireEndpointWorks("3.0.300", service)
}

func TestApprovalCoalescedControls(t *testing.T) {
	t.Run("an MDM policy: nothing waits, so the fault cannot strike", func(t *testing.T) {
		s := newSimMac(t, faultCoalesced, withMDM)
		s.pendingUpgrade(2, 3)
		assert.Equal(t, []string{"3.0/300 activated enabled"}, s.extStates())
		s.requireEndpointWorks("3.0.300", service)
	})
	t.Run("fault off: System Settings approves the upgrade", func(t *testing.T) {
		s := newSimMac(t, withVersion("15.4", "24E248"))
		s.pendingUpgrade(2, 3)
		assert.Equal(t, []string{"3.0/300 activated enabled"}, s.extStates())
		s.requireEndpointWorks("3.0.300", service)
		assert.Equal(t, -1, indexOf(s.messages(), 0, "Removing tree at"))
	})
	t.Run("fresh install: System Settings approves even with the fault", func(t *testing.T) {
		s := newSimMac(t, faultCoalesced)
		s.install(3)
		s.launch()
		assert.True(t, s.approveInSettings())
		assert.Equal(t, []string{"3.0/300 activated enabled"}, s.extStates())
	})
	t.Run("a click in UserNotificationCenter approves no extension", func(t *testing.T) {
		s := newSimMac(t)
		s.install(3)
		s.launch()
		r := s.run("osascript -e '" + vpnAlertAllow + "'")
		assert.Equal(t, 1, r.code, "no alert is up")
		assert.Contains(t, r.err, `Can’t get button "Allow" of window 1 of process "UserNotificationCenter". (-1728)`)
		assert.Equal(t, []string{"3.0/300 activated waiting for user"}, s.extStates())
	})
}

func weakDelegate(doc map[string]any) {
	doc["app"].(map[string]any)["retains_activation_delegate"] = false
}

func TestDelegateNoCallbackReproducesTheReport(t *testing.T) {
	s := newSimMac(t)
	weak := s.variant(3, "example-vpn-3-weak-delegate", weakDelegate)
	s.install(2)
	s.launch()
	s.approve()
	s.vpnStart()
	s.quitApp()
	s.installPath(weak)
	s.launch()

	assert.Equal(t, []string{"2.0/200 activated enabled"}, s.extStates(), "nothing was replaced")
	r := s.checkXPC()
	assert.Equal(t, 0, r.code, "the new app still reaches the old provider")
	assert.Contains(t, r.out, "(extension 2.0/200)")

	msgs := s.messages()
	steps := []string{
		"sysextd: activateDecision found entry to replace: com.example.vpn.tunnel, BundleVersion(CFBundleShortVersionString: \"2.0\", CFBundleVersion: \"200\")",
		"sysextd: initial activation decision: requestAppReplaceAction(<sysextd.Extension: 0x",
		"sysextd: notifying client of activation conflict",
		"Example VPN: [0x",
		"sysextd: [0x",
		"sysextd: client connection (pid ",
	}
	at := indexOf(msgs, 0, steps[0])
	require.GreaterOrEqual(t, at, 0)
	for i, step := range steps[1:] {
		require.Less(t, at+1+i, len(msgs))
		assert.True(t, strings.HasPrefix(msgs[at+1+i], step), "line %d after the conflict: %q, want prefix %q", i+1, msgs[at+1+i], step)
	}
	assert.True(t, strings.HasSuffix(msgs[at+3], "] invalidated because the current process cancelled the connection by calling xpc_connection_cancel()"), msgs[at+3])
	assert.Contains(t, msgs[at+4], "invalidated because the client process (pid ")
	assert.Equal(t, -1, indexOf(msgs, at, "Replacing com.example.vpn.tunnel"), "the delegate never answered")
	assert.Equal(t, -1, indexOf(msgs, at, "SystemExtension activated"))

	// The same process pid appears in the app's line and sysextd's.
	entries := s.logs()
	var appPID int
	for _, e := range entries {
		if e.Process == "Example VPN" && strings.Contains(e.Message, "xpc_connection_cancel") {
			appPID = e.PID
		}
	}
	require.NotZero(t, appPID)
	assert.Contains(t, msgs[at+5], fmt.Sprintf("client connection (pid %d) invalidated", appPID))
}

func TestDelegateRetainedControl(t *testing.T) {
	s := newSimMac(t)
	s.upgradeWithVPN(2, 3, true)
	assert.Equal(t, []string{"3.0/300 activated enabled", "2.0/200 terminated waiting to uninstall on reboot"}, s.extStates())
	msgs := s.messages()
	conflict := indexOf(msgs, 0, "notifying client of activation conflict")
	assert.Greater(t, indexOf(msgs, conflict, "Replacing com.example.vpn.tunnel v2.0 with v3.0"), conflict)
	assert.Equal(t, -1, indexOf(msgs, 0, "xpc_connection_cancel"))
}

func TestRebootClearsTerminatedCopies(t *testing.T) {
	s := newSimMac(t)
	s.upgradeWithVPN(2, 3, true)
	var staged string
	for _, e := range s.extensions() {
		if e.State == "terminated waiting to uninstall on reboot" {
			staged = e.BundleID
		}
	}
	require.NotEmpty(t, staged)
	s.ok(true, "reboot")
	assert.Equal(t, []string{"3.0/300 activated enabled"}, s.extStates())
	assert.Equal(t, "Disconnected", s.vpnStatus(), "a reboot disconnects the VPN")
	assert.NotContains(t, s.ok(false, "launchctl list"), "application.com.example.vpn", "apps stop at reboot")
}

func TestValidateFaults(t *testing.T) {
	assert.NoError(t, ValidateFaults(nil))
	assert.NoError(t, ValidateFaults([]vm.Fault{{Name: FaultEndpointLost}, {Name: FaultRegistrationRace, Probability: 0.2}, {Name: FaultApprovalCoalesced, Probability: 1}}))
	err := ValidateFaults([]vm.Fault{{Name: "xpc-broken"}, {Name: FaultRegistrationRace, Probability: 1.5}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown fault "xpc-broken"`)
	assert.Contains(t, err.Error(), "probability 1.5")
	assert.Equal(t, []string{FaultEndpointLost, FaultRegistrationRace, FaultApprovalCoalesced, FaultVPNCapturesHostTraffic}, FaultNames())

	// NewMac ignores what ValidateFaults rejects, and says so in the log.
	s := newSimMac(t, withFaults(vm.Fault{Name: "no-such-fault"}))
	assert.GreaterOrEqual(t, indexOf(s.messages(), 0, `ignoring fault "no-such-fault"`), 0)
	s.upgradeWithVPN(2, 3, true)
	s.requireEndpointWorks("3.0.300", service)
}
