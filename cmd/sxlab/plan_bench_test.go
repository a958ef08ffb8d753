package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// bigPlanConfig is the demo configuration with three more axes, 10 × 10 ×
// 84 values: 100,800 cells.
func bigPlanConfig(b *testing.B) string {
	b.Helper()
	data, err := os.ReadFile(demoConfig)
	if err != nil {
		b.Fatal(err)
	}
	values := func(prefix string, n int) string {
		v := make([]string, n)
		for i := range v {
			v[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return "[" + strings.Join(v, ", ") + "]"
	}
	extra := fmt.Sprintf("\n    a: %s\n    b: %s\n    c: %s", values("a", 10), values("b", 10), values("c", 84))
	approval := regexp.MustCompile(`(?m)^    approval: \[.*$`)
	cfg := approval.ReplaceAllStringFunc(string(data), func(line string) string { return line + extra })
	// Package paths are relative to the configuration's folder.
	cfg = strings.ReplaceAll(cfg, "examples/pkg/", filepath.Join(filepath.Dir(must(filepath.Abs(demoConfig))), "examples", "pkg")+"/")
	path := filepath.Join(b.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkPlan100k is `sxlab plan` of 100,800 cells (repeat 1) in each
// format, written to a file as a shell redirect would: every write is a
// system call unless stdout is buffered. The goal is ≤ 0.3 s per format.
func BenchmarkPlan100k(b *testing.B) {
	cfg := bigPlanConfig(b)
	for _, format := range []string{"table", "json", "github-matrix"} {
		b.Run(format, func(b *testing.B) {
			out, err := os.Create(filepath.Join(b.TempDir(), "out"))
			if err != nil {
				b.Fatal(err)
			}
			defer out.Close()
			args := []string{"plan", "--config", cfg, "--format", format, "--repeat", "1"}
			if format == "github-matrix" {
				args = append(args, "--shards", "4")
			}
			for b.Loop() {
				if _, err := out.Seek(0, 0); err != nil {
					b.Fatal(err)
				}
				var errb strings.Builder
				if code := run(context.Background(), args, out, &errb); code != 0 {
					b.Fatalf("exit %d: %s", code, errb.String())
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/plan")
		})
	}
}
