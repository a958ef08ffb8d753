package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/internal/plainjson"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/steps"
	"github.com/sxlab/sxlab/vm"
)

// Conn is a guest connection that can be re-established after a reboot.
type Conn interface {
	guest.Guest
	Reconnect(ctx context.Context) error
}

// DialFunc connects to a guest; knownHosts is the run's known_hosts file
// and alias the machine's name, under which its host key is pinned.
type DialFunc func(ctx context.Context, ep guest.Endpoint, knownHosts, alias string) (Conn, error)

// Attempts runs single attempts; the scheduler calls Execute per try.
type Attempts struct {
	RunDir    string
	Config    *Config
	App       steps.App
	Probes    map[string]steps.Probe
	Images    map[string]vm.Image    // resolved from the configuration
	Providers map[string]vm.Provider // by host name
	Dial      DialFunc
	// CleanupTimeout bounds the undo of one attempt (stop and delete the
	// machine), which runs even when the run is interrupted.
	CleanupTimeout time.Duration
	// Phase reports progress: the attempt's step or phase.
	Phase func(slot Slot, a matrices.Attempt, phase string)
	// Poll and Wait tune polling steps (tests make them short).
	Poll, Wait time.Duration
	// Collect gathers each attempt's evidence and Catalog triages its
	// failures; nil collects nothing.
	Collect *artifacts.Collector
	Catalog *artifacts.Catalog
	// Keep, when set, keeps the machine of the first failing attempt
	// running (--keep) instead of stopping and deleting it.
	Keep *Keeper
	// Transfer, when set, shows the sysdiagnose download of an attempt.
	Transfer func(slot Slot, a matrices.Attempt) guest.Progress
	// ProbeBinary is steps.Env.ProbeBinary for every attempt.
	ProbeBinary func(ctx context.Context) (string, error)
	// RequireRestore makes a restore that fell back to a cold boot an
	// error (run --require-restore).
	RequireRestore bool
	// Draws, when set, numbers machines by draw instead of by try.
	Draws *Draws
}

// Draws numbers the machines of an attempt's tries by the tries that
// ended in error before them, not by the try: a simulated Mac draws its
// faults from the seed and its name, so the try that replaces one an
// interrupt cut short draws what that one would have, and a resumed run
// concludes what an uninterrupted run with the same seed does. A name is
// never reused while its machine may exist: a try cut short deletes its
// machine before the run ends (the next run reaps what a kill left), and
// a try whose machine would not go away ends in error, which moves on.
type Draws struct {
	mu   sync.Mutex
	errs map[string]int // attempt → tries ended in error so far
}

// NewDraws starts from the errors of a resumed run's journal (by attempt).
func NewDraws(errs map[string]int) *Draws {
	return &Draws{errs: maps.Clone(errs)}
}

func (d *Draws) number(a matrices.Attempt, try int) int {
	if d == nil {
		return try
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errs[a.ID()] + 1
}

// done counts a try that ended in error (and was not cut short).
func (d *Draws) done(a matrices.Attempt, rec Record) {
	if d == nil || rec.Verdict != Error || rec.Interrupted {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.errs == nil {
		d.errs = map[string]int{}
	}
	d.errs[a.ID()]++
}

// cleanups is a stack of undo functions, run in reverse.
type cleanups []func(context.Context) error

func (c *cleanups) push(f func(context.Context) error) { *c = append(*c, f) }

// run undoes everything acquired, newest first, under a context that an
// interrupt cannot cancel: a Ctrl-C must not leave machines behind.
func (c cleanups) run(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Execute runs one try of an attempt on a slot and returns its record.
func (x *Attempts) Execute(ctx context.Context, slot Slot, a matrices.Attempt, try int) Record {
	rec := Record{
		Cell: a.Cell.ID, Label: a.Cell.Label, Axes: a.Cell.Values, Repeat: a.Repeat, Try: try,
		Started: time.Now().UTC(), Host: slot.Host, Slot: slot.Index, Provider: slot.Provider,
		Dir: AttemptDir(a.Cell.ID, a.Repeat, try), Probes: []ProbeOutcome{},
	}
	prov := x.Providers[slot.Host]
	if prov != nil {
		rec.Simulated = prov.Simulated()
	}
	var undo cleanups
	var own owned
	verdict, reason, probes := x.execute(ctx, slot, a, try, prov, &rec, &undo, &own)
	// The verdict and its evidence are complete unless the run was
	// interrupted before they were: then the try was cut short, and its
	// verdict (often an error the interrupt caused) is not the attempt's.
	// An interrupt during the cleanup below changes nothing: it runs
	// regardless.
	rec.Interrupted = ctx.Err() != nil
	if verdict == Fail && own.ep != nil && ctx.Err() == nil && x.Keep.claim(Kept{Machine: own.m, Alias: own.alias, Endpoint: *own.ep,
		Image: own.img, Label: a.Cell.Label, Repeat: a.Repeat, Dir: rec.Dir, Simulated: rec.Simulated}) {
		own.kept = true
		rec.Kept = true
	}
	x.phase(slot, a, "cleanup")
	if err := undo.run(ctx, x.cleanupTimeout()); err != nil {
		// A machine that would not go away is the lab's problem; the
		// product's verdict stands, but a pass can no longer be trusted
		// to have left the host clean.
		if verdict == Pass {
			verdict = Error
		}
		reason = joinReason(reason, "cleanup: "+err.Error())
	}
	rec.Verdict, rec.Reason, rec.Probes = verdict, reason, probes
	rec.Finished = time.Now().UTC()
	x.Draws.done(a, rec)
	return rec
}

// owned is the machine an attempt made; kept says a person asked to keep
// it (--keep), so its stop and delete are skipped.
type owned struct {
	m     vm.Machine
	alias string // its host key's name in known_hosts
	ep    *guest.Endpoint
	img   vm.Image
	kept  bool
}

func (x *Attempts) execute(ctx context.Context, slot Slot, a matrices.Attempt, try int, prov vm.Provider, rec *Record, undo *cleanups, own *owned) (Verdict, string, []ProbeOutcome) {
	if prov == nil {
		return Error, fmt.Sprintf("no provider for host %s", slot.Host), nil
	}
	// A sysdiagnose is gigabytes: refuse to start rather than fill the disk.
	if need := int64(x.Config.Collect.MinFree); need > 0 && !prov.Simulated() {
		if err := artifacts.CheckFree(x.RunDir, need); err != nil {
			return Error, err.Error(), nil
		}
	}
	dir := filepath.Join(x.RunDir, rec.Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Error, fmt.Sprintf("create attempt folder: %v", err), nil
	}
	// What the attempt writes into its folder is summed as it is written,
	// so the manifest reads none of it back.
	written := &artifacts.Written{}
	log, err := newStepLog(dir, artifacts.StepsFile, written)
	if err != nil {
		return Error, err.Error(), nil
	}
	undo.push(func(context.Context) error { return log.close() })

	imageName := imageOf(x.Config, x.Images, a)
	img, ok := x.Images[imageName]
	if !ok {
		return Error, fmt.Sprintf("cell names image %q, which is not configured", imageName), nil
	}
	from, to := "", ""
	if p := a.Cell.Values[x.Config.Matrix.PathAxis]; p != "" {
		if from, to, err = ParsePath(p); err != nil {
			return Error, err.Error(), nil
		}
	}

	draw := x.Draws.number(a, try)
	name := fmt.Sprintf("sxlab-%s-r%d-t%d", a.Cell.ID, a.Repeat, draw)
	// Host keys are pinned per try: a machine of the same name an earlier
	// try (cut short) had is another machine with another key.
	own.alias = name
	if draw != try {
		own.alias = fmt.Sprintf("%s-try%d", name, try)
	}
	x.phase(slot, a, "clone")
	m, err := prov.Clone(ctx, img, name)
	if err != nil {
		hostFault(err, rec)
		return Error, infraReason(ctx, "clone "+imageName, err), nil
	}
	own.m, own.img = m, img
	undo.push(func(ctx context.Context) error {
		if own.kept {
			return nil
		}
		return m.Delete(ctx)
	})
	// From power-on until sshd answers, one bound: a machine that never
	// boots must not hold its slot for ever.
	bootCtx, bootDone := x.bootContext(ctx)
	defer bootDone()
	x.phase(slot, a, "boot")
	powerOn := time.Now()
	if err := m.Start(bootCtx); err != nil {
		hostFault(err, rec)
		return Error, infraReason(ctx, "boot", err), nil
	}
	undo.push(func(ctx context.Context) error {
		if own.kept {
			return nil
		}
		return m.Stop(ctx)
	})
	if why := recordStart(m, rec); why != "" && x.RequireRestore {
		return Error, "the saved state did not restore and the machine booted cold (--require-restore makes that an error): " + why, nil
	}
	ep, err := m.Endpoint(bootCtx)
	if err != nil {
		hostFault(err, rec) // tart learns of a refused VM only here
		return Error, infraReason(ctx, "wait for the guest's address", err), nil
	}
	own.ep = &ep
	rec.Simulated = rec.Simulated || ep.Simulated
	x.phase(slot, a, "connect")
	conn, err := x.connect(ctx, bootCtx, m, img, ep, own.alias, rec)
	if err != nil {
		return Error, infraReason(ctx, "connect to "+ep.String(), err), nil
	}
	rec.ToSSH = time.Since(powerOn).Round(time.Millisecond).Seconds()
	undo.push(func(context.Context) error { return conn.Close() })
	bootDone()

	scenario, err := x.Config.CellSteps(a.Cell.Values)
	if err != nil {
		return Error, err.Error(), nil
	}
	env := &steps.Env{
		Guest: conn, User: img.User, Password: img.Password, Image: img.Name, Axes: a.Cell.Values, From: from, To: to, App: x.App,
		Probes: x.Probes, Record: log.write,
		Reconnect: func(ctx context.Context) error { // after a reboot step: the same bound as the first boot
			ctx, done := x.bootContext(ctx)
			defer done()
			return conn.Reconnect(ctx)
		},
		Poll: x.Poll, Wait: x.Wait, CommandTimeout: time.Duration(x.Config.Lab.Timeouts.Command),
		ProbeBinary: x.ProbeBinary,
	}
	// The log window starts at the first step, in the guest's clock.
	since, err := readClock(ctx, conn, rec)
	if err != nil {
		rec.Missing = append(rec.Missing, artifacts.Missing{What: "logs window", Reason: err.Error() + "; logs since the last boot instead"})
	}
	verdict, reason, probes, cutOff := x.runScenario(ctx, slot, a, env, scenario, dir, written, rec, imageName, img)
	if cutOff {
		// Every command and every reconnect would wait out its timeout
		// on the captured route: minutes for nothing.
		rec.Missing = append(rec.Missing, artifacts.Missing{What: "evidence",
			Reason: "not collected: the guest is unreachable over " + rec.Channel + " while the VPN holds its routes"})
		return verdict, reason, probes
	}
	x.collect(ctx, slot, a, conn, dir, written, since, verdict, probes, rec)
	return verdict, reason, probes
}

// connect dials the guest's sshd: over the machine's guest channel
// (vm.StreamDialer, the agent's vsock port) when the image has the agent,
// so a VPN that takes the guest's routes cannot cut the lab off, and over
// TCP otherwise or when the agent does not answer. The journal says which.
func (x *Attempts) connect(ctx, bootCtx context.Context, m vm.Machine, img vm.Image, ep guest.Endpoint, name string, rec *Record) (Conn, error) {
	knownHosts := filepath.Join(x.RunDir, "known_hosts")
	sd, ok := m.(vm.StreamDialer)
	if img.Agent && ok {
		vep := ep
		vep.Stream = func(ctx context.Context) (net.Conn, error) { return sd.DialGuest(ctx, vm.AgentPort) }
		// At most agentWait, and half of what is left of the boot bound,
		// so TCP still has time when the agent is not there.
		actx, cancel := halfContext(bootCtx, agentWait)
		conn, err := x.Dial(actx, vep, knownHosts, name)
		cancel()
		if err == nil {
			rec.Channel = ChannelVsock
			return conn, nil
		}
		if ctx.Err() != nil || errors.Is(err, guest.ErrHostKeyChanged) || errors.Is(err, guest.ErrAuth) {
			return nil, err // TCP would meet the same sshd
		}
		rec.ChannelNote = fmt.Sprintf("the guest agent's vsock port %d did not answer (%v); over TCP instead", vm.AgentPort, err)
	} else if img.Agent {
		rec.ChannelNote = fmt.Sprintf("provider %s has no guest channel; over TCP", rec.Provider)
	}
	rec.Channel = ChannelTCP
	return x.Dial(bootCtx, ep, knownHosts, name)
}

// agentWait bounds the wait for the guest agent once the guest has an
// address: the agent is a LaunchDaemon, up by the time the network is.
const agentWait = time.Minute

// halfContext bounds ctx to limit and to half of its remaining time.
func halfContext(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(d)/2)
	}
	return context.WithTimeout(ctx, limit)
}

// recordStart notes how m started, when its provider says, and returns
// why a restore fell back to a cold boot ("" when it did not).
func recordStart(m vm.Machine, rec *Record) string {
	sr, ok := m.(vm.StartReporter)
	if !ok {
		return ""
	}
	si := sr.StartInfo()
	rec.Start = StartCold
	if si.Restored {
		rec.Start = StartRestored
	}
	rec.StartNote = si.Fallback
	return si.Fallback
}

// hostFault marks the record when err says the host is broken.
func hostFault(err error, rec *Record) {
	if hf, ok := errors.AsType[*vm.HostFault](err); ok {
		rec.Quarantine = hf.Reason
	}
}

// runScenario runs the steps, snapshotting the state right before the
// first upgrade, and says what the probes made of it; cutOff says the
// VPN under test took the lab's path to the guest (see vpnCutOff).
func (x *Attempts) runScenario(ctx context.Context, slot Slot, a matrices.Attempt, env *steps.Env, scenario []steps.Step, dir string, written *artifacts.Written, rec *Record, imageName string, img vm.Image) (_ Verdict, _ string, _ []ProbeOutcome, cutOff bool) {
	snapped := false
	vpnUp := "" // the vpn start step that connected the VPN, while it is up
	for _, st := range scenario {
		if st.Kind() == "upgrade" && !snapped && x.Collect != nil {
			snapped = true
			x.phase(slot, a, "collect state")
			g := env.Guest
			if vpnUp != "" && rec.Channel == ChannelTCP {
				// Should the VPN have taken the guest's routes, every
				// reconnect would wait out the connect timeout (minutes)
				// on a route it holds; a lost connection is final here,
				// and the next step says why (vpnCutOff).
				g = noReconnect{g}
			}
			rec.Missing = append(rec.Missing, x.Collect.Before(ctx, g, dir, artifacts.WithWritten(written))...)
		}
		x.phase(slot, a, st.Kind())
		if err := st.Run(ctx, env); err != nil {
			probes := outcomes(env.Results)
			if steps.IsProductFailure(err) {
				return Fail, err.Error(), probes, false
			}
			if why := vpnCutOff(ctx, st, vpnUp, err, env.App.VPNService, imageName, img, rec); why != "" {
				return Error, why, probes, true
			}
			return Error, infraReason(ctx, "step", err), probes, false
		}
		switch v, _ := st.(steps.VPN); {
		case v.Action == "start":
			vpnUp = v.Label
		case v.Action == "stop", st.Kind() == "reboot":
			vpnUp = "" // a reboot disconnects the VPN too
		}
	}
	probes := outcomes(env.Results)
	for _, p := range env.Results {
		if !p.Held {
			return Fail, fmt.Sprintf("probe %s: %s", p.Name, p.Message), probes, false
		}
	}
	return Pass, "", probes, false
}

// noReconnect is a guest whose connection, once lost, stays lost.
type noReconnect struct{ guest.Guest }

// vpnCutOff recognises the VPN under test taking the lab's path to the
// guest: the connection over TCP (the guest's NAT network) was lost while
// the VPN was connecting (a failed vpn start step) or right after it
// connected (any later step while it is up). A full tunnel or
// includeAllNetworks routes the guest's traffic to the host into the
// tunnel; the guest is fine, the lab cannot see it. That is the lab's
// error, never the product's failure, and every retry on the same image
// meets it again, so the reason says what cures it: the guest agent's
// vsock channel, which is no network. "" when err is something else.
func vpnCutOff(ctx context.Context, st steps.Step, vpnUp string, err error, service, imageName string, img vm.Image, rec *Record) string {
	if ctx.Err() != nil || rec.Channel != ChannelTCP || !errors.Is(err, guest.ErrConnectionLost) {
		return ""
	}
	when := fmt.Sprintf("right after step %q connected", vpnUp)
	if v, ok := st.(steps.VPN); ok && v.Action == "start" {
		when = fmt.Sprintf("while step %q connected", v.Label)
	} else if vpnUp == "" {
		return ""
	}
	cure := "it has no guest agent: give it sxlab-agent (`agent: true` in the image, the agent installed in the golden as a LaunchDaemon, see docs/agent.md) so the lab talks over vsock, which no VPN can take"
	if img.Agent {
		cure = "it has the guest agent, but this try fell back to TCP (" + rec.ChannelNote + "): fix the agent's channel"
	}
	return fmt.Sprintf("guest unreachable %s VPN %q: the lab's tcp channel to the guest's sshd was lost (%v). "+
		"The product's routing took the lab's path (a full tunnel or includeAllNetworks captures the guest's traffic to the host): not a product failure. "+
		"Every retry on image %s meets it again: %s",
		when, service, err, imageName, cure)
}

// collect gathers the attempt's evidence (per the policy) and triages a
// failure. Nothing here changes the verdict.
func (x *Attempts) collect(ctx context.Context, slot Slot, a matrices.Attempt, g guest.Guest, dir string, written *artifacts.Written, since time.Time, v Verdict, probes []ProbeOutcome, rec *Record) {
	if x.Collect == nil {
		return
	}
	if v != Pass {
		_, _ = readClock(ctx, g, rec) // readings around the evidence place it on the host's clock; none is no loss
	}
	opts := []artifacts.Option{artifacts.WithPhase(func(p string) { x.phase(slot, a, "collect "+p) }), artifacts.WithWritten(written)}
	if x.Transfer != nil {
		opts = append(opts, artifacts.WithProgress(x.Transfer(slot, a)))
	}
	res := x.Collect.After(ctx, g, dir, v == Fail, since, opts...)
	if v != Pass {
		_, _ = readClock(ctx, g, rec) // after the snapshot: the guest's clock may have moved on (a sleep skipped)
	}
	rec.Missing = append(rec.Missing, res.Missing...)
	if x.Catalog == nil {
		return
	}
	facts := res.Facts
	for _, p := range probes {
		facts.Probes = append(facts.Probes, artifacts.Probe{Name: p.Name, Kind: x.Probes[p.Name].Kind, Held: p.Held, Message: p.Message})
	}
	rec.Triage = x.Catalog.Triage(facts)
}

// readClock reads the guest's clock and records it beside the host's.
func readClock(ctx context.Context, g guest.Guest, rec *Record) (time.Time, error) {
	asked := time.Now()
	t, err := artifacts.GuestNow(ctx, g)
	if err == nil {
		rec.Clock = append(rec.Clock, ClockReading{Host: asked.Add(time.Since(asked) / 2).UTC(), Guest: t})
	}
	return t, err
}

func (x *Attempts) phase(slot Slot, a matrices.Attempt, p string) {
	if x.Phase != nil {
		x.Phase(slot, a, p)
	}
}

// bootContext bounds a boot by lab.timeouts.boot; when it passes, the
// errors of what waited say so (the cause reaches them through ctx).
func (x *Attempts) bootContext(ctx context.Context) (context.Context, context.CancelFunc) {
	limit := time.Duration(x.Config.Lab.Timeouts.Boot)
	if limit <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, limit,
		fmt.Errorf("%w within %s (lab.timeouts.boot): the guest did not finish booting", guest.ErrConnectTimeout, limit))
}

func (x *Attempts) cleanupTimeout() time.Duration {
	if x.CleanupTimeout > 0 {
		return x.CleanupTimeout
	}
	return 2 * time.Minute
}

// infraReason words an infrastructure error, saying so when the cause was
// the run being interrupted.
func infraReason(ctx context.Context, what string, err error) string {
	if ctx.Err() != nil {
		return fmt.Sprintf("interrupted during %s", what)
	}
	return fmt.Sprintf("%s: %v", what, err)
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func outcomes(rs []steps.ProbeResult) []ProbeOutcome {
	out := make([]ProbeOutcome, 0, len(rs))
	for _, r := range rs {
		out = append(out, ProbeOutcome{Name: r.Name, Held: r.Held, Message: r.Message, Observations: r.Observations})
	}
	return out
}

// stepLog writes steps.jsonl as steps run, a write(2) per line, so that a
// crash or a kill -9 keeps every step up to it (the kernel has each line
// once write returns; a buffer would lose the last steps, the ones that
// say where it stopped). A line costs one system call, no file creation.
type stepLog struct {
	mu      sync.Mutex
	f       *os.File
	buf     bytes.Buffer
	enc     *json.Encoder
	name    string
	written *artifacts.Written // nil once a write failed: the manifest reads the file
}

func newStepLog(dir, name string, written *artifacts.Written) (*stepLog, error) {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("create steps log: %w", err)
	}
	l := &stepLog{f: f, name: name, written: written}
	l.enc = plainjson.NewEncoder(&l.buf)
	return l, nil
}

func (l *stepLog) write(e steps.Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	l.buf.Reset()
	if l.enc.Encode(e) != nil {
		return // a lost log line must not change the verdict
	}
	if _, err := l.f.Write(l.buf.Bytes()); err != nil {
		if l.written != nil {
			l.written.Forget(l.name) // the manifest reads whatever is there
			l.written = nil
		}
		return
	}
	if l.written != nil {
		l.written.Appended(l.name, l.buf.Bytes())
	}
}
func (l *stepLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Kept is a failing attempt's machine, left running for a person to look
// inside (--keep). The caller stops and deletes it when done.
type Kept struct {
	Machine vm.Machine
	// Alias names its host key in the run's known_hosts (HostKeyAlias).
	Alias     string
	Endpoint  guest.Endpoint
	Image     vm.Image
	Label     string
	Repeat    int
	Dir       string // the attempt's folder, relative to the run folder
	Simulated bool
}

// Keeper holds at most one kept machine: the first failing attempt's.
type Keeper struct {
	mu   sync.Mutex
	kept *Kept
}

// claim keeps k when nothing is kept yet; a nil Keeper keeps nothing.
func (k *Keeper) claim(m Kept) bool {
	if k == nil {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kept != nil {
		return false
	}
	k.kept = &m
	return true
}

// Kept returns the kept machine, or nil.
func (k *Keeper) Kept() *Kept {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.kept
}

// imageOf names the image a runs: matrix.image rendered over its cell,
// its image axis value, or the only image.
func imageOf(c *Config, images map[string]vm.Image, a matrices.Attempt) string {
	name, _ := c.CellImage(a.Cell.Values)
	if name == "" && len(images) == 1 {
		for n := range images {
			name = n
		}
	}
	return name
}
