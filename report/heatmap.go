package report

import (
	"slices"
	"sort"
	"strings"

	"github.com/sxlab/sxlab/lab"
)

// Layout chooses the heatmap's axes: the rows are the image axis (the
// first axis when the matrix has no image axis) and the path axis, the
// columns every other axis in matrix order. Reading across a row then
// compares the conditions of one upgrade on one macOS, the question a
// regression asks. With nothing left for the columns the path axis moves
// there, so a two-axis matrix is still a grid.
func Layout(axes []string, imageAxis, pathAxis string) (rows, cols []string) {
	if len(axes) == 0 {
		return nil, nil
	}
	first := axes[0]
	if slices.Contains(axes, imageAxis) {
		first = imageAxis
	}
	rows = []string{first}
	if pathAxis != first && slices.Contains(axes, pathAxis) {
		rows = append(rows, pathAxis)
	}
	for _, a := range axes {
		if !slices.Contains(rows, a) {
			cols = append(cols, a)
		}
	}
	if len(cols) == 0 && len(rows) == 2 {
		rows, cols = rows[:1], rows[1:]
	}
	return rows, cols
}

// Grid is the heatmap: one row per combination of the row axes' values
// that some cell has, one column per combination of the column axes'.
type Grid struct {
	RowAxes, ColAxes []string
	Cols             []GridKey
	Rows             []GridRow
}

// GridKey is one combination of axis values, in the grid's axis order.
type GridKey struct {
	Values []string
}

// Label is the combination as axis=value words.
func (k GridKey) Label(axes []string) string {
	parts := make([]string, len(axes))
	for i, a := range axes {
		parts[i] = a + "=" + k.Values[i]
	}
	return strings.Join(parts, " ")
}

// GridRow is one row: its key and, per column, the cells there (usually
// one; none where the plan has no such cell; several only when include
// entries add keys the axes do not have).
type GridRow struct {
	GridKey
	Slots [][]int // indices into the cells given to NewGrid
}

// NewGrid lays cells out over the axes (in matrix order, with their
// values in order) as Layout chooses. Values and keys a cell has but the
// axes do not (from include entries) are placed after the known ones;
// rows and columns no cell falls in are left out.
func NewGrid(axes []lab.Axis, imageAxis, pathAxis string, cells []lab.CellSummary) Grid {
	order := map[string]map[string]int{} // axis -> value -> position
	var names []string
	for _, ax := range axes {
		if _, dup := order[ax.Name]; dup {
			continue
		}
		names = append(names, ax.Name)
		order[ax.Name] = map[string]int{}
		for _, v := range ax.Values {
			if _, ok := order[ax.Name][v]; !ok {
				order[ax.Name][v] = len(order[ax.Name])
			}
		}
	}
	var extra []string
	for _, c := range cells {
		for k := range c.Axes {
			if _, ok := order[k]; !ok && !slices.Contains(extra, k) {
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		names = append(names, k)
		order[k] = map[string]int{}
	}

	g := Grid{}
	g.RowAxes, g.ColAxes = Layout(names, imageAxis, pathAxis)
	keyOf := func(c lab.CellSummary, axes []string) GridKey {
		k := GridKey{Values: make([]string, len(axes))}
		for i, a := range axes {
			k.Values[i] = c.Axes[a]
		}
		return k
	}
	// less orders keys by the values' positions on their axes; unknown
	// values go after known ones, by name.
	less := func(axes []string, a, b GridKey) bool {
		for i, ax := range axes {
			pa, oka := order[ax][a.Values[i]]
			pb, okb := order[ax][b.Values[i]]
			switch {
			case oka && okb && pa != pb:
				return pa < pb
			case oka != okb:
				return oka
			case !oka && a.Values[i] != b.Values[i]:
				return a.Values[i] < b.Values[i]
			}
		}
		return false
	}
	index := func(keys *[]GridKey, k GridKey) {
		for _, have := range *keys {
			if slices.Equal(have.Values, k.Values) {
				return
			}
		}
		*keys = append(*keys, k)
	}
	var rowKeys []GridKey
	for _, c := range cells {
		index(&rowKeys, keyOf(c, g.RowAxes))
		index(&g.Cols, keyOf(c, g.ColAxes))
	}
	sort.SliceStable(rowKeys, func(i, j int) bool { return less(g.RowAxes, rowKeys[i], rowKeys[j]) })
	sort.SliceStable(g.Cols, func(i, j int) bool { return less(g.ColAxes, g.Cols[i], g.Cols[j]) })

	for _, rk := range rowKeys {
		row := GridRow{GridKey: rk, Slots: make([][]int, len(g.Cols))}
		for i, c := range cells {
			if !slices.Equal(keyOf(c, g.RowAxes).Values, rk.Values) {
				continue
			}
			ck := keyOf(c, g.ColAxes)
			for j, col := range g.Cols {
				if slices.Equal(col.Values, ck.Values) {
					row.Slots[j] = append(row.Slots[j], i)
				}
			}
		}
		g.Rows = append(g.Rows, row)
	}
	return g
}
