package macos

import (
	"context"
	"fmt"
	"strings"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// The VPN-configuration alert. The first time an app saves a VPN
// configuration (NEVPNManager / NETunnelProviderManager
// saveToPreferences), macOS asks the user: "“App” Would Like to Add VPN
// Configurations" with Allow and Don't Allow, and the save completes
// only when it is answered. Don't Allow fails the save with
// NEVPNErrorDomain Code=5 "permission denied", and the app is not asked
// again until it saves again (brave/brave-browser issue 22109: macOS, "If
// the user picks Don't allow, the config is NOT written … until they
// quit/relaunch"; the error text: sheng/ladder-ios issue 24). The alert is
// UserNotificationCenter's window (unverified on macOS, as are its button
// names). A golden whose user already allowed the app
// (Golden.VPNConfigurationAllowed, the default) saves without asking.

// vpnAlertProcess is the process that shows the alert.
const vpnAlertProcess = "UserNotificationCenter"

// vpnAlert is the alert on screen: which app's save waits for it.
type vpnAlert struct {
	app  *appProcess
	name string // the configuration's name (the app's VPN service)
}

// saveVPNConfiguration is the app's first save of its VPN configuration:
// saved at once on a golden that allowed it, else held by the alert.
// Callers hold mu.
func (m *Mac) saveVPNConfiguration(app *appProcess, name string) {
	m.logf(app.proc, libNE, typeDefault, "com.apple.networkextension", "", "Saving configuration %{public}@ with existing signature (null)", name)
	if !m.golden.VPNConfigurationAllowed {
		if m.vpnAlert == nil || !m.isRunning(m.vpnAlert.app) {
			m.vpnAlert = &vpnAlert{app: app, name: name}
			m.logf(app.proc, libNE, typeDefault, "com.apple.networkextension", "", "Asking the user to allow adding VPN configurations for %{public}@", app.pkg.App.BundleID)
		}
		return
	}
	m.addVPNConfiguration(app, name)
}

// addVPNConfiguration completes a save. Callers hold mu.
func (m *Mac) addVPNConfiguration(app *appProcess, name string) {
	if m.vpnByName(name) != nil {
		return
	}
	v := &vpnConfig{id: m.newUUID(), name: name, appBundle: app.pkg.App.BundleID, provider: app.pkg.Extension.BundleID}
	m.vpns = append(m.vpns, v)
	m.nesm(typeDefault, "Added configuration %{public}@ (%{public}@) for %{public}@", name, v.id, app.pkg.App.BundleID)
}

// activeVPNAlert is the alert on screen, nil when none is: it goes with
// the app whose save it holds. Callers hold mu.
func (m *Mac) activeVPNAlert() *vpnAlert {
	if a := m.vpnAlert; a != nil && m.isRunning(a.app) {
		return a
	}
	m.vpnAlert = nil
	return nil
}

// notificationScript runs a UI script against UserNotificationCenter:
// clicking Allow or Don't Allow in the VPN-configuration alert. With no
// alert on screen (or another button named) the click fails as System
// Events does for a missing element (-1728). Callers do not hold mu.
func (m *Mac) notificationScript(ctx context.Context, p *shell.Proc, script string) int {
	clicks := clickTarget.FindAllStringSubmatch(script, -1)
	if len(clicks) != 1 || len(anyClick.FindAllString(script, -1)) != 1 {
		fmt.Fprintf(stderr(p), "sim: unsupported: the sim understands one click button \"NAME\" [of window 1] in %s\n", vpnAlertProcess)
		return 127
	}
	ref, name := strings.TrimSpace(clicks[0][1]), clicks[0][2]
	allow := strings.EqualFold(name, "Allow")
	deny := strings.EqualFold(name, "Don't Allow") || strings.EqualFold(name, "Don’t Allow")
	m.begin()
	gen := m.bootGen
	alert := m.activeVPNAlert()
	m.mu.Unlock()
	if alert == nil || !strings.HasPrefix(strings.ToLower(ref), "button ") || (!allow && !deny) {
		fmt.Fprintf(stderr(p), "%s: execution error: System Events got an error: Can’t get %s of process \"%s\". (-1728)\n", scriptRange(script, ref), ref, vpnAlertProcess)
		return exitFailure
	}
	if !m.lockedAfter(ctx, m.dur.approval, gen) {
		return exitInterrupted
	}
	defer m.mu.Unlock()
	if m.activeVPNAlert() != alert {
		return exitOK // answered or gone meanwhile
	}
	m.vpnAlert = nil
	if deny {
		m.logf(alert.app.proc, libNE, typeError, "com.apple.networkextension", "", "Failed to save configuration %{public}@: Error Domain=NEVPNErrorDomain Code=5 \"permission denied\" UserInfo={NSLocalizedDescription=permission denied}", alert.name)
		return exitOK
	}
	m.addVPNConfiguration(alert.app, alert.name)
	m.reconcile()
	return exitOK
}
