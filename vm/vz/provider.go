package vz

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

// Options configure a Provider. Only Store is required.
type Options struct {
	// Store holds the golden bundles and, in clones/, the clones.
	Store string
	// Run names this run's clones (letters and digits); default random.
	Run string
	// Worker is the command line that runs one VM; "--watch-stdin" and the
	// clone folder are appended. Default: this executable's "vz-worker".
	Worker []string
	// LeasesFile is bootpd's lease file; default /var/db/dhcpd_leases.
	LeasesFile string
	// ARP returns `arp -an` output; PS `ps -Ao pid,command` output.
	ARP, PS func(ctx context.Context) ([]byte, error)
	// Reach reports whether something answers TCP at addr (host:port);
	// default a connect of at most 2s. A restored clone's expired lease
	// counts only once its sshd answers.
	Reach func(ctx context.Context, addr string) bool
	// CanRestore says whether this host restores saved states; default
	// HostCanRestore (macOS 14+).
	CanRestore func() bool
	// Shutdown, when set, shuts the guest down from inside (e.g. `sudo
	// shutdown -h now` over SSH) before Stop stops the VM; macOS guests
	// ignore the framework's stop request. Unset: Stop pulls the plug at
	// once, which is what a throwaway clone needs.
	Shutdown func(ctx context.Context, ep guest.Endpoint) error
	// ShutdownTimeout bounds Shutdown and the guest's power-off after it
	// (default 30s); StopTimeout the worker's exit after a stop (default
	// 30s); ReadyTimeout the worker's socket (default 30s).
	ShutdownTimeout, StopTimeout, ReadyTimeout time.Duration
	// Poll is how often Endpoint looks for the guest's address (default 1s).
	Poll time.Duration
	Now  func() time.Time
	Rand io.Reader
}

// Provider makes vz machines: clones of golden bundles, each run by its own
// worker process.
type Provider struct {
	o Options

	mu   sync.Mutex
	live map[string]*Machine // clone folder → machine, until Delete
}

var (
	_ vm.Provider = (*Provider)(nil)
	_ vm.Limiter  = (*Provider)(nil)
)

// NewProvider checks o and fills in the defaults.
func NewProvider(o Options) (*Provider, error) {
	if o.Store == "" {
		return nil, errors.New("vz provider: no store (set hosts[].vz.store)")
	}
	o.Store = ExpandHome(o.Store)
	if abs, err := filepath.Abs(o.Store); err == nil {
		o.Store = abs
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Run == "" {
		b := make([]byte, 3)
		if _, err := io.ReadFull(o.Rand, b); err != nil {
			return nil, fmt.Errorf("vz provider: draw a run name: %w", err)
		}
		o.Run = hex.EncodeToString(b)
	}
	if _, err := CloneName(o.Run, "x"); err != nil {
		return nil, fmt.Errorf("vz provider: %w", err)
	}
	if len(o.Worker) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("vz provider: find this executable to start workers: %w", err)
		}
		o.Worker = []string{exe, "vz-worker"}
	}
	if o.LeasesFile == "" {
		o.LeasesFile = LeasesFile
	}
	if o.ARP == nil {
		o.ARP = func(ctx context.Context) ([]byte, error) { return exec.CommandContext(ctx, "arp", "-an").Output() }
	}
	if o.PS == nil {
		o.PS = func(ctx context.Context) ([]byte, error) {
			return exec.CommandContext(ctx, "ps", "-Ao", "pid,command").Output()
		}
	}
	if o.CanRestore == nil {
		o.CanRestore = HostCanRestore
	}
	if o.Reach == nil {
		o.Reach = func(ctx context.Context, addr string) bool {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return false
			}
			c.Close()
			return true
		}
	}
	for _, d := range []*time.Duration{&o.ShutdownTimeout, &o.StopTimeout, &o.ReadyTimeout} {
		if *d <= 0 {
			*d = 30 * time.Second
		}
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Provider{o: o, live: map[string]*Machine{}}, nil
}

func (p *Provider) Name() string    { return "vz" }
func (p *Provider) Simulated() bool { return false }

// Store is the provider's store folder.
func (p *Provider) Store() string { return p.o.Store }

// Clone makes a clone of one of img's golden bundles for the attempt
// name: a restoring clone (the golden's MAC and saved state) of the first
// warm golden whose MAC no live clone uses, when the host restores
// states; otherwise a cold-boot clone of the first golden with a fresh MAC.
// A golden that a worker runs (sxlab image warm) is passed over.
func (p *Provider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	goldens, err := p.goldens(img)
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", name, err)
	}
	dir, err := CloneDir(p.o.Store, p.o.Run, name)
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", name, err)
	}

	// Under p.mu: two slots must not both decide to restore the same
	// golden, as two VMs with one MAC share one DHCP lease.
	p.mu.Lock()
	defer p.mu.Unlock()
	var golden *Bundle
	restore := false
	var warming []string
	for _, g := range goldens {
		if pid := runBy(g.Dir); pid > 0 {
			// Its disk is changing under the worker and its saved state is
			// about to be replaced: a clone now would be neither.
			warming = append(warming, fmt.Sprintf("%s (worker %d)", g.Dir, pid))
			continue
		}
		if g.HasSavedState && p.o.CanRestore() && !p.macInUse(g.Config.MACAddress) {
			golden, restore = g, true
			break
		}
		if golden == nil {
			golden = g
		}
	}
	if golden == nil {
		return nil, fmt.Errorf("clone %s of image %s: every golden is running in a worker (sxlab image warm?): %s; run again when that has finished", name, img.Name, strings.Join(warming, ", "))
	}
	plan, err := PlanClone(golden, dir, restore, p.o.Rand)
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", name, err)
	}
	owner, err := p.make(plan)
	if err != nil {
		return nil, fmt.Errorf("clone %s of %s: %w", name, golden.Dir, err)
	}
	m := &Machine{p: p, name: name, dir: dir, img: img, plan: plan, owner: owner}
	p.live[dir] = m
	return m, nil
}

// goldens loads img's golden bundles and checks they can boot; warm ones
// must not share a MAC, as each restores only with its own.
func (p *Provider) goldens(img vm.Image) ([]*Bundle, error) {
	if img.VZ == nil || len(img.VZ.Bundles) == 0 {
		return nil, fmt.Errorf("image %s has no vz bundle (images.%s.vz.bundle)", img.Name, img.Name)
	}
	var out []*Bundle
	macs := map[string]string{}
	for _, name := range img.VZ.Bundles {
		g, err := LoadBundle(ResolveBundle(p.o.Store, name))
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		if err := g.CheckBootable(); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		if g.HasSavedState {
			mac := guest.NormaliseMAC(g.Config.MACAddress)
			if other, ok := macs[mac]; ok {
				return nil, fmt.Errorf("image %s: warm goldens %s and %s have the same macAddress %s; a saved state restores only with its own MAC, so each warm golden needs its own (make the second with sxlab image copy, then warm it)", img.Name, other, g.Dir, g.Config.MACAddress)
			}
			macs[mac] = g.Dir
		}
		out = append(out, g)
	}
	return out, nil
}

// MaxMachines is the number of warm goldens of img when every one of them
// is warm and the host restores states: each restores into one clone at a
// time. Otherwise there is no limit (cold-boot clones draw fresh MACs).
func (p *Provider) MaxMachines(img vm.Image) (int, string) {
	if !p.o.CanRestore() {
		return 0, ""
	}
	goldens, err := p.goldens(img)
	if err != nil {
		return 0, "" // Clone says what is wrong
	}
	for _, g := range goldens {
		if !g.HasSavedState {
			return 0, ""
		}
	}
	return len(goldens), fmt.Sprintf("each of its %d warm golden(s) restores into one clone at a time; make another warm golden (sxlab image copy, then sxlab image warm) and list it in images.%s.vz.bundles", len(goldens), img.Name)
}

// make applies plan in a hidden folder and renames it into place, so every
// clone folder Reap can see already carries its owner's lock.
func (p *Provider) make(plan ClonePlan) (*ownerLock, error) {
	if _, err := os.Stat(plan.Dest); err == nil {
		return nil, fmt.Errorf("%s exists already", plan.Dest)
	}
	clones := filepath.Dir(plan.Dest)
	if err := os.MkdirAll(clones, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(clones, ".creating-"+filepath.Base(plan.Dest)+"-")
	if err != nil {
		return nil, err
	}
	owner, ok, err := lockOwner(filepath.Join(tmp, OwnerLockFile))
	if err == nil && !ok {
		err = errors.New("a fresh clone's lock is held by someone else")
	}
	if err == nil {
		err = plan.Apply(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, plan.Dest)
	}
	if err != nil {
		owner.release()
		return nil, errors.Join(err, os.RemoveAll(tmp))
	}
	return owner, nil
}

// macInUse reports whether a live clone in the store (of any run on this
// host) has mac. p.mu is held.
func (p *Provider) macInUse(mac string) bool {
	want := guest.NormaliseMAC(mac)
	entries, _ := os.ReadDir(filepath.Join(p.o.Store, ClonesDir))
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), ClonePrefix) {
			continue
		}
		dir := filepath.Join(p.o.Store, ClonesDir, e.Name())
		if p.live[dir] == nil && !cloneAlive(dir) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if err != nil {
			continue
		}
		if c, err := ParseConfig(data); err == nil && guest.NormaliseMAC(c.MACAddress) == want {
			return true
		}
	}
	return false
}

// cloneAlive reports whether a run still owns the clone in dir or a worker
// still runs it.
func cloneAlive(dir string) bool {
	if l, free, err := lockOwner(filepath.Join(dir, OwnerLockFile)); err == nil {
		if !free {
			return true
		}
		l.release()
	}
	return runBy(dir) > 0
}

// Reap deletes clones of dead runs: those whose owner lock is free and
// whose config.json no worker locks. A worker whose run died notices (its
// stdin closes), stops its VM and exits, and the next Reap takes the clone.
func (p *Provider) Reap(ctx context.Context) error {
	clones := filepath.Join(p.o.Store, ClonesDir)
	entries, err := os.ReadDir(clones)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reap vz clones: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, e := range entries {
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		name := e.Name()
		dir := filepath.Join(clones, name)
		creating := strings.HasPrefix(name, ".creating-")
		if !e.IsDir() || (!strings.HasPrefix(name, ClonePrefix) && !creating) || p.live[dir] != nil {
			continue
		}
		lockPath := filepath.Join(dir, OwnerLockFile)
		if _, err := os.Stat(lockPath); creating && err != nil {
			continue // a clone being made this instant, before its lock
		}
		owner, free, err := lockOwner(lockPath)
		if err != nil || !free {
			continue
		}
		if runBy(dir) > 0 {
			owner.release()
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("reap vz clone %s: %w", dir, err))
		}
		owner.release()
	}
	return errors.Join(errs...)
}

// Machine is one clone and, once started, its worker.
type Machine struct {
	p     *Provider
	name  string
	dir   string
	img   vm.Image
	plan  ClonePlan
	owner *ownerLock

	// saveable starts the VM with the device set a saved state needs
	// (image warm).
	saveable bool

	mu       sync.Mutex
	cmd      *exec.Cmd
	stdin    io.WriteCloser // the worker's stdin: closing it tells the worker the run is gone
	exited   chan struct{}  // closed when the worker process has exited
	waitErr  error          // the worker's exit; read only after <-exited
	restored bool
	note     string
	ep       *guest.Endpoint
	deleted  bool
}

var _ vm.Machine = (*Machine)(nil)

func (m *Machine) Name() string { return m.name }

// Dir is the clone's folder.
func (m *Machine) Dir() string { return m.dir }

// MAC is the clone's MAC address.
func (m *Machine) MAC() string { return m.plan.MAC }

// Restored reports whether Start restored the golden's saved state.
func (m *Machine) Restored() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restored
}

var _ vm.StartReporter = (*Machine)(nil)

// StartInfo says whether Start restored the saved state, and why a
// restore fell back to a cold boot.
func (m *Machine) StartInfo() vm.StartInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return vm.StartInfo{Restored: m.restored, Fallback: m.note}
}

// Note is what the worker said beyond success, such as a restore that fell
// back to a cold boot.
func (m *Machine) Note() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.note
}

func (m *Machine) socket() string { return filepath.Join(m.dir, SocketFile) }

// Start starts the clone's worker and has it restore or boot the VM.
func (m *Machine) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deleted {
		return fmt.Errorf("start %s: the clone was deleted", m.name)
	}
	if m.cmd != nil {
		return fmt.Errorf("start %s: started already", m.name)
	}
	if err := m.spawn(); err != nil {
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	if err := m.waitReady(ctx); err != nil {
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	resp, err := Call(ctx, m.socket(), Request{Op: OpStart, Saveable: m.saveable})
	if err != nil {
		return fmt.Errorf("start %s: %w%s", m.name, err, m.logTail())
	}
	if !resp.OK {
		f := m.facts(ctx)
		err := fmt.Errorf("start %s: %s", m.name, explain(resp.Kind, resp.Error, f))
		if resp.Kind == KindVMLimit && leakedSlot(f) {
			if lerr := vm.RecordLeak(m.p.o.Store, vm.Leak{At: m.p.o.Now().UTC(), VMProcesses: f.vmProcs, Running: len(f.clones), Message: resp.Error}); lerr != nil {
				err = fmt.Errorf("%w (and recording it for sxlab doctor failed: %v)", err, lerr)
			}
			return &vm.HostFault{Reason: leakReason(f), Err: err}
		}
		return err
	}
	m.restored, m.note = resp.Restored, resp.Note
	return nil
}

// spawn starts the worker process; m.mu is held.
func (m *Machine) spawn() error {
	w := m.p.o.Worker
	args := append(slices.Clone(w[1:]), "--watch-stdin", m.dir)
	cmd := exec.Command(w[0], args...)
	logf, err := os.OpenFile(filepath.Join(m.dir, WorkerLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open the worker log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	cmd.Stdout, cmd.Stderr = logf, logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("worker stdin: %w", err)
	}
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run the vz worker %s: %w", w[0], err)
	}
	m.cmd, m.stdin, m.exited = cmd, stdin, make(chan struct{})
	exited := m.exited
	go func() {
		// Not under m.mu: Stop holds it while it waits for this. Readers
		// see waitErr after <-exited.
		m.waitErr = cmd.Wait()
		close(exited)
	}()
	return nil
}

// waitReady waits for the worker's socket to answer; m.mu is held (the
// waiter goroutine does not need it before the process exits).
func (m *Machine) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.p.o.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		_, err := Call(cctx, m.socket(), Request{Op: OpState})
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-m.exited:
			return fmt.Errorf("the vz worker exited before it listened%s", m.logTail())
		case <-ctx.Done():
			return fmt.Errorf("the vz worker did not listen on %s: %w%s", m.socket(), ctx.Err(), m.logTail())
		case <-tick.C:
		}
	}
}

// logTail is the end of the worker's log, for error messages.
func (m *Machine) logTail() string {
	data, err := os.ReadFile(filepath.Join(m.dir, WorkerLogFile))
	if err != nil || len(data) == 0 {
		return ""
	}
	const keep = 1500
	if len(data) > keep {
		data = data[len(data)-keep:]
	}
	return "; worker log (" + filepath.Join(m.dir, WorkerLogFile) + "):\n" + strings.TrimRight(string(data), "\n")
}

// facts gathers what explain names.
func (m *Machine) facts(ctx context.Context) hostFacts {
	f := hostFacts{vmProcs: -1, binary: m.p.o.Worker[0]}
	for _, c := range RunningClones(m.p.o.Store) {
		if c.Name != filepath.Base(m.dir) {
			f.clones = append(f.clones, c)
		}
	}
	if out, err := m.p.o.PS(ctx); err == nil {
		f.vmProcs = CountVMProcesses(string(out))
	}
	if v, err := hostMacOSVersion(); err == nil {
		f.hostMacOS = v
	}
	return f
}

func (m *Machine) workerExited() bool {
	if m.exited == nil {
		return false
	}
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// Endpoint waits until the guest's MAC has an address in bootpd's leases
// (or, failing that, the ARP table) and returns its sshd.
func (m *Machine) Endpoint(ctx context.Context) (guest.Endpoint, error) {
	m.mu.Lock()
	started, exited := m.cmd != nil, m.exited
	m.mu.Unlock()
	if !started {
		return guest.Endpoint{}, fmt.Errorf("endpoint of %s: not started", m.name)
	}
	tick := time.NewTicker(m.p.o.Poll)
	defer tick.Stop()
	var lastErr error
	for {
		ip, err := m.lookup(ctx)
		if ip != "" {
			ep := guest.Endpoint{Addr: net.JoinHostPort(ip, "22"), User: m.img.User, Password: m.img.Password, KeyFile: m.img.KeyFile}
			m.mu.Lock()
			m.ep = &ep
			m.mu.Unlock()
			return ep, nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-exited:
			return guest.Endpoint{}, fmt.Errorf("endpoint of %s: the VM stopped before it had an address (worker: %v)%s", m.name, exitWords(m.waitErr), m.logTail())
		case <-ctx.Done():
			msg := fmt.Sprintf("endpoint of %s: no address for MAC %s in %s or the ARP table: %v (is the guest booted? on macOS 15+ hosts, Local Network privacy can also hide guests; sxlab doctor checks)", m.name, m.plan.MAC, m.p.o.LeasesFile, ctx.Err())
			if lastErr != nil {
				msg += "; last problem: " + lastErr.Error()
			}
			return guest.Endpoint{}, errors.New(msg)
		case <-tick.C:
		}
	}
}

// lookup looks once; a read or parse problem is returned for the final
// message but does not end the wait (bootpd may be mid-write).
func (m *Machine) lookup(ctx context.Context) (string, error) {
	var leases []guest.Lease
	var problem error
	data, err := os.ReadFile(m.p.o.LeasesFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		problem = err
	case len(strings.TrimSpace(string(data))) > 0:
		if leases, err = guest.ParseLeases(strings.NewReader(string(data))); err != nil {
			problem = fmt.Errorf("%s: %w", m.p.o.LeasesFile, err)
		}
	}
	if ip, _, ok := LookupIP(leases, nil, m.plan.MAC, m.p.o.Now()); ok {
		return ip, nil
	}
	// A restored clone keeps the golden's MAC and address from warm time
	// and asks for no new lease while the one it resumed with lasts in its
	// own clock, which may well be past bootpd's expiry.
	if m.plan.Restore {
		if ip, ok := RestoredIP(leases, m.plan.MAC); ok && m.p.o.Reach(ctx, net.JoinHostPort(ip, "22")) {
			return ip, nil
		}
	}
	out, err := m.p.o.ARP(ctx)
	if err != nil {
		return "", errors.Join(problem, fmt.Errorf("arp -an: %w", err))
	}
	arp, err := ParseARP(strings.NewReader(string(out)))
	if err != nil {
		return "", errors.Join(problem, err)
	}
	ip, _, _ := LookupIP(nil, arp, m.plan.MAC, m.p.o.Now())
	return ip, problem
}

var _ vm.StreamDialer = (*Machine)(nil)

// DialGuest connects to port on the guest's side of the VM's
// virtio-socket device, through the clone's worker: the channel does not
// depend on the guest's network, which a VPN under test may take.
func (m *Machine) DialGuest(ctx context.Context, port uint32) (net.Conn, error) {
	m.mu.Lock()
	started, exited := m.cmd != nil, m.workerExited()
	m.mu.Unlock()
	switch {
	case !started:
		return nil, fmt.Errorf("dial %s over vsock: not started", m.name)
	case exited:
		return nil, fmt.Errorf("dial %s over vsock: the VM has stopped%s", m.name, m.logTail())
	}
	c, err := DialStream(ctx, m.socket(), port)
	if err != nil {
		return nil, fmt.Errorf("dial %s over vsock: %w", m.name, err)
	}
	return c, nil
}

// SaveState pauses the VM and saves its state to path (the clone's
// state.vzvmsave when empty); the VM stays paused. `sxlab image warm`
// uses it on a golden.
func (m *Machine) SaveState(ctx context.Context, path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.workerExited() {
		return fmt.Errorf("save state of %s: not running", m.name)
	}
	resp, err := Call(ctx, m.socket(), Request{Op: OpSave, Path: path})
	if err != nil {
		return fmt.Errorf("save state of %s: %w", m.name, err)
	}
	if !resp.OK {
		return fmt.Errorf("save state of %s: %s", m.name, explain(resp.Kind, resp.Error, hostFacts{vmProcs: -1}))
	}
	return nil
}

// Stop shuts the guest down (Options.Shutdown), then has the worker stop
// the VM, then kills the worker if it lingers.
func (m *Machine) Stop(ctx context.Context) error { return m.stop(ctx, true) }

// stop is Stop; shutdown false pulls the plug at once, as a VM paused
// after saving its state needs (its guest cannot answer).
func (m *Machine) stop(ctx context.Context, shutdown bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil
	}
	defer m.stdin.Close()
	o := m.p.o
	if shutdown && o.Shutdown != nil && m.ep != nil && !m.workerExited() {
		sctx, cancel := context.WithTimeout(ctx, o.ShutdownTimeout)
		if err := o.Shutdown(sctx, *m.ep); err == nil {
			// The worker exits when the guest has powered off.
			select {
			case <-m.exited:
			case <-sctx.Done():
			}
		}
		cancel()
	}
	if !m.workerExited() {
		sctx, cancel := context.WithTimeout(ctx, o.StopTimeout)
		// Whether or not the reply arrives, the exit is what counts.
		_, _ = Call(sctx, m.socket(), Request{Op: OpStop})
		select {
		case <-m.exited:
		case <-sctx.Done():
		}
		cancel()
	}
	if !m.workerExited() {
		if err := m.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("stop %s: kill worker %d: %w", m.name, m.cmd.Process.Pid, err)
		}
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("stop %s: worker %d did not exit after SIGKILL", m.name, m.cmd.Process.Pid)
		}
	}
	return nil
}

// Delete stops the machine if needed and removes the clone.
func (m *Machine) Delete(ctx context.Context) error {
	if err := m.Stop(ctx); err != nil {
		return fmt.Errorf("delete %s: %w", m.name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deleted {
		return nil
	}
	// Removed while the owner lock is still held, so no Reap races it.
	err := os.RemoveAll(m.dir)
	m.owner.release()
	m.deleted = true
	m.p.mu.Lock()
	delete(m.p.live, m.dir)
	m.p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("delete %s: %w", m.name, err)
	}
	return nil
}

func exitWords(err error) string {
	if err == nil {
		return "exited"
	}
	return err.Error()
}
