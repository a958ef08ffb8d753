//go:build unix

package report

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// envRenderDir makes the test binary a child that only renders the run
// folder it names (TestRenderChild), so that its peak memory is the
// report's alone, not the benchmark's that built the folder.
const envRenderDir = "SXLAB_BENCH_RENDER_DIR"

// TestRenderChild is the child BenchmarkReport2400 starts; it does
// nothing in an ordinary test run.
func TestRenderChild(t *testing.T) {
	dir := os.Getenv(envRenderDir)
	if dir == "" {
		t.Skip("only run by BenchmarkReport2400")
	}
	require.NoError(t, Write(dir))
}

// BenchmarkReport2400 renders the reports of a 2,400-attempt run folder
// (24 cells × 100 repeats, the demo's files; scaleRun) and prints what a
// person and the machine pay for them: report.html's size, the size of
// every page Write made, and the peak resident memory of a process that
// does nothing but Write (getrusage's ru_maxrss of the child).
// Goals (issue 15): report.html under 2 MB, peak under 64 MiB.
//
//	go test -run '^$' -bench Report2400 -benchtime 3x ./report/
func BenchmarkReport2400(b *testing.B) {
	dir := scaleRun(b, 24, 100)
	b.ResetTimer()
	var peak int64
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRenderChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envRenderDir+"="+dir)
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, "%s", out)
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		rss := int64(ru.Maxrss)
		if runtime.GOOS == "linux" {
			rss *= 1024 // kilobytes there, bytes on macOS
		}
		peak = max(peak, rss)
	}
	b.StopTimer()
	st, err := os.Stat(filepath.Join(dir, HTMLFile))
	require.NoError(b, err)
	var pages, n int64
	require.NoError(b, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && strings.HasSuffix(p, ".html") {
			pages += info.Size()
			n++
		}
		return err
	}))
	b.ReportMetric(float64(st.Size())/1e6, "report.html-MB")
	b.ReportMetric(float64(pages)/1e6, "all-pages-MB")
	b.ReportMetric(float64(n), "pages")
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
}
