package vz

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/cmd/sxlab-agent/launchd"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

// goldenOf loads the test lab's golden bundle.
func goldenOf(t *testing.T, l *testLab) *Bundle {
	t.Helper()
	b, err := LoadBundle(filepath.Join(l.store, "sonoma"))
	require.NoError(t, err)
	return b
}

func workerLog(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, WorkerLogFile))
	require.NoError(t, err)
	return string(data)
}

func TestWarmSavesAStateThatClonesRestore(t *testing.T) {
	l := newTestLab(t, true) // an old state, from before the last boot
	p := l.provider(t, "run1", "ok")
	golden := goldenOf(t, l)
	l.lease(t, golden.Config.MACAddress, "192.168.64.9")

	var got []guest.Endpoint
	res, err := p.Warm(t.Context(), l.img, "sonoma", WarmSteps{Prepare: func(_ context.Context, ep guest.Endpoint) error {
		got = append(got, ep)
		return nil
	}})
	require.NoError(t, err)
	assert.Equal(t, []guest.Endpoint{{Addr: "192.168.64.9:22", User: "admin", Password: "admin"}}, got,
		"prepare logs in to the golden itself, at its own MAC's address")
	assert.True(t, res.ReplacedState, "the old state no longer fits the booted disk")
	assert.Equal(t, golden.Config.MACAddress, res.MAC)

	state, err := os.ReadFile(golden.Path(StateFile))
	require.NoError(t, err)
	assert.Equal(t, "fake saved state", string(state), "the state the VM saved, not the old one")
	assert.EqualValues(t, len(state), res.StateBytes)
	assert.False(t, exists(golden.Path(warmingStateFile)))
	assert.False(t, exists(golden.Path(SocketFile)), "the worker has gone")
	log := workerLog(t, golden.Dir)
	assert.Contains(t, log, "saved-state device set", "booted as a restore will rebuild it")
	assert.Contains(t, log, " save\n")

	// The warmed golden's clone restores with the golden's MAC.
	m := clone(t, p, l.img, "sxlab-aaa-r1-t1")
	assert.Equal(t, golden.Config.MACAddress, m.MAC())
	require.NoError(t, m.Start(t.Context()))
	assert.True(t, m.Restored())
}

func TestWarmThatFailsShutsTheGuestDownAndLeavesNoState(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(ctx context.Context, cancel context.CancelFunc) error
		want    string
	}{
		{"prepare fails", func(context.Context, context.CancelFunc) error {
			return errors.New("images.macos-14.prepare[0]: exit 1")
		}, "prepare: images.macos-14.prepare[0]: exit 1"},
		{"interrupted", func(ctx context.Context, cancel context.CancelFunc) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLab(t, false)
			var (
				mu        sync.Mutex
				shutdowns []string
			)
			p := l.provider(t, "run1", "ok", func(o *Options) {
				o.ShutdownTimeout = 100 * time.Millisecond
				o.Shutdown = func(ctx context.Context, ep guest.Endpoint) error {
					mu.Lock()
					defer mu.Unlock()
					shutdowns = append(shutdowns, ep.Addr)
					return ctx.Err()
				}
			})
			golden := goldenOf(t, l)
			l.lease(t, golden.Config.MACAddress, "192.168.64.9")

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			_, err := p.Warm(ctx, l.img, "sonoma", WarmSteps{Prepare: func(ctx context.Context, _ guest.Endpoint) error { return tc.prepare(ctx, cancel) }})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "warm image macos-14 ("+golden.Dir+")")
			assert.Contains(t, err.Error(), tc.want)
			mu.Lock()
			assert.Equal(t, []string{"192.168.64.9:22"}, shutdowns, "a golden's disk is kept: its guest is shut down, not unplugged")
			mu.Unlock()
			after, err := LoadBundle(golden.Dir)
			require.NoError(t, err)
			assert.False(t, after.HasSavedState)
			assert.False(t, exists(golden.Path(warmingStateFile)))
			pid, err := lockHolder(golden.Path(ConfigFile))
			require.NoError(t, err)
			assert.Zero(t, pid, "no worker runs the golden any more")
		})
	}
}

func TestWarmAndClonesOfTheSameGoldenExcludeEachOther(t *testing.T) {
	l := newTestLab(t, true)
	p := l.provider(t, "run1", "ok")
	golden := goldenOf(t, l)
	l.lease(t, golden.Config.MACAddress, "192.168.64.9")

	// While the golden is being warmed, another run cannot clone it.
	_, err := p.Warm(t.Context(), l.img, "sonoma", WarmSteps{Prepare: func(ctx context.Context, _ guest.Endpoint) error {
		_, err := l.provider(t, "run2", "ok").Clone(ctx, l.img, "sxlab-bbb-r1-t1")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "every golden is running in a worker")
		assert.Contains(t, err.Error(), "sxlab image warm")
		return nil
	}})
	require.NoError(t, err)

	// While a clone restores it (so uses its MAC), it cannot be warmed.
	m := clone(t, p, l.img, "sxlab-aaa-r1-t1")
	require.NoError(t, m.Start(t.Context()))
	require.True(t, m.Restored())
	_, err = l.provider(t, "run3", "ok").Warm(t.Context(), l.img, "sonoma", WarmSteps{Prepare: func(context.Context, guest.Endpoint) error {
		t.Error("prepare must not run")
		return nil
	}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a clone restoring it (MAC "+golden.Config.MACAddress+") is running")
	assert.Contains(t, err.Error(), "sxlab-run1-aaa-r1-t1")
	assert.True(t, goldenOf(t, l).HasSavedState, "a refused warm leaves the state alone")
}

func TestWarmNeedsAGoodBundle(t *testing.T) {
	l := newTestLab(t, false)
	p := l.provider(t, "run1", "ok")
	img := l.img
	img.VZ = nil
	_, err := p.Warm(t.Context(), img, "", WarmSteps{Prepare: func(context.Context, guest.Endpoint) error { return nil }})
	assert.ErrorContains(t, err, "images.macos-14.vz.bundle")

	require.NoError(t, os.Remove(filepath.Join(l.store, "sonoma", NVRAMFile)))
	_, err = p.Warm(t.Context(), l.img, "sonoma", WarmSteps{Prepare: func(context.Context, guest.Endpoint) error { return nil }})
	assert.ErrorContains(t, err, "nvram.bin")
	assert.ErrorIs(t, err, ErrMissingFile)
}

// pool makes a second golden of the lab's image with its own MAC, warmed.
func pool(t *testing.T, l *testLab) (a, b *Bundle) {
	t.Helper()
	dst, err := CopyBundle(l.store, "sonoma", "sonoma-b", rand.Reader)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dst, StateFile), []byte("saved"), 0o644))
	a = goldenOf(t, l)
	b, err = LoadBundle(dst)
	require.NoError(t, err)
	return a, b
}

func TestCopyBundleMakesAGoldenWithItsOwnMAC(t *testing.T) {
	l := newTestLab(t, true)
	a, b := pool(t, l)
	assert.NotEqual(t, a.Config.MACAddress, b.Config.MACAddress)
	assert.Equal(t, a.Config.HardwareModel, b.Config.HardwareModel)
	assert.Equal(t, a.Config.MachineIdentifier, b.Config.MachineIdentifier)
	assert.Equal(t, a.DiskBytes, b.DiskBytes)

	_, err := CopyBundle(l.store, "sonoma", "sonoma-b", rand.Reader)
	assert.ErrorContains(t, err, "exists already")
	_, err = CopyBundle(l.store, "sonoma", "clones", rand.Reader)
	assert.ErrorContains(t, err, "not a usable bundle name")
	_, err = CopyBundle(l.store, "nope", "x", rand.Reader)
	assert.ErrorIs(t, err, ErrMissingFile)
	entries, err := os.ReadDir(l.store)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), "."), "no half-made bundle is left: %s", e.Name())
	}
}

func TestAPoolOfWarmGoldensRestoresOneCloneEach(t *testing.T) {
	l := newTestLab(t, true)
	a, b := pool(t, l)
	p := l.provider(t, "run1", "ok")
	img := l.img
	img.VZ = &vm.VZImage{Bundles: []string{"sonoma", "sonoma-b"}}
	assert.Equal(t, 2, limitOf(p.MaxMachines(img)), "two warm goldens: two clones restore at once")

	first := clone(t, p, img, "sxlab-aaa-r1-t1")
	require.NoError(t, first.Start(t.Context()))
	second := clone(t, p, img, "sxlab-bbb-r1-t1")
	require.NoError(t, second.Start(t.Context()))
	assert.Equal(t, a.Config.MACAddress, first.MAC())
	assert.Equal(t, b.Config.MACAddress, second.MAC())
	assert.True(t, first.Restored())
	assert.True(t, second.Restored())

	// A third (another run on the host) finds both MACs taken: cold boot.
	third := clone(t, l.provider(t, "run2", "ok"), img, "sxlab-ccc-r1-t1")
	assert.NotContains(t, []string{a.Config.MACAddress, b.Config.MACAddress}, third.MAC())
	require.NoError(t, third.Start(t.Context()))
	assert.False(t, third.Restored())
}

func TestMaxMachines(t *testing.T) {
	l := newTestLab(t, true)
	_, b := pool(t, l)
	img := l.img
	assert.Equal(t, 1, limitOf(l.provider(t, "run1", "ok").MaxMachines(img)), "one warm golden restores into one clone at a time")
	assert.Equal(t, 0, limitOf(l.provider(t, "run1", "ok", func(o *Options) { o.CanRestore = func() bool { return false } }).MaxMachines(img)),
		"a host that cannot restore boots every clone cold, with fresh MACs")

	require.NoError(t, os.Remove(b.Path(StateFile)))
	img.VZ = &vm.VZImage{Bundles: []string{"sonoma", "sonoma-b"}}
	assert.Equal(t, 0, limitOf(l.provider(t, "run1", "ok").MaxMachines(img)), "a cold golden in the pool takes the overflow")
}

func TestWarmGoldensOfOneImageMustNotShareAMAC(t *testing.T) {
	l := newTestLab(t, true)
	require.NoError(t, os.CopyFS(filepath.Join(l.store, "twin"), os.DirFS(filepath.Join(l.store, "sonoma"))))
	img := l.img
	img.VZ = &vm.VZImage{Bundles: []string{"sonoma", "twin"}}
	_, err := l.provider(t, "run1", "ok").Clone(t.Context(), img, "sxlab-aaa-r1-t1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "have the same macAddress")
	assert.Contains(t, err.Error(), "sxlab image copy")
}

// limitOf is MaxMachines's limit, without its reason.
func limitOf(n int, _ string) int { return n }

func TestTheAgentWarmInstallsListensWhereTheLabDials(t *testing.T) {
	// The agent cannot import vm (guestbin's cache key covers only
	// cmd/sxlab-agent), so the two constants are held equal here.
	assert.Equal(t, vm.AgentPort, uint32(launchd.Port), "the LaunchDaemon's --port is the vsock port the worker connects to")
}

// installGuest is the golden's sshd as the agent install sees it: it
// records each upload and command, and whether a state had been saved
// by then.
type installGuest struct {
	guest.Guest
	golden    *Bundle
	events    *[]string
	mu        *sync.Mutex
	fail      map[string]guest.Result // command → its non-zero result
	uploadErr error
}

func (g *installGuest) note(ev string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if exists(g.golden.Path(warmingStateFile)) || exists(g.golden.Path(StateFile)) {
		ev += " (after a save!)"
	}
	*g.events = append(*g.events, ev)
}

func (g *installGuest) Upload(_ context.Context, local, remote string, _ guest.Progress) error {
	g.note("upload " + filepath.Base(local) + " " + remote)
	return g.uploadErr
}

func (g *installGuest) Run(_ context.Context, c guest.Cmd) (guest.Result, error) {
	g.note("run " + c.Line)
	if r, ok := g.fail[c.Line]; ok {
		r.Line = c.Line
		return r, nil
	}
	return guest.Result{Line: c.Line}, nil
}

func (g *installGuest) Close() error { return nil }

// agentSSHD is the guest's sshd behind the agent; each connection that
// reaches it is an event. closeAtOnce: the agent finds no sshd.
func agentSSHD(t *testing.T, note func(string), closeAtOnce bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			note("vsock connection")
			if !closeAtOnce {
				_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.8\r\n")
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

type agentLab struct {
	*testLab
	golden    *Bundle
	events    []string
	mu        sync.Mutex
	shutdowns []string
	binary    string
}

// newAgentLab is a cold golden whose guest has an agent forwarding to
// addr ("" for none: nothing listens on the vsock port).
func newAgentLab(t *testing.T, savedState bool) *agentLab {
	l := &agentLab{testLab: newTestLab(t, savedState)}
	l.golden = goldenOf(t, l.testLab)
	l.lease(t, l.golden.Config.MACAddress, "192.168.64.9")
	l.binary = filepath.Join(t.TempDir(), "sxlab-agent")
	require.NoError(t, os.WriteFile(l.binary, []byte("a darwin/arm64 agent"), 0o755))
	return l
}

func (l *agentLab) note(ev string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
}

func (l *agentLab) provider(t *testing.T, agentAddr string) *Provider {
	return l.testLab.provider(t, "run1", "ok", func(o *Options) {
		if agentAddr != "" {
			o.Worker = append([]string{o.Worker[0], fakeAgentEnv + "=" + agentAddr}, o.Worker[1:]...)
		}
		o.ShutdownTimeout = 100 * time.Millisecond
		o.Shutdown = func(ctx context.Context, ep guest.Endpoint) error {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.shutdowns = append(l.shutdowns, ep.Addr)
			return nil
		}
	})
}

func (l *agentLab) steps(g *installGuest) WarmSteps {
	g.golden, g.events, g.mu = l.golden, &l.events, &l.mu
	return WarmSteps{
		Prepare: func(context.Context, guest.Endpoint) error { l.note("prepare"); return nil },
		Agent: &AgentInstall{
			Binary: func(context.Context) (string, error) { return l.binary, nil },
			Dial: func(_ context.Context, ep guest.Endpoint) (guest.Guest, error) {
				l.note("log in to " + ep.Addr)
				return g, nil
			},
			Wait: 300 * time.Millisecond,
		},
	}
}

func TestWarmInstallsTheAgentAndHearsSSHDThroughItBeforeSaving(t *testing.T) {
	l := newAgentLab(t, false)
	p := l.provider(t, agentSSHD(t, l.note, false))

	res, err := p.Warm(t.Context(), l.img, "sonoma", l.steps(&installGuest{}))
	require.NoError(t, err)
	assert.True(t, res.Agent)
	assert.Equal(t, "SSH-2.0-OpenSSH_9.8", res.AgentBanner, "sshd's banner, read through worker, vsock and agent")

	want := []string{"prepare", "log in to 192.168.64.9:22", "upload sxlab-agent " + agentUpload}
	for _, line := range launchd.InstallCommands(agentUpload) {
		want = append(want, "run "+line)
	}
	want = append(want, "run rm -f "+agentUpload, "vsock connection")
	l.mu.Lock()
	assert.Equal(t, want, l.events, "upload, install and the vsock check, in order, all before any state is saved")
	l.mu.Unlock()
	assert.Contains(t, strings.Join(launchd.InstallCommands(agentUpload), "\n"), "launchctl bootstrap system "+launchd.PlistPath)

	log := workerLog(t, l.golden.Dir)
	connect, save := strings.Index(log, "connect: guest vsock port 7022 open"), strings.Index(log, " save\n")
	require.Positive(t, connect, log)
	assert.Greater(t, save, connect, "the worker connected to the agent, then saved")
	after, err := LoadBundle(l.golden.Dir)
	require.NoError(t, err)
	assert.True(t, after.HasSavedState)
	assert.Empty(t, l.shutdowns, "a saved guest is not shut down")
}

func TestWarmWhoseAgentInstallFailsShutsDownAndLeavesNoState(t *testing.T) {
	cmds := launchd.InstallCommands(agentUpload)
	bootstrap, print := cmds[len(cmds)-2], cmds[len(cmds)-1]
	for _, tc := range []struct {
		name       string
		g          *installGuest
		noAgent    bool // nothing answers on the vsock port
		agentAlone bool // the agent runs, sshd does not
		want       []string
	}{
		{"bootstrap fails", &installGuest{fail: map[string]guest.Result{bootstrap: {Exit: 5, Stderr: "Bootstrap failed: 5: Input/output error\n"}}}, false, false,
			[]string{"install sxlab-agent: " + bootstrap + ": exit 5: Bootstrap failed: 5: Input/output error"}},
		{"job not running", &installGuest{fail: map[string]guest.Result{print: {Exit: 1}}}, false, false,
			[]string{"exit 1: no output", "the LaunchDaemon com.sxlab.agent is not running: see /var/log/sxlab-agent.log in the guest"}},
		{"upload fails", &installGuest{uploadErr: errors.New("upload sxlab-agent to /tmp/sxlab-agent.upload: sftp: permission denied")}, false, false,
			[]string{"install sxlab-agent: upload sxlab-agent to /tmp/sxlab-agent.upload: sftp: permission denied"}},
		{"nothing on the vsock port", &installGuest{}, true, false,
			[]string{"check sxlab-agent: no SSH banner over vsock port 7022", "Connection reset by peer", "is the LaunchDaemon com.sxlab.agent running"}},
		{"agent without sshd", &installGuest{}, false, true,
			[]string{"check sxlab-agent: no SSH banner over vsock port 7022", "the agent closed the connection at once: sshd at 127.0.0.1:22 did not answer it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newAgentLab(t, false)
			addr := ""
			if !tc.noAgent {
				addr = agentSSHD(t, l.note, tc.agentAlone)
			}
			p := l.provider(t, addr)
			_, err := p.Warm(t.Context(), l.img, "sonoma", l.steps(tc.g))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "warm image macos-14 ("+l.golden.Dir+")")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			l.mu.Lock()
			assert.Equal(t, []string{"192.168.64.9:22"}, l.shutdowns, "the golden's guest is shut down, not unplugged")
			for _, ev := range l.events {
				assert.NotContains(t, ev, "after a save")
			}
			l.mu.Unlock()
			after, err := LoadBundle(l.golden.Dir)
			require.NoError(t, err)
			assert.False(t, after.HasSavedState, "clones of a golden without the agent must not restore a state that claims it")
			assert.False(t, exists(l.golden.Path(warmingStateFile)))
			assert.NotContains(t, workerLog(t, l.golden.Dir), " save\n")
		})
	}
}

func TestWarmWithoutAnAgentBinaryTouchesNothing(t *testing.T) {
	l := newAgentLab(t, true)
	p := l.provider(t, "")
	steps := l.steps(&installGuest{})
	steps.Agent.Binary = func(context.Context) (string, error) {
		return "", errors.New("cannot build sxlab-agent: no checkout of github.com/sxlab/sxlab found")
	}
	_, err := p.Warm(t.Context(), l.img, "sonoma", steps)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "find sxlab-agent: cannot build sxlab-agent")
	assert.Empty(t, l.events, "the golden was not booted")
	assert.True(t, goldenOf(t, l.testLab).HasSavedState, "its old state is kept")
}

func TestWarmInterruptedWhileWaitingForTheAgentSaysSo(t *testing.T) {
	l := newAgentLab(t, false)
	p := l.provider(t, "") // nothing answers: the check would wait
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	g := &installGuest{}
	steps := l.steps(g)
	steps.Agent.Wait = time.Minute
	dial := steps.Agent.Dial
	steps.Agent.Dial = func(ctx context.Context, ep guest.Endpoint) (guest.Guest, error) {
		time.AfterFunc(200*time.Millisecond, cancel) // Ctrl-C once the install is under way
		return dial(ctx, ep)
	}
	_, err := p.Warm(ctx, l.img, "sonoma", steps)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotContains(t, err.Error(), "no SSH banner", "an interrupt is not the agent's fault")
	l.mu.Lock()
	assert.Equal(t, []string{"192.168.64.9:22"}, l.shutdowns)
	l.mu.Unlock()
	assert.False(t, goldenOf(t, l.testLab).HasSavedState)
}
