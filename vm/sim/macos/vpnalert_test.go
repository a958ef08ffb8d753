package macos

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// askingGolden is a golden where the app's first VPN save asks the user.
var askingGolden = withGolden(func(g *Golden) { g.VPNConfigurationAllowed = false })

// clickAlert is the lab's command line for the alert's button.
func clickAlert(button string) string {
	return `sudo launchctl asuser 501 sudo -u admin osascript -e 'tell application "System Events" to tell process "UserNotificationCenter" to click button "` + button + `" of window 1'`
}

const noAlert = `execution error: System Events got an error: Can’t get button "Allow" of window 1 of process "UserNotificationCenter". (-1728)`

func (s *simMac) vpnListed() bool {
	s.t.Helper()
	return len(s.ok(false, "scutil --nc list")) > len("Available network connection services in the current set (*=enabled):\n")
}

func TestVPNConfigurationAlertHoldsTheFirstSave(t *testing.T) {
	s := newSimMac(t, askingGolden)
	r := s.shellRun(clickAlert("Allow"))
	assert.Equal(t, 1, r.code, "no alert before the app saves")
	assert.Contains(t, r.err, noAlert)

	s.install(1)
	s.launch()
	s.approve() // the extension is enabled: the app saves its configuration
	assert.False(t, s.vpnListed(), "the save waits for the alert")
	assert.NotEqual(t, 0, s.run(`scutil --nc start "Example VPN"`).code, "no configuration to start")

	r = s.shellRun(clickAlert("Allow"))
	require.Equal(t, 0, r.code, r.err)
	assert.True(t, s.vpnListed(), "Allow completes the save")
	s.vpnStart()

	r = s.shellRun(clickAlert("Allow"))
	assert.Equal(t, 1, r.code, "answered: the alert is gone")
	assert.Contains(t, r.err, noAlert)
	s.quitApp()
	s.launch()
	assert.Equal(t, 1, s.shellRun(clickAlert("Allow")).code, "the configuration exists: no second alert")
}

func TestVPNConfigurationAlertDontAllow(t *testing.T) {
	s := newSimMac(t, askingGolden)
	s.install(1)
	s.launch()
	s.approve()
	r := s.shellRun(clickAlert("Don’t Allow"))
	require.Equal(t, 0, r.code, r.err)
	assert.False(t, s.vpnListed(), "Don't Allow fails the save")
	assert.GreaterOrEqual(t, indexOf(s.messages(), 0, `Failed to save configuration Example VPN: Error Domain=NEVPNErrorDomain Code=5 "permission denied"`), 0)
	assert.Equal(t, 1, s.shellRun(clickAlert("Allow")).code, "not asked again in this run of the app")

	s.quitApp()
	s.launch()
	require.Equal(t, 0, s.shellRun(clickAlert("Allow")).code, "the relaunched app saves again and is asked again")
	assert.True(t, s.vpnListed())
}

func TestVPNConfigurationAlertGoesWithTheAppAndTheBoot(t *testing.T) {
	s := newSimMac(t, askingGolden)
	s.install(1)
	s.launch()
	s.approve()
	s.quitApp()
	assert.Equal(t, 1, s.shellRun(clickAlert("Allow")).code, "the app that asked is gone")
	assert.False(t, s.vpnListed())

	s.launch()
	s.ok(true, "shutdown -r now")
	assert.Equal(t, 1, s.shellRun(clickAlert("Allow")).code, "a reboot closes the alert")
}

func TestVPNConfigurationAllowedGoldenSavesAtOnce(t *testing.T) {
	s := newSimMac(t) // the default golden: allowed
	s.install(1)
	s.launch()
	s.approve()
	assert.True(t, s.vpnListed())
	r := s.shellRun(clickAlert("Allow"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, noAlert)
}

func TestVPNConfigurationAlertScriptingRules(t *testing.T) {
	s := newSimMac(t, withGolden(func(g *Golden) { g.VPNConfigurationAllowed, g.Accessibility = false, nil }))
	s.install(1)
	s.launch()
	r := s.shellRun(clickAlert("Allow"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "osascript is not allowed assistive access. (-1719)", "the alert is UI scripting like any other")
}
