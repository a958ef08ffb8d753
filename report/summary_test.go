package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMarkdownSummary(t *testing.T) {
	md := string(Markdown(fxLoad(t, true)))
	lines := strings.Split(md, "\n")
	assert.Contains(t, lines[0], "(SIMULATED)")
	assert.Contains(t, md, "> **SIMULATED**")
	assert.Contains(t, md, "| sim (SIMULATED) | 12 | 5 | 4 | 1 | 2 | 1 | 1 | 1 | 1 | 0 |",
		"attempts: 12 planned = 5 pass + 4 fail + 1 error + 2 without verdict; cells: one of each")
	assert.Contains(t, md, "| macos=macos-15.3 path=2-&gt;3 vpn=running | **FAIL** | 3/3 | 100% (44–100%) | `"+fxFinding+"` ×3 |")
	assert.Contains(t, md, "| macos=macos-15.4 path=2-&gt;3 vpn=running | **FLAKY** | 1/3 | 33% (6–79%) | `unclassified` ×1 |")
	assert.Less(t, strings.Index(md, "**FAIL**"), strings.Index(md, "**FLAKY**"), "worst first")
	assert.Contains(t, md, "- macos=macos-15.4 path=2-&gt;3 vpn=stopped: error, 1 error(s)")
	assert.NotContains(t, md, fxPass.label()+" |", "passing cells are not listed")

	real := string(Markdown(fxLoad(t, false)))
	assert.NotContains(t, real, "SIMULATED")
	assert.Contains(t, real, "| tart | 12 |")
}

func TestMarkdownKeepsATableCellInOneCell(t *testing.T) {
	assert.Equal(t, `a \| b c`, mdText("a | b\nc"))
	assert.Equal(t, `\*\_x\_\*`, mdText("*_x_*"))
	assert.Equal(t, `a \| 'b'`, mdCode("a | `b`"))
}

func TestWriteWritesTheThreeFilesAndIsRepeatable(t *testing.T) {
	dir := fxRun(t, true)
	require.NoError(t, Write(dir))
	first := map[string][]byte{}
	for _, f := range []string{HTMLFile, JUnitFile, SummaryFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.NotEmpty(t, b)
		first[f] = b
	}
	require.NoError(t, Write(dir))
	for f, b := range first {
		again, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.Equal(t, string(b), string(again), "%s is a function of the run folder", f)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), ".") && e.Name() != ".lock", "temporary file left behind: %s", e.Name())
	}
}

func TestWriteOfAMissingFolderSaysWhich(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "nope"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope")
}
