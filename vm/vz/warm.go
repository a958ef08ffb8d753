package vz

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/sxlab/sxlab/cmd/sxlab-agent/launchd"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

// warmingStateFile is where Warm has the framework write the state; it is
// renamed to StateFile only once the VM has stopped, so a clone never
// copies half a state.
const warmingStateFile = ".warming-" + StateFile

// WarmResult is what Warm did, with the figures the hardware acceptance
// script prints.
type WarmResult struct {
	Bundle string `json:"bundle"`
	MAC    string `json:"mac_address"`
	// Address is the guest's sshd while it ran.
	Address string `json:"address"`
	// ReplacedState: the golden had a saved state, dropped before the boot
	// (booting changes the disk, so the old state no longer matched it).
	ReplacedState bool          `json:"replaced_state"`
	BootToAddress time.Duration `json:"boot_to_address_ns"`
	Prepare       time.Duration `json:"prepare_ns"`
	Save          time.Duration `json:"save_ns"`
	StateBytes    int64         `json:"state_bytes"`
	// Agent: sxlab-agent was installed and sshd answered through it over
	// vsock (AgentBanner is what it said) before the state was saved.
	Agent        bool          `json:"agent"`
	AgentBanner  string        `json:"agent_banner,omitempty"`
	AgentInstall time.Duration `json:"agent_install_ns,omitempty"`
}

// Prepare logs in to a booted golden, waits for its sshd and readies it
// (the image's prepare commands).
type Prepare func(ctx context.Context, ep guest.Endpoint) error

// WarmSteps is what Warm does in the booted golden before it saves its
// state.
type WarmSteps struct {
	// Prepare readies the guest; required.
	Prepare Prepare
	// Agent, when set, installs sxlab-agent after Prepare; nil installs
	// none (an image without `agent: true`).
	Agent *AgentInstall
}

// AgentInstall says how Warm installs sxlab-agent in a golden: upload the
// darwin/arm64 binary over SFTP, run launchd.InstallCommands, then check
// from the host that sshd answers through the agent over the VM's
// virtio-socket device (vm.AgentPort). A saved state then restores with
// the agent already running. Unverified on macOS.
type AgentInstall struct {
	// Binary gives the local darwin/arm64 sxlab-agent (guestbin builds
	// it). It is asked before anything is touched: a failed build leaves
	// the golden's old state alone.
	Binary func(ctx context.Context) (string, error)
	// Dial logs in to the golden; Prepare has already waited for sshd.
	Dial func(ctx context.Context, ep guest.Endpoint) (guest.Guest, error)
	// Command bounds each install command; 0 means a minute.
	Command time.Duration
	// Wait bounds how long sshd has to answer through the agent after
	// the install; 0 means 30s.
	Wait time.Duration
	// Log gets one line per action; nil discards them.
	Log io.Writer
}

// agentUpload is where Warm uploads the agent before installing it; the
// install copies it to launchd.Binary and Warm then removes it.
const agentUpload = "/tmp/sxlab-agent.upload"

// Warm boots bundle, a golden of img, itself, not a clone, with its own MAC and
// the device set a saved state needs; waits for its address; hands it to
// steps.Prepare; installs sxlab-agent when steps.Agent is set and checks
// that sshd answers through it over vsock; then pauses it, saves its
// state next to it as state.vzvmsave and stops it. Later clones restore
// that state in seconds instead of booting for minutes.
//
// On failure or cancellation the guest is shut down (Options.Shutdown)
// before the VM stops, as the golden's disk is kept, and the golden is
// left without a saved state: clones then boot cold.
func (p *Provider) Warm(ctx context.Context, img vm.Image, bundle string, steps WarmSteps) (res WarmResult, err error) {
	if bundle == "" {
		return res, fmt.Errorf("warm image %s: no bundle named (images.%s.vz.bundle)", img.Name, img.Name)
	}
	prepare, agent := steps.Prepare, steps.Agent
	if prepare == nil || (agent != nil && agent.Dial == nil) {
		return res, fmt.Errorf("warm image %s: nothing to log in with", img.Name)
	}
	golden, err := LoadBundle(ResolveBundle(p.o.Store, bundle))
	if err != nil {
		return res, fmt.Errorf("warm image %s: %w", img.Name, err)
	}
	res.Bundle, res.MAC = golden.Dir, golden.Config.MACAddress
	fail := func(doing string, err error) (WarmResult, error) {
		return res, fmt.Errorf("warm image %s (%s): %s: %w", img.Name, golden.Dir, doing, err)
	}
	if err := golden.CheckBootable(); err != nil {
		return fail("check the bundle", err)
	}
	if sock := golden.Path(SocketFile); len(sock) > maxSocketPath {
		return fail("check the bundle", fmt.Errorf("the worker socket path %s would be %d bytes, macOS allows %d: move the store to a shorter path", sock, len(sock), maxSocketPath))
	}
	if _, err := ParseMAC(golden.Config.MACAddress); err != nil {
		return fail("check the bundle", fmt.Errorf("config.json macAddress: %w (the saved state is tied to the MAC it was saved with)", err))
	}
	if err := p.claimGolden(golden); err != nil {
		return fail("check nothing else runs it", err)
	}
	var agentBinary string
	if agent != nil {
		if agent.Binary == nil {
			return fail("find sxlab-agent", errors.New("no way to get a darwin/arm64 sxlab-agent"))
		}
		if agentBinary, err = agent.Binary(ctx); err != nil {
			return fail("find sxlab-agent", err)
		}
	}

	for _, f := range []string{StateFile, warmingStateFile} {
		err := os.Remove(golden.Path(f))
		switch {
		case err == nil && f == StateFile:
			res.ReplacedState = true
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fail("drop the old saved state", err)
		}
	}

	m := &Machine{p: p, name: "warm-" + img.Name, dir: golden.Dir, img: img, saveable: true,
		plan: ClonePlan{Golden: golden.Dir, Dest: golden.Dir, MAC: golden.Config.MACAddress, config: golden.Config}}
	saved := false
	defer func() {
		if saved {
			return
		}
		// Ctrl-C must still reach the guest's shutdown: a golden's disk
		// pulled from under a running macOS may not boot again cleanly.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.o.ShutdownTimeout+p.o.StopTimeout+10*time.Second)
		defer cancel()
		if serr := m.Stop(sctx); serr != nil {
			err = errors.Join(err, serr)
		}
		_ = os.Remove(golden.Path(warmingStateFile))
	}()

	start := p.o.Now()
	if err := m.Start(ctx); err != nil {
		return fail("boot", err)
	}
	ep, err := m.Endpoint(ctx)
	if err != nil {
		return fail("wait for its address", err)
	}
	res.Address = ep.Addr
	res.BootToAddress = p.o.Now().Sub(start)

	start = p.o.Now()
	if err := prepare(ctx, ep); err != nil {
		return fail("prepare", err)
	}
	res.Prepare = p.o.Now().Sub(start)

	if agent != nil {
		start = p.o.Now()
		if err := agent.install(ctx, ep, agentBinary); err != nil {
			return fail("install sxlab-agent", err)
		}
		banner, err := agent.check(ctx, m)
		if err != nil {
			return fail("check sxlab-agent", err)
		}
		res.Agent, res.AgentBanner, res.AgentInstall = true, banner, p.o.Now().Sub(start)
	}

	start = p.o.Now()
	tmp := golden.Path(warmingStateFile)
	if err := m.SaveState(ctx, tmp); err != nil {
		return fail("save the state", err)
	}
	// Paused with its state saved; the guest cannot answer a shutdown, and
	// the disk must stay as the state knows it.
	if err := m.stop(ctx, false); err != nil {
		return fail("stop after saving", err)
	}
	if err := os.Rename(tmp, golden.Path(StateFile)); err != nil {
		return fail("keep the saved state", err)
	}
	saved = true
	res.Save = p.o.Now().Sub(start)
	after, err := LoadBundle(golden.Dir)
	if err != nil {
		return fail("read back the bundle", err)
	}
	if !after.HasSavedState {
		return fail("read back the bundle", fmt.Errorf("%s is empty", StateFile))
	}
	if fi, err := os.Stat(after.Path(StateFile)); err == nil {
		res.StateBytes = fi.Size()
	}
	return res, nil
}

// claimGolden refuses a golden that a worker runs already, or whose MAC a
// live restoring clone uses (two VMs with one MAC share one DHCP lease).
func (p *Provider) claimGolden(golden *Bundle) error {
	if pid := runBy(golden.Dir); pid > 0 {
		return fmt.Errorf("worker %d runs it already", pid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.macInUse(golden.Config.MACAddress) {
		var names []string
		for _, c := range RunningClones(p.o.Store) {
			names = append(names, c.Name)
		}
		return fmt.Errorf("a clone restoring it (MAC %s) is running (running clones: %v); warm it when no run uses it", golden.Config.MACAddress, names)
	}
	return nil
}

func (a *AgentInstall) logf(format string, args ...any) {
	if a.Log != nil {
		fmt.Fprintf(a.Log, "  "+format+"\n", args...)
	}
}

// install uploads binary to the guest and runs launchd.InstallCommands,
// stopping at the first that fails.
func (a *AgentInstall) install(ctx context.Context, ep guest.Endpoint, binary string) error {
	g, err := a.Dial(ctx, ep)
	if err != nil {
		return fmt.Errorf("log in as %s: %w", ep.User, err)
	}
	defer g.Close()
	a.logf("sxlab-agent: upload %s to %s", binary, agentUpload)
	if err := g.Upload(ctx, binary, agentUpload, nil); err != nil {
		return err
	}
	timeout := a.Command
	if timeout <= 0 {
		timeout = time.Minute
	}
	run := func(line string) error {
		a.logf("sxlab-agent: %s", line)
		r, err := g.Run(ctx, guest.Cmd{Line: line, Timeout: timeout})
		if err != nil {
			return fmt.Errorf("%s: %w", line, err)
		}
		if r.Exit != 0 {
			msg := strings.TrimSpace(r.Stderr)
			if msg == "" {
				msg = strings.TrimSpace(r.Stdout)
			}
			if msg == "" {
				msg = "no output"
			}
			return fmt.Errorf("%s: exit %d: %s", line, r.Exit, msg)
		}
		return nil
	}
	for _, line := range launchd.InstallCommands(agentUpload) {
		if err := run(line); err != nil {
			if strings.Contains(line, "launchctl print") {
				err = fmt.Errorf("%w (the LaunchDaemon %s is not running: see %s in the guest)", err, launchd.Label, launchd.LogPath)
			}
			return err
		}
	}
	// Not worth failing the warm over: the file is outside anything the
	// lab reads.
	_ = run("rm -f " + guest.Quote(agentUpload))
	return nil
}

// check connects to vm.AgentPort through the worker, as the lab will,
// and reads sshd's banner: proof that the whole channel (virtio-socket
// device, agent, forward to 127.0.0.1:22) works, not only that launchd
// started a process. It retries until Wait: the agent may still be
// opening its socket.
func (a *AgentInstall) check(parent context.Context, m *Machine) (string, error) {
	wait := a.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(parent, wait)
	defer cancel()
	a.logf("sxlab-agent: connect to vsock port %d and wait for sshd's banner (up to %s)", vm.AgentPort, wait)
	tries := 0
	for {
		tries++
		banner, err := readBanner(ctx, m)
		if err == nil {
			a.logf("sxlab-agent: %s", banner)
			return banner, nil
		}
		select {
		case <-ctx.Done():
			if perr := parent.Err(); perr != nil { // interrupted, not timed out
				return "", perr
			}
			return "", fmt.Errorf("no SSH banner over vsock port %d within %s (%d tries; last: %w): is the LaunchDaemon %s running? (see %s in the guest)",
				vm.AgentPort, wait, tries, err, launchd.Label, launchd.LogPath)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readBanner reads the first line the guest's side of vm.AgentPort says;
// sshd speaks first (RFC 4253 section 4.2: "SSH-protoversion-...").
func readBanner(ctx context.Context, m *Machine) (string, error) {
	c, err := m.DialGuest(ctx, vm.AgentPort)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetReadDeadline(deadline)
	// RFC 4253 caps the identification line at 255 characters.
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "SSH-"):
		return line, nil
	case errors.Is(err, io.EOF) && line == "":
		return "", errors.New("the agent closed the connection at once: sshd at " + launchd.Target + " did not answer it")
	case err != nil:
		return "", fmt.Errorf("reading sshd's banner: %w", err)
	default:
		return "", fmt.Errorf("not an SSH banner: %q", line)
	}
}
