package report

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		name              string
		axes              []string
		image, path       string
		wantRows, wantCol []string
	}{
		{"demo: image and path are rows", []string{"macos", "path", "vpn", "approval"}, "macos", "path",
			[]string{"macos", "path"}, []string{"vpn", "approval"}},
		{"axis order does not move the image axis", []string{"vpn", "path", "macos"}, "macos", "path",
			[]string{"macos", "path"}, []string{"vpn"}},
		{"no image axis: the first axis", []string{"os", "path", "vpn"}, "macos", "path",
			[]string{"os", "path"}, []string{"vpn"}},
		{"no path axis", []string{"macos", "vpn", "approval"}, "macos", "path",
			[]string{"macos"}, []string{"vpn", "approval"}},
		{"two axes make a grid", []string{"macos", "path"}, "macos", "path",
			[]string{"macos"}, []string{"path"}},
		{"one axis: one column of cells", []string{"macos"}, "macos", "path",
			[]string{"macos"}, nil},
		{"image axis is the path axis", []string{"macos", "vpn"}, "macos", "macos",
			[]string{"macos"}, []string{"vpn"}},
		{"no axes", nil, "macos", "path", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, cols := Layout(tc.axes, tc.image, tc.path)
			assert.Equal(t, tc.wantRows, rows)
			assert.Equal(t, tc.wantCol, cols)
		})
	}
}

func gridCell(id string, axes map[string]string) lab.CellSummary {
	return lab.CellSummary{Cell: id, Axes: axes}
}

func TestNewGridFollowsAxisOrderAndDropsEmptyColumns(t *testing.T) {
	axes := []lab.Axis{
		{Name: "macos", Values: []string{"macos-15.9", "macos-15.10"}}, // not alphabetical
		{Name: "path", Values: []string{"2->3"}},
		{Name: "vpn", Values: []string{"running", "stopped"}},
		{Name: "approval", Values: []string{"approved", "pending"}},
	}
	var cells []lab.CellSummary
	for _, m := range []string{"macos-15.10", "macos-15.9"} {
		for _, v := range []string{"stopped", "running"} {
			for _, a := range []string{"pending", "approved"} {
				if v == "running" && a == "pending" {
					continue // excluded, as in the demo
				}
				cells = append(cells, gridCell(m+v+a, map[string]string{"macos": m, "path": "2->3", "vpn": v, "approval": a}))
			}
		}
	}
	g := NewGrid(axes, "macos", "path", cells)
	assert.Equal(t, []string{"macos", "path"}, g.RowAxes)
	assert.Equal(t, []string{"vpn", "approval"}, g.ColAxes)
	require.Len(t, g.Rows, 2)
	assert.Equal(t, []string{"macos-15.9", "2->3"}, g.Rows[0].Values, "rows follow the axis' value order")
	var cols []string
	for _, c := range g.Cols {
		cols = append(cols, c.Label(g.ColAxes))
	}
	assert.Equal(t, []string{"vpn=running approval=approved", "vpn=stopped approval=approved", "vpn=stopped approval=pending"}, cols,
		"the excluded running/pending column is left out")
	for _, row := range g.Rows {
		for j, slot := range row.Slots {
			require.Len(t, slot, 1)
			c := cells[slot[0]]
			assert.Equal(t, row.Values[0], c.Axes["macos"])
			assert.Equal(t, g.Cols[j].Values, []string{c.Axes["vpn"], c.Axes["approval"]})
		}
	}
}

func TestNewGridPlacesCellsWithValuesOnlyIncludeAdded(t *testing.T) {
	axes := []lab.Axis{{Name: "macos", Values: []string{"macos-15.3"}}, {Name: "vpn", Values: []string{"running"}}}
	cells := []lab.CellSummary{
		gridCell("a", map[string]string{"macos": "macos-15.3", "vpn": "running"}),
		gridCell("b", map[string]string{"macos": "macos-26.0", "vpn": "running"}),                // a value only include adds
		gridCell("c", map[string]string{"macos": "macos-15.3", "vpn": "running", "arch": "x86"}), // a key only include adds
	}
	g := NewGrid(axes, "macos", "", cells)
	seen := map[int]bool{}
	for _, row := range g.Rows {
		for _, slot := range row.Slots {
			for _, i := range slot {
				assert.False(t, seen[i], "cell %d placed twice", i)
				seen[i] = true
			}
		}
	}
	assert.Len(t, seen, 3, "every cell is in the grid")
	assert.Equal(t, "macos-26.0", g.Rows[len(g.Rows)-1].Values[0], "unknown values come after known ones")
	assert.Contains(t, g.ColAxes, "arch")
}
