package tart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

type machineState int

const (
	machineCloned machineState = iota
	machineRunning
	machineStopped
	machineDeleted
)

// Machine is one tart clone and, while it runs, its `tart run` process.
type Machine struct {
	p    *Provider
	name string // the lab's name for it
	vm   string // tart's name for it
	img  vm.Image
	lock *flock.Flock

	mu       sync.Mutex
	state    machineState
	run      *exec.Cmd
	exited   chan struct{} // closed when the current `tart run` has ended
	exitErr  error         // set before exited closes; nil for an expected exit
	stopping bool          // Stop or Suspend asked: the exit is expected
	reported bool          // exitErr was returned once already
}

// Name is the machine's name as the lab gave it.
func (m *Machine) Name() string { return m.name }

// VM is the tart VM's name (what `tart list` shows).
func (m *Machine) VM() string { return m.vm }

// Exited is closed when the machine's `tart run` has ended (nil before
// Start).
func (m *Machine) Exited() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exited
}

// Start runs `tart run --no-graphics [--suspendable] VM` as a child in its
// own process group, so a Ctrl-C at the terminal reaches sxlab, which
// then stops the VM in order, rather than killing tart under it. It
// returns once the process has started; an early failure of it (the VM
// limit, a bad bundle) is reported by Endpoint, and any exit before Stop
// is an error.
func (m *Machine) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tart: start %s: %w", m.vm, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case machineDeleted:
		return fmt.Errorf("tart: start %s: the machine was deleted", m.vm)
	case machineRunning:
		return nil
	}
	args := []string{"run", "--no-graphics"}
	if m.p.o.Suspendable {
		args = append(args, "--suspendable")
	}
	args = append(args, m.vm)
	log, err := os.Create(m.p.runLog(m.vm))
	if err != nil {
		return fmt.Errorf("tart: start %s: %w", m.vm, err)
	}
	cmd := exec.Command(m.p.binary, args...)
	cmd.Env = m.p.env()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = ownProcessGroup()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("tart: start %s: tart %s: %w", m.vm, strings.Join(args, " "), err)
	}
	log.Close() // the child has its own copy
	exited := make(chan struct{})
	m.run, m.exited, m.exitErr, m.stopping, m.reported = cmd, exited, nil, false, false
	m.state = machineRunning
	m.p.o.Logf("tart: %s: tart run started (pid %d)", m.vm, cmd.Process.Pid)
	go func() {
		werr := cmd.Wait()
		m.mu.Lock()
		unexpected := !m.stopping
		m.mu.Unlock()
		var err error
		if unexpected {
			err = m.exitError(werr) // runs tart list: not under the lock
		}
		m.mu.Lock()
		m.exitErr = err
		m.mu.Unlock()
		close(exited)
	}()
	return nil
}

// exitError words an unexpected end of `tart run`: the VM, how it ended,
// and what it printed last.
func (m *Machine) exitError(werr error) error {
	how := "exit 0"
	if werr != nil {
		how = werr.Error()
	}
	out := m.readRunLog()
	kind := classify(out)
	if errors.Is(kind, ErrVMLimit) {
		running := m.p.runningVMs(context.Background())
		who := "other VMs, or another app using Virtualization.framework"
		if len(running) > 0 {
			who = "running now: " + strings.Join(running, ", ")
		}
		err := fmt.Errorf("tart: VM %s: %w (Virtualization.framework's limit, set by the macOS licence; %s): lower hosts[].slots or stop the other VMs; tart said: %s",
			m.vm, ErrVMLimit, who, out)
		// Fewer than two VMs by tart's count and by the framework's
		// processes: the framework leaked a slot, and only a reboot frees
		// it (tart issues 445 and 1217). The refused VM's own process may
		// be counted, so two processes are not taken for a leak.
		if procs := m.p.vmProcesses(context.Background()); len(running) < 2 && procs >= 0 && procs < 2 {
			// Recorded for sxlab doctor, which reads it in the lock folder.
			if lerr := vm.RecordLeak(m.p.o.LockDir, vm.Leak{At: time.Now().UTC(), VMProcesses: procs, Running: len(running), Message: out}); lerr != nil {
				err = fmt.Errorf("%w (and %v)", err, lerr)
			}
			return &vm.HostFault{Err: err, Reason: fmt.Sprintf(
				"Virtualization.framework refused a VM with its two-VM limit while %d tart VM(s) and %d VM process(es) ran: the host leaked a VM slot, which only a reboot frees (tart issues 445, 1217; UTM 5563); reboot it", len(running), procs)}
		}
		return err
	}
	if out == "" {
		out = "(no output)"
	}
	if kind != nil {
		return fmt.Errorf("tart: VM %s: %w (%s): %w: %s", m.vm, ErrExited, how, kind, out)
	}
	return fmt.Errorf("tart: VM %s: %w (%s): %s", m.vm, ErrExited, how, out)
}

func (m *Machine) readRunLog() string {
	f, err := os.Open(m.p.runLog(m.vm))
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 4*outputTail {
		_, _ = f.Seek(fi.Size()-4*outputTail, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return tail(string(b), outputTail)
}

// Endpoint waits for the guest's address with `tart ip --wait` and says
// to reach its sshd on port 22 with the image's credentials. The host
// key is learnt on first use and pinned by the caller. If `tart run`
// ends meanwhile, the wait stops and the error says why it ended.
func (m *Machine) Endpoint(ctx context.Context) (guest.Endpoint, error) {
	m.mu.Lock()
	if m.state != machineRunning {
		m.mu.Unlock()
		return guest.Endpoint{}, fmt.Errorf("tart: endpoint of %s: the machine is not running", m.vm)
	}
	exited := m.exited
	m.mu.Unlock()
	if err := m.takeExit(exited); err != nil {
		return guest.Endpoint{}, err
	}

	wait := m.p.o.IPWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	ictx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-exited:
			cancel(ErrExited)
		case <-ictx.Done():
		}
	}()
	out, err := m.p.tart(ictx, "ip", "--wait", seconds(wait), m.vm)
	if exitErr := m.takeExit(exited); exitErr != nil {
		return guest.Endpoint{}, exitErr
	}
	if err != nil {
		if errors.Is(err, ErrNoIP) {
			return guest.Endpoint{}, fmt.Errorf("tart: VM %s got no IP address within %s (the guest has not finished booting, or the host's DHCP pool is exhausted: see `sxlab doctor`): %w", m.vm, wait.Round(time.Second), err)
		}
		return guest.Endpoint{}, fmt.Errorf("tart: address of %s: %w", m.vm, err)
	}
	ip := lastLine(out.stdout)
	if parsed := net.ParseIP(ip); parsed == nil {
		return guest.Endpoint{}, fmt.Errorf("tart: address of %s: tart ip printed %q, not an IP address", m.vm, tail(out.stdout, 200))
	}
	user := m.img.User
	if user == "" {
		user = "admin"
	}
	return guest.Endpoint{
		Addr:     net.JoinHostPort(ip, "22"),
		User:     user,
		Password: m.img.Password,
		KeyFile:  m.img.KeyFile,
	}, nil
}

// takeExit returns the unexpected-exit error once `tart run` has ended,
// and marks it reported so Stop does not repeat it.
func (m *Machine) takeExit(exited <-chan struct{}) error {
	select {
	case <-exited:
	default:
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exitErr == nil {
		return fmt.Errorf("tart: VM %s: %w", m.vm, ErrExited)
	}
	m.reported = true
	return m.exitErr
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Stop shuts the VM down with `tart stop` (graceful, then forced after
// StopTimeout) and waits for `tart run` to end. If `tart run` had already
// ended on its own, Stop reports that, unless Endpoint already did.
func (m *Machine) Stop(ctx context.Context) error {
	return m.halt(ctx, "stop", "--timeout", seconds(m.p.o.StopTimeout), m.vm)
}

// Suspend saves the VM's state with `tart suspend` (the machine must have
// been started with Options.Suspendable, on a macOS 14+ host) and waits
// for `tart run` to end. A later clone of this VM resumes from the state.
func (m *Machine) Suspend(ctx context.Context) error {
	return m.halt(ctx, "suspend", m.vm)
}

func (m *Machine) halt(ctx context.Context, args ...string) error {
	m.mu.Lock()
	if m.state != machineRunning {
		m.mu.Unlock()
		return nil
	}
	exited, cmd := m.exited, m.run
	select {
	case <-exited:
		m.state = machineStopped
		err := m.exitErr
		if m.reported {
			err = nil
		}
		m.reported = true
		m.mu.Unlock()
		return err
	default:
	}
	m.stopping = true
	m.mu.Unlock()

	_, err := m.p.tart(ctx, args...)
	if err != nil {
		err = fmt.Errorf("tart: %s %s: %w", args[0], m.vm, err)
	}
	// tart stop waits for the VM itself; the margin covers tart run's own
	// exit. Past it, or when ctx ends, the process group is killed.
	grace := time.NewTimer(m.p.o.StopTimeout + 15*time.Second)
	defer grace.Stop()
	select {
	case <-exited:
	case <-grace.C:
		killGroup(cmd.Process)
		<-exited
		err = errors.Join(err, fmt.Errorf("tart: %s %s: tart run did not end; killed it", args[0], m.vm))
	case <-ctx.Done():
		killGroup(cmd.Process)
		<-exited
		err = errors.Join(err, fmt.Errorf("tart: %s %s: killed tart run: %w", args[0], m.vm, ctx.Err()))
	}
	m.mu.Lock()
	m.state = machineStopped
	if m.exitErr != nil && !m.reported {
		// tart run ended on its own just before it was asked to.
		err = errors.Join(m.exitErr, err)
	}
	m.reported = true
	m.mu.Unlock()
	if err == nil {
		m.p.o.Logf("tart: %s: %s done", m.vm, args[0])
	}
	return err
}

// Delete stops the VM if it runs, deletes it with `tart delete`, and
// drops its lock. A delete that fails keeps the lock file, so a later
// Reap retries it once this process is gone.
func (m *Machine) Delete(ctx context.Context) error {
	stopErr := m.Stop(ctx)
	m.mu.Lock()
	if m.state == machineDeleted {
		m.mu.Unlock()
		return nil
	}
	m.state = machineDeleted
	m.mu.Unlock()
	errs := []error{stopErr}
	_, err := m.p.tart(ctx, "delete", m.vm)
	if err != nil && !errors.Is(err, ErrNoSuchVM) {
		errs = append(errs, fmt.Errorf("tart: delete %s: %w", m.vm, err))
	} else {
		_ = os.Remove(m.p.runLog(m.vm))
		_ = os.Remove(m.lock.Path())
	}
	_ = m.lock.Unlock()
	_ = m.lock.Close()
	return errors.Join(errs...)
}
