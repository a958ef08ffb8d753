package report

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

// cell summarises f failures out of n attempts of one cell.
func cell(id string, f, n int) lab.CellSummary {
	var recs []lab.Record
	for i := range n {
		v := lab.Pass
		if i < f {
			v = lab.Fail
		}
		recs = append(recs, lab.Record{Cell: id, Label: "cell=" + id, Repeat: i + 1, Final: true, Verdict: v})
	}
	return lab.Summarise(recs)[0]
}

func TestDiffClassifiesCells(t *testing.T) {
	for _, tc := range []struct {
		name      string
		base, cur lab.CellSummary
		want      Change // "" = unchanged
	}{
		{"pass to fail at repeat 3 counts though the intervals overlap", cell("a", 0, 3), cell("a", 3, 3), NewlyFailing},
		{"fail to pass is fixed", cell("a", 3, 3), cell("a", 0, 3), Fixed},
		{"pass to 1/3 flaky is noise", cell("a", 0, 3), cell("a", 1, 3), ""},
		{"pass to 1/3 flaky over many repeats is not", cell("a", 0, 30), cell("a", 10, 30), NewlyFailing},
		{"1/3 flaky to pass is noise", cell("a", 1, 3), cell("a", 0, 3), ""},
		{"flaky to always failing over many repeats", cell("a", 3, 30), cell("a", 30, 30), Worse},
		{"always failing to rarely", cell("a", 30, 30), cell("a", 3, 30), Better},
		{"same rate", cell("a", 2, 10), cell("a", 3, 10), ""},
		{"still passing", cell("a", 0, 3), cell("a", 0, 5), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DiffCells([]lab.CellSummary{tc.base}, []lab.CellSummary{tc.cur})
			if tc.want == "" {
				assert.Empty(t, d.Changes)
				assert.Equal(t, 1, d.Unchanged)
				assert.False(t, d.NewlyFailing())
				return
			}
			require.Len(t, d.Changes, 1)
			assert.Equal(t, tc.want, d.Changes[0].Change)
			assert.Equal(t, tc.want == NewlyFailing || tc.want == Worse, d.NewlyFailing(), "the gate")
		})
	}
}

func TestDiffNewAndGoneCells(t *testing.T) {
	d := DiffCells([]lab.CellSummary{cell("old", 0, 3)}, []lab.CellSummary{cell("new", 3, 3), cell("newpass", 0, 3)})
	require.Len(t, d.Changes, 2)
	assert.Equal(t, NewlyFailing, d.Changes[0].Change)
	assert.Equal(t, "new", d.Changes[0].Cell)
	assert.Equal(t, Gone, d.Changes[1].Change)
	assert.True(t, d.NewlyFailing())
}

func TestDiffIgnoresIncompleteCells(t *testing.T) {
	inc := lab.Summarise([]lab.Record{{Cell: "a", Final: true, Verdict: lab.Error}})[0]
	d := DiffCells([]lab.CellSummary{cell("a", 0, 3)}, []lab.CellSummary{inc})
	assert.Empty(t, d.Changes)
	assert.False(t, d.NewlyFailing(), "a broken Mac mini is not a regression")
}

func TestDiffOfRunFolders(t *testing.T) {
	all := attempts("c1-r1", "c2-r1", "c1-r2", "c2-r2", "c1-r3", "c2-r3")
	base := fakeShard(t, "p1", 2, 3, all, failCell2)
	fixed := fakeShard(t, "p1", 2, 3, all, func(lab.PlanAttempt) lab.Verdict { return lab.Pass })
	d, err := Diff(base, fixed)
	require.NoError(t, err)
	require.Len(t, d.Changes, 1)
	assert.Equal(t, Fixed, d.Changes[0].Change)
	assert.Equal(t, "c2", d.Changes[0].Cell)
	assert.False(t, d.NewlyFailing())

	var out bytes.Buffer
	require.NoError(t, WriteDiff(&out, d))
	assert.Contains(t, out.String(), "FIXED")
	assert.Contains(t, out.String(), "cell=2  fail, 3/3 failed (95%: 44%–100%) → pass, 0/3 failed",
		"the count says it counts failures")
	assert.Contains(t, out.String(), "SIMULATED")

	back, err := Diff(fixed, base)
	require.NoError(t, err)
	assert.True(t, back.NewlyFailing())

	_, err = Diff(base, filepath.Join(t.TempDir(), "nope"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "diff: new: run folder")
}
