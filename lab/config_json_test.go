package lab

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/sxlab/sxlab/internal/plainjson"
)

// run.json's snapshot reads like the configuration the user wrote.
func TestRunJSONSnapshotUsesTheYAMLKeys(t *testing.T) {
	l, err := Load(LoadOptions{File: filepath.Join("..", "config.yaml"), LookupEnv: noEnv})
	require.NoError(t, err)
	cfg := l.Config.Redact()
	info := RunInfo{ID: "r", Config: cfg, Hosts: cfg.Hosts}
	b, err := plainjson.Marshal(info) // as RunDir.WriteJSON writes run.json
	require.NoError(t, err)
	text := string(b)
	for _, key := range []string{`"hosts":[{"name":"local","provider":"sim","slots":4`, `"time_scale":0.01`, `"runs_dir":"./runs"`, `"image_axis":"macos"`, `"mach_service":`} {
		assert.Contains(t, text, key)
	}
	for _, goName := range []string{`"Hosts"`, `"Slots"`, `"VZ"`, `"Lab"`, `"RunsDir"`, `"TimeScale"`} {
		assert.NotContains(t, text, goName)
	}
	assert.Contains(t, text, `"2->3"`)

	var back RunInfo
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, cfg, back.Config, "the snapshot reads back as the same configuration")
	assert.Equal(t, cfg.Hosts, back.Hosts)
}

// Run folders written before keep their Go field names; they still read.
func TestOldRunJSONSnapshotStillReads(t *testing.T) {
	l, err := Load(LoadOptions{File: filepath.Join("..", "config.yaml"), LookupEnv: noEnv})
	require.NoError(t, err)
	cfg := l.Config.Redact()
	type oldConfig Config // encoding/json's default: Go field names
	type oldHost Host
	hosts := make([]oldHost, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		hosts[i] = oldHost(h)
	}
	old, err := json.Marshal(map[string]any{"id": "r", "config": oldConfig(cfg), "hosts": hosts})
	require.NoError(t, err)
	require.Contains(t, string(old), `"RunsDir"`)

	var back RunInfo
	require.NoError(t, json.Unmarshal(old, &back))
	assert.Equal(t, cfg.Lab, back.Config.Lab)
	assert.Equal(t, cfg.Matrix, back.Config.Matrix)
	assert.Equal(t, cfg.Hosts, back.Hosts)
}
