package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vpnAlertLab is simLabConfig's vpn=running cell, without faults, on a
// golden where the app's first VPN save asks the user, with answer as
// the step after wait-extension ("" for none).
func vpnAlertLab(t *testing.T, answer string) string {
	t.Helper()
	cfg := simLabConfig
	for old, repl := range map[string]string{
		"      faults: [endpoint-lost-on-replace-while-running]\n      golden: {mdm: {system_extension_policies: [{team: ABCDE12345}]}}\n": "      golden: {vpn_configuration_allowed: false, mdm: {system_extension_policies: [{team: ABCDE12345}]}}\n",
		"    vpn: [running, stopped]\n":           "    vpn: [running]\n",
		"  - wait-extension: activated enabled\n": "  - wait-extension: activated enabled\n" + answer,
		"retry:\n  max: 1\n":                      "retry:\n  max: 0\n",
	} {
		require.Contains(t, cfg, old)
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	return cfg
}

// TestUIAnswersTheVPNConfigurationAlert: on a golden that asks before an
// app adds a VPN configuration, approve: {strategy: ui, what:
// vpn-configuration} clicks Allow in the alert and the VPN starts.
func TestUIAnswersTheVPNConfigurationAlert(t *testing.T) {
	o, sl := simRunOptions(t, vpnAlertLab(t, "  - approve: {strategy: ui, what: vpn-configuration}\n"), nil)
	res, err := Run(t.Context(), o)
	require.NoError(t, err)
	sl.assertNothingLeft(t)
	fin := Finished(res.Records)
	require.Len(t, fin, 1)
	for _, r := range fin {
		assert.Equal(t, Pass, r.Verdict, r.Reason)
		b, err := os.ReadFile(filepath.Join(res.Dir, r.Dir, "steps.jsonl"))
		require.NoError(t, err)
		assert.Contains(t, string(b), `to tell process \"UserNotificationCenter\" to click button \"Allow\" of window 1`)
		assert.Contains(t, string(b), "answered Allow in the VPN-configuration alert")
	}
}

// Without the answer the configuration never exists and the VPN cannot
// start: the scenario's gap, never reported as a product failure.
func TestUnansweredVPNConfigurationAlertIsNotAProductFailure(t *testing.T) {
	o, sl := simRunOptions(t, vpnAlertLab(t, ""), nil)
	res, err := Run(t.Context(), o)
	require.NoError(t, err)
	sl.assertNothingLeft(t)
	fin := Finished(res.Records)
	require.Len(t, fin, 1)
	for _, r := range fin {
		assert.Equal(t, Error, r.Verdict, r.Reason)
		assert.Contains(t, r.Reason, "vpn")
	}
}
