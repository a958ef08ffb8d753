package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/artifacts"
)

// demoConfig is config.yaml with time_scale 0, so the demo runs in
// seconds with the same seed, matrix and repeats.
func demoConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "config.yaml"))
	require.NoError(t, err)
	cfg := strings.Replace(string(b), "time_scale: 0.01", "time_scale: 0", 1)
	require.NotEqual(t, string(b), cfg, "the demo's time_scale line moved")
	return cfg
}

// TestDemoSendsNoSimOnlyCommand runs the demo and reads every command
// of every attempt: none is a sim-only helper, and the verdicts are the
// field reports'.
func TestDemoSendsNoSimOnlyCommand(t *testing.T) {
	o, sl := simRunOptions(t, demoConfig(t), nil)
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	sl.assertNothingLeft(t)

	files, err := filepath.Glob(filepath.Join(res.Dir, "cells", "*", "*", "steps.jsonl"))
	require.NoError(t, err)
	require.Len(t, files, 39, "one steps.jsonl per attempt")
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "sxlab-sim", "%s: a command the lab sent is the sim's own", f)
		// The manifest's sums are taken as the files are written; read
		// back, every file agrees with them.
		assert.NoError(t, artifacts.VerifyManifest(filepath.Dir(f)), f)
	}

	require.Len(t, Finished(res.Records), 39)
	for _, r := range Finished(res.Records) {
		v, a := r.Axes, r.Axes["approval"]
		switch {
		case v["macos"] == "macos-15.4-tunnel":
			// The VPN captures the guest's TCP to the host; the agent's
			// channel is no network.
			assert.Equal(t, Pass, r.Verdict, "%s: %s", r.Label, r.Reason)
			assert.Equal(t, ChannelVsock, r.Channel, r.Label)
		case v["macos"] == "macos-15.3" && v["vpn"] == "running":
			assert.Equal(t, Fail, r.Verdict, r.Label)
			require.NotNil(t, r.Triage, r.Label)
			assert.Equal(t, "endpoint-lost", r.Triage.Finding, r.Label)
			assert.Regexp(t, `probe (mach-endpoint|xpc)`, r.Reason)
		case v["macos"] == "macos-15.3" && a == "pending":
			assert.Equal(t, Fail, r.Verdict, r.Label)
			require.NotNil(t, r.Triage, r.Label)
			assert.Equal(t, "approval-coalesced", r.Triage.Finding, r.Label)
			assert.Contains(t, r.Reason, "probe extension-state")
			b, err := os.ReadFile(filepath.Join(res.Dir, r.Dir, "steps.jsonl"))
			require.NoError(t, err)
			assert.Contains(t, string(b), "no approval control", "found through the missing control")
		case v["macos"] == "macos-15.3":
			assert.Equal(t, Pass, r.Verdict, "control %s: %s", r.Label, r.Reason)
		default:
			// macos-15.4: the registration race strikes at 0.2, per seed:
			// a fail here is the product's, never the lab's error.
			assert.NotEqual(t, Error, r.Verdict, "%s: %s", r.Label, r.Reason)
		}
	}
}

// goldenLab is the demo's 15.4 pending cell on a golden described by
// golden (YAML under images.IMAGE.sim), approving with ui.
func goldenLab(golden string) string {
	return strings.Replace(simLabConfig, "      faults: [endpoint-lost-on-replace-while-running]\n      golden: {mdm: {system_extension_policies: [{team: ABCDE12345}]}}\n",
		"      golden: "+golden+"\n", 1)
}

func pendingUI(cfg string) string {
	cfg = strings.Replace(cfg, "    vpn: [running, stopped]\n", "    vpn: [stopped]\n", 1)
	cfg = strings.Replace(cfg, "  - approve: mdm\n  - wait-extension: activated enabled\n  - vpn: start\n    when: {vpn: running}\n", "", 1)
	return strings.Replace(cfg, "  - launch: {}\n  - probe:", "  - launch: {}\n  - approve: ui\n  - probe:", 1)
}

func runOne(t *testing.T, cfg string) Record {
	t.Helper()
	o, sl := simRunOptions(t, cfg, nil)
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	sl.assertNothingLeft(t)
	fin := Finished(res.Records)
	require.Len(t, fin, 1)
	for _, r := range fin {
		return r
	}
	return Record{}
}

func TestUIApprovalWithoutAccessibilityIsAnError(t *testing.T) {
	r := runOne(t, pendingUI(goldenLab("{tcc: {accessibility: []}}")))
	assert.Equal(t, Error, r.Verdict, "the lab could not click: never a product failure (%s)", r.Reason)
	assert.Contains(t, r.Reason, "Accessibility")
	assert.Contains(t, r.Reason, "/usr/libexec/sshd-keygen-wrapper")
	assert.Contains(t, r.Reason, "-1719")

	control := runOne(t, pendingUI(goldenLab("{}")))
	assert.Equal(t, Pass, control.Verdict, "with the grant the same cell is approved: %s", control.Reason)
}

func TestNoAutomaticLoginIsAnError(t *testing.T) {
	for name, golden := range map[string]string{"automatic login off": "{auto_login: false}", "FileVault on": "{filevault: true}"} {
		t.Run(name, func(t *testing.T) {
			r := runOne(t, pendingUI(goldenLab(golden)))
			assert.Equal(t, Error, r.Verdict, r.Reason)
			assert.Contains(t, r.Reason, SessionStep)
			assert.Contains(t, r.Reason, "automatic login is off")
		})
	}
}
