package matrices

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseShard(t *testing.T) {
	tests := []struct {
		in      string
		want    Shard
		wantErr string
	}{
		{in: "1/1", want: Shard{1, 1}},
		{in: "2/3", want: Shard{2, 3}},
		{in: "3/3", want: Shard{3, 3}},
		{in: " 2 / 3 ", want: Shard{2, 3}},
		{in: "0/3", wantErr: `shard 0/3: index must be between 1 and 3`},
		{in: "4/3", wantErr: `shard 4/3: index must be between 1 and 3`},
		{in: "-1/3", wantErr: `index must be between 1 and 3`},
		{in: "a/b", wantErr: `shard "a/b": index "a" is not a number`},
		{in: "1/b", wantErr: `shard "1/b": count "b" is not a number`},
		{in: "1/0", wantErr: `shard 1/0: count must be at least 1`},
		{in: "1", wantErr: `shard "1": want i/n`},
		{in: "", wantErr: `want i/n`},
		{in: "1/2/3", wantErr: `count "2/3" is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseShard(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, fmt.Sprintf("%d/%d", tt.want.Index, tt.want.Count), got.String())
		})
	}
}

func TestShardFromEnv(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		want       Shard
		wantSource string
		wantOK     bool
		wantErr    string
	}{
		{name: "nothing set", env: map[string]string{}},
		{name: "empty values count as unset", env: map[string]string{"BUILDKITE_PARALLEL_JOB": "", "CI_NODE_TOTAL": " "}},
		{
			name:       "buildkite is 0-based",
			env:        map[string]string{"BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "3"},
			want:       Shard{1, 3},
			wantSource: "BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT", wantOK: true,
		},
		{
			name:       "buildkite last job",
			env:        map[string]string{"BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "3"},
			want:       Shard{3, 3},
			wantSource: "BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT", wantOK: true,
		},
		{
			name:       "gitlab is 1-based",
			env:        map[string]string{"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"},
			want:       Shard{2, 4},
			wantSource: "CI_NODE_INDEX/CI_NODE_TOTAL", wantOK: true,
		},
		{
			name: "buildkite wins over gitlab",
			env: map[string]string{
				"BUILDKITE_PARALLEL_JOB": "1", "BUILDKITE_PARALLEL_JOB_COUNT": "2",
				"CI_NODE_INDEX": "5", "CI_NODE_TOTAL": "9",
			},
			want:       Shard{2, 2},
			wantSource: "BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT", wantOK: true,
		},
		{
			name:    "buildkite index out of range",
			env:     map[string]string{"BUILDKITE_PARALLEL_JOB": "3", "BUILDKITE_PARALLEL_JOB_COUNT": "3"},
			wantErr: `BUILDKITE_PARALLEL_JOB="3": out of range for BUILDKITE_PARALLEL_JOB_COUNT="3" (want 0..2)`,
		},
		{
			name:    "gitlab index 0 out of range",
			env:     map[string]string{"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"},
			wantErr: `CI_NODE_INDEX="0": out of range for CI_NODE_TOTAL="3" (want 1..3)`,
		},
		{
			name:    "malformed index",
			env:     map[string]string{"CI_NODE_INDEX": "two", "CI_NODE_TOTAL": "3"},
			wantErr: `CI_NODE_INDEX="two": want a whole number`,
		},
		{
			name:    "zero count",
			env:     map[string]string{"BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "0"},
			wantErr: `BUILDKITE_PARALLEL_JOB_COUNT="0": want a whole number >= 1`,
		},
		{
			name:    "half a pair",
			env:     map[string]string{"BUILDKITE_PARALLEL_JOB": "1"},
			wantErr: `BUILDKITE_PARALLEL_JOB="1" is set but BUILDKITE_PARALLEL_JOB_COUNT is not`,
		},
		{
			name:    "other half",
			env:     map[string]string{"CI_NODE_TOTAL": "4"},
			wantErr: `CI_NODE_TOTAL="4" is set but CI_NODE_INDEX is not`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			s, source, ok, err := ShardFromEnv(lookup)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.False(t, ok)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, s)
			assert.Equal(t, tt.wantSource, source)
		})
	}
}

// The shards 1..N of a plan are disjoint, cover it, keep its order and differ
// in size by at most one; each shard's cells are exactly its attempts' cells.
func TestShardPartition(t *testing.T) {
	for nCells := 0; nCells <= 13; nCells++ {
		for repeat := 1; repeat <= 3; repeat++ {
			p := planOf(t, nCells, repeat)
			for count := 1; count <= 2*len(p.Attempts)+2; count++ {
				t.Run(fmt.Sprintf("cells=%d repeat=%d count=%d", nCells, repeat, count), func(t *testing.T) {
					checkPartition(t, p, count)
				})
			}
		}
	}
}

func planOf(t *testing.T, nCells, repeat int) Plan {
	t.Helper()
	m := Matrix{Repeat: repeat}
	if nCells > 0 {
		a := Axis{Name: "n"}
		for i := range nCells {
			a.Values = append(a.Values, fmt.Sprint(i))
		}
		m.Axes = []Axis{a}
	}
	p, err := Expand(m)
	require.NoError(t, err)
	require.Len(t, p.Attempts, nCells*repeat)
	return p
}

func checkPartition(t *testing.T, p Plan, count int) {
	t.Helper()
	seen := make(map[string]int)
	minSize, maxSize := len(p.Attempts)+1, -1
	for i := 1; i <= count; i++ {
		sh := p.Shard(Shard{Index: i, Count: count})
		minSize = min(minSize, len(sh.Attempts))
		maxSize = max(maxSize, len(sh.Attempts))

		cellIDs := map[string]bool{}
		last := -1
		for _, a := range sh.Attempts {
			seen[a.ID()]++
			cellIDs[a.Cell.ID] = true
			pos := indexOfAttempt(p, a)
			require.Greater(t, pos, last, "shard keeps plan order")
			last = pos
		}
		var gotCells []string
		for _, c := range sh.Cells {
			gotCells = append(gotCells, c.ID)
			assert.True(t, cellIDs[c.ID], "cell %s has no attempt in shard", c.Label)
		}
		assert.Len(t, gotCells, len(cellIDs))
	}
	require.Len(t, seen, len(p.Attempts), "union is the plan")
	for id, n := range seen {
		require.Equal(t, 1, n, "attempt %s in %d shards", id, n)
	}
	require.LessOrEqual(t, maxSize-minSize, 1, "sizes differ by at most one")
}

func indexOfAttempt(p Plan, a Attempt) int {
	for i, b := range p.Attempts {
		if b.ID() == a.ID() {
			return i
		}
	}
	return -1
}

func TestShardPositions(t *testing.T) {
	p := planOf(t, 4, 2) // attempts: 0..3 r1, 0..3 r2
	got := p.Shard(Shard{Index: 2, Count: 3})
	var ids []string
	for _, a := range got.Attempts {
		ids = append(ids, a.Cell.Label+" r"+fmt.Sprint(a.Repeat))
	}
	// 1-based positions 2, 5, 8.
	assert.Equal(t, []string{"n=1 r1", "n=0 r2", "n=3 r2"}, ids)
	assert.Equal(t, []string{"n=0", "n=1", "n=3"}, labelsOf(got.Cells))
}

func TestShardInvalid(t *testing.T) {
	p := planOf(t, 5, 1)
	assert.Equal(t, p, p.Shard(Shard{}), "zero shard: not sharded")
	assert.Equal(t, p, p.Shard(Shard{1, 1}))
	for _, s := range []Shard{{0, 3}, {4, 3}, {1, 0}, {-1, -1}} {
		assert.Error(t, s.Validate(), s.String())
		assert.Empty(t, p.Shard(s).Attempts, s.String())
	}
}

func TestShardAfterOnly(t *testing.T) {
	p := filterPlan(t)
	f, err := ParseOnly([]string{"vpn=running"}, p.Cells)
	require.NoError(t, err)
	only := p.Only(f)
	checkPartition(t, only, 3)
}

func TestShardByPartitionsWithinEachValue(t *testing.T) {
	p, err := Expand(Matrix{Axes: []Axis{{Name: "macos", Values: []string{"15.3", "15.4"}}, {Name: "vpn", Values: []string{"on", "off", "mid"}}}, Repeat: 2})
	require.NoError(t, err)
	seen := map[string]int{}
	for i := 1; i <= 4; i++ {
		sh, value, err := p.ShardBy("macos", Shard{Index: i, Count: 4})
		require.NoError(t, err)
		want := "15.3"
		if i > 2 {
			want = "15.4"
		}
		assert.Equal(t, want, value, "shards 1-2 run 15.3, 3-4 run 15.4")
		assert.Len(t, sh.Attempts, 3)
		for _, a := range sh.Attempts {
			assert.Equal(t, want, a.Cell.Values["macos"])
			seen[a.ID()]++
		}
		for _, c := range sh.Cells {
			assert.Equal(t, want, c.Values["macos"])
		}
	}
	assert.Len(t, seen, len(p.Attempts), "the shards cover the plan")
	for id, n := range seen {
		assert.Equal(t, 1, n, id)
	}
}

func TestShardByNeedsAMultipleOfTheValues(t *testing.T) {
	p, err := Expand(Matrix{Axes: []Axis{{Name: "macos", Values: []string{"15.3", "15.4"}}}, Repeat: 1})
	require.NoError(t, err)
	_, _, err = p.ShardBy("macos", Shard{Index: 1, Count: 3})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "use a multiple of 2")
	assert.Contains(t, err.Error(), "15.3, 15.4")
}
