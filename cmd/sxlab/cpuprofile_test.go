package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A profile is written whole even when the command fails: that is when
// someone wants to know where the time went.
func TestCPUProfileIsWrittenEvenWhenTheCommandFails(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"plan", []string{"plan", "--config", demoConfig}, exitOK},
		{"failing", []string{"config", "validate", "--config", filepath.Join(dir, "missing.yaml")}, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prof := filepath.Join(dir, tc.name+".pprof")
			var out, errb strings.Builder
			code := run(context.Background(), append([]string{"--cpuprofile", prof}, tc.args...), &out, &errb)
			assert.Equal(t, tc.code, code, errb.String())
			data, err := os.ReadFile(prof)
			require.NoError(t, err)
			// runtime/pprof writes a gzip'd protocol buffer; a profile
			// never stopped is an empty file.
			require.Greater(t, len(data), 2)
			assert.Equal(t, []byte{0x1f, 0x8b}, data[:2])
		})
	}
}

// GOGC and GOMEMLIMIT set by the user win over sxlab's own choice.
func TestTuneGCLeavesWhatTheUserSet(t *testing.T) {
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	limit := debug.SetMemoryLimit(-1)

	restore := tuneGC(func(k string) (string, bool) { return "", true })
	assert.Equal(t, before, debug.SetGCPercent(before), "GOGC set: untouched")
	assert.Equal(t, limit, debug.SetMemoryLimit(-1), "GOMEMLIMIT set: untouched")
	restore()

	restore = tuneGC(func(string) (string, bool) { return "", false })
	got := debug.SetGCPercent(runGCPercent)
	gotLimit := debug.SetMemoryLimit(-1)
	restore()
	assert.Equal(t, runGCPercent, got)
	assert.Equal(t, int64(runMemoryLimit), gotLimit)
	assert.Equal(t, before, debug.SetGCPercent(before), "restored")
	assert.Equal(t, limit, debug.SetMemoryLimit(-1), "restored")
}
