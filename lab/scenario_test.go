package lab

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/steps"
)

func TestDemoScenarioPerCell(t *testing.T) {
	l, err := Load(LoadOptions{File: "../config.yaml", LookupEnv: noEnv})
	require.NoError(t, err)

	kinds := func(cell map[string]string) []string {
		sc, err := l.Config.CellSteps(cell)
		require.NoError(t, err)
		var out []string
		for _, s := range sc {
			out = append(out, s.Kind())
		}
		return out
	}
	assert.Equal(t, []string{"session", "install", "launch", "approve", "wait-extension", "vpn", "upgrade", "launch", "probe"},
		kinds(map[string]string{"macos": "macos-15.3", "path": "1->3", "vpn": "running", "approval": "approved"}))
	assert.Equal(t, []string{"session", "install", "launch", "upgrade", "launch", "approve", "probe"},
		kinds(map[string]string{"macos": "macos-15.3", "path": "2->3", "vpn": "stopped", "approval": "pending"}))

	sc, err := l.Config.CellSteps(map[string]string{"vpn": "stopped", "approval": "approved"})
	require.NoError(t, err)
	assert.Equal(t, steps.SessionCheck{Label: SessionStep}, sc[0], "every attempt starts by checking the GUI session")
	up, ok := sc[5].(steps.Upgrade)
	require.True(t, ok)
	assert.Equal(t, []string{"quit-app"}, up.Before)
	assert.Equal(t, "6 upgrade", up.Label)

	app, err := l.StepsApp()
	require.NoError(t, err)
	assert.Equal(t, "3.0", app.Versions["3"].ExtShort, "read from the package's extension Info.plist")
	assert.Equal(t, "300", app.Versions["3"].ExtBuild)
	assert.Equal(t, "5.0", app.Versions["5"].ExtShort)
	assert.Equal(t, "500", app.Versions["5"].ExtBuild)
	assert.Equal(t, "com.example.vpn.pkg", app.Versions["5"].PackageID, "PackageInfo's identifier")

	probes, err := l.Config.StepsProbes()
	require.NoError(t, err)
	assert.Equal(t, "mach-endpoint", probes["mach-endpoint"].Kind)
	assert.Equal(t, "xpc-connect", probes["xpc"].Kind, "the demo's xpc probe is sxlab-probe")
	assert.Empty(t, probes["xpc"].Service, "it asks for app.extension.mach_service")
}

func TestApplies(t *testing.T) {
	cell := map[string]string{"vpn": "running", "macos": "15.3"}
	assert.True(t, Applies(nil, cell))
	assert.True(t, Applies(map[string][]string{"vpn": {"running", "stopped"}}, cell))
	assert.False(t, Applies(map[string][]string{"vpn": {"stopped"}}, cell))
	assert.False(t, Applies(map[string][]string{"vpn": {"running"}, "macos": {"15.4"}}, cell), "every axis must match")
}
