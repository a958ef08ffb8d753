package vz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

// testLab is a store with a golden bundle, and a leases file the test
// writes as bootpd would.
type testLab struct {
	store, leases string
	img           vm.Image
	arp           string // what `arp -an` prints
}

func newTestLab(t *testing.T, savedState bool) *testLab {
	t.Helper()
	root := shortTemp(t)
	store := filepath.Join(root, "s")
	golden := filepath.Join(store, "sonoma")
	require.NoError(t, os.MkdirAll(golden, 0o755))
	for _, f := range []string{ConfigFile, DiskFile, NVRAMFile} {
		data, err := os.ReadFile(filepath.Join(fixture, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(golden, f), data, 0o644))
	}
	if savedState {
		require.NoError(t, os.WriteFile(filepath.Join(golden, StateFile), []byte("saved"), 0o644))
	}
	return &testLab{store: store, leases: filepath.Join(root, "dhcpd_leases"),
		img: vm.Image{Name: "macos-14", User: "admin", Password: "admin", VZ: &vm.VZImage{Bundles: []string{"sonoma"}}}}
}

// provider makes a provider whose workers are this test binary playing
// the fake worker with behaviour.
func (l *testLab) provider(t *testing.T, run, behaviour string, edits ...func(*Options)) *Provider {
	t.Helper()
	o := Options{
		Store: l.store, Run: run,
		Worker:     []string{"/usr/bin/env", fakeWorkerEnv + "=" + behaviour, quickRaceExit(), os.Args[0]},
		LeasesFile: l.leases,
		ARP:        func(context.Context) ([]byte, error) { return []byte(l.arp), nil },
		PS: func(context.Context) ([]byte, error) {
			return []byte("  PID COMMAND\n 10 /S/L/F/Virtualization.framework/com.apple.Virtualization.VirtualMachine\n 11 /S/L/F/Virtualization.framework/com.apple.Virtualization.VirtualMachine\n"), nil
		},
		CanRestore:  func() bool { return true },
		Poll:        10 * time.Millisecond,
		StopTimeout: 5 * time.Second, ReadyTimeout: 10 * time.Second,
	}
	for _, e := range edits {
		e(&o)
	}
	p, err := NewProvider(o)
	require.NoError(t, err)
	return p
}

// lease writes a bootpd lease for mac, unpadded as bootpd prints it.
func (l *testLab) lease(t *testing.T, mac, ip string) {
	t.Helper()
	l.leaseUntil(t, mac, ip, time.Now().Add(time.Hour))
}

// leaseUntil writes a lease that expires at until.
func (l *testLab) leaseUntil(t *testing.T, mac, ip string, until time.Time) {
	t.Helper()
	hw, err := ParseMAC(mac)
	require.NoError(t, err)
	var octets []string
	for _, b := range hw {
		octets = append(octets, fmt.Sprintf("%x", b))
	}
	unpadded := strings.Join(octets, ":")
	block := fmt.Sprintf("{\n\tname=admins-Virtual-Machine\n\tip_address=%s\n\thw_address=1,%s\n\tidentifier=1,%s\n\tlease=0x%x\n}\n",
		ip, unpadded, unpadded, until.Unix())
	f, err := os.OpenFile(l.leases, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(block)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func clone(t *testing.T, p *Provider, img vm.Image, name string) *Machine {
	t.Helper()
	m, err := p.Clone(t.Context(), img, name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Delete(context.Background()) })
	return m.(*Machine)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestProviderNormalAttempt(t *testing.T) {
	l := newTestLab(t, false)
	p := l.provider(t, "run1", "ok")
	assert.Equal(t, "vz", p.Name())
	assert.False(t, p.Simulated())

	m := clone(t, p, l.img, "sxlab-0123456789ab-r1-t1")
	assert.Equal(t, filepath.Join(l.store, "clones", "sxlab-run1-0123456789ab-r1-t1"), m.Dir())
	golden, err := LoadBundle(filepath.Join(l.store, "sonoma"))
	require.NoError(t, err)
	assert.NotEqual(t, golden.Config.MACAddress, m.MAC(), "a cold-boot clone draws its own MAC")
	cb, err := LoadBundle(m.Dir())
	require.NoError(t, err)
	assert.Equal(t, m.MAC(), cb.Config.MACAddress)

	require.NoError(t, m.Start(t.Context()))
	assert.False(t, m.Restored())
	running := RunningClones(l.store)
	require.Len(t, running, 1)
	assert.Equal(t, "sxlab-run1-0123456789ab-r1-t1", running[0].Name)
	assert.NotEqual(t, os.Getpid(), running[0].PID, "the worker is its own process")

	l.lease(t, m.MAC(), "192.168.64.23")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, guest.Endpoint{Addr: "192.168.64.23:22", User: "admin", Password: "admin"}, ep)

	// A Reap by this run or another keeps a live clone.
	require.NoError(t, p.Reap(t.Context()))
	require.NoError(t, l.provider(t, "run2", "ok").Reap(t.Context()))
	assert.True(t, exists(m.Dir()))

	require.NoError(t, m.Stop(t.Context()))
	assert.Empty(t, RunningClones(l.store), "the worker has exited")
	require.NoError(t, m.Stop(t.Context()), "Stop twice is fine")
	require.NoError(t, m.Delete(t.Context()))
	assert.False(t, exists(m.Dir()))
	require.NoError(t, m.Delete(t.Context()), "Delete twice is fine")
}

func TestProviderRestoresOneCloneAtATimePerGolden(t *testing.T) {
	l := newTestLab(t, true)
	p := l.provider(t, "run1", "ok")
	golden, err := LoadBundle(filepath.Join(l.store, "sonoma"))
	require.NoError(t, err)

	first := clone(t, p, l.img, "sxlab-aaa-r1-t1")
	assert.Equal(t, golden.Config.MACAddress, first.MAC(), "the restoring clone keeps the MAC its state was saved with")
	assert.True(t, exists(filepath.Join(first.Dir(), StateFile)))
	require.NoError(t, first.Start(t.Context()))
	assert.True(t, first.Restored())

	// The golden's MAC is taken: the second clone boots cold with its own.
	second := clone(t, p, l.img, "sxlab-bbb-r1-t1")
	assert.NotEqual(t, golden.Config.MACAddress, second.MAC())
	assert.False(t, exists(filepath.Join(second.Dir(), StateFile)))
	require.NoError(t, second.Start(t.Context()))
	assert.False(t, second.Restored())

	// Another run on the host sees the MAC in use too.
	other := clone(t, l.provider(t, "run2", "ok"), l.img, "sxlab-ccc-r1-t1")
	assert.NotEqual(t, golden.Config.MACAddress, other.MAC())

	// Once the first is gone the next clone restores again.
	require.NoError(t, first.Delete(t.Context()))
	third := clone(t, p, l.img, "sxlab-ddd-r1-t1")
	assert.Equal(t, golden.Config.MACAddress, third.MAC())
}

func TestProviderNamesRunningVMsAtTheLimit(t *testing.T) {
	l := newTestLab(t, false)
	running := clone(t, l.provider(t, "run1", "ok"), l.img, "sxlab-aaa-r1-t1")
	require.NoError(t, running.Start(t.Context()))

	m := clone(t, l.provider(t, "run2", "limit"), l.img, "sxlab-bbb-r1-t1")
	err := m.Start(t.Context())
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "at most two macOS VMs run per host")
	assert.Contains(t, msg, "running: sxlab-run1-aaa-r1-t1 (worker pid ")
	assert.NotContains(t, msg, "sxlab-run2-bbb-r1-t1 (worker", "the failed VM is not one of those running")
	assert.Contains(t, msg, "2 Virtualization.framework VM process(es)")
	require.NoError(t, m.Delete(t.Context()))
	assert.False(t, exists(m.Dir()))
}

func TestProviderSaysHowToSign(t *testing.T) {
	l := newTestLab(t, false)
	m := clone(t, l.provider(t, "run1", "entitlement"), l.img, "sxlab-aaa-r1-t1")
	err := m.Start(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lacks the com.apple.security.virtualization entitlement")
	assert.Contains(t, err.Error(), "codesign --force --entitlements sxlab.entitlements -s -")
}

func TestProviderReportsAWorkerThatDies(t *testing.T) {
	l := newTestLab(t, false)
	m := clone(t, l.provider(t, "run1", "exit-at-once"), l.img, "sxlab-aaa-r1-t1")
	err := m.Start(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the vz worker exited before it listened")
	assert.Contains(t, err.Error(), "exiting before listening", "the worker's log is quoted")

	crash := clone(t, l.provider(t, "run2", "crash"), l.img, "sxlab-bbb-r1-t1")
	require.NoError(t, crash.Start(t.Context()))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = crash.Endpoint(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the VM stopped before it had an address")
	require.NoError(t, crash.Delete(t.Context()))
}

func TestEndpointFallsBackToARPAndTimesOut(t *testing.T) {
	l := newTestLab(t, false)
	p := l.provider(t, "run1", "ok")
	m := clone(t, p, l.img, "sxlab-aaa-r1-t1")
	require.NoError(t, m.Start(t.Context()))

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	_, err := m.Endpoint(ctx)
	cancel()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no address for MAC "+m.MAC())
	assert.Contains(t, err.Error(), l.leases)

	hw, err := ParseMAC(m.MAC())
	require.NoError(t, err)
	l.arp = fmt.Sprintf("? (192.168.64.40) at %x:%x:%x:%x:%x:%x on bridge100 ifscope [ethernet]\n", hw[0], hw[1], hw[2], hw[3], hw[4], hw[5])
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, "192.168.64.40:22", ep.Addr)
}

// A run killed with SIGKILL leaves its clones: no owner lock, and its
// workers notice their stdin close, stop their VMs and exit. The next run's
// Reap deletes those clones and keeps every live one.
func TestReapAfterAKilledRun(t *testing.T) {
	l := newTestLab(t, false)
	killed := l.provider(t, "dead", "ok")
	a := clone(t, killed, l.img, "sxlab-aaa-r1-t1")
	b := clone(t, killed, l.img, "sxlab-bbb-r1-t1")
	require.NoError(t, a.Start(t.Context()))
	require.NoError(t, b.Start(t.Context()))
	live := clone(t, l.provider(t, "alive", "ok"), l.img, "sxlab-ccc-r1-t1")
	require.NoError(t, live.Start(t.Context()))

	// What SIGKILL does to the dead run: its locks go, its pipes close.
	// b's worker is slow to notice: its stdin is still open.
	a.owner.release()
	b.owner.release()
	require.NoError(t, a.stdin.Close())
	<-a.exited

	// Leftovers without any lock: a crashed clone, a half-made one.
	crashed := filepath.Join(l.store, ClonesDir, "sxlab-old-xyz-r1-t1")
	require.NoError(t, os.MkdirAll(crashed, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(crashed, ConfigFile), []byte("{}"), 0o644))
	half := filepath.Join(l.store, ClonesDir, ".creating-sxlab-old-q-r1-t1-123")
	require.NoError(t, os.MkdirAll(half, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(half, OwnerLockFile), nil, 0o644))

	next := l.provider(t, "next", "ok")
	require.NoError(t, next.Reap(t.Context()))
	assert.False(t, exists(a.Dir()), "a dead run's stopped clone is reaped")
	assert.True(t, exists(b.Dir()), "a clone whose worker still runs is kept")
	assert.True(t, exists(live.Dir()), "a live run's clone is kept")
	assert.False(t, exists(crashed))
	assert.False(t, exists(half))

	require.NoError(t, b.stdin.Close())
	<-b.exited
	require.NoError(t, next.Reap(t.Context()))
	assert.False(t, exists(b.Dir()), "reaped once its worker has gone")
	assert.True(t, exists(live.Dir()))
}

func TestSecondWorkerOnACloneIsRefused(t *testing.T) {
	l := newTestLab(t, false)
	m := clone(t, l.provider(t, "run1", "ok"), l.img, "sxlab-aaa-r1-t1")
	require.NoError(t, m.Start(t.Context()))

	cmd := exec.Command(os.Args[0], m.Dir())
	cmd.Env = append(os.Environ(), fakeWorkerEnv+"=ok", quickRaceExit())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	require.Error(t, err)
	assert.Contains(t, stderr.String(), "is already run by another worker")
	assert.Contains(t, stderr.String(), "locked by process")
	assert.Len(t, RunningClones(l.store), 1)
}

func TestCloneRefusesWhatItCannotBoot(t *testing.T) {
	l := newTestLab(t, false)
	p := l.provider(t, "run1", "ok")
	_, err := p.Clone(t.Context(), vm.Image{Name: "x"}, "sxlab-a")
	assert.ErrorContains(t, err, "image x has no vz bundle")

	require.NoError(t, os.Remove(filepath.Join(l.store, "sonoma", NVRAMFile)))
	_, err = p.Clone(t.Context(), l.img, "sxlab-a")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sonoma: nvram.bin: missing")

	entries, _ := os.ReadDir(filepath.Join(l.store, ClonesDir))
	assert.Empty(t, entries, "nothing is left behind")
}

func TestNewProviderNeedsAStore(t *testing.T) {
	_, err := NewProvider(Options{})
	assert.ErrorContains(t, err, "hosts[].vz.store")
	p, err := NewProvider(Options{Store: "/x"})
	require.NoError(t, err)
	assert.Len(t, p.o.Run, 6, "a random run name")
}

// quickRaceExit is the GORACE setting for fake workers: under -race a
// process sleeps a second on exit by default, once per worker.
func quickRaceExit() string {
	return strings.TrimSpace("GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0")
}

// TestProviderReportsAHostThatLeakedAVMSlot: the framework refuses a VM
// with its limit while no VM runs (a fake worker answering "limit", no VM
// process in ps): the host is broken, not the attempt.
func TestProviderReportsAHostThatLeakedAVMSlot(t *testing.T) {
	l := newTestLab(t, false)
	p := l.provider(t, "run1", "limit", func(o *Options) {
		o.PS = func(context.Context) ([]byte, error) { return []byte("  PID COMMAND\n  1 /sbin/launchd\n"), nil }
	})
	m := clone(t, p, l.img, "sxlab-aaa-r1-t1")
	err := m.Start(t.Context())
	require.Error(t, err)
	hf, ok := errors.AsType[*vm.HostFault](err)
	require.True(t, ok, "a vm.HostFault: %v", err)
	assert.Contains(t, hf.Reason, "the host leaked a VM slot, which only a reboot frees")
	assert.Contains(t, hf.Reason, "while 0 VM process(es) ran")
	assert.Contains(t, err.Error(), "at most two macOS VMs run per host", "the framework's words stay")

	data, err := os.ReadFile(filepath.Join(l.store, vm.LeakFile))
	require.NoError(t, err, "recorded for sxlab doctor")
	leak, err := vm.ParseLeak(data)
	require.NoError(t, err)
	assert.Equal(t, 0, leak.VMProcesses)
	assert.Contains(t, leak.Message, "exceeds the limit")
}

// TestProviderLimitWithTwoVMsIsNoLeak: two VMs running is the licence's
// limit, not a broken host.
func TestProviderLimitWithTwoVMsIsNoLeak(t *testing.T) {
	l := newTestLab(t, false)
	m := clone(t, l.provider(t, "run1", "limit"), l.img, "sxlab-aaa-r1-t1") // ps shows two VM processes
	err := m.Start(t.Context())
	require.Error(t, err)
	_, ok := errors.AsType[*vm.HostFault](err)
	assert.False(t, ok, "%v", err)
	assert.False(t, exists(filepath.Join(l.store, vm.LeakFile)))
}

func TestLeakedSlot(t *testing.T) {
	assert.True(t, leakedSlot(hostFacts{vmProcs: 0}))
	assert.True(t, leakedSlot(hostFacts{vmProcs: 1, clones: []RunningClone{{Name: "a"}}}))
	assert.False(t, leakedSlot(hostFacts{vmProcs: 2}), "the refused VM's own process may be one of the two")
	assert.False(t, leakedSlot(hostFacts{vmProcs: 1, clones: []RunningClone{{Name: "a"}, {Name: "b"}}}))
	assert.False(t, leakedSlot(hostFacts{vmProcs: -1}), "unknown is not sure")
}

// TestRestoredCloneFindsItsExpiredLease: a clone restored long after
// image warm resumes with the golden's MAC and address and asks bootpd for
// nothing, so the only lease is the expired one from warm time. It counts
// once sshd answers there.
func TestRestoredCloneFindsItsExpiredLease(t *testing.T) {
	l := newTestLab(t, true)
	var reached []string
	answers := false
	p := l.provider(t, "run1", "ok", func(o *Options) {
		o.Reach = func(_ context.Context, addr string) bool {
			reached = append(reached, addr)
			return answers
		}
	})
	m := clone(t, p, l.img, "sxlab-aaa-r1-t1")
	require.NoError(t, m.Start(t.Context()))
	require.True(t, m.Restored())
	l.leaseUntil(t, m.MAC(), "192.168.64.12", time.Now().Add(-48*time.Hour))

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	_, err := m.Endpoint(ctx)
	cancel()
	require.Error(t, err, "an expired lease whose address does not answer is no address")
	require.NotEmpty(t, reached)
	assert.Equal(t, "192.168.64.12:22", reached[0])

	answers = true
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, "192.168.64.12:22", ep.Addr)
}

// TestColdCloneIgnoresExpiredLeases: a cold boot asks for a lease, so an
// expired one is an old guest's.
func TestColdCloneIgnoresExpiredLeases(t *testing.T) {
	l := newTestLab(t, false)
	p := l.provider(t, "run1", "ok", func(o *Options) {
		o.Reach = func(context.Context, string) bool { return true }
	})
	m := clone(t, p, l.img, "sxlab-aaa-r1-t1")
	require.NoError(t, m.Start(t.Context()))
	l.leaseUntil(t, m.MAC(), "192.168.64.12", time.Now().Add(-time.Hour))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := m.Endpoint(ctx)
	require.Error(t, err)
}
