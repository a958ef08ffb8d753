package matrices

import (
	"fmt"
	"sort"
	"strings"
)

// Filter selects cells for `--only`. Each expression "k=v,k2=v2" keeps the
// cells matching all of its pairs; several expressions are OR-ed. The zero
// Filter keeps everything.
type Filter struct {
	exprs [][]pair
}

type pair struct{ key, val string }

// ParseOnly parses --only expressions and checks them against cells, so a
// typo is reported with the keys/values that exist instead of silently
// selecting nothing.
func ParseOnly(exprs []string, cells []Cell) (Filter, error) {
	if len(exprs) == 0 {
		return Filter{}, nil
	}
	known := make(map[string]map[string]struct{})
	for _, c := range cells {
		for k, v := range c.Values {
			vs := known[k]
			if vs == nil {
				vs = make(map[string]struct{})
				known[k] = vs
			}
			vs[v] = struct{}{}
		}
	}

	var f Filter
	for _, expr := range exprs {
		var and []pair
		for item := range strings.SplitSeq(expr, ",") {
			k, v, ok := strings.Cut(item, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || k == "" {
				return Filter{}, fmt.Errorf("only %q: item %q is not key=value", expr, strings.TrimSpace(item))
			}
			vs, ok := known[k]
			if !ok {
				return Filter{}, fmt.Errorf("only %q: unknown key %q (valid keys: %s)", expr, k, strings.Join(sortedSet(known), ", "))
			}
			if _, ok := vs[v]; !ok {
				return Filter{}, fmt.Errorf("only %q: no cell has %s=%q (valid values for %s: %s)", expr, k, v, k, strings.Join(sortedSet(vs), ", "))
			}
			for _, p := range and {
				if p.key == k && p.val != v {
					return Filter{}, fmt.Errorf("only %q: key %q given twice with different values (use two --only expressions to OR them)", expr, k)
				}
			}
			and = append(and, pair{key: k, val: v})
		}
		f.exprs = append(f.exprs, and)
	}
	return f, nil
}

func sortedSet[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// IsZero reports whether f keeps everything.
func (f Filter) IsZero() bool { return len(f.exprs) == 0 }

// Match reports whether c is selected by f.
func (f Filter) Match(c Cell) bool {
	if len(f.exprs) == 0 {
		return true
	}
	for _, and := range f.exprs {
		if matchAll(c.Values, and) {
			return true
		}
	}
	return false
}

func matchAll(values map[string]string, and []pair) bool {
	for _, p := range and {
		if v, ok := values[p.key]; !ok || v != p.val {
			return false
		}
	}
	return true
}

// String renders f in canonical form ("a=1,b=2 | c=3"), for logs.
func (f Filter) String() string {
	var sb strings.Builder
	for i, and := range f.exprs {
		if i > 0 {
			sb.WriteString(" | ")
		}
		for j, p := range and {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(p.key + "=" + p.val)
		}
	}
	return sb.String()
}

// Only keeps the cells matching f and their attempts, in order. An empty
// filter returns p unchanged. The result may be empty when no cell satisfies
// every pair of any expression; the caller decides whether that is an error.
func (p Plan) Only(f Filter) Plan {
	if f.IsZero() {
		return p
	}
	var out Plan
	for _, c := range p.Cells {
		if f.Match(c) {
			out.Cells = append(out.Cells, c)
		}
	}
	for _, a := range p.Attempts {
		if f.Match(a.Cell) {
			out.Attempts = append(out.Attempts, a)
		}
	}
	return out
}

// WhyNone says why f selects no cell of m when every value it names
// exists: the exclude entries (by index, as in the configuration) that
// remove every combination f would select. It returns nil when nothing in
// m's exclude explains it (the pairs simply never meet in one cell).
func WhyNone(m Matrix, f Filter) []int {
	if f.IsZero() || len(m.Exclude) == 0 {
		return nil
	}
	all := m
	all.Exclude = nil
	cells, err := Cells(all)
	if err != nil {
		return nil
	}
	hit := map[int]bool{}
	for _, c := range cells {
		if !f.Match(c) {
			continue
		}
		for i, ex := range m.Exclude {
			if excludes(ex, c.Values) {
				hit[i] = true
				break
			}
		}
	}
	out := make([]int, 0, len(hit))
	for i := range m.Exclude {
		if hit[i] {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// excludes reports whether an exclude entry matches a combination: every
// key it names has its value there.
func excludes(ex, values map[string]string) bool {
	for k, v := range ex {
		if values[k] != v {
			return false
		}
	}
	return len(ex) > 0
}
