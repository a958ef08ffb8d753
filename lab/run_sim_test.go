package lab

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim"
)

// simLabConfig is a small lab on the demo's packages (examples/pkg): one
// simulated macOS 15.3 with the xpc-invalidated-on-upgrade fault, the
// demo's scenario, two cells. Its vpn=running cell fails at mach-endpoint
// (and xpc), its vpn=stopped cell passes, as in the demo.
const simLabConfig = `lab:
  name: sim-test
  seed: 7
  timeouts: {boot: 1m, command: 1m}
hosts:
  - name: local
    provider: sim
    slots: 2
    sim: {time_scale: 0}
images:
  macos-15.3:
    sim:
      product_version: "15.3"
      build: 24D60
      faults: [endpoint-lost-on-replace-while-running]
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
    "2": {package: examples/pkg/example-vpn-2.pkg}
    "3": {package: examples/pkg/example-vpn-3.pkg}
matrix:
  axes:
    macos: [macos-15.3]
    path: ["2->3"]
    vpn: [running, stopped]
  repeat: 1
scenario:
  - install: "{{.From}}"
  - launch: {}
  - approve: mdm
  - wait-extension: activated enabled
  - vpn: start
    when: {vpn: running}
  - upgrade:
      version: "{{.To}}"
      before: [quit-app]
  - launch: {}
  - probe: [extension-state, mach-endpoint, xpc]
probes:
  - name: extension-state
    state: activated enabled
    old: gone-or-pending-reboot
  - name: mach-endpoint
  - name: xpc
    run: '"{{.App.Path}}/Contents/MacOS/Example VPN" --check-xpc'
retry:
  max: 1
  backoff: 1ms
`

// simLab is what a simulated run leaves to check: where the sim keeps its
// machine folders, and every machine it cloned.
type simLab struct {
	BaseDir string

	mu       sync.Mutex
	machines []*sim.Machine
}

// Machines returns every machine cloned so far, across runs.
func (l *simLab) Machines() []*sim.Machine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*sim.Machine(nil), l.machines...)
}

// simProvider is the sim provider, remembering the machines it clones.
type simProvider struct {
	*sim.Provider
	lab *simLab
}

func (p simProvider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	m, err := p.NewMachine(ctx, img, name)
	if err != nil {
		return nil, err
	}
	p.lab.mu.Lock()
	p.lab.machines = append(p.lab.machines, m)
	p.lab.mu.Unlock()
	return m, nil
}

// simRunOptions sets up a run of the real pipeline, as sxlab run wires
// it: lab.Run over vm/sim machines reached through guest.Dial. cfgYAML is
// the configuration; its relative package paths
// (examples/pkg/example-vpn-N.pkg) find copies of the demo's
// packages, and its runs go under a temporary folder
// (SXLAB_LAB_RUNS_DIR). A host's sim.time_scale defaults to 0 (instant)
// here, not 1. sabotage, when not nil, breaks machines by name (see
// sim.Sabotage). The connection retries back off from 10ms instead of
// 500ms, so tests of failing connections stay short.
func simRunOptions(t testing.TB, cfgYAML string, sabotage func(machine string) sim.Sabotage) (RunOptions, *simLab) {
	t.Helper()
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "examples", "pkg")
	require.NoError(t, os.MkdirAll(pkgs, 0o755))
	demo, err := filepath.Glob(filepath.Join("..", "examples", "pkg", "*.pkg"))
	require.NoError(t, err)
	require.NotEmpty(t, demo, "the demo's packages in examples/pkg")
	for _, src := range demo {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(pkgs, filepath.Base(src)), b, 0o644))
	}
	file := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(cfgYAML), 0o644))
	env := envOf(EnvName("lab.runs_dir"), filepath.Join(dir, "runs"))
	l, err := Load(LoadOptions{File: file, LookupEnv: env})
	require.NoError(t, err)

	sl := &simLab{BaseDir: filepath.Join(dir, "machines")}
	return RunOptions{
		Loaded: l, Tool: "test", LookupEnv: env,
		NewProvider: func(h Host, seed int64) (vm.Provider, error) {
			scale := 0.0
			if h.Sim != nil && h.Sim.TimeScale != nil {
				scale = *h.Sim.TimeScale
			}
			p := sim.NewProvider(sim.Options{TimeScale: scale, Seed: seed, BaseDir: sl.BaseDir, Sabotage: sabotage})
			return simProvider{Provider: p, lab: sl}, nil
		},
		Dial: func(ctx context.Context, ep guest.Endpoint, knownHosts, alias string) (Conn, error) {
			return guest.Dial(ctx, ep, guest.Options{KnownHosts: knownHosts, HostKeyAlias: alias,
				BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
		},
		Poll: time.Millisecond, Wait: 10 * time.Second, CleanupTimeout: 10 * time.Second,
		ProbeBinary: testProbeBinary,
	}, sl
}

// assertNothingLeft checks what an interrupted or failed run must not
// leave behind: machine folders, or sshd listening on a machine's port.
func (l *simLab) assertNothingLeft(t *testing.T) {
	t.Helper()
	left, err := os.ReadDir(l.BaseDir)
	if !os.IsNotExist(err) {
		require.NoError(t, err)
	}
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "machine folders left under %s", l.BaseDir)
	for _, m := range l.Machines() {
		addr := m.Addr()
		if addr == "" {
			continue // never started
		}
		assert.False(t, stillServes(addr, m.HostKey()), "machine %s: sshd still listens on %s", m.Name(), addr)
	}
}

// stillServes says whether the sshd at addr is the machine with hostKey.
// A port is not enough: once a machine is gone, the system may give its
// port to another test's machine, which is no leak.
func stillServes(addr string, hostKey ssh.PublicKey) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	same := false
	cfg := &ssh.ClientConfig{User: "probe", HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
		same = bytes.Equal(k.Marshal(), hostKey.Marshal())
		return errors.New("host key seen; no login wanted")
	}}
	_, _, _, _ = ssh.NewClientConn(c, addr, cfg)
	return same
}
