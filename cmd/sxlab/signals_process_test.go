//go:build unix

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// signalWorkspace is a folder holding the demo at time scale scale, its
// runs under runs/, and an empty tmp/ that the process gets as $TMPDIR.
type signalWorkspace struct {
	root, runs, tmp string
}

func newSignalWorkspace(t *testing.T) signalWorkspace {
	t.Helper()
	w := signalWorkspace{root: t.TempDir()}
	w.runs, w.tmp = filepath.Join(w.root, "runs"), filepath.Join(w.root, "tmp")
	require.NoError(t, os.MkdirAll(w.tmp, 0o755))
	src, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	for name, scale := range map[string]string{"slow.yaml": "1", "instant.yaml": "0"} {
		cfg := regexp.MustCompile(`time_scale: [0-9.]+`).ReplaceAllString(string(src), "time_scale: "+scale)
		cfg = regexp.MustCompile(`runs_dir: \S+`).ReplaceAllString(cfg, "runs_dir: "+w.runs)
		require.NoError(t, os.WriteFile(filepath.Join(w.root, name), []byte(cfg), 0o644))
	}
	require.NoError(t, os.CopyFS(filepath.Join(w.root, "examples", "pkg"), os.DirFS("../../examples/pkg")))
	return w
}

// start runs the sxlab binary in w, in a process group of its own (as a
// CI job's shell would), with $TMPDIR pointing at w.tmp.
func (w signalWorkspace) start(t *testing.T, ctx context.Context, bin string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = w.root
	cmd.Env = append(os.Environ(), "TMPDIR="+w.tmp, "CI=", "BUILDKITE_PARALLEL_JOB=", "BUILDKITE_PARALLEL_JOB_COUNT=", "CI_NODE_INDEX=", "CI_NODE_TOTAL=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	require.NoError(t, cmd.Start())
	return cmd, stdout, stderr
}

// machinesDir is where the process keeps its simulated Macs.
func (w signalWorkspace) machinesDir() string {
	return filepath.Join(w.tmp, filepath.Base(simMachinesDir()))
}

// tmpLeft lists what is in $TMPDIR but the (empty) machines' folder.
func (w signalWorkspace) tmpLeft(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(w.tmp)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.Name() != filepath.Base(w.machinesDir()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// machines lists the simulated Macs' folders of the workspace's runs.
func (w signalWorkspace) machines(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(w.machinesDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// bootingSlots counts the slots whose machine the plain progress shows
// booting: a simulated Mac's tree is in the process's memory, so the
// progress is where a cloned machine shows.
func bootingSlots(stderr *syncBuffer) int {
	slots := map[string]bool{}
	for _, m := range regexp.MustCompile(`(local#\d+) [^\n]*: boot`).FindAllStringSubmatch(stderr.String(), -1) {
		slots[m[1]] = true
	}
	return len(slots)
}

// waitForMachines waits until the run has cloned a machine, so a signal
// lands in the middle of attempts.
func (w signalWorkspace) waitForMachines(t *testing.T, stderr *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for bootingSlots(stderr) == 0 {
		require.True(t, time.Now().Before(deadline), "no machine was cloned; stderr:\n%s", stderr)
		time.Sleep(20 * time.Millisecond)
	}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	return ee.ExitCode()
}

// TestSignalsStopARunInOrder builds sxlab and interrupts real runs of the
// demo on simulated Macs running in real time: two Ctrl-Cs 100 ms apart,
// and GNU timeout's expiry (SIGTERM to the process, then to its whole
// group). Each must stop in order — summary printed, journal and reports
// written, no machine folder or temporary file left — rather than exit
// at once. A run killed outright leaves no machine folders (their trees
// are in memory); the next run reaps those an older sxlab left.
func TestSignalsStopARunInOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sxlab and runs it in real time")
	}
	bin := filepath.Join(t.TempDir(), "sxlab")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	interrupts := map[string]struct {
		args []string
		// interrupt signals the run and says whether the second signal
		// (if any) came while the stop was still under way.
		interrupt func(t *testing.T, pid int, stderr *syncBuffer) (during bool)
		absorbed  bool // the second signal must be seen and absorbed
	}{
		// The process is frozen between the two, so it cannot finish its
		// orderly stop before the second arrives: that one is always
		// seen, 100 ms (and a little polling) after the first.
		"two SIGINTs 100 ms apart": {
			interrupt: func(t *testing.T, pid int, stderr *syncBuffer) bool {
				require.NoError(t, syscall.Kill(pid, syscall.SIGINT))
				// Freeze it the moment it says so: the orderly stop of
				// in-memory machines can be over in milliseconds.
				deadline := time.Now().Add(time.Minute)
				for !strings.Contains(stderr.String(), "interrupted: stopping") {
					require.True(t, time.Now().Before(deadline), "stderr never said it was stopping:\n%s", stderr)
					runtime.Gosched()
				}
				require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
				time.Sleep(100 * time.Millisecond) // what it wrote before the freeze arrives
				finished := strings.Contains(stderr.String(), stopFinished)
				require.NoError(t, syscall.Kill(pid, syscall.SIGINT))
				require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
				return !finished
			},
			absorbed: true,
		},
		// GNU timeout(1) without --foreground, for real: on expiry it
		// signals the child, then the child's whole process group.
		"GNU timeout": {
			args: []string{"timeout", "--preserve-status", "5s"},
		},
	}
	for name, tc := range interrupts {
		t.Run(name, func(t *testing.T) {
			// A second signal that came after the stop had finished tests
			// nothing (the freeze came too late): such a try is run again.
			for try := 1; ; try++ {
				if interruptOnce(t, bin, tc.args, tc.interrupt, tc.absorbed) {
					return
				}
				require.Less(t, try, 3, "in %d tries the run was never frozen before its stop finished", try)
				t.Logf("try %d: the stop had finished before the second signal; again", try)
			}
		})
	}

	t.Run("a killed run's leftovers are reaped by the next run", func(t *testing.T) {
		w := newSignalWorkspace(t)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd, _, stderr := w.start(t, ctx, bin, "run", "--config", "slow.yaml", "--progress", "plain", "--only", "vpn=running")
		deadline := time.Now().Add(2 * time.Minute)
		for bootingSlots(stderr) < 4 {
			require.True(t, time.Now().Before(deadline), "the run's 4 slots did not get their machines; stderr:\n%s", stderr)
			time.Sleep(20 * time.Millisecond)
		}
		// An exit at once runs no cleanups, but the machines' trees were
		// in the process's memory: nothing of them is left on disk.
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		assert.Empty(t, w.machines(t), "a killed run leaves no machine folders")
		// What a killed older sxlab left, which kept each machine in a
		// locked folder: in the machines' folder, and in bare $TMPDIR.
		old := filepath.Join(w.machinesDir(), "sxlab-sim-sxlab-0123456789ab-r1-t2-43")
		require.NoError(t, os.MkdirAll(filepath.Join(old, "root", "Applications"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(old, ".lock"), nil, 0o644))
		legacy := filepath.Join(w.tmp, "sxlab-sim-sxlab-0123456789ab-r1-t1-42")
		require.NoError(t, os.MkdirAll(filepath.Join(legacy, "root"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(legacy, ".lock"), nil, 0o644))

		next, stdout, stderr := w.start(t, ctx, bin, "run", "--config", "instant.yaml", "--progress", "none",
			"--only", "macos=macos-15.3,path=2->3,vpn=stopped,approval=approved", "--repeat", "1")
		code := exitCode(t, next.Wait())
		assert.Equal(t, exitOK, code, "%s\n%s", stdout, stderr)
		assert.Empty(t, w.machines(t), "the next run reaps the older sxlab's machines")
		assert.Empty(t, w.tmpLeft(t), "files left in $TMPDIR")
		assert.False(t, strings.Contains(stderr.String(), "remove leftovers"), stderr.String())
	})
}

// stopFinished is the last line an interrupted run prints on stderr.
const stopFinished = "sxlab: attempts were left without a verdict"

// interruptOnce runs the slow configuration under pre (a wrapper such
// as timeout, or none), interrupts it and checks the orderly stop. It
// returns false, having checked nothing about absorption, when the
// second signal came after the stop had finished.
func interruptOnce(t *testing.T, bin string, pre []string, interrupt func(*testing.T, int, *syncBuffer) bool, absorbed bool) bool {
	t.Helper()
	w := newSignalWorkspace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append(slices.Clone(pre), bin, "run", "--config", "slow.yaml", "--progress", "plain", "--only", "vpn=running")
	if pre != nil {
		if _, err := exec.LookPath(pre[0]); err != nil {
			t.Skipf("%s is not installed", pre[0])
		}
	}
	cmd, stdout, stderr := w.start(t, ctx, args[0], args[1:]...)
	during := true
	if interrupt != nil {
		w.waitForMachines(t, stderr)
		during = interrupt(t, cmd.Process.Pid, stderr)
	}
	code := exitCode(t, cmd.Wait())
	require.NoError(t, ctx.Err(), "the run did not stop")

	assert.Equal(t, exitIncomplete, code, "interrupted attempts are left without a verdict\n%s\n%s", stdout, stderr)
	assert.NotContains(t, stderr.String(), "exiting at once")
	assert.Regexp(t, `sxlab: (interrupted|terminated): stopping`, stderr.String(), "the signal came during the run")
	if absorbed && !during {
		return false
	}
	if absorbed {
		assert.Contains(t, stderr.String(), "interrupted again within 1s of the first: taken as the same request")
	}
	m := regexp.MustCompile(`run folder: (\S+)`).FindStringSubmatch(stdout.String())
	require.NotNil(t, m, "the summary is printed\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Contains(t, stdout.String(), "without a verdict (resume with: sxlab run --resume")
	for _, f := range []string{"run.json", "plan.json", "results.jsonl", "report.html", "junit.xml", "summary.md"} {
		assert.FileExists(t, filepath.Join(m[1], f))
	}
	assert.Empty(t, w.machines(t), "simulated machines' folders left")
	assert.Empty(t, w.tmpLeft(t), "files left in $TMPDIR")
	return true
}
