package schema

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocsExamplesAreReports keeps docs/probe.md, the simulated Mac's
// contract, in step with the schema: every JSON example decodes, and
// the exit code in its heading is the one its outcome gives.
func TestDocsExamplesAreReports(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "probe.md"))
	require.NoError(t, err)
	re := regexp.MustCompile("(?s)\n### ([^\n]*?) — exit (\\d)\n.*?```json\n(.*?)```")
	examples := re.FindAllStringSubmatch(string(b), -1)
	require.GreaterOrEqual(t, len(examples), 7, "one example per outcome")
	seen := map[Outcome]bool{}
	for _, ex := range examples {
		rep, err := Decode(strings.NewReader(ex[3]))
		require.NoError(t, err, "example %q", ex[1])
		exit, _ := strconv.Atoi(ex[2])
		assert.Equal(t, exit, ExitCode(rep.Outcome), "example %q", ex[1])
		assert.Equal(t, Caveat, rep.Caveat)
		seen[rep.Outcome] = true
		// The example's meaning is what the classification says.
		switch {
		case rep.Outcome == Error:
		case rep.XPC != nil:
			_, m := ClassifyConnect(*rep.Lookup, *rep.XPC)
			assert.Equal(t, m, rep.Meaning, "example %q", ex[1])
		default:
			_, m := ClassifyLookup(*rep.Lookup)
			assert.Equal(t, m, rep.Meaning, "example %q", ex[1])
		}
	}
	for _, o := range []Outcome{Found, LookupFailed, Reply, Rejected, Timeout, Error} {
		assert.True(t, seen[o], "docs/probe.md has no example of %s", o)
	}
}
