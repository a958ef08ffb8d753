package report

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

func TestLoadFoldsTheJournalAsLabDoes(t *testing.T) {
	r := fxLoad(t, true)
	require.Len(t, r.Cells, 4)
	for i, c := range fxCells {
		assert.Equal(t, c.id, r.Cells[i].Cell, "cells in plan order")
	}
	assert.True(t, r.Simulated)
	assert.Equal(t, []string{"sim"}, r.Providers)
	assert.Equal(t, 2, r.Remaining, "fxErrors r2 and r3 never ran")
	assert.Equal(t, map[lab.Verdict]int{lab.Pass: 5, lab.Fail: 4, lab.Error: 1}, r.Verdicts, "final records only")

	fail := fxCellOf(t, r, fxFail.id)
	assert.Equal(t, lab.CellFail, fail.Verdict)
	assert.Equal(t, 3, fail.Failures)
	assert.InDelta(t, 0.4385, fail.Low, 0.001, "the Wilson interval of 3/3")
	assert.Equal(t, []Finding{{Name: fxFinding, Count: 3}}, fail.Findings())

	flaky := fxCellOf(t, r, fxFlaky.id)
	assert.Equal(t, "flaky", flaky.Status())
	assert.Equal(t, []Finding{{Name: "unclassified", Count: 1}}, flaky.Findings())

	errs := fxCellOf(t, r, fxErrors.id)
	assert.Equal(t, lab.CellIncomplete, errs.Verdict)
	assert.Equal(t, "error", errs.Status(), "a cell with only infrastructure errors says error")
	require.Len(t, errs.Tries, 2, "the retried try is kept for the drill-down")
	assert.Equal(t, []int{1, 2}, []int{errs.Tries[0].Try, errs.Tries[1].Try})
	assert.False(t, errs.Tries[0].Final)
}

func TestLoadListsTheFilesOfEachAttempt(t *testing.T) {
	r := fxLoad(t, true)
	a := fxCellOf(t, r, fxFail.id).Tries[0]
	assert.Equal(t, "cells/"+fxFail.id+"/1", a.Folder)
	var names []string
	for _, f := range a.Files {
		names = append(names, f.Name)
		assert.FileExists(t, filepath.Join(r.Dir, filepath.FromSlash(f.Path)))
	}
	assert.Equal(t, []string{"logs.ndjson", "state/after/extensions.txt", "steps.jsonl", "sysdiagnose_r1.tar.gz"}, names)
	assert.Len(t, a.Attachments(), 2, "the sysdiagnose and the logs")
	assert.Len(t, a.Steps, 3)
	assert.NotNil(t, a.Lookup("logs.ndjson"))
	assert.Nil(t, a.Lookup("missing.txt"))

	noDir := fxCellOf(t, r, fxErrors.id).Tries[0]
	assert.Empty(t, noDir.Files, "an attempt that never reached the guest has no folder")
	assert.Empty(t, noDir.Steps)
}

func TestLoadWithoutJournalHasEveryCellIncomplete(t *testing.T) {
	dir := fxRun(t, true)
	require.NoError(t, os.Remove(filepath.Join(dir, lab.JournalFile)))
	r, err := Load(dir)
	require.NoError(t, err)
	require.Len(t, r.Cells, 4)
	for _, c := range r.Cells {
		assert.Equal(t, "incomplete", c.Status())
		assert.Equal(t, 1.0, c.High)
	}
	assert.Equal(t, 12, r.Remaining)
}

func TestLoadReportsADamagedJournalLineAndKeepsTheRest(t *testing.T) {
	dir := fxRun(t, true)
	f, err := os.OpenFile(filepath.Join(dir, lab.JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"cell":"torn`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r, err := Load(dir)
	require.NoError(t, err)
	require.Len(t, r.Damage, 1)
	assert.Equal(t, 12, r.Damage[0].Line)
	assert.Equal(t, lab.CellFail, fxCellOf(t, r, fxFail.id).Verdict)
}

func TestLoadOfAFolderThatIsNotARun(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), dir)
	assert.Contains(t, err.Error(), "run.json")
}

func TestLoadSkipsUnreadableStepLines(t *testing.T) {
	dir := fxRun(t, true)
	p := filepath.Join(dir, lab.AttemptDir(fxPass.id, 1, 1), "steps.jsonl")
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("{not json\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r, err := Load(dir)
	require.NoError(t, err)
	a := fxCellOf(t, r, fxPass.id).Tries[0]
	assert.Len(t, a.Steps, 3)
	assert.Contains(t, a.StepsProblem, "line(s) 4")
}
