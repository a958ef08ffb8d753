package lab

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/internal/gctune"
	"github.com/sxlab/sxlab/vm"
)

// benchLabConfig is the demo (config.yaml) as a benchmark lab: the same
// images, faults, app, scenario and probes. The verbs fill in the hosts,
// the path axis's values, more exclusions, the repeats and the collection
// policy.
const benchLabConfig = `lab:
  name: bench
  seed: 1
hosts:
%s
images:
  macos-15.3:
    sim:
      product_version: "15.3"
      build: 24D60
      faults: [endpoint-lost-on-replace-while-running, approval-coalesced]
    auth: {password: admin}
  macos-15.3-mdm:
    sim:
      product_version: "15.3"
      build: 24D60
      faults: [endpoint-lost-on-replace-while-running, approval-coalesced]
      golden: {mdm: {system_extension_policies: [{team: ABCDE12345}]}}
    auth: {password: admin}
  macos-15.4:
    sim:
      product_version: "15.4"
      build: 24E248
      faults: [{name: endpoint-registration-race, probability: 0.2}]
    auth: {password: admin}
  macos-15.4-mdm:
    sim:
      product_version: "15.4"
      build: 24E248
      faults: [{name: endpoint-registration-race, probability: 0.2}]
      golden: {mdm: {system_extension_policies: [{team: ABCDE12345}]}}
    auth: {password: admin}
app:
  name: Example VPN
  bundle_id: com.example.vpn
  extension:
    bundle_id: com.example.vpn.tunnel
    team_id: ABCDE12345
    mach_service: ABCDE12345.com.example.vpn.tunnel
  vpn_service: Example VPN
  versions:
    "1": {package: examples/pkg/example-vpn-1.pkg}
    "2": {package: examples/pkg/example-vpn-2.pkg}
    "3": {package: examples/pkg/example-vpn-3.pkg}
    "4": {package: examples/pkg/example-vpn-4.pkg}
matrix:
  image: '{{.Axis.macos}}{{if eq .Axis.approval "approved"}}-mdm{{end}}'
  axes:
    macos: [macos-15.3, macos-15.4]
    path: %s
    vpn: [running, stopped]
    approval: [approved, pending]
  exclude:
    - {vpn: running, approval: pending}
%s  repeat: %d
scenario:
  - install: "{{.From}}"
  - launch: {}
  - approve: mdm
    when: {approval: approved}
  - wait-extension: activated enabled
    when: {approval: approved}
  - vpn: start
    when: {vpn: running}
  - upgrade:
      version: "{{.To}}"
      before: [quit-app]
  - launch: {}
  - approve: ui
    when: {approval: pending}
  - probe: [extension-state, mach-endpoint, xpc]
probes:
  - name: extension-state
    state: activated enabled
    old: gone-or-pending-reboot
  - name: mach-endpoint
  - name: xpc
    run: '"{{.App.Path}}/Contents/MacOS/Example VPN" --check-xpc'
collect:
  on: %s
retry:
  max: 2
  backoff: 1s
`

// callTimes adds up, over a run, the wall time spent inside calls that
// the orchestrator waits on rather than does itself.
type callTimes struct {
	guest   atomic.Int64 // Guest.Run, Upload, Download: commands and transfers
	connect atomic.Int64 // Dial and Reconnect: TCP and SSH handshakes
	machine atomic.Int64 // Clone, Start, Endpoint, Stop, Delete
}

func addElapsed(t *atomic.Int64, start time.Time) { t.Add(int64(time.Since(start))) }

// timedConn times the guest's share of each command and transfer, as the
// client sees it (from sending the request to the exit status or the
// last byte).
type timedConn struct {
	Conn
	t *callTimes
}

func (c timedConn) Run(ctx context.Context, cmd guest.Cmd) (guest.Result, error) {
	defer addElapsed(&c.t.guest, time.Now())
	return c.Conn.Run(ctx, cmd)
}

func (c timedConn) Upload(ctx context.Context, local, remote string, p guest.Progress) error {
	defer addElapsed(&c.t.guest, time.Now())
	return c.Conn.Upload(ctx, local, remote, p)
}

func (c timedConn) Download(ctx context.Context, remote, local string, p guest.Progress) error {
	defer addElapsed(&c.t.guest, time.Now())
	return c.Conn.Download(ctx, remote, local, p)
}

func (c timedConn) Reconnect(ctx context.Context) error {
	defer addElapsed(&c.t.connect, time.Now())
	return c.Conn.Reconnect(ctx)
}

type timedProvider struct {
	vm.Provider
	t *callTimes
}

func (p timedProvider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	defer addElapsed(&p.t.machine, time.Now())
	m, err := p.Provider.Clone(ctx, img, name)
	if err != nil {
		return nil, err
	}
	return timedMachine{Machine: m, t: p.t}, nil
}

type timedMachine struct {
	vm.Machine
	t *callTimes
}

func (m timedMachine) Start(ctx context.Context) error {
	defer addElapsed(&m.t.machine, time.Now())
	return m.Machine.Start(ctx)
}

func (m timedMachine) Endpoint(ctx context.Context) (guest.Endpoint, error) {
	defer addElapsed(&m.t.machine, time.Now())
	return m.Machine.Endpoint(ctx)
}

func (m timedMachine) Stop(ctx context.Context) error {
	defer addElapsed(&m.t.machine, time.Now())
	return m.Machine.Stop(ctx)
}

func (m timedMachine) Delete(ctx context.Context) error {
	defer addElapsed(&m.t.machine, time.Now())
	return m.Machine.Delete(ctx)
}

// benchRunOptions is simRunOptions with what sxlab run itself uses
// instead of the tests' short cuts: the polling interval, the waits, the
// cleanup bound and the connection backoff are the production defaults,
// so a fixed sleep in any of them shows in the figures. Every guest call,
// handshake and machine operation is timed into t.
func benchRunOptions(b *testing.B, hosts, paths, exclude string, repeat int, collect string) (RunOptions, *callTimes) {
	b.Helper()
	cfg := fmt.Sprintf(benchLabConfig, hosts, paths, exclude, repeat, collect)
	o, _ := simRunOptions(b, cfg, nil)
	t := &callTimes{}
	newProvider := o.NewProvider
	o.NewProvider = func(h Host, seed int64) (vm.Provider, error) {
		p, err := newProvider(h, seed)
		if err != nil {
			return nil, err
		}
		return timedProvider{Provider: p, t: t}, nil
	}
	keys, sums := guest.NewHostKeyCache(), guest.NewFileSums() // as cmd/sxlab dials
	o.Dial = func(ctx context.Context, ep guest.Endpoint, knownHosts, alias string) (Conn, error) {
		defer addElapsed(&t.connect, time.Now())
		opts := guest.Options{KnownHosts: knownHosts, HostKeyAlias: alias, HostKeyCache: keys, FileSums: sums}
		if d, ok := ctx.Deadline(); ok { // as cmd/sxlab dials
			opts.ConnectTimeout = time.Until(d)
		}
		c, err := guest.Dial(ctx, ep, opts)
		if err != nil {
			return nil, err
		}
		return timedConn{Conn: c, t: t}, nil
	}
	o.Poll, o.Wait, o.CleanupTimeout = 0, 0, 0
	return o, t
}

// runBench runs the lab once and fails the benchmark unless every
// attempt got a final verdict other than error: an error would be
// retried after a backoff and skew the figures.
func runBench(b *testing.B, o RunOptions) (*RunResult, time.Duration) {
	b.Helper()
	start := time.Now()
	res, err := Run(context.Background(), o)
	took := time.Since(start)
	if err != nil {
		b.Fatalf("run: %v", err)
	}
	if res.Remaining != 0 {
		b.Fatalf("%d attempts left without a verdict", res.Remaining)
	}
	for _, r := range res.Records {
		if r.Verdict == Error {
			b.Fatalf("attempt %s r%d ended error: %s", r.Label, r.Repeat, r.Reason)
		}
	}
	return res, took
}

// BenchmarkOrchestratorOverhead runs the demo's 12 cells once each on one
// slot of a zero-latency simulated Mac (time_scale 0: every simulated
// duration is 0) with the production defaults for polling, waits and
// connection backoff, and reports per attempt:
//
//   - ms/attempt: the run's wall time (run folder, reaping, journal and
//     all) divided by its attempts;
//   - guest-ms/attempt: time inside guest commands and transfers
//     (Guest.Run, Upload, Download, timed around each call from the
//     client): the sim's shell and SSH server, plus our SSH client's
//     share of each round trip;
//   - machine-ms/attempt: time inside the provider's Clone, Start,
//     Endpoint, Stop and Delete: the sim's own work to make and remove a
//     machine folder, the stand-in for a real clone and boot;
//   - overhead-ms/attempt: the orchestrator's own overhead, ms/attempt
//     minus guest-ms and machine-ms. What is left is ours: scheduling,
//     the attempt folder, steps.jsonl, the fsynced journal line, the
//     manifest, the SSH handshake (also shown alone as
//     connect-ms/attempt), and every wait the orchestrator chooses, such
//     as the pause between two checks of a polling step. A fixed sleep
//     anywhere lands here.
//
// Sub-benchmarks (under "simulated": no figure here is about real
// macOS): collect=never takes no evidence, the figure the goal is about;
// collect=failure is the demo's policy, where every attempt snapshots
// the state before the upgrade and each failing one also takes a
// sysdiagnose, another snapshot and logs (guest calls), writing each
// into a file and hashing them into its manifest (ours).
//
// The garbage collector is set as the sxlab binary sets it (gctune), so
// the figures are the binary's.
func BenchmarkOrchestratorOverhead(b *testing.B) {
	defer gctune.Tune(os.LookupEnv)()
	b.Run("simulated", benchOverhead)
}

func benchOverhead(b *testing.B) {
	for _, collect := range []string{"never", "failure"} {
		b.Run("collect="+collect, func(b *testing.B) {
			hosts := "  - {name: local, provider: sim, slots: 1, sim: {time_scale: 0}}"
			o, t := benchRunOptions(b, hosts, `["2->3", "1->3"]`, "", 1, collect)
			var attempts int
			var wall time.Duration
			for b.Loop() {
				res, took := runBench(b, o)
				attempts += len(res.Records)
				wall += took
			}
			per := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(attempts) }
			g, m := time.Duration(t.guest.Load()), time.Duration(t.machine.Load())
			b.ReportMetric(per(wall), "ms/attempt")
			b.ReportMetric(per(g), "guest-ms/attempt")
			b.ReportMetric(per(m), "machine-ms/attempt")
			b.ReportMetric(per(time.Duration(t.connect.Load())), "connect-ms/attempt")
			b.ReportMetric(per(wall-g-m), "overhead-ms/attempt")
		})
	}
}

// BenchmarkMakespan runs 64 attempts of the demo's scenario on 2 hosts ×
// 2 slots with the sim's latency model (time_scale 0.002: a simulated
// boot of 30 s takes 60 ms) and reports the makespan (the run's wall
// time, setup included) over its lower bound, the sum of the attempts'
// durations (started to finished, as journalled) divided by the 4 slots.
// The goal is ≤ 1.05. The plan is 16 cells (both images × 4 upgrade
// paths × VPN running with MDM approval, or VPN stopped with approval
// pending) × 4 repeats; failing attempts collect evidence as in the
// demo, so attempts differ in length. The figure is reported under
// "simulated".
func BenchmarkMakespan(b *testing.B) {
	b.Run("simulated", benchMakespan)
}

func benchMakespan(b *testing.B) {
	var hosts strings.Builder
	for _, h := range []string{"a", "b"} {
		fmt.Fprintf(&hosts, "  - {name: %s, provider: sim, slots: 2, sim: {time_scale: 0.002}}\n", h)
	}
	o, _ := benchRunOptions(b, strings.TrimSuffix(hosts.String(), "\n"),
		`["1->2", "1->3", "2->3", "3->4"]`, "    - {vpn: stopped, approval: approved}\n", 4, "failure")
	var ratio, makespan, attempt float64
	var runs int
	for b.Loop() {
		res, took := runBench(b, o)
		if len(res.Records) != 64 {
			b.Fatalf("%d attempts, want 64", len(res.Records))
		}
		var total time.Duration
		for _, r := range res.Records {
			total += r.Finished.Sub(r.Started)
		}
		lower := total / 4
		ratio += float64(took) / float64(lower)
		makespan += took.Seconds()
		attempt += total.Seconds() / float64(len(res.Records))
		runs++
	}
	n := float64(runs)
	b.ReportMetric(ratio/n, "makespan/lowerbound")
	b.ReportMetric(makespan/n, "makespan-s")
	b.ReportMetric(attempt/n*1000, "ms/attempt")
}

// BenchmarkScale2400 runs the demo's 12 cells × 200 repeats (2,400
// attempts) on one sim host with 4 slots at time_scale 0, collecting on
// failure as the demo does: the scale run, for a CPU profile
// (-cpuprofile) of where a night's orchestration goes. It reports the
// wall time and the Go heap's peak as sampled after the run
// (runtime.MemStats.HeapSys; the process's RSS is measured from outside,
// see bench/README.md).
func BenchmarkScale2400(b *testing.B) {
	b.Run("simulated", func(b *testing.B) {
		hosts := "  - {name: local, provider: sim, slots: 4, sim: {time_scale: 0}}"
		o, t := benchRunOptions(b, hosts, `["2->3", "1->3"]`, "", 200, "failure")
		var wall time.Duration
		var attempts int
		for b.Loop() {
			res, took := runBench(b, o)
			attempts += len(res.Records)
			wall += took
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		runs := float64(b.N)
		b.ReportMetric(wall.Seconds()/runs, "wall-s")
		b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap-sys-MiB")
		b.ReportMetric(float64(t.guest.Load())/float64(time.Millisecond)/float64(attempts), "guest-ms/attempt")
		b.ReportMetric(float64(t.machine.Load())/float64(time.Millisecond)/float64(attempts), "machine-ms/attempt")
	})
}
