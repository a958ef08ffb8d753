package matrices

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func filterPlan(t *testing.T) Plan {
	t.Helper()
	p, err := Expand(Matrix{
		Axes: []Axis{
			ax("macos", "macos-15.3", "macos-26.0"),
			ax("vpn", "running", "stopped"),
			ax("path", "1->3", "2->3"),
		},
		Include: []map[string]string{{"macos": "macos-26.0", "beta": "yes"}},
		Repeat:  2,
	})
	require.NoError(t, err)
	require.Len(t, p.Cells, 8)
	return p
}

func TestOnlySelects(t *testing.T) {
	p := filterPlan(t)
	tests := []struct {
		name  string
		exprs []string
		want  []string
	}{
		{"none: no-op", nil, labelsOf(p.Cells)},
		{"AND within an expression", []string{"vpn=running,macos=macos-15.3"}, []string{
			"macos=macos-15.3 vpn=running path=1->3",
			"macos=macos-15.3 vpn=running path=2->3",
		}},
		{"whitespace trimmed", []string{" vpn = running , macos=macos-15.3 "}, []string{
			"macos=macos-15.3 vpn=running path=1->3",
			"macos=macos-15.3 vpn=running path=2->3",
		}},
		{"OR across expressions, cell order kept", []string{"path=2->3,vpn=stopped", "beta=yes,vpn=running,path=1->3"}, []string{
			"macos=macos-15.3 vpn=stopped path=2->3",
			"macos=macos-26.0 vpn=running path=1->3 beta=yes",
			"macos=macos-26.0 vpn=stopped path=2->3 beta=yes",
		}},
		{"include-added key", []string{"beta=yes,vpn=stopped,path=1->3"}, []string{
			"macos=macos-26.0 vpn=stopped path=1->3 beta=yes",
		}},
		{"valid pairs that never co-occur", []string{"beta=yes,macos=macos-15.3"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseOnly(tt.exprs, p.Cells)
			require.NoError(t, err)
			got := p.Only(f)
			var labels []string
			if len(got.Cells) > 0 {
				labels = labelsOf(got.Cells)
			}
			assert.Equal(t, tt.want, labels)
			// Attempts follow their cells, repeat-major order preserved.
			require.Len(t, got.Attempts, 2*len(got.Cells))
			for i, a := range got.Attempts {
				assert.Equal(t, got.Cells[i%len(got.Cells)].ID, a.Cell.ID)
				assert.Equal(t, 1+i/len(got.Cells), a.Repeat)
			}
		})
	}
}

func TestOnlyZeroFilterIsNoOp(t *testing.T) {
	p := filterPlan(t)
	var f Filter
	assert.True(t, f.IsZero())
	assert.Equal(t, p, p.Only(f))
}

func TestParseOnlyErrors(t *testing.T) {
	p := filterPlan(t)
	tests := []struct {
		name  string
		exprs []string
		want  string
	}{
		{"unknown key lists sorted valid keys", []string{"vpn=running", "os=15"},
			`only "os=15": unknown key "os" (valid keys: beta, macos, path, vpn)`},
		{"unknown value lists sorted valid values", []string{"macos=15.3"},
			`only "macos=15.3": no cell has macos="15.3" (valid values for macos: macos-15.3, macos-26.0)`},
		{"value of another key", []string{"vpn=1->3"},
			`(valid values for vpn: running, stopped)`},
		{"no equals sign", []string{"vpn"}, `only "vpn": item "vpn" is not key=value`},
		{"empty key", []string{"=running"}, `only "=running": item "=running" is not key=value`},
		{"trailing comma", []string{"vpn=running,"}, `only "vpn=running,": item "" is not key=value`},
		{"empty expression", []string{""}, `only "": item "" is not key=value`},
		{"contradictory pairs", []string{"vpn=running,vpn=stopped"}, `key "vpn" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseOnly(tt.exprs, p.Cells)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestFilterString(t *testing.T) {
	p := filterPlan(t)
	f, err := ParseOnly([]string{" vpn = running ,path=1->3", "beta=yes"}, p.Cells)
	require.NoError(t, err)
	assert.Equal(t, "vpn=running,path=1->3 | beta=yes", f.String())
}

func TestWhyNoneNamesTheExcludeThatRemovedTheSelection(t *testing.T) {
	m := Matrix{
		Axes:    []Axis{ax("vpn", "running", "stopped"), ax("approval", "approved", "pending"), ax("path", "1->3", "2->3")},
		Exclude: []map[string]string{{"path": "1->3", "vpn": "stopped"}, {"vpn": "running", "approval": "pending"}},
	}
	p, err := Expand(m)
	require.NoError(t, err)
	f, err := ParseOnly([]string{"vpn=running,approval=pending"}, p.Cells)
	require.NoError(t, err, "each value exists in some cell")
	require.Empty(t, p.Only(f).Attempts)
	assert.Equal(t, []int{1}, WhyNone(m, f))

	// Two entries together remove what two expressions select.
	f, err = ParseOnly([]string{"vpn=running,approval=pending", "vpn=stopped,path=1->3"}, p.Cells)
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1}, WhyNone(m, f))

	// A filter that selects cells is not explained by any exclude.
	f, err = ParseOnly([]string{"vpn=stopped,path=2->3"}, p.Cells)
	require.NoError(t, err)
	assert.Nil(t, WhyNone(m, f))
	assert.Nil(t, WhyNone(Matrix{Axes: m.Axes}, f), "no exclude, no explanation")
}
