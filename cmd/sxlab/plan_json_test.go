package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/internal/plainjson"
	"github.com/sxlab/sxlab/matrices"
)

// encodedPlan is what `plan --format json` printed before it was written
// by hand: json.Encoder, two-space indent, no HTML escaping.
func encodedPlan(t *testing.T, p matrices.Plan) string {
	t.Helper()
	out := planJSON{Cells: len(p.Cells), Attempts: make([]attemptJSON, 0, len(p.Attempts))}
	for _, a := range p.Attempts {
		out.Attempts = append(out.Attempts, attemptJSON{Cell: a.Cell.ID, Label: a.Cell.Label, Repeat: a.Repeat, Axes: a.Cell.Values})
	}
	var b bytes.Buffer
	enc := plainjson.NewEncoder(&b)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(out))
	return b.String()
}

func TestPlanJSONIsTheEncodersByteForByte(t *testing.T) {
	odd, err := matrices.Expand(matrices.Matrix{Axes: []matrices.Axis{
		{Name: "path", Values: []string{"2->3", `say "hi"`, "tab\there", "back\\slash"}},
		{Name: "macos", Values: []string{"macOS Sequoia 15.3 — beta", "\u2028", "bad\xffutf8", "<b>&"}},
	}, Repeat: 2})
	require.NoError(t, err)
	for name, p := range map[string]matrices.Plan{
		"odd values": odd,
		"empty":      {},
		"no axes":    {Cells: []matrices.Cell{{ID: "x", Label: "", Values: map[string]string{}}}, Attempts: []matrices.Attempt{{Cell: matrices.Cell{ID: "x", Values: map[string]string{}}, Repeat: 1}}},
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, writePlanJSON(&b, p))
			assert.Equal(t, encodedPlan(t, p), b.String())
		})
	}
	_, plan, _, err := (&planFlags{config: demoConfig}).resolve(newPlanCmd().Flags(), &bytes.Buffer{})
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, writePlanJSON(&b, plan))
	assert.Equal(t, encodedPlan(t, plan), b.String(), "the demo's plan")
}
