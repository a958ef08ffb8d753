package vz

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

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
}

// Prepare logs in to a booted golden, waits for its sshd and readies it
// (the image's prepare commands).
type Prepare func(ctx context.Context, ep guest.Endpoint) error

// Warm boots bundle, a golden of img, itself, not a clone, with its own MAC and
// the device set a saved state needs; waits for its address; hands it to
// prepare; then pauses it, saves its state next to it as state.vzvmsave
// and stops it. Later clones restore that state in seconds instead of
// booting for minutes.
//
// On failure or cancellation the guest is shut down (Options.Shutdown)
// before the VM stops, as the golden's disk is kept, and the golden is
// left without a saved state: clones then boot cold.
func (p *Provider) Warm(ctx context.Context, img vm.Image, bundle string, prepare Prepare) (res WarmResult, err error) {
	if bundle == "" {
		return res, fmt.Errorf("warm image %s: no bundle named (images.%s.vz.bundle)", img.Name, img.Name)
	}
	if prepare == nil {
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
