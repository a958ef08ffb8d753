package report

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

// The run folders of lab/testdata/v1 were written by the sxlab before
// journal checksums: last night's run, which tonight's diff compares
// against, must read as it did.
const v1 = "../lab/testdata/v1"

func TestOldRunFoldersStillRead(t *testing.T) {
	for _, name := range []string{"complete", "resumed"} {
		t.Run(name, func(t *testing.T) {
			dir := copyFixture(t, filepath.Join(v1, name))
			r, err := Load(dir)
			require.NoError(t, err)
			assert.Empty(t, r.Damage, "lines without a checksum are what the old sxlab wrote")
			assert.Equal(t, 0, r.Info.Format, "run.json says it predates checksums")
			assert.Equal(t, 0, r.Remaining)
			assert.Equal(t, map[lab.Verdict]int{lab.Pass: 4, lab.Fail: 8}, r.Verdicts)

			m, err := Merge([]string{dir}, filepath.Join(t.TempDir(), "merged"))
			require.NoError(t, err, "an old interrupted-then-resumed run merges: a folder named twice is copied once")
			assert.Empty(t, m.Missing)
			assert.Empty(t, m.Excluded)
			merged, err := Load(m.Dir)
			require.NoError(t, err)
			assert.Equal(t, lab.JournalFormat, merged.Info.Format, "the merged journal is written in the new format")
			assert.Empty(t, merged.Damage)
			assert.Equal(t, r.Verdicts, merged.Verdicts)
		})
	}
	d, err := Diff(filepath.Join(v1, "complete"), filepath.Join(v1, "resumed"))
	require.NoError(t, err)
	assert.Empty(t, d.Changes, "the same seed, interrupted or not")
	assert.Equal(t, 6, d.Unchanged)
}

// An old journal that a new sxlab resumed holds old lines, then
// checksummed ones; a line without a checksum after those is not ours.
func TestOldJournalWithNewLinesAppended(t *testing.T) {
	dir := copyFixture(t, filepath.Join(v1, "complete"))
	path := filepath.Join(dir, lab.JournalFile)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	first := b[:indexNewline(b)+1]
	j, err := lab.OpenJournal(path)
	require.NoError(t, err)
	require.NoError(t, j.Append(lab.Record{Cell: "6a7099a0711a", Repeat: 1, Try: 2, Verdict: lab.Pass}))
	require.NoError(t, j.Close())
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(first) // an old-style line after a checksummed one
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r, err := Load(dir)
	require.NoError(t, err)
	require.Len(t, r.Damage, 1)
	assert.Equal(t, 14, r.Damage[0].Line)
	assert.Contains(t, r.Damage[0].Err, "no checksum after lines that have one")
	assert.Len(t, r.Records, 13)

	d, err := Diff(filepath.Join(v1, "complete"), dir)
	require.NoError(t, err)
	require.Len(t, d.Excluded, 1, "diff leaves out what report leaves out, and says so")
	assert.Contains(t, d.Excluded[0], "results.jsonl:14: no checksum")
}

func indexNewline(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return len(b) - 1
}

func copyFixture(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}
