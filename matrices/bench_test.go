package matrices

import (
	"fmt"
	"testing"
)

// bench100k is 5 axes × 10 values = 100,000 cells.
func bench100k() Matrix {
	var m Matrix
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		a := Axis{Name: name}
		for i := range 10 {
			a.Values = append(a.Values, fmt.Sprintf("%s%d", name, i))
		}
		m.Axes = append(m.Axes, a)
	}
	return m
}

func BenchmarkExpand100k(b *testing.B) {
	m := bench100k()
	b.ReportAllocs()
	for b.Loop() {
		p, err := Expand(m)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Attempts) != 100_000 {
			b.Fatalf("got %d attempts", len(p.Attempts))
		}
	}
}
