package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/macos"
	"github.com/sxlab/sxlab/vm/sim/shell"
	"github.com/sxlab/sxlab/vm/sim/sshd"
)

// Options configure the sim provider.
type Options struct {
	// TimeScale multiplies simulated durations (boot, installs, sleep):
	// 0 makes them instant, 1 is real time.
	TimeScale float64
	// Seed, with each machine's name, makes the model's random choices
	// reproducible.
	Seed int64
	// BaseDir is where older sxlabs kept their machines' folders, which
	// Reap removes; default os.TempDir(). Machines' trees are in memory.
	BaseDir string
	// Listen is the address every machine's sshd listens on; default
	// 127.0.0.1:0 (a random port). A fixed port fits one machine only.
	Listen string
	// AuthorizedKeys may log in as the image's user, besides its password
	// and the key of Image.KeyFile.
	AuthorizedKeys []ssh.PublicKey
	// NewModel makes the simulated Mac behind each machine's shell;
	// default NewMac.
	NewModel func(cfg MacConfig, host Host, fs *FS) Model
	// Logf receives connection and lifecycle events; nil discards them.
	Logf func(format string, args ...any)
	// Sabotage, when set, is asked once per machine (by its name) how to
	// break that machine's infrastructure; see Sabotage. For tests of the
	// lab's error handling only.
	Sabotage func(machine string) Sabotage
}

// Provider makes simulated Macs: each machine is an in-process SSH
// server with its own file tree.
type Provider struct {
	o Options
	// blobs shares the bytes of the large files every machine is given
	// (sxlab-probe, 3.7 MB an attempt) between the machines' trees.
	blobs *shell.Blobs
	// packages keeps what the Macs read of the packages they install.
	packages *macos.PackageCache
}

var (
	_ vm.Provider     = (*Provider)(nil)
	_ vm.Machine      = (*Machine)(nil)
	_ Host            = (*Machine)(nil)
	_ macos.Network   = (*Machine)(nil)
	_ vm.StreamDialer = (*Machine)(nil)
)

// NewProvider returns the sim provider.
func NewProvider(o Options) *Provider {
	if o.BaseDir == "" {
		o.BaseDir = os.TempDir()
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.NewModel == nil {
		o.NewModel = func(cfg MacConfig, host Host, fs *FS) Model { return NewMac(cfg, host, fs) }
	}
	if o.TimeScale < 0 {
		o.TimeScale = 0
	}
	return &Provider{o: o, blobs: shell.NewBlobs(), packages: macos.NewPackageCache()}
}

// Name is "sim".
func (p *Provider) Name() string { return "sim" }

// Simulated is true: nothing here is a real Mac.
func (p *Provider) Simulated() bool { return true }

// Clone makes a machine from img; see NewMachine.
func (p *Provider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	m, err := p.NewMachine(ctx, img, name)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Defaults of a sim image, the same as the model's.
const (
	defaultUser           = "admin"
	defaultPassword       = "admin" // tart's public images use admin/admin
	defaultProductVersion = "15.6"
	defaultBuild          = "24G84"
	// Before the trees moved into memory, each machine was a folder
	// sxlab-sim-NAME-* under BaseDir holding a lock (held while the
	// machine existed) and its tree in "root"; Reap still clears those.
	machinePrefix = "sxlab-sim-"
	lockName      = ".lock"
	// reapMinAge protects a folder an older sxlab's Clone has just made
	// but not yet locked.
	reapMinAge = time.Minute
	// rebootGrace is how long a reboot waits for running commands to end
	// on their own before it drops the connections; it lets the command
	// that asked for the reboot report its exit status.
	rebootGrace = 500 * time.Millisecond
)

// NewMachine makes a machine from img: the guest's file tree in memory
// (it lives as long as the machine, or the process), a fresh ed25519
// host key, and the model.
func (p *Provider) NewMachine(ctx context.Context, img vm.Image, name string) (*Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: clone %s: %w", name, err)
	}
	if img.Sim == nil {
		return nil, fmt.Errorf("sim: clone %s: image %q has no sim section", name, img.Name)
	}
	cfg := MacConfig{
		Name: name, User: img.User, ProductVersion: img.Sim.ProductVersion, Build: img.Sim.Build,
		Faults: img.Sim.Faults, Seed: p.o.Seed, Golden: goldenOf(img.Sim.Golden),
		Packages: p.packages,
	}
	if cfg.User == "" {
		cfg.User = defaultUser
	}
	if cfg.ProductVersion == "" {
		cfg.ProductVersion, cfg.Build = defaultProductVersion, defaultBuild
	}
	password := img.Password
	if password == "" {
		password = defaultPassword
	}
	var sab Sabotage
	if p.o.Sabotage != nil {
		sab = p.o.Sabotage(name)
	}
	sshdPassword := password // what the guest accepts; Endpoint hands out password
	if sab.Password != "" {
		sshdPassword = sab.Password
	}
	cfg.Password = sshdPassword // what System Settings' password sheet accepts
	keys := append([]ssh.PublicKey(nil), p.o.AuthorizedKeys...)
	if img.KeyFile != "" {
		k, err := publicKeyOf(img.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("sim: clone %s: %w", name, err)
		}
		keys = append(keys, k)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sim: clone %s: host key: %w", name, err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sim: clone %s: host key: %w", name, err)
	}

	tree := shell.NewSharedFS(p.blobs)
	for _, d := range []string{"Applications", "Library", "Users/" + cfg.User, "tmp", "private/tmp", "var/log", "var/root"} {
		if err := tree.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("sim: clone %s: %w", name, err)
		}
	}

	m := &Machine{
		name: name, fs: tree, signer: signer,
		user: cfg.User, password: password, keyFile: img.KeyFile, listen: p.o.Listen,
		clock: newClock(p.o.TimeScale), logf: p.o.Logf,
		sabotage: sab, cutter: sshd.NewCutter(sab.CutSFTPAfter, sab.CutSFTPTimes),
		agent: img.Agent, route: sshd.NewRoute(),
	}
	m.model = p.o.NewModel(cfg, m, m.fs)
	if m.model == nil {
		return nil, fmt.Errorf("sim: clone %s: NewModel returned no model", name)
	}
	m.shell = shell.New(shell.Config{
		FS: m.fs, Programs: m.model, Clock: m, User: cfg.User,
		Hostname: shell.LocalHostname(cfg.Name), Release: macos.KernelRelease(cfg.ProductVersion), Logf: p.o.Logf,
	})
	m.sshConfig = sshd.ServerConfig(signer, cfg.User, sshdPassword, keys, p.o.Logf)
	return m, nil
}

// dirSafe keeps a machine name usable in a folder name.
func dirSafe(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// publicKeyOf reads the public half of a private key file (or its .pub).
func publicKeyOf(keyFile string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(keyFile)
	if err == nil {
		s, perr := ssh.ParsePrivateKey(data)
		if perr == nil {
			return s.PublicKey(), nil
		}
		var pm *ssh.PassphraseMissingError
		if errors.As(perr, &pm) && pm.PublicKey != nil {
			return pm.PublicKey, nil
		}
	}
	pub, perr := os.ReadFile(keyFile + ".pub")
	if perr == nil {
		k, _, _, _, kerr := ssh.ParseAuthorizedKey(pub)
		if kerr == nil {
			return k, nil
		}
		perr = kerr
	}
	if err == nil {
		err = perr
	}
	return nil, fmt.Errorf("image key %s: no public key: %w", keyFile, err)
}

// Reap removes machine folders in BaseDir whose lock nobody holds: the
// leftovers of older sxlabs (which kept each machine's tree in a
// folder) that died without deleting their machines. Machines of this
// one leave nothing on disk: their trees are in memory.
func (p *Provider) Reap(ctx context.Context) error {
	dirs, err := filepath.Glob(filepath.Join(p.o.BaseDir, machinePrefix+"*"))
	if err != nil {
		return fmt.Errorf("sim: reap: %w", err)
	}
	var errs []error
	for _, dir := range dirs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sim: reap: %w", err)
		}
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() {
			continue
		}
		lockPath := filepath.Join(dir, lockName)
		if _, err := os.Stat(lockPath); errors.Is(err, fs.ErrNotExist) && time.Since(fi.ModTime()) < reapMinAge {
			continue
		}
		lock := flock.New(lockPath)
		locked, err := lock.TryLock()
		if err != nil {
			errs = append(errs, fmt.Errorf("sim: reap %s: %w", dir, err))
			continue
		}
		if !locked {
			continue // a live machine
		}
		if err := removeTree(dir); err != nil {
			errs = append(errs, fmt.Errorf("sim: reap %s: %w", dir, err))
		} else {
			p.o.Logf("sim: reaped %s", dir)
		}
		_ = lock.Unlock()
		_ = lock.Close()
	}
	return errors.Join(errs...)
}

type machineState int

const (
	machineCreated machineState = iota
	machineRunning
	machineStopped
	machineDeleted
)

// Machine is one simulated Mac. It is also the Host its model runs in:
// Now and Sleep are its guest clock, Reboot drops every connection and
// boots the model again.
type Machine struct {
	name      string
	fs        *FS
	signer    ssh.Signer
	sshConfig *ssh.ServerConfig
	user      string
	password  string
	keyFile   string
	listen    string
	clock     *guestClock
	model     Model
	shell     *shell.Shell
	logf      func(string, ...any)
	sabotage  Sabotage
	cutter    *sshd.Cutter // nil unless transfers are sabotaged
	agent     bool         // the golden runs sxlab-agent: DialGuest reaches sshd
	route     *sshd.Route  // the guest's route to the host, which a VPN may capture

	routeMu  sync.Mutex // orders captures and releases; never held with mu
	routeGen int        // counts CaptureHostRoute calls

	mu        sync.Mutex
	state     machineState
	srv       *sshd.Server
	runCtx    context.Context // from Start to Stop
	cancel    context.CancelFunc
	addr      string        // where sshd listens; kept so a restart reuses the port
	ready     chan struct{} // closed when sshd answers after the current boot
	booting   bool
	stopDone  chan struct{} // closed when the last Stop finished waiting
	vsock     *pipeListener // the agent's port, from Start to Stop; nil without the agent
	wg        sync.WaitGroup
	stopError error
}

// Name is the machine's name.
func (m *Machine) Name() string { return m.name }

// FS is the machine's file tree.
func (m *Machine) FS() *FS { return m.fs }

// HostKey is the machine's public host key; it stays the same across
// reboots and restarts.
func (m *Machine) HostKey() ssh.PublicKey { return m.signer.PublicKey() }

// Addr is where sshd listens, empty before the first Start.
func (m *Machine) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return dialAddr(m.addr)
}

// dialAddr turns a listening address into one a client can dial.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Start boots the machine: sshd listens at once, but like a booting Mac it
// drops connections until the model's boot delay has passed.
func (m *Machine) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sim: start %s: %w", m.name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case machineDeleted:
		return fmt.Errorf("sim: start %s: the machine was deleted", m.name)
	case machineRunning:
		return nil
	}
	var ln net.Listener
	var err error
	if m.addr != "" {
		ln, err = net.Listen("tcp", m.addr) // the port of the last run, if free
	}
	if ln == nil {
		ln, err = net.Listen("tcp", m.listen)
	}
	if err != nil {
		return fmt.Errorf("sim: start %s: %w", m.name, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.srv = sshd.New(runCtx, sshd.Config{
		Listener: ln, SSH: m.sshConfig, Shell: m.shell, FS: m.fs,
		Home: m.shell.Home(m.user), WG: &m.wg, Logf: m.logf,
		Hang: m.sabotage.Hang, Cutter: m.cutter, Route: m.route,
	})
	m.runCtx, m.cancel = runCtx, cancel
	m.addr = ln.Addr().String()
	m.state = machineRunning
	m.booting = true
	m.ready = make(chan struct{})
	m.model.Boot()
	m.logf("sim: %s: booting, sshd on %s", m.name, m.addr)
	m.wg.Add(1)
	go m.srv.Serve()
	if m.agent {
		m.startAgent(runCtx, m.srv)
	}
	if m.sabotage.NoSSHD {
		m.logf("sim: sabotage: %s: sshd will never answer", m.name)
		return nil
	}
	// The goroutine gets its own copies: a Stop right after Start
	// clears m.srv under the lock this goroutine does not hold.
	srv, ready := m.srv, m.ready
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.finishBoot(runCtx, srv, ready)
	}()
	return nil
}

// finishBoot waits the boot delay, then lets sshd answer.
func (m *Machine) finishBoot(ctx context.Context, srv *sshd.Server, ready chan struct{}) {
	if err := m.clock.Sleep(ctx, m.model.BootDelay()); err != nil {
		return
	}
	m.mu.Lock()
	if m.state != machineRunning || m.ready != ready {
		m.mu.Unlock()
		return
	}
	m.booting = false
	m.mu.Unlock()
	srv.SetBooting(false)
	close(ready)
	m.logf("sim: %s: up", m.name)
}

// Endpoint waits until sshd answers and says how to reach it.
func (m *Machine) Endpoint(ctx context.Context) (guest.Endpoint, error) {
	m.mu.Lock()
	if m.state != machineRunning {
		m.mu.Unlock()
		return guest.Endpoint{}, fmt.Errorf("sim: endpoint of %s: the machine is not running", m.name)
	}
	ready, runCtx, addr := m.ready, m.runCtx, m.addr
	m.mu.Unlock()
	// A sabotaged sshd never gets ready: the address is known, and the
	// client finds out that nobody answers.
	if !m.sabotage.NoSSHD {
		select {
		case <-ready:
		case <-ctx.Done():
			return guest.Endpoint{}, fmt.Errorf("sim: endpoint of %s: %w", m.name, context.Cause(ctx))
		case <-runCtx.Done():
			return guest.Endpoint{}, fmt.Errorf("sim: endpoint of %s: the machine stopped", m.name)
		}
	}
	return guest.Endpoint{
		Addr:      dialAddr(addr),
		User:      m.user,
		Password:  m.password,
		KeyFile:   m.keyFile,
		HostKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(m.signer.PublicKey()))),
		Simulated: true,
		Stream:    m.dialHost,
	}, nil
}

// dialHost is the lab's TCP connection to sshd over the guest's NAT
// network, made in memory (sshd.Server.DialHost): the same sshd, route
// and rules as a connection to Addr, which stays open for clients
// outside this process. Like TCP, it is refused while the machine is
// not running.
func (m *Machine) dialHost(ctx context.Context) (net.Conn, error) {
	m.mu.Lock()
	srv, addr := m.srv, dialAddr(m.addr)
	m.mu.Unlock()
	if srv != nil {
		c, err := srv.DialHost(ctx)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: tcpAddr(addr), Err: context.Cause(ctx)}
		}
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: tcpAddr(addr), Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// tcpAddr is addr as a net.Addr for an error message; nil when it is
// not host:port.
func tcpAddr(addr string) net.Addr {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// Now is the guest clock.
func (m *Machine) Now() time.Time { return m.clock.Now() }

// Sleep waits d of simulated time (d*TimeScale of real time).
func (m *Machine) Sleep(ctx context.Context, d time.Duration) error { return m.clock.Sleep(ctx, d) }

// Reboot drops every SSH connection, boots the model again and lets sshd
// answer after the boot delay, on the same port with the same host key.
// It returns at once, so a command may call it; that command's exit
// status still reaches its client if it returns promptly.
func (m *Machine) Reboot() {
	m.mu.Lock()
	if m.state != machineRunning || m.booting {
		m.mu.Unlock()
		return
	}
	m.booting = true
	ready := make(chan struct{})
	m.ready = ready
	srv, ctx := m.srv, m.runCtx
	srv.SetBooting(true) // no new connections or commands from here on
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		m.logf("sim: %s: rebooting", m.name)
		grace := time.NewTimer(rebootGrace)
		defer grace.Stop()
		select {
		case <-srv.IdleCh():
		case <-grace.C:
		case <-ctx.Done():
			return
		}
		srv.DropAll(sshd.ErrRebooting)
		select { // no command of the old boot may run on into the new one
		case <-srv.IdleCh():
		case <-ctx.Done():
			return
		}
		m.emptyTmp()
		m.model.Boot()
		m.finishBoot(ctx, srv, ready)
	}()
}

// emptyTmp is a restart's clearing of /tmp (docs/macos-behaviour.md rule
// 26): what a step uploaded there before a reboot is gone after it.
func (m *Machine) emptyTmp() {
	for _, dir := range []string{"/tmp", "/private/tmp"} {
		entries, err := m.fs.ReadDir(dir)
		if err != nil {
			continue // no such folder: nothing to empty
		}
		for _, e := range entries {
			if err := m.fs.RemoveAll(dir + "/" + e.Name()); err != nil {
				m.logf("sim: %s: reboot: empty %s: %v", m.name, dir, err)
			}
		}
	}
}

// Stop shuts the machine down: no goroutine of it survives. A command
// that ignores its context can hold Stop until ctx ends; Stop then
// reports it. Stop must not be called from inside a command.
func (m *Machine) Stop(ctx context.Context) error {
	m.mu.Lock()
	switch m.state {
	case machineRunning:
	case machineStopped:
		done := m.stopDone
		m.mu.Unlock()
		if done == nil {
			return nil
		}
		select {
		case <-done:
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.stopError
		case <-ctx.Done():
			return fmt.Errorf("sim: stop %s: %w", m.name, ctx.Err())
		}
	default:
		m.mu.Unlock()
		return nil
	}
	m.state = machineStopped
	m.cancel()
	srv := m.srv
	m.srv = nil
	done := make(chan struct{})
	m.stopDone = done
	m.stopError = nil
	m.mu.Unlock()

	srv.Close()
	waited := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(waited)
	}()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		select {
		case <-waited:
		default:
			err = fmt.Errorf("sim: stop %s: commands still running: %w", m.name, ctx.Err())
		}
	}
	m.mu.Lock()
	m.stopError = err
	m.mu.Unlock()
	close(done)
	if err == nil {
		m.logf("sim: %s: stopped", m.name)
	}
	return err
}

// Delete stops the machine and drops its file tree.
func (m *Machine) Delete(ctx context.Context) error {
	stopErr := m.Stop(ctx)
	m.mu.Lock()
	if m.state == machineDeleted {
		m.mu.Unlock()
		return nil
	}
	m.state = machineDeleted
	m.mu.Unlock()
	// Whoever still holds the machine (a kept list, a late SFTP
	// handler) no longer holds its installed apps and uploads.
	m.fs.Clear()
	return stopErr
}
