package tart

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sxlab/sxlab/vm"
)

// helperEnv makes the test binary a run that clones and starts one
// machine, says so, and waits to be killed (TestReapAfterKilledRun).
const helperEnv = "SXLAB_TART_TEST_KILLED_RUN"

func TestMain(m *testing.M) {
	switch {
	case filepath.Base(os.Args[0]) == "tart":
		os.Exit(fakeTart(os.Args[1:]))
	case os.Getenv(helperEnv) != "":
		os.Exit(killedRun(os.Getenv(helperEnv)))
	}
	// Under -race every process sleeps a second before it exits; the fake
	// tart is this binary, run for every tart command.
	_ = os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// lab is a tart home with the fake tart and one golden VM.
type lab struct {
	t      *testing.T
	home   string
	binary string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "tart")
	require.NoError(t, os.Symlink(exe, bin))
	home := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(home, "vms", "golden"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(home, "vms", "golden", "config.json"), []byte(`{"macAddress":"06:e8:a3:b0:23:b4"}`), 0o644))
	l := &lab{t: t, home: home, binary: bin}
	t.Cleanup(l.killRuns)
	return l
}

// killRuns ends any fake tart run a failed test left behind.
func (l *lab) killRuns() {
	pids, _ := filepath.Glob(filepath.Join(l.home, "vms", "*", fakePID))
	for _, p := range pids {
		b, _ := os.ReadFile(p)
		if pid, err := strconv.Atoi(string(b)); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// twoVMProcesses is `ps -A -o comm=` with two framework VMs running.
func twoVMProcesses(context.Context) ([]byte, error) {
	return []byte(strings.Repeat("/System/Library/Frameworks/Virtualization.framework/Versions/A/XPCServices/com.apple.Virtualization.VirtualMachine.xpc/Contents/MacOS/com.apple.Virtualization.VirtualMachine\n", 2)), nil
}

func (l *lab) provider(o Options) *Provider {
	l.t.Helper()
	o.Binary, o.Home = l.binary, l.home
	if o.PS == nil {
		o.PS = twoVMProcesses
	}
	p, err := NewProvider(o)
	require.NoError(l.t, err)
	return p
}

func (l *lab) script(s fakeScript) {
	l.t.Helper()
	b, err := json.Marshal(s)
	require.NoError(l.t, err)
	require.NoError(l.t, os.WriteFile(filepath.Join(l.home, fakeScriptF), b, 0o644))
}

// calls are the fake's recorded invocations, as command lines.
func (l *lab) calls() []string {
	l.t.Helper()
	f, err := os.Open(filepath.Join(l.home, fakeCalls))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var args []string
		require.NoError(l.t, json.Unmarshal(sc.Bytes(), &args))
		out = append(out, strings.Join(args, " "))
	}
	return out
}

func (l *lab) vms() []string {
	entries, _ := os.ReadDir(filepath.Join(l.home, "vms"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func image() vm.Image {
	return vm.Image{Name: "macos-15", User: "admin", Password: "admin", Tart: &vm.TartImage{VM: "golden"}}
}

// sameCalls compares tart command lines in order, except that tart run
// (a child that lives on) and the first tart ip may be recorded either
// way round.
func sameCalls(t *testing.T, want, got []string) {
	t.Helper()
	if len(got) > 2 && len(want) > 2 && strings.HasPrefix(got[1], "ip ") {
		got = append([]string{got[0], got[2], got[1]}, got[3:]...)
	}
	assert.Equal(t, want, got)
}

func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func TestNormalAttempt(t *testing.T) {
	noLeaks(t)
	l := newLab(t)
	p := l.provider(Options{})
	ctx := t.Context()

	m, err := p.NewMachine(ctx, image(), "sxlab-0123456789ab-r1-t1")
	require.NoError(t, err)
	assert.Equal(t, "sxlab-0123456789ab-r1-t1", m.Name())
	assert.Regexp(t, `^sxlab-0123456789ab-r1-t1-[0-9a-f]{6}$`, m.VM(), "the run's name plus a random part")
	assert.FileExists(t, filepath.Join(l.home, lockDirName, m.VM()+".lock"))

	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, "192.168.64.7:22", ep.Addr)
	assert.Equal(t, "admin", ep.User)
	assert.Equal(t, "admin", ep.Password)
	assert.False(t, ep.Simulated)
	assert.Empty(t, ep.HostKey, "learnt on first use by the caller")

	require.NoError(t, m.Stop(ctx))
	require.NoError(t, m.Delete(ctx))
	require.NoError(t, m.Delete(ctx), "Delete twice is fine")

	sameCalls(t, []string{
		"clone golden " + m.VM(),
		"run --no-graphics " + m.VM(),
		"ip --wait 300 " + m.VM(),
		"stop --timeout 30 " + m.VM(),
		"delete " + m.VM(),
	}, l.calls())
	assert.Equal(t, []string{"golden"}, l.vms(), "the clone is gone, the golden stays")
	assert.NoFileExists(t, filepath.Join(l.home, lockDirName, m.VM()+".lock"))
	assert.NoFileExists(t, filepath.Join(l.home, lockDirName, m.VM()+".run.log"))
}

func TestSuspendableRunAndSuspend(t *testing.T) {
	noLeaks(t)
	l := newLab(t)
	p := l.provider(Options{Suspendable: true, IPWait: 90 * time.Second, StopTimeout: 5 * time.Second})
	ctx := t.Context()
	m, err := p.NewMachine(ctx, image(), "warm")
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	_, err = m.Endpoint(ctx)
	require.NoError(t, err)
	require.NoError(t, m.Suspend(ctx))
	assert.FileExists(t, filepath.Join(l.home, "vms", m.VM(), fakeState), "tart saved the state")
	require.NoError(t, m.Stop(ctx), "stopping a suspended machine does nothing")
	require.NoError(t, m.Delete(ctx))
	sameCalls(t, []string{
		"clone golden " + m.VM(),
		"run --no-graphics --suspendable " + m.VM(),
		"ip --wait 90 " + m.VM(),
		"suspend " + m.VM(),
		"delete " + m.VM(),
	}, l.calls())
}

func TestIPTimeout(t *testing.T) {
	noLeaks(t)
	l := newLab(t)
	l.script(fakeScript{IPTimeout: true})
	p := l.provider(Options{IPWait: 2 * time.Minute})
	ctx := t.Context()
	m, err := p.NewMachine(ctx, image(), "slow")
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))

	_, err = m.Endpoint(ctx)
	require.ErrorIs(t, err, ErrNoIP)
	assert.Contains(t, err.Error(), m.VM())
	assert.Contains(t, err.Error(), "no IP address within 2m0s")
	assert.Contains(t, err.Error(), "sxlab doctor", "points at the lease check")
	assert.NotErrorIs(t, err, ErrExited)

	require.NoError(t, m.Delete(ctx), "the VM still runs and is stopped and deleted")
	assert.Equal(t, []string{"golden"}, l.vms())
	assert.Contains(t, l.calls(), "stop --timeout 30 "+m.VM())
}

func TestIPWaitFollowsTheDeadline(t *testing.T) {
	l := newLab(t)
	p := l.provider(Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 42*time.Second)
	defer cancel()
	m, err := p.NewMachine(ctx, image(), "deadline")
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	_, err = m.Endpoint(ctx)
	require.NoError(t, err)
	require.NoError(t, m.Delete(ctx))
	var wait int
	for _, c := range l.calls() {
		if rest, ok := strings.CutPrefix(c, "ip --wait "); ok {
			wait, _ = strconv.Atoi(strings.Fields(rest)[0])
		}
	}
	assert.LessOrEqual(t, wait, 42, "no longer than the deadline")
	assert.Greater(t, wait, 20, "the deadline, not the default of 300")
}

func TestVMLimit(t *testing.T) {
	noLeaks(t)
	l := newLab(t)
	p := l.provider(Options{})
	ctx := t.Context()
	first, err := p.NewMachine(ctx, image(), "first")
	require.NoError(t, err)
	require.NoError(t, first.Start(ctx))
	_, err = first.Endpoint(ctx)
	require.NoError(t, err)

	l.script(fakeScript{RunLimit: true})
	second, err := p.NewMachine(ctx, image(), "second")
	require.NoError(t, err)
	require.NoError(t, second.Start(ctx))
	_, err = second.Endpoint(ctx)
	require.ErrorIs(t, err, ErrVMLimit)
	msg := err.Error()
	assert.Contains(t, msg, "at most two macOS VMs run per host")
	assert.Contains(t, msg, second.VM(), "names the VM that could not start")
	assert.Contains(t, msg, "running now: "+first.VM(), "names the VMs in the way")
	assert.Contains(t, msg, "hosts[].slots")
	assert.Contains(t, msg, "VZErrorDomain Code=6", "quotes tart")

	require.NoError(t, second.Stop(ctx), "the exit was reported by Endpoint already")
	require.NoError(t, second.Delete(ctx))
	require.NoError(t, first.Delete(ctx))
	assert.Equal(t, []string{"golden"}, l.vms())
}

// TestVMLimitWithNoVMRunningIsAHostFault: tart issue 1217's host, where
// every VM is stopped and the framework still refuses one.
func TestVMLimitWithNoVMRunningIsAHostFault(t *testing.T) {
	noLeaks(t)
	l := newLab(t)
	p := l.provider(Options{PS: func(context.Context) ([]byte, error) { return []byte("/sbin/launchd\n"), nil }})
	ctx := t.Context()
	l.script(fakeScript{RunLimit: true})
	m, err := p.NewMachine(ctx, image(), "only")
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	_, err = m.Endpoint(ctx)
	require.ErrorIs(t, err, ErrVMLimit)
	hf, ok := errors.AsType[*vm.HostFault](err)
	require.True(t, ok, "%v", err)
	assert.Contains(t, hf.Reason, "while 0 tart VM(s) and 0 VM process(es) ran: the host leaked a VM slot")
	data, err := os.ReadFile(filepath.Join(l.home, lockDirName, vm.LeakFile))
	require.NoError(t, err, "recorded for sxlab doctor")
	leak, err := vm.ParseLeak(data)
	require.NoError(t, err)
	assert.Equal(t, 0, leak.VMProcesses)
	require.NoError(t, m.Stop(ctx))
	require.NoError(t, m.Delete(ctx))
}

func TestRunCrashAtStart(t *testing.T) {
	noLeaks(t)
	l := newLab(t)
	l.script(fakeScript{RunCrash: true})
	// A long IP wait: the test would hang if a crash did not end it.
	p := l.provider(Options{IPWait: 10 * time.Minute})
	ctx := t.Context()
	m, err := p.NewMachine(ctx, image(), "crashy")
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	_, err = m.Endpoint(ctx)
	require.ErrorIs(t, err, ErrExited)
	assert.Contains(t, err.Error(), m.VM())
	assert.Contains(t, err.Error(), "exit status 1")
	assert.Contains(t, err.Error(), "The virtual machine stopped unexpectedly", "the tail of its stderr")
	assert.NotErrorIs(t, err, ErrVMLimit)
	require.NoError(t, m.Delete(ctx))
	assert.Equal(t, []string{"golden"}, l.vms())
}

func TestRunCrashDuringAttempt(t *testing.T) {
	noLeaks(t)
	l := newLab(t)
	p := l.provider(Options{})
	ctx := t.Context()
	m, err := p.NewMachine(ctx, image(), "mid")
	require.NoError(t, err)
	require.NoError(t, m.Start(ctx))
	_, err = m.Endpoint(ctx)
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(filepath.Join(l.home, "vms", m.VM(), fakeCrash), nil, 0o644))
	select {
	case <-m.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("tart run did not exit")
	}
	err = m.Stop(ctx)
	require.ErrorIs(t, err, ErrExited, "an exit before Stop is an error")
	assert.Contains(t, err.Error(), m.VM())
	assert.Contains(t, err.Error(), "The virtual machine stopped unexpectedly")
	require.NoError(t, m.Stop(ctx), "reported once")
	require.NoError(t, m.Delete(ctx))
	assert.NotContains(t, l.calls(), "stop --timeout 30 "+m.VM(), "nothing left to stop")
}

func TestCloneOfMissingGolden(t *testing.T) {
	l := newLab(t)
	p := l.provider(Options{})
	img := image()
	img.Tart.VM = "sonoma-base"
	_, err := p.Clone(t.Context(), img, "x")
	require.ErrorIs(t, err, ErrNoSuchVM)
	assert.Contains(t, err.Error(), `tart VM "sonoma-base" does not exist in `+l.home)
	assert.Contains(t, err.Error(), "image macos-15")
	locks, _ := filepath.Glob(filepath.Join(l.home, lockDirName, "*.lock"))
	assert.Empty(t, locks, "a failed clone leaves no lock")

	_, err = p.Clone(t.Context(), vm.Image{Name: "simonly"}, "x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `image "simonly" has no tart.vm`)
}

func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := NewProvider(Options{Home: t.TempDir()})
	require.ErrorIs(t, err, ErrNotInstalled)
	assert.Contains(t, err.Error(), `"tart"`)

	assert.Contains(t, notInstalled("tart", "darwin", errors.New("not found")).Error(), "brew install cirruslabs/cli/tart")
	linux := notInstalled("tart", "linux", errors.New("not found")).Error()
	assert.Contains(t, linux, "only on macOS on Apple Silicon")
	assert.Contains(t, linux, "sim provider")
}

// killedRun is the helper process: a run that makes one machine and
// is then killed with SIGKILL, so no cleanup of it runs.
func killedRun(home string) int {
	p, err := NewProvider(Options{Binary: os.Getenv("SXLAB_TART_TEST_BINARY"), Home: home})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ctx := context.Background()
	m, err := p.NewMachine(ctx, image(), "sxlab-dead-r1-t1")
	if err == nil {
		err = m.Start(ctx)
	}
	if err == nil {
		_, err = m.Endpoint(ctx)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready", m.VM())
	select {}
}

func TestReapAfterKilledRun(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()

	// A dead run: its process was killed; its tart run lives on.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+l.home, "SXLAB_TART_TEST_BINARY="+l.binary)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "ready "), "helper: %s", line)
	dead := strings.TrimSpace(strings.TrimPrefix(line, "ready "))
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	f := &fake{home: l.home}
	orphan := f.pid(dead)
	require.NotZero(t, orphan, "the dead run's tart run still runs")

	// A live run's machine, and a VM sxlab did not make.
	p := l.provider(Options{})
	live, err := p.NewMachine(ctx, image(), "sxlab-live-r1-t1")
	require.NoError(t, err)
	require.NoError(t, live.Start(ctx))
	_, err = live.Endpoint(ctx)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(l.home, "vms", "sxlab-golden-by-hand"), 0o755))

	require.NoError(t, p.Reap(ctx))
	assert.ElementsMatch(t, []string{"golden", live.VM(), "sxlab-golden-by-hand"}, l.vms())
	calls := l.calls()
	assert.Contains(t, calls, "stop --timeout 30 "+dead)
	assert.Contains(t, calls, "delete "+dead)
	assert.NotContains(t, calls, "delete "+live.VM())
	assert.NotContains(t, calls, "delete sxlab-golden-by-hand", "no lock file: not sxlab's")
	assert.NoFileExists(t, filepath.Join(l.home, lockDirName, dead+".lock"))
	assert.Eventually(t, func() bool { return !alive(orphan) }, 30*time.Second, 10*time.Millisecond,
		"the orphaned tart run was stopped")

	// A second provider (another run) keeps the live machine too.
	other := l.provider(Options{})
	require.NoError(t, other.Reap(ctx))
	assert.Contains(t, l.vms(), live.VM())

	require.NoError(t, live.Delete(ctx))
	require.NoError(t, p.Reap(ctx), "nothing left to reap")
	assert.ElementsMatch(t, []string{"golden", "sxlab-golden-by-hand"}, l.vms())
}

// alive says whether pid runs; a zombie (an orphan nobody reaped yet)
// does not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(after, "Z")
}

func TestClassify(t *testing.T) {
	for text, want := range map[string]error{
		limitStderr: ErrVMLimit,
		"The number of VMs exceeds the system limit": ErrVMLimit,
		`the specified VM "x" does not exist`:        ErrNoSuchVM,
		"no IP address found, is your VM running?":   ErrNoIP,
		"something else": nil,
	} {
		assert.Equal(t, want, classify(text), text)
	}
}

func TestASuspendedGoldenRunsOneCloneAtATime(t *testing.T) {
	l := newLab(t)
	p := l.provider(Options{})
	assert.Equal(t, 0, limitOf(p.MaxMachines(image())), "a stopped golden: clones draw fresh MACs")

	require.NoError(t, os.WriteFile(filepath.Join(l.home, "vms", "golden", stateFile), []byte("saved"), 0o644))
	assert.Equal(t, 1, limitOf(p.MaxMachines(image())), "tart keeps a suspended golden's MAC in its clones")

	remote := image()
	remote.Tart.VM = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
	assert.Equal(t, 0, limitOf(p.MaxMachines(remote)))
}

// limitOf is MaxMachines's limit, without its reason.
func limitOf(n int, _ string) int { return n }
