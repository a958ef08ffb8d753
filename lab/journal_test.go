package lab

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func rec(cell string, repeat, try int, final bool, v Verdict) Record {
	return Record{Cell: cell, Label: "l-" + cell, Repeat: repeat, Try: try, Final: final, Verdict: v,
		Started: time.Unix(1700000000, 0).UTC(), Finished: time.Unix(1700000060, 0).UTC(), Host: "local", Provider: "sim", Simulated: true}
}

func TestJournalRoundTripAndResumeSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	j, err := OpenJournal(path)
	require.NoError(t, err)
	want := []Record{rec("a", 1, 1, false, Error), rec("a", 1, 2, true, Pass), rec("b", 1, 1, true, Fail)}
	want[2].Probes = []ProbeOutcome{{Name: "mach-endpoint", Held: false, Message: "no endpoints block", Observations: map[string]string{"label": "NetworkExtension.x.3.0.300"}}}
	for _, r := range want {
		require.NoError(t, j.Append(r))
	}
	require.NoError(t, j.Close())
	require.Error(t, j.Append(want[0]), "append after close fails")

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	got, damage, err := ReadJournal(f)
	require.NoError(t, err)
	assert.Empty(t, damage)
	assert.Equal(t, want, got)

	done := Finished(got)
	assert.Len(t, done, 2)
	assert.Equal(t, Pass, done["a-r1"].Verdict, "the final try counts, not the error before it")
}

func TestJournalSkipsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	j, err := OpenJournal(path)
	require.NoError(t, err)
	require.NoError(t, j.Append(rec("a", 1, 1, true, Pass)))
	require.NoError(t, j.Close())
	// What kill -9 in the middle of a write leaves.
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fh.WriteString(`{"cell":"b","repeat":1,"verd`)
	require.NoError(t, err)
	require.NoError(t, fh.Close())

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	got, damage, err := ReadJournal(strings.NewReader(string(data)))
	require.NoError(t, err)
	assert.Len(t, got, 1)
	require.Len(t, damage, 1)
	assert.Equal(t, 2, damage[0].Line)
}

func TestJournalConcurrentAppendsStayWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	j, err := OpenJournal(path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, j.Append(rec("c", i+1, 1, true, Pass)))
		}()
	}
	wg.Wait()
	require.NoError(t, j.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	got, damage, err := ReadJournal(strings.NewReader(string(data)))
	require.NoError(t, err)
	assert.Empty(t, damage)
	assert.Len(t, Finished(got), 40)
}

func TestWilson(t *testing.T) {
	low, high := Wilson(0, 3)
	assert.InDelta(t, 0.0, low, 1e-9)
	assert.InDelta(t, 0.5615, high, 1e-3, "0/3 does not prove the cell never fails")
	low, high = Wilson(3, 3)
	assert.InDelta(t, 0.4385, low, 1e-3)
	assert.InDelta(t, 1.0, high, 1e-9)
	low, high = Wilson(20, 100)
	assert.InDelta(t, 0.1334, low, 1e-3)
	assert.InDelta(t, 0.2888, high, 1e-3)
	low, high = Wilson(0, 0)
	assert.Equal(t, []float64{0, 1}, []float64{low, high}, "no data: anything is possible")
}

func TestSummarise(t *testing.T) {
	records := []Record{
		rec("pass", 1, 1, true, Pass), rec("pass", 2, 1, true, Pass),
		rec("fail", 1, 1, true, Fail), rec("fail", 2, 1, true, Fail),
		rec("flaky", 1, 1, true, Pass), rec("flaky", 2, 1, true, Fail), rec("flaky", 3, 1, true, Pass),
		rec("broken", 1, 1, false, Error), rec("broken", 1, 2, true, Error),
	}
	s := Summarise(records)
	require.Len(t, s, 4)
	byCell := map[string]CellSummary{}
	for _, c := range s {
		byCell[c.Cell] = c
	}
	assert.Equal(t, CellPass, byCell["pass"].Verdict)
	assert.Equal(t, CellFail, byCell["fail"].Verdict)
	assert.Equal(t, CellFlaky, byCell["flaky"].Verdict)
	assert.InDelta(t, 1.0/3, byCell["flaky"].Rate, 1e-9)
	assert.Equal(t, CellIncomplete, byCell["broken"].Verdict, "errors are not product failures")
	assert.Equal(t, 1, byCell["broken"].Errors, "only the final try counts")

	SortByVerdict(s)
	assert.Equal(t, []string{"fail", "flaky", "broken", "pass"}, []string{s[0].Cell, s[1].Cell, s[2].Cell, s[3].Cell})
	assert.False(t, Overlap(byCell["pass"], CellSummary{Low: 0.9, High: 1}), "0/2 vs a near-certain failure")
}

func checkFile(t *testing.T, path string, c JournalCheck) JournalRead {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	jr, err := CheckJournal(f, c)
	require.NoError(t, err)
	return jr
}

func TestJournalCutsATornLastLineAndNeverContinuesIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFile)
	j, err := OpenJournal(path)
	require.NoError(t, err)
	assert.Empty(t, j.Cut())
	require.NoError(t, j.Append(rec("a", 1, 1, true, Pass)))
	require.NoError(t, j.Close())
	torn := `{"cell":"b","repeat":1,"try":1,"final":true,"verd`
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fh.WriteString(torn) // what a full disk leaves
	require.NoError(t, err)
	require.NoError(t, fh.Close())

	jr := checkFile(t, path, JournalCheck{})
	assert.True(t, jr.Torn)
	require.Len(t, jr.Damage, 1)
	assert.Equal(t, 2, jr.Damage[0].Line)

	j, err = OpenJournal(path)
	require.NoError(t, err)
	assert.Contains(t, j.Cut(), "cut a torn last line")
	require.NoError(t, j.Append(rec("b", 1, 1, true, Fail)))
	require.NoError(t, j.Close())
	jr = checkFile(t, path, JournalCheck{})
	assert.Empty(t, jr.Damage, "the next record starts on a line of its own")
	assert.Len(t, jr.Records, 2)
	kept, err := os.ReadFile(path + ".cut")
	require.NoError(t, err)
	assert.Equal(t, torn+"\n", string(kept), "the cut bytes are kept")
}

func TestJournalChecksumShowsAnEditedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFile)
	j, err := OpenJournal(path)
	require.NoError(t, err)
	require.NoError(t, j.Append(rec("a", 1, 1, true, Fail)))
	require.NoError(t, j.Append(rec("b", 1, 1, true, Fail)))
	require.NoError(t, j.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	edited := strings.Replace(string(b), `"verdict":"fail"`, `"verdict":"pass"`, 1)
	edited += `{"cell":"c","repeat":1,"try":1,"final":true,"verdict":"pass"}` + "\n"
	require.NoError(t, os.WriteFile(path, []byte(edited), 0o644))

	jr := checkFile(t, path, JournalCheck{Attempts: map[string]bool{"a-r1": true, "b-r1": true, "c-r1": true}})
	require.Len(t, jr.Damage, 2)
	assert.Equal(t, 1, jr.Damage[0].Line)
	assert.Contains(t, jr.Damage[0].Err, "checksum")
	assert.Equal(t, 3, jr.Damage[1].Line)
	assert.Contains(t, jr.Damage[1].Err, "no checksum")
	require.Len(t, jr.Records, 1)
	assert.Equal(t, "b", jr.Records[0].Cell)

	// The same edits in a journal of an sxlab before checksums are read
	// as that sxlab read them, but a verdict or attempt it would not
	// know is still refused.
	legacy := `{"cell":"a","repeat":1,"try":1,"final":true,"verdict":"pass"}` + "\n" +
		`{"cell":"b","repeat":1,"try":1,"final":true,"verdict":"bogus"}` + "\n" +
		`{"cell":"z","repeat":1,"try":1,"final":true,"verdict":"fail"}` + "\n"
	require.NoError(t, os.WriteFile(path, []byte(legacy), 0o644))
	jr = checkFile(t, path, JournalCheck{Legacy: true, Attempts: map[string]bool{"a-r1": true, "b-r1": true}})
	assert.Len(t, jr.Records, 1)
	require.Len(t, jr.Damage, 2)
	assert.Contains(t, jr.Damage[0].Err, `unknown verdict "bogus"`)
	assert.Contains(t, jr.Damage[1].Err, "not in this run's plan")
}

func TestJournalReadsLinesUpToTheBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFile)
	j, err := OpenJournal(path)
	require.NoError(t, err)
	big := rec("a", 1, 1, true, Fail)
	big.Reason = strings.Repeat("r", MaxJournalLine-2048) // just under the bound once framed
	require.NoError(t, j.Append(big))
	require.NoError(t, j.Close())
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fh.WriteString(strings.Repeat("x", 17<<20) + "\n") // the 17 MB line of the report
	require.NoError(t, err)
	require.NoError(t, fh.Close())
	j, err = OpenJournal(path)
	require.NoError(t, err)
	require.NoError(t, j.Append(rec("b", 1, 1, true, Pass)))
	require.NoError(t, j.Close())

	jr := checkFile(t, path, JournalCheck{})
	require.Len(t, jr.Records, 2, "the lines around an over-long one are read")
	assert.Equal(t, big.Reason, jr.Records[0].Reason)
	require.Len(t, jr.Damage, 1)
	assert.Equal(t, 2, jr.Damage[0].Line)
	assert.Contains(t, jr.Damage[0].Err, "over the 1048576-byte bound")
}
