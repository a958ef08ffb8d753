package matrices

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ax(name string, values ...string) Axis { return Axis{Name: name, Values: values} }

func valuesOf(cells []Cell) []map[string]string {
	out := make([]map[string]string, len(cells))
	for i, c := range cells {
		out[i] = c.Values
	}
	return out
}

func labelsOf(cells []Cell) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = c.Label
	}
	return out
}

// The examples of docs.github.com "Running variations of jobs in a workflow".
func TestCellsGitHubDocExamples(t *testing.T) {
	tests := []struct {
		name string
		m    Matrix
		want []map[string]string
	}{
		{
			name: "single-dimension matrix",
			m:    Matrix{Axes: []Axis{ax("version", "10", "12", "14")}},
			want: []map[string]string{{"version": "10"}, {"version": "12"}, {"version": "14"}},
		},
		{
			name: "first variable is outermost",
			m:    Matrix{Axes: []Axis{ax("version", "10", "12", "14"), ax("os", "ubuntu-latest", "windows-latest")}},
			want: []map[string]string{
				{"version": "10", "os": "ubuntu-latest"},
				{"version": "10", "os": "windows-latest"},
				{"version": "12", "os": "ubuntu-latest"},
				{"version": "12", "os": "windows-latest"},
				{"version": "14", "os": "ubuntu-latest"},
				{"version": "14", "os": "windows-latest"},
			},
		},
		{
			name: "expanding or adding configurations (fruit/animal)",
			m: Matrix{
				Axes: []Axis{ax("fruit", "apple", "pear"), ax("animal", "cat", "dog")},
				Include: []map[string]string{
					{"color": "green"},
					{"color": "pink", "animal": "cat"},
					{"fruit": "apple", "shape": "circle"},
					{"fruit": "banana"},
					{"fruit": "banana", "animal": "cat"},
				},
			},
			want: []map[string]string{
				{"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
				{"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
				{"fruit": "pear", "animal": "cat", "color": "pink"},
				{"fruit": "pear", "animal": "dog", "color": "green"},
				{"fruit": "banana"},
				{"fruit": "banana", "animal": "cat"},
			},
		},
		{
			name: "expanding a specific configuration (os/node + npm)",
			m: Matrix{
				Axes:    []Axis{ax("os", "windows-latest", "ubuntu-latest"), ax("node", "14", "16")},
				Include: []map[string]string{{"os": "windows-latest", "node": "16", "npm": "6"}},
			},
			want: []map[string]string{
				{"os": "windows-latest", "node": "14"},
				{"os": "windows-latest", "node": "16", "npm": "6"},
				{"os": "ubuntu-latest", "node": "14"},
				{"os": "ubuntu-latest", "node": "16"},
			},
		},
		{
			name: "adding a configuration (version 17 fits no combination)",
			m: Matrix{
				Axes:    []Axis{ax("os", "windows-latest", "ubuntu-latest"), ax("version", "12", "14", "16")},
				Include: []map[string]string{{"os": "windows-latest", "version": "17"}},
			},
			want: []map[string]string{
				{"os": "windows-latest", "version": "12"},
				{"os": "windows-latest", "version": "14"},
				{"os": "windows-latest", "version": "16"},
				{"os": "ubuntu-latest", "version": "12"},
				{"os": "ubuntu-latest", "version": "14"},
				{"os": "ubuntu-latest", "version": "16"},
				{"os": "windows-latest", "version": "17"},
			},
		},
		{
			name: "later include extends combinations extended by earlier ones",
			m: Matrix{
				Axes: []Axis{ax("os", "windows-latest", "ubuntu-latest")},
				Include: []map[string]string{
					{"os": "windows-latest", "node": "16"},
					{"site": "production"},
				},
			},
			want: []map[string]string{
				{"os": "windows-latest", "node": "16", "site": "production"},
				{"os": "ubuntu-latest", "site": "production"},
			},
		},
		{
			name: "include only: every entry is a new combination",
			m: Matrix{Include: []map[string]string{
				{"site": "production", "datacenter": "site-a"},
				{"site": "staging", "datacenter": "site-b"},
			}},
			want: []map[string]string{
				{"site": "production", "datacenter": "site-a"},
				{"site": "staging", "datacenter": "site-b"},
			},
		},
		{
			name: "excluding configurations (os/version/environment)",
			m: Matrix{
				Axes: []Axis{
					ax("os", "macos-latest", "windows-latest"),
					ax("version", "12", "14", "16"),
					ax("environment", "staging", "production"),
				},
				Exclude: []map[string]string{
					{"os": "macos-latest", "version": "12", "environment": "production"},
					{"os": "windows-latest", "version": "16"},
				},
			},
			want: []map[string]string{
				{"os": "macos-latest", "version": "12", "environment": "staging"},
				{"os": "macos-latest", "version": "14", "environment": "staging"},
				{"os": "macos-latest", "version": "14", "environment": "production"},
				{"os": "macos-latest", "version": "16", "environment": "staging"},
				{"os": "macos-latest", "version": "16", "environment": "production"},
				{"os": "windows-latest", "version": "12", "environment": "staging"},
				{"os": "windows-latest", "version": "12", "environment": "production"},
				{"os": "windows-latest", "version": "14", "environment": "staging"},
				{"os": "windows-latest", "version": "14", "environment": "production"},
			},
		},
		{
			name: "include is applied after exclude and may re-add an excluded combination",
			m: Matrix{
				Axes:    []Axis{ax("os", "a", "b"), ax("v", "1", "2")},
				Exclude: []map[string]string{{"os": "b"}},
				Include: []map[string]string{{"os": "b", "v": "2"}},
			},
			want: []map[string]string{
				{"os": "a", "v": "1"},
				{"os": "a", "v": "2"},
				{"os": "b", "v": "2"},
			},
		},
		{
			name: "everything excluded: includes become new combinations",
			m: Matrix{
				Axes:    []Axis{ax("os", "a")},
				Exclude: []map[string]string{{"os": "a"}},
				Include: []map[string]string{{"extra": "x"}},
			},
			want: []map[string]string{{"extra": "x"}},
		},
		{
			name: "exclude value outside the axis matches nothing",
			m: Matrix{
				Axes:    []Axis{ax("os", "a", "b")},
				Exclude: []map[string]string{{"os": "c"}},
			},
			want: []map[string]string{{"os": "a"}, {"os": "b"}},
		},
		{
			name: "no axes, no include: no cells",
			m:    Matrix{},
			want: []map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cells, err := Cells(tt.m)
			require.NoError(t, err)
			assert.Equal(t, tt.want, valuesOf(cells))
		})
	}
}

func TestCellsLabel(t *testing.T) {
	cells, err := Cells(Matrix{
		Axes: []Axis{
			ax("macos", "15.3"),
			ax("path", "1->3"),
			ax("vpn", "running", "stopped"),
			ax("approval", "approved"),
		},
		Include: []map[string]string{
			{"vpn": "stopped", "timeout": "5m"},
			{"note": "x", "budget": "2"}, // keys of one entry: sorted
		},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"macos=15.3 path=1->3 vpn=running approval=approved budget=2 note=x",
		"macos=15.3 path=1->3 vpn=stopped approval=approved timeout=5m budget=2 note=x",
	}, labelsOf(cells))
	assert.Equal(t, []string{"macos", "path", "vpn", "approval", "budget", "note"}, cells[0].Keys)
	assert.Equal(t, []string{"macos", "path", "vpn", "approval", "timeout", "budget", "note"}, cells[1].Keys)

	// Keys are separate slices: appending to one must not clobber another.
	_ = append(cells[0].Keys, "zzz")
	assert.Equal(t, "macos", cells[1].Keys[0])
}

func TestCellsLabelFruitExample(t *testing.T) {
	cells, err := Cells(Matrix{
		Axes: []Axis{ax("fruit", "apple", "pear"), ax("animal", "cat", "dog")},
		Include: []map[string]string{
			{"color": "green"},
			{"color": "pink", "animal": "cat"},
			{"fruit": "apple", "shape": "circle"},
			{"fruit": "banana"},
			{"fruit": "banana", "animal": "cat"},
		},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"fruit=apple animal=cat color=pink shape=circle",
		"fruit=apple animal=dog color=green shape=circle",
		"fruit=pear animal=cat color=pink",
		"fruit=pear animal=dog color=green",
		"fruit=banana",
		"fruit=banana animal=cat",
	}, labelsOf(cells))
}

func TestCellIDIsDocumentedHash(t *testing.T) {
	cells, err := Cells(Matrix{Axes: []Axis{ax("vpn", "running"), ax("macos", "15.3")}})
	require.NoError(t, err)
	require.Len(t, cells, 1)
	// sorted "key=value\n" pairs; reproducible with
	//   printf 'macos=15.3\nvpn=running\n' | sha256sum | cut -c1-12
	sum := sha256.Sum256([]byte("macos=15.3\nvpn=running\n"))
	assert.Equal(t, hex.EncodeToString(sum[:])[:12], cells[0].ID)
	assert.Len(t, cells[0].ID, 12)
}

func idsByLabelSet(t *testing.T, m Matrix) map[string]string {
	t.Helper()
	cells, err := Cells(m)
	require.NoError(t, err)
	out := make(map[string]string, len(cells))
	for _, c := range cells {
		// Key independent of label order: the sorted pairs.
		pairs := make([]string, 0, len(c.Values))
		for _, k := range sortedKeys(c.Values) {
			pairs = append(pairs, k+"="+c.Values[k])
		}
		out[strings.Join(pairs, ",")] = c.ID
	}
	return out
}

func TestCellIDStableUnderReordering(t *testing.T) {
	base := Matrix{
		Axes:    []Axis{ax("macos", "15.3", "15.4", "26.0"), ax("vpn", "running", "stopped"), ax("path", "1->3", "2->3")},
		Include: []map[string]string{{"macos": "26.0", "beta": "true"}},
	}
	want := idsByLabelSet(t, base)
	require.Len(t, want, 12)

	variants := map[string]Matrix{
		"axes reordered": {
			Axes:    []Axis{ax("path", "1->3", "2->3"), ax("macos", "15.3", "15.4", "26.0"), ax("vpn", "running", "stopped")},
			Include: base.Include,
		},
		"values reordered": {
			Axes:    []Axis{ax("macos", "26.0", "15.3", "15.4"), ax("vpn", "stopped", "running"), ax("path", "2->3", "1->3")},
			Include: base.Include,
		},
		"both reordered, repeat changed": {
			Axes:    []Axis{ax("vpn", "stopped", "running"), ax("path", "2->3", "1->3"), ax("macos", "15.4", "26.0", "15.3")},
			Include: base.Include,
			Repeat:  3,
		},
	}
	for name, m := range variants {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, want, idsByLabelSet(t, m))
		})
	}

	// A new value does not change the IDs of existing cells.
	t.Run("value added", func(t *testing.T) {
		m := base
		m.Axes = []Axis{ax("macos", "15.3", "15.4", "26.0", "26.1"), base.Axes[1], base.Axes[2]}
		got := idsByLabelSet(t, m)
		for k, id := range want {
			assert.Equal(t, id, got[k], k)
		}
	})
}

func TestCellsDeduplicatesIdenticalCombinations(t *testing.T) {
	cells, err := Cells(Matrix{
		Axes: []Axis{ax("os", "a", "b")},
		Include: []map[string]string{
			{"os": "c"},
			{"os": "c"}, // GitHub would run {os: c} twice; we keep one cell
			{"os": "d", "x": "1"},
			{"x": "1", "os": "d"},
		},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"os=a", "os=b", "os=c", "os=d x=1"}, labelsOf(cells))
	seen := map[string]bool{}
	for _, c := range cells {
		assert.False(t, seen[c.ID], "duplicate ID %s", c.ID)
		seen[c.ID] = true
	}
}

func TestCellsErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Matrix
		want string // substrings, all must appear
	}{
		{"axis without values", Matrix{Axes: []Axis{ax("os")}}, `axis "os": no values`},
		{"duplicate axis", Matrix{Axes: []Axis{ax("os", "a"), ax("vpn", "x"), ax("os", "b")}}, `axis "os": defined twice`},
		{"duplicate value", Matrix{Axes: []Axis{ax("os", "a", "b", "a")}}, `axis "os": duplicate value "a"`},
		{"empty axis name", Matrix{Axes: []Axis{ax("", "a")}}, `axis "": empty key`},
		{"axis name with space", Matrix{Axes: []Axis{ax("mac os", "a")}}, `axis "mac os": must not contain`},
		{"axis name with =", Matrix{Axes: []Axis{ax("a=b", "a")}}, `axis "a=b"`},
		{"value with newline", Matrix{Axes: []Axis{ax("os", "a\nb")}}, `axis "os": value "a\nb"`},
		{
			"exclude names a non-axis key",
			Matrix{Axes: []Axis{ax("os", "a"), ax("vpn", "x")}, Exclude: []map[string]string{{"os": "a"}, {"color": "red"}}},
			`exclude[1]: key "color" is not an axis (axes: os, vpn)`,
		},
		{
			"exclude names an include-only key",
			Matrix{Axes: []Axis{ax("os", "a")}, Include: []map[string]string{{"color": "red"}}, Exclude: []map[string]string{{"color": "red"}}},
			`exclude[0]: key "color" is not an axis`,
		},
		{"empty exclude", Matrix{Axes: []Axis{ax("os", "a")}, Exclude: []map[string]string{{}}}, `exclude[0]: empty entry`},
		{"empty include", Matrix{Axes: []Axis{ax("os", "a")}, Include: []map[string]string{{"x": "1"}, {}}}, `include[1]: empty entry`},
		{"include bad key", Matrix{Include: []map[string]string{{"a,b": "1"}}}, `include[0]: key "a,b"`},
		{"include bad value", Matrix{Include: []map[string]string{{"a": "1\n"}}}, `include[0]: key "a": value`},
		{
			"too many cells",
			Matrix{Axes: []Axis{
				ax("a", tenValues()...), ax("b", tenValues()...), ax("c", tenValues()...),
				ax("d", tenValues()...), ax("e", tenValues()...), ax("f", tenValues()...), ax("g", tenValues()...),
			}},
			"exceeds 1000000 cells",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Cells(tt.m)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			_, err = Expand(tt.m)
			require.Error(t, err)
		})
	}
}

func tenValues() []string {
	v := make([]string, 10)
	for i := range v {
		v[i] = fmt.Sprint(i)
	}
	return v
}

func TestExpandRepeatIsRepeatMajor(t *testing.T) {
	m := Matrix{Axes: []Axis{ax("os", "a", "b", "c")}, Repeat: 2}
	p, err := Expand(m)
	require.NoError(t, err)
	require.Len(t, p.Cells, 3)

	var got []string
	for _, a := range p.Attempts {
		got = append(got, fmt.Sprintf("%s r%d", a.Cell.Label, a.Repeat))
	}
	assert.Equal(t, []string{"os=a r1", "os=b r1", "os=c r1", "os=a r2", "os=b r2", "os=c r2"}, got)
	assert.Equal(t, p.Cells[1].ID+"-r2", p.Attempts[4].ID())

	for _, r := range []int{0, -3, 1} {
		p, err := Expand(WithRepeat(m, r))
		require.NoError(t, err)
		assert.Len(t, p.Attempts, 3, "repeat %d", r)
	}
	p, err = Expand(WithRepeat(m, 4))
	require.NoError(t, err)
	assert.Len(t, p.Attempts, 12)

	_, err = Expand(WithRepeat(m, MaxAttempts))
	require.ErrorContains(t, err, "exceeds")
}

func TestExpandDeterministic(t *testing.T) {
	m := Matrix{
		Axes:    []Axis{ax("a", "1", "2", "3"), ax("b", "x", "y")},
		Include: []map[string]string{{"k3": "v", "k1": "v", "k2": "v"}, {"a": "9"}},
		Exclude: []map[string]string{{"a": "2", "b": "y"}},
		Repeat:  2,
	}
	first, err := Expand(m)
	require.NoError(t, err)
	for range 20 {
		again, err := Expand(m)
		require.NoError(t, err)
		require.Equal(t, first, again)
	}
}

func TestCells100kUniqueIDs(t *testing.T) {
	if testing.Short() {
		t.Skip("100k cells")
	}
	cells, err := Cells(bench100k())
	require.NoError(t, err) // a collision would be an error
	require.Len(t, cells, 100_000)
	seen := make(map[string]struct{}, len(cells))
	for _, c := range cells {
		seen[c.ID] = struct{}{}
	}
	assert.Len(t, seen, len(cells))
	assert.Equal(t, "a=a0 b=b0 c=c0 d=d0 e=e0", cells[0].Label)
	assert.Equal(t, "a=a9 b=b9 c=c9 d=d9 e=e9", cells[len(cells)-1].Label)
}
