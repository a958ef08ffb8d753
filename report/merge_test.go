package report

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

// fakeShard writes a run folder holding the given attempts of a plan of
// cells c1..cN × repeats, with one final record per finished attempt (and
// an attempt folder with a file in it).
func fakeShard(t *testing.T, digest string, cells, repeats int, planned []lab.PlanAttempt, verdict func(lab.PlanAttempt) lab.Verdict) string {
	t.Helper()
	runs := t.TempDir()
	id := lab.NewRunID(time.Now())
	d, err := lab.CreateRunDir(runs, id)
	require.NoError(t, err)
	defer d.Close()
	plan := lab.PlanInfo{Digest: digest, Total: cells * repeats, Attempts: planned}
	for i := 1; i <= cells; i++ {
		plan.Cells = append(plan.Cells, lab.PlanCell{ID: fmt.Sprintf("c%d", i), Label: fmt.Sprintf("cell=%d", i), Axes: map[string]string{"cell": fmt.Sprint(i)}})
	}
	require.NoError(t, d.WriteJSON(lab.RunFile, lab.RunInfo{ID: id, Started: time.Now().UTC(), PlanDigest: digest, Providers: []string{"sim"}, Simulated: true}))
	require.NoError(t, d.WriteJSON(lab.PlanFile, plan))
	j, err := lab.OpenJournal(filepath.Join(d.Path, lab.JournalFile))
	require.NoError(t, err)
	for _, a := range planned {
		v := verdict(a)
		if v == "" {
			continue // not finished
		}
		rec := lab.Record{Cell: a.Cell, Label: "cell=" + a.Cell[1:], Repeat: a.Repeat, Try: 1, Final: true, Verdict: v,
			Dir: lab.AttemptDir(a.Cell, a.Repeat, 1), Provider: "sim", Simulated: true}
		require.NoError(t, os.MkdirAll(filepath.Join(d.Path, rec.Dir), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(d.Path, rec.Dir, "steps.jsonl"), []byte(id+"\n"), 0o644))
		require.NoError(t, j.Append(rec))
	}
	require.NoError(t, j.Close())
	return d.Path
}

func attempts(keys ...string) []lab.PlanAttempt {
	var out []lab.PlanAttempt
	for _, k := range keys {
		var a lab.PlanAttempt
		_, err := fmt.Sscanf(k, "%2s-r%d", &a.Cell, &a.Repeat)
		if err != nil {
			panic(k)
		}
		out = append(out, a)
	}
	return out
}

func failCell2(a lab.PlanAttempt) lab.Verdict {
	if a.Cell == "c2" {
		return lab.Fail
	}
	return lab.Pass
}

func TestMergeJoinsShardsOfOnePlan(t *testing.T) {
	s1 := fakeShard(t, "p1", 2, 2, attempts("c1-r1", "c2-r1"), failCell2)
	s2 := fakeShard(t, "p1", 2, 2, attempts("c1-r2", "c2-r2"), failCell2)
	out := filepath.Join(t.TempDir(), "merged")

	res, err := Merge([]string{s1, s2}, out)
	require.NoError(t, err)
	assert.Empty(t, res.Overlapping)
	assert.Empty(t, res.Missing)

	merged, err := readShard(out)
	require.NoError(t, err)
	assert.Len(t, lab.Finished(merged.Records), 4)
	assert.Len(t, merged.Plan.Attempts, 4)
	assert.Equal(t, "p1", merged.Plan.Digest)
	assert.Empty(t, merged.Info.Shard, "a merged run is whole")
	assert.Len(t, merged.Info.MergedFrom, 2)
	assert.True(t, merged.Info.Simulated, "merging simulated shards keeps the label")
	cells := lab.Summarise(merged.Records)
	require.Len(t, cells, 2)
	for _, c := range cells {
		assert.Equal(t, 2, c.Attempts, c.Label)
	}
	// The attempt folders came along, each from its own shard.
	b, err := os.ReadFile(filepath.Join(out, lab.AttemptDir("c2", 2, 1), "steps.jsonl"))
	require.NoError(t, err)
	var info2 lab.RunInfo
	require.NoError(t, lab.ReadJSON(s2, lab.RunFile, &info2))
	assert.Equal(t, info2.ID+"\n", string(b))
}

func TestMergeRefusesShardsOfDifferentPlans(t *testing.T) {
	s1 := fakeShard(t, "p1", 1, 1, attempts("c1-r1"), failCell2)
	s2 := fakeShard(t, "p2", 1, 1, attempts("c1-r1"), failCell2)
	out := filepath.Join(t.TempDir(), "merged")
	_, err := Merge([]string{s1, s2}, out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), s2)
	assert.Contains(t, err.Error(), "p2")
	assert.NoDirExists(t, out, "nothing is written for a refused merge")
}

func TestMergeReportsOverlappingAndMissingAttempts(t *testing.T) {
	s1 := fakeShard(t, "p1", 2, 2, attempts("c1-r1", "c2-r1"), failCell2)
	// The second shard repeats c1-r1 and never finished c2-r2; c1-r2 ran
	// nowhere.
	s2 := fakeShard(t, "p1", 2, 2, attempts("c1-r1", "c2-r2"), func(a lab.PlanAttempt) lab.Verdict {
		if a.Cell == "c2" {
			return ""
		}
		return lab.Fail
	})
	res, err := Merge([]string{s1, s2}, filepath.Join(t.TempDir(), "m"))
	require.NoError(t, err)
	require.Len(t, res.Overlapping, 1)
	assert.Contains(t, res.Overlapping[0], "c1-r1")
	assert.Equal(t, []string{"c1-r2 cell=1", "c2-r2 cell=2"}, res.Missing)

	merged, err := readShard(res.Dir)
	require.NoError(t, err)
	fin := lab.Finished(merged.Records)
	assert.Len(t, fin, 2)
	assert.Equal(t, lab.Pass, fin["c1-r1"].Verdict, "the first shard's record of an overlapping attempt is kept")
}

func TestMergeNeverOverwrites(t *testing.T) {
	s1 := fakeShard(t, "p1", 1, 1, attempts("c1-r1"), failCell2)
	out := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(out, "results.jsonl"), []byte("precious\n"), 0o644))
	_, err := Merge([]string{s1}, out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not empty")
	b, _ := os.ReadFile(filepath.Join(out, "results.jsonl"))
	assert.Equal(t, "precious\n", string(b))
}

func TestMergeExcludesADamagedLineByNumber(t *testing.T) {
	s1 := fakeShard(t, "p1", 1, 1, attempts("c1-r1"), failCell2)
	f, err := os.OpenFile(filepath.Join(s1, lab.JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, _ = f.WriteString("{not json\n")
	require.NoError(t, f.Close())
	out := filepath.Join(t.TempDir(), "m")
	res, err := Merge([]string{s1}, out)
	require.NoError(t, err, "a damaged line is excluded, as resume and report exclude it, not a reason to merge nothing")
	require.Len(t, res.Excluded, 1)
	assert.Contains(t, res.Excluded[0], "results.jsonl:2: ")
	assert.Empty(t, res.Missing)
	run, err := Load(out)
	require.NoError(t, err)
	assert.Empty(t, run.Damage, "the merged journal holds good lines only")
	assert.Equal(t, 1, run.Verdicts[lab.Pass])
}
