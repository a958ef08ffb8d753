package gctune_test

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sxlab/sxlab/internal/gctune"
)

// GOGC and GOMEMLIMIT set by the user win over sxlab's own choice.
func TestTuneLeavesWhatTheUserSet(t *testing.T) {
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	limit := debug.SetMemoryLimit(-1)

	restore := gctune.Tune(func(k string) (string, bool) { return "", true })
	assert.Equal(t, before, debug.SetGCPercent(before), "GOGC set: untouched")
	assert.Equal(t, limit, debug.SetMemoryLimit(-1), "GOMEMLIMIT set: untouched")
	restore()

	restore = gctune.Tune(func(string) (string, bool) { return "", false })
	got := debug.SetGCPercent(gctune.Percent)
	gotLimit := debug.SetMemoryLimit(-1)
	restore()
	assert.Equal(t, gctune.Percent, got)
	assert.Equal(t, int64(gctune.MemoryLimit), gotLimit)
	assert.Equal(t, before, debug.SetGCPercent(before), "restored")
	assert.Equal(t, limit, debug.SetMemoryLimit(-1), "restored")
}
