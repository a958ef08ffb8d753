package lab

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The namer renders once per combination of the axes the template reads;
// every cell must still get the name its own rendering gives, including
// templates that read more than .Axis.NAME (which are rendered per cell).
func TestImageNamerNamesEveryCellAsItsOwnRenderingWould(t *testing.T) {
	cells := []map[string]string{
		{"macos": "macos-15.3", "approval": "approved", "vpn": "running"},
		{"macos": "macos-15.3", "approval": "pending", "vpn": "running"},
		{"macos": "macos-15.3", "approval": "approved", "vpn": "stopped"},
		{"macos": "macos-15.4", "approval": "approved", "vpn": "stopped"},
		{"macos": "macos-15.4", "approval": "pending", "vpn": "stopped"},
	}
	for _, tmpl := range []string{
		`{{.Axis.macos}}{{if eq .Axis.approval "approved"}}-mdm{{end}}`,
		`{{index .Axis "macos"}}-{{index .Axis "approval"}}`, // reads .Axis whole
		`{{range $k, $v := .Axis}}{{if eq $k "vpn"}}{{$v}}{{end}}{{end}}`,
		`{{with .Axis.vpn}}{{.}}{{end}}-{{.Axis.macos}}`,
		` {{printf "%s+%s" .Axis.macos .Axis.vpn}} `,
	} {
		c := Config{Matrix: Matrix{Image: tmpl}}
		name, err := c.ImageNamer()
		require.NoError(t, err, tmpl)
		for round := range 2 { // the second round answers from the memo
			for _, cell := range cells {
				got, err := name(cell)
				require.NoError(t, err, tmpl)
				want, err := c.CellImage(cell)
				require.NoError(t, err)
				assert.Equal(t, want, got, "%s, round %d, cell %v", tmpl, round, cell)
			}
		}
	}
	c := Config{Matrix: Matrix{Image: `{{.Axis.macos}}-{{.Axis.approval}}`}}
	name, err := c.ImageNamer()
	require.NoError(t, err)
	got, err := name(cells[0])
	require.NoError(t, err)
	assert.Equal(t, "macos-15.3-approved", got)
	// A cell without an axis the template reads is an error, memo or not.
	_, err = name(map[string]string{"macos": "macos-15.3"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "approval")
}

// Loaded.Plan reuses the cells validation expanded, but never after the
// matrix changed under it.
func TestLoadedPlanIsThePlanOfTheCurrentMatrix(t *testing.T) {
	l, err := Load(LoadOptions{File: writeConfig(t, validConfig), LookupEnv: noEnv})
	require.NoError(t, err)
	_, want, err := l.Config.Plan(PlanOptions{})
	require.NoError(t, err)
	_, got, err := l.Plan(PlanOptions{})
	require.NoError(t, err)
	assert.Equal(t, want, got)

	l.Config.Matrix.Repeat = 3
	_, got, err = l.Plan(PlanOptions{})
	require.NoError(t, err)
	assert.Len(t, got.Attempts, 3*len(want.Cells), "repeat is applied to the reused cells")

	l.Config.Matrix.Axes = l.Config.Matrix.Axes[:1]
	_, fresh, err := l.Config.Plan(PlanOptions{})
	require.NoError(t, err)
	_, got, err = l.Plan(PlanOptions{})
	require.NoError(t, err)
	assert.Equal(t, fresh, got)
	assert.Less(t, len(got.Cells), len(want.Cells))
}
