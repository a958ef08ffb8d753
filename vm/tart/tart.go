// Package tart is the machine provider over the tart CLI (tart.run), for
// teams that already keep their golden macOS images as tart VMs. Each
// machine is a `tart clone` of the image's VM, booted by a supervised
// `tart run --no-graphics` child process and found with `tart ip`.
//
// A machine is tied to the process that made it by a lock file per VM
// (<tart home>/sxlab-locks/<vm>.lock, flock(2)) held from Clone to Delete,
// as vm/sim ties a simulated Mac to its folder's lock: the kernel drops
// the lock when the process dies, so Reap can tell a dead run's leftovers
// from a live run's machines without any registry.
package tart

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/sxlab/sxlab/vm"
)

// Errors callers can test with errors.Is.
var (
	// ErrNotInstalled: the tart executable was not found.
	ErrNotInstalled = errors.New("tart is not installed")
	// ErrVMLimit: Virtualization.framework refused to start another macOS
	// guest (VZErrorVirtualMachineLimitExceeded).
	ErrVMLimit = errors.New("at most two macOS VMs run per host")
	// ErrNoSuchVM: tart does not know the VM.
	ErrNoSuchVM = errors.New("no such tart VM")
	// ErrNoIP: the VM did not get an IP address in time.
	ErrNoIP = errors.New("no IP address")
	// ErrExited: `tart run` ended before the machine was stopped.
	ErrExited = errors.New("tart run exited before the machine was stopped")
)

// Defaults of Options.
const (
	defaultBinary      = "tart"
	defaultIPWait      = 5 * time.Minute
	defaultStopTimeout = 30 * time.Second
	// maxIPWait is the most `tart ip --wait` accepts (a UInt16 of seconds).
	maxIPWait = 65535 * time.Second
	// namePrefix starts every VM this provider makes; Reap looks only at
	// those, and only at those with a lock file besides.
	namePrefix  = "sxlab-"
	lockDirName = "sxlab-locks"
	// reapMinAge protects a lock file that a Clone has just created but
	// not yet locked.
	reapMinAge = time.Minute
	// outputTail is how much of a command's output an error quotes.
	outputTail = 2048
)

// Options configure the tart provider.
type Options struct {
	// Binary is the tart executable: a name looked up on PATH or a path.
	// Default "tart".
	Binary string
	// Home is tart's home (TART_HOME) for every tart command; "" keeps
	// the environment's TART_HOME, else ~/.tart.
	Home string
	// LockDir holds a lock file per machine (see the package comment).
	// Default <Home>/sxlab-locks: locks live with the VMs they guard, so
	// two tart homes never mix.
	LockDir string
	// Suspendable runs machines with --suspendable, so Suspend can save
	// their state (macOS 14+ hosts). A VM cloned from a suspended golden
	// is resumed by tart whatever this says.
	Suspendable bool
	// IPWait bounds `tart ip --wait`: how long a booting guest may take to
	// get its DHCP lease. Default 5m; a context deadline that comes
	// sooner wins.
	IPWait time.Duration
	// StopTimeout is `tart stop --timeout`: the graceful shutdown's
	// limit, after which tart kills the VM. Default 30s.
	StopTimeout time.Duration
	// Logf receives lifecycle notes; nil discards them.
	Logf func(format string, args ...any)
	// PS returns `ps -A -o comm=` output, to count Virtualization.framework
	// VM processes when tart hits the VM limit. Default runs ps.
	PS func(ctx context.Context) ([]byte, error)
}

// Provider makes machines by cloning tart VMs.
type Provider struct {
	o      Options
	binary string // resolved path
	home   string // the tart home in use, for messages
}

var (
	_ vm.Provider = (*Provider)(nil)
	_ vm.Limiter  = (*Provider)(nil)
	_ vm.Machine  = (*Machine)(nil)
)

// stateFile is where tart keeps a suspended VM's saved state.
const stateFile = "state.vzvmsave"

// MaxMachines is 1 for an image whose tart VM is suspended: tart clones a
// suspended VM with its MAC (the state needs it), so two clones running
// at once would share one DHCP lease. Otherwise there is no limit.
func (p *Provider) MaxMachines(img vm.Image) (int, string) {
	if img.Tart == nil || img.Tart.VM == "" || strings.ContainsAny(img.Tart.VM, "/:") {
		return 0, "" // a remote image: tart pulls it; Clone says what is wrong
	}
	fi, err := os.Stat(filepath.Join(p.home, "vms", img.Tart.VM, stateFile))
	if err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return 1, fmt.Sprintf("its tart VM %s is suspended, and tart clones a suspended VM with its MAC; stop it (tart run, then shut it down) for cold boots in parallel", img.Tart.VM)
	}
	return 0, ""
}

// NewProvider returns the tart provider, or ErrNotInstalled (with how to
// install tart) when the tart executable is not found.
func NewProvider(o Options) (*Provider, error) {
	if o.Binary == "" {
		o.Binary = defaultBinary
	}
	if o.IPWait <= 0 {
		o.IPWait = defaultIPWait
	}
	if o.IPWait > maxIPWait {
		o.IPWait = maxIPWait
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = defaultStopTimeout
	}
	if o.PS == nil {
		o.PS = func(ctx context.Context) ([]byte, error) {
			return exec.CommandContext(ctx, "ps", "-A", "-o", "comm=").Output()
		}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		return nil, notInstalled(o.Binary, runtime.GOOS, err)
	}
	home := o.Home
	if home == "" {
		home = os.Getenv("TART_HOME")
	}
	if home == "" {
		userHome, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("tart: find tart's home: %w (set hosts[].tart.home)", err)
		}
		home = filepath.Join(userHome, ".tart")
	}
	if o.LockDir == "" {
		o.LockDir = filepath.Join(home, lockDirName)
	}
	return &Provider{o: o, binary: bin, home: home}, nil
}

// notInstalled words a missing tart executable for the platform.
func notInstalled(binary, goos string, err error) error {
	how := "install it with `brew install cirruslabs/cli/tart` (see https://tart.run), or give its path"
	if goos != "darwin" {
		how = "tart runs only on macOS on Apple Silicon; on this " + goos + " host use the sim provider, or ssh to reach a Mac"
	}
	return fmt.Errorf("tart: %w (%q: %v): %s", ErrNotInstalled, binary, err, how)
}

// Name is "tart".
func (p *Provider) Name() string { return "tart" }

// Simulated is false: tart machines are real macOS guests.
func (p *Provider) Simulated() bool { return false }

// Clone makes a machine from img's tart VM: a lock file, then
// `tart clone GOLDEN sxlab-<name>-<random>`. The random part keeps two
// runs (two shards on one Mac) from choosing the same VM name.
func (p *Provider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	m, err := p.NewMachine(ctx, img, name)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// NewMachine is Clone returning the concrete machine (for Suspend and
// Exited).
func (p *Provider) NewMachine(ctx context.Context, img vm.Image, name string) (*Machine, error) {
	if img.Tart == nil || img.Tart.VM == "" {
		return nil, fmt.Errorf("tart: clone %s: image %q has no tart.vm", name, img.Name)
	}
	vmName, err := newVMName(name)
	if err != nil {
		return nil, fmt.Errorf("tart: clone %s: %w", name, err)
	}
	if err := os.MkdirAll(p.o.LockDir, 0o755); err != nil {
		return nil, fmt.Errorf("tart: clone %s: %w", name, err)
	}
	lock := flock.New(p.lockPath(vmName))
	locked, err := lock.TryLock()
	if err == nil && !locked {
		err = errors.New("lock held by another process")
	}
	if err != nil {
		return nil, fmt.Errorf("tart: clone %s: lock %s: %w", name, lock.Path(), err)
	}
	if _, err := p.tart(ctx, "clone", img.Tart.VM, vmName); err != nil {
		_ = os.Remove(lock.Path())
		_ = lock.Unlock()
		_ = lock.Close()
		if errors.Is(err, ErrNoSuchVM) {
			return nil, fmt.Errorf("tart: clone %s: image %s: tart VM %q does not exist in %s (`tart list` shows the VMs there; `tart clone ghcr.io/cirruslabs/macos-sequoia-base:latest %s` pulls a public one): %w",
				name, img.Name, img.Tart.VM, p.home, img.Tart.VM, err)
		}
		return nil, fmt.Errorf("tart: clone %s from %s: %w", name, img.Tart.VM, err)
	}
	p.o.Logf("tart: cloned %s from %s", vmName, img.Tart.VM)
	return &Machine{p: p, name: name, vm: vmName, img: img, lock: lock}, nil
}

// newVMName makes the tart VM name for a machine: the prefix, the
// machine name in characters tart takes as a local name (a "/" or ":"
// would make it a registry reference), and 6 random hex digits.
func newVMName(name string) (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	safe := []byte(strings.TrimPrefix(name, namePrefix))
	for i, c := range safe {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			safe[i] = '_'
		}
	}
	if len(safe) > 48 {
		safe = safe[:48]
	}
	if len(safe) == 0 {
		return namePrefix + hex.EncodeToString(b[:]), nil
	}
	return namePrefix + string(safe) + "-" + hex.EncodeToString(b[:]), nil
}

func (p *Provider) lockPath(vmName string) string {
	return filepath.Join(p.o.LockDir, vmName+".lock")
}

// runLog is where `tart run`'s output goes: a file rather than a pipe, so
// nothing of ours has to drain it and it outlives a crash of sxlab.
func (p *Provider) runLog(vmName string) string {
	return filepath.Join(p.o.LockDir, vmName+".run.log")
}

// Reap deletes the sxlab VMs whose lock nobody holds: the leftovers of
// runs that died before their cleanup (SIGKILL, a crash, a power cut),
// stopping them first when their orphaned `tart run` still runs. VMs
// without a lock file are not sxlab's and are never touched, whatever
// their name.
func (p *Provider) Reap(ctx context.Context) error {
	vms, err := p.list(ctx)
	if err != nil {
		return fmt.Errorf("tart: reap: %w", err)
	}
	listed := map[string]bool{}
	var errs []error
	for _, v := range vms {
		if !strings.HasPrefix(v.Name, namePrefix) || !strings.EqualFold(v.Source, "local") {
			continue
		}
		listed[v.Name] = true
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("tart: reap: %w", err)
		}
		lock := flock.New(p.lockPath(v.Name))
		if _, err := os.Stat(lock.Path()); errors.Is(err, fs.ErrNotExist) {
			continue // not made by sxlab
		}
		locked, err := lock.TryLock()
		if err != nil {
			errs = append(errs, fmt.Errorf("tart: reap %s: %w", v.Name, err))
			continue
		}
		if !locked {
			continue // a live run's machine
		}
		if err := p.reapVM(ctx, v); err != nil {
			errs = append(errs, err)
		} else {
			_ = os.Remove(p.runLog(v.Name))
			_ = os.Remove(lock.Path())
			p.o.Logf("tart: reaped %s", v.Name)
		}
		_ = lock.Unlock()
		_ = lock.Close()
	}
	// Lock files whose VM is gone: a Delete that died between the two.
	locks, _ := filepath.Glob(filepath.Join(p.o.LockDir, namePrefix+"*.lock"))
	for _, path := range locks {
		vmName := strings.TrimSuffix(filepath.Base(path), ".lock")
		fi, err := os.Stat(path)
		if listed[vmName] || err != nil || time.Since(fi.ModTime()) < reapMinAge {
			continue
		}
		lock := flock.New(path)
		if ok, err := lock.TryLock(); err == nil && ok {
			_ = os.Remove(p.runLog(vmName))
			_ = os.Remove(path)
			_ = lock.Unlock()
		}
		_ = lock.Close()
	}
	return errors.Join(errs...)
}

func (p *Provider) reapVM(ctx context.Context, v vmInfo) error {
	if v.running() {
		if _, err := p.tart(ctx, "stop", "--timeout", seconds(p.o.StopTimeout), v.Name); err != nil && !errors.Is(err, ErrNoSuchVM) {
			return fmt.Errorf("tart: reap %s: %w", v.Name, err)
		}
	}
	if _, err := p.tart(ctx, "delete", v.Name); err != nil && !errors.Is(err, ErrNoSuchVM) {
		return fmt.Errorf("tart: reap %s: %w", v.Name, err)
	}
	return nil
}

// vmInfo is one entry of `tart list --format json`.
type vmInfo struct {
	Name    string `json:"Name"`
	Source  string `json:"Source"`
	Running *bool  `json:"Running"` // missing before tart 2
	State   string `json:"State"`
}

func (v vmInfo) running() bool {
	if v.Running != nil {
		return *v.Running
	}
	return strings.EqualFold(v.State, "running")
}

func (p *Provider) list(ctx context.Context) ([]vmInfo, error) {
	out, err := p.tart(ctx, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var vms []vmInfo
	if err := json.Unmarshal([]byte(out.stdout), &vms); err != nil {
		return nil, fmt.Errorf("tart list --format json: unexpected output %q: %w", tail(out.stdout, 200), err)
	}
	return vms, nil
}

// runningVMs names the running VMs, for the VM-limit message; best
// effort.
func (p *Provider) runningVMs(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	vms, err := p.list(ctx)
	if err != nil {
		return nil
	}
	var names []string
	for _, v := range vms {
		if v.running() {
			names = append(names, v.Name)
		}
	}
	slices.Sort(names)
	return names
}

// vmProcess is the XPC service every running Virtualization.framework VM
// has, whoever started it.
const vmProcess = "com.apple.Virtualization.VirtualMachine"

// vmProcesses counts the framework's VM processes; -1 when ps fails.
func (p *Provider) vmProcesses(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, err := p.o.PS(ctx)
	if err != nil {
		return -1
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		if strings.HasSuffix(strings.TrimSpace(line), vmProcess) {
			n++
		}
	}
	return n
}

// output is what a finished tart command printed.
type output struct{ stdout, stderr string }

// CommandError is a tart command that exited with a failure.
type CommandError struct {
	Args   []string
	Exit   int
	Output string // the tail of stderr, then of stdout: tart prints errors on either
	kind   error  // a sentinel the output matched, if any
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("tart %s: exit %d", strings.Join(e.Args, " "), e.Exit)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

// Unwrap lets errors.Is see the sentinel the output matched.
func (e *CommandError) Unwrap() error { return e.kind }

// tart runs one tart command to its end.
func (p *Provider) tart(ctx context.Context, args ...string) (output, error) {
	cmd := exec.CommandContext(ctx, p.binary, args...)
	cmd.Env = p.env()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A grandchild holding the pipes open must not hold us.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	out := output{stdout: stdout.String(), stderr: stderr.String()}
	if err == nil {
		return out, nil
	}
	if ctx.Err() != nil {
		return out, fmt.Errorf("tart %s: %w", strings.Join(args, " "), context.Cause(ctx))
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return out, fmt.Errorf("tart %s: %w", strings.Join(args, " "), err)
	}
	text := strings.TrimSpace(strings.TrimSpace(out.stderr) + "\n" + strings.TrimSpace(out.stdout))
	return out, &CommandError{Args: args, Exit: ee.ExitCode(), Output: tail(text, outputTail), kind: classify(text)}
}

func (p *Provider) env() []string {
	env := os.Environ()
	if p.o.Home != "" {
		env = append(env, "TART_HOME="+p.o.Home)
	}
	return env
}

// classify recognises what tart (or Virtualization.framework through it)
// said went wrong.
func classify(text string) error {
	s := strings.ToLower(text)
	switch {
	case strings.Contains(s, "vzerrordomain code=6"),
		strings.Contains(s, "maximum supported number of active virtual machines"),
		strings.Contains(s, "number of vms exceeds the system limit"),
		strings.Contains(s, "number of virtual machines exceeds the limit"):
		return ErrVMLimit
	case strings.Contains(s, "does not exist"):
		return ErrNoSuchVM
	case strings.Contains(s, "no ip address found"):
		return ErrNoIP
	}
	return nil
}

// tail keeps the last n bytes of s, on a line boundary when one is near.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < n/4 {
		s = s[i+1:]
	}
	return "…" + s
}

func seconds(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}
