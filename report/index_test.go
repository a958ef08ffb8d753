package report

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadIndexAgreesWithLoad: the index Write renders from is Load's
// run without the attempt folders, and filling a cell gives Load's cell.
func TestLoadIndexAgreesWithLoad(t *testing.T) {
	dir := fxRun(t, true)
	full, err := Load(dir)
	require.NoError(t, err)
	idx, err := loadIndex(dir)
	require.NoError(t, err)
	require.Len(t, idx.Cells, len(full.Cells))
	assert.Equal(t, full.Verdicts, idx.Verdicts)
	assert.Equal(t, full.Remaining, idx.Remaining)
	assert.Equal(t, full.Providers, idx.Providers)
	for i, c := range idx.Cells {
		assert.Equal(t, full.Cells[i].CellSummary, c.CellSummary)
		require.Len(t, c.Tries, len(full.Cells[i].Tries))
		for j, a := range c.Tries {
			assert.Empty(t, a.Steps, "not read")
			assert.Empty(t, a.Files, "not read")
			assert.Equal(t, full.Cells[i].Tries[j].Folder, a.Folder)
		}
		filled, err := fillCell(dir, c)
		require.NoError(t, err)
		assert.Equal(t, full.Cells[i], filled)
		assert.Empty(t, c.Tries[0].Steps, "filling leaves the index as it was")
	}
	assert.NotEmpty(t, full.Cells[0].Tries[0].Steps, "the fixture has steps to read")
}
