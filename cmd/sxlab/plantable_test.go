package main

import (
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/matrices"
)

// The plan table is laid out as text/tabwriter lays it out, which is what
// it was before: scripts that cut its columns keep working (10,200
// attempts, so numbers of one to five digits).
func TestPlanTableIsTabwriterLayout(t *testing.T) {
	p, err := matrices.Expand(matrices.Matrix{
		Axes:   []matrices.Axis{{Name: "macos", Values: []string{"15.3", "15.4", "26.0"}}, {Name: "vpn", Values: []string{"running", "stopped"}}},
		Repeat: 1700,
	})
	require.NoError(t, err)

	var want strings.Builder
	tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTEMPT\tCELL\tREPEAT\tLABEL")
	for i, a := range p.Attempts {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", i+1, a.Cell.ID, a.Repeat, a.Cell.Label)
	}
	require.NoError(t, tw.Flush())

	var got strings.Builder
	require.NoError(t, writeAttemptRows(&got, p.Attempts))
	assert.Equal(t, want.String(), got.String())
	assert.True(t, strings.HasPrefix(got.String(), "ATTEMPT  CELL          REPEAT  LABEL\n1        "), got.String()[:80])
}
