package lab

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/matrices"
)

// withMatrixTail adds lines under matrix: (after its axes) to validConfig.
func withMatrixTail(tail string) string {
	return strings.Replace(validConfig, "    vpn: [running, stopped]\n", "    vpn: [running, stopped]\n"+tail, 1)
}

func TestRetryMaxIsBounded(t *testing.T) {
	for _, max := range []string{"11", "9223372036854775807", "-1"} {
		_, err := Load(LoadOptions{File: writeConfig(t, validConfig+"retry:\n  max: "+max+"\n"), LookupEnv: noEnv})
		lines := problemLines(t, err)
		require.Len(t, lines, 1, strings.Join(lines, "\n"))
		assert.Contains(t, lines[0], ":34:8: retry.max: "+max+" is not from 0 to 10")
	}
	l, err := Load(LoadOptions{File: writeConfig(t, validConfig+"retry:\n  max: 10\n"), LookupEnv: noEnv})
	require.NoError(t, err)
	assert.Equal(t, 10, l.Config.Retry.Max)
}

func TestBackoffDoublesUpToItsCap(t *testing.T) {
	r := Retry{Max: 10, Backoff: Duration(10 * time.Second)}
	assert.Equal(t, time.Duration(0), r.Delay(1), "the first try does not wait")
	assert.Equal(t, 10*time.Second, r.Delay(2))
	assert.Equal(t, 20*time.Second, r.Delay(3))
	assert.Equal(t, 40*time.Second, r.Delay(4))
	for try := 2; try <= 200; try++ {
		d := r.Delay(try)
		assert.LessOrEqual(t, d, MaxBackoff, "try %d", try)
		assert.GreaterOrEqual(t, d, r.Delay(try-1), "try %d waits less than the one before", try)
	}
	assert.Equal(t, MaxBackoff, r.Delay(14), "the 41 s before try 14 of the issue, and beyond, is capped")
	huge := Retry{Backoff: Duration(time.Duration(1<<62) + 1)}
	assert.Equal(t, MaxBackoff, huge.Delay(3), "no overflow")
}

func TestExcludeValuesAreCheckedWithASuggestion(t *testing.T) {
	_, err := Load(LoadOptions{File: writeConfig(t, withMatrixTail("  exclude:\n    - {vpn: runing}\n")), LookupEnv: noEnv})
	lines := problemLines(t, err)
	require.Len(t, lines, 1, strings.Join(lines, "\n"))
	assert.Contains(t, lines[0], `:26:13: matrix.exclude[0].vpn: "runing" is not a value of axis vpn`)
	assert.Contains(t, lines[0], `did you mean "running"?`)

	_, err = Load(LoadOptions{File: writeConfig(t, withMatrixTail("  exclude:\n    - {vnp: running}\n")), LookupEnv: noEnv})
	lines = problemLines(t, err)
	require.Len(t, lines, 1, strings.Join(lines, "\n"))
	assert.Contains(t, lines[0], `:26:8: matrix.exclude[0]: "vnp" is not an axis (axes: macos, path, vpn); did you mean "vpn"?`)
}

func TestIncludeValuesATypoAwayAreReported(t *testing.T) {
	_, err := Load(LoadOptions{File: writeConfig(t, withMatrixTail("  include:\n    - {vpn: stoped, note: x}\n")), LookupEnv: noEnv})
	lines := problemLines(t, err)
	require.Len(t, lines, 1, strings.Join(lines, "\n"))
	assert.Contains(t, lines[0], `:26:13: matrix.include[0].vpn: "stoped" is not a value of axis vpn; did you mean "stopped"?`)
	// A value far from every existing one adds a combination, as on GitHub.
	_, err = Load(LoadOptions{File: writeConfig(t, withMatrixTail("  include:\n    - {vpn: on-demand}\n")), LookupEnv: noEnv})
	require.NoError(t, err)
}

func TestRepeatPastTheAttemptLimitIsReportedAtItsLine(t *testing.T) {
	_, err := Load(LoadOptions{File: writeConfig(t, withMatrixTail("  repeat: 2000001\n")), LookupEnv: noEnv})
	lines := problemLines(t, err)
	require.Len(t, lines, 1, strings.Join(lines, "\n"))
	assert.Contains(t, lines[0], ":25:11: matrix.repeat: 2 cells × repeat 2000001 is more than the 4000000 attempts")
}

func TestSelectionsOfNothingAreErrors(t *testing.T) {
	l, err := Load(LoadOptions{File: writeConfig(t, withMatrixTail("  exclude:\n    - {vpn: running}\n  repeat: 2\n")), LookupEnv: noEnv})
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		opts PlanOptions
		want []string
	}{
		{"only an excluded cell", PlanOptions{Only: []string{"path=1->3,vpn=stopped"}}, nil}, // selects something
		{"shard past the attempts", PlanOptions{Shard: matrices.Shard{Index: 3, Count: 3}}, []string{"--shard 3/3", "2 attempt(s)", "use at most 2 shards"}},
		{"shard by past the attempts", PlanOptions{Shard: matrices.Shard{Index: 3, Count: 3}, ShardBy: "macos"}, []string{"--shard 3/3 --shard-by macos", "macos=macos-15.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shard, _, err := l.Config.Plan(tc.opts)
			if tc.want == nil {
				require.NoError(t, err)
				assert.NotEmpty(t, shard.Attempts)
				return
			}
			require.ErrorIs(t, err, ErrEmptySelection)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	// --only naming values that exist, in a combination exclude removes.
	l, err = Load(LoadOptions{File: writeConfig(t, strings.Replace(validConfig, "    vpn: [running, stopped]\n",
		"    vpn: [running, stopped]\n    approval: [approved, pending]\n  exclude:\n    - {vpn: running, approval: pending}\n", 1)), LookupEnv: noEnv})
	require.NoError(t, err)
	_, _, err = l.Config.Plan(PlanOptions{Only: []string{"vpn=running,approval=pending"}})
	require.ErrorIs(t, err, ErrEmptySelection)
	assert.Contains(t, err.Error(), "--only vpn=running,approval=pending")
	assert.Contains(t, err.Error(), "matrix.exclude[0] {approval: pending, vpn: running}")
	assert.False(t, errors.Is(err, ErrRunLocked))
}
