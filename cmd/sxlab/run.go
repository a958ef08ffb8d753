package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/report"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim"
	sshvm "github.com/sxlab/sxlab/vm/ssh"
	"github.com/sxlab/sxlab/vm/tart"
	"github.com/sxlab/sxlab/vm/vz"
)

// simMachinesDir is where simulated Macs keep their folders: one folder
// of sxlab's under $TMPDIR (per user, as /tmp may be shared), never bare
// $TMPDIR. Every run reaps there at its start the folders of runs that
// died (sim.Provider.Reap goes by their locks); a live run's stay.
func simMachinesDir() string {
	name := "sxlab-machines"
	if uid := os.Getuid(); uid >= 0 {
		name += "-" + strconv.Itoa(uid)
	}
	return filepath.Join(os.TempDir(), name)
}

// newProvider maps a host's provider name to its implementation. Only
// providers that work are here; the others say so plainly.
func newProvider(h lab.Host, seed int64) (vm.Provider, error) {
	switch h.Provider {
	case lab.ProviderSim:
		scale := 1.0
		if h.Sim != nil && h.Sim.TimeScale != nil {
			scale = *h.Sim.TimeScale
		}
		return sim.NewProvider(sim.Options{TimeScale: scale, Seed: seed, BaseDir: simMachinesDir()}), nil
	case lab.ProviderVZ:
		store := ""
		if h.VZ != nil {
			store = h.VZ.Store
		}
		if store == "" {
			var err error
			if store, err = vz.DefaultStore(); err != nil {
				return nil, err
			}
		}
		return vz.NewProvider(vzOptions(store))
	case lab.ProviderTart:
		o := tart.Options{}
		if h.Tart != nil {
			o.Home = h.Tart.Home
		}
		return tart.NewProvider(o)
	case lab.ProviderSSH:
		if h.SSH == nil {
			return nil, fmt.Errorf("host %s: provider ssh needs an ssh section (address, user, auth)", h.Name)
		}
		return sshvm.NewProvider(sshvm.Options{Host: h.Name, Address: h.SSH.Address, User: h.SSH.User,
			Password: h.SSH.Auth.Password, KeyFile: h.SSH.Auth.Key, Reset: h.SSH.Reset})
	}
	return nil, fmt.Errorf("provider %s is unknown (use sim, vz, tart or ssh)", h.Provider)
}

// vzOptions are the vz provider's options for sxlab run and image warm.
func vzOptions(store string) vz.Options {
	return vz.Options{Store: store, Shutdown: shutdownGuest(func(ctx context.Context, ep guest.Endpoint) (lab.Conn, error) {
		// The run pinned the clone's host key under its own alias; this
		// short connection only powers the guest off, so it trusts on
		// first use in memory.
		return guest.Dial(ctx, ep, guest.Options{ConnectTimeout: 15 * time.Second})
	})}
}

// shutdownGuest asks macOS to power off over SSH: a macOS guest ignores
// Virtualization.framework's stop request, and pulling the plug on a
// golden (image warm) could leave its disk unclean.
func shutdownGuest(dial func(context.Context, guest.Endpoint) (lab.Conn, error)) func(context.Context, guest.Endpoint) error {
	return func(ctx context.Context, ep guest.Endpoint) error {
		c, err := dial(ctx, ep)
		if err != nil {
			return fmt.Errorf("shut down %s: %w", ep, err)
		}
		defer c.Close()
		const line = "sudo -n shutdown -h now"
		res, err := c.Run(ctx, guest.Cmd{Line: line})
		switch {
		case errors.Is(err, guest.ErrConnectionLost):
			return nil // it went down under the command
		case err != nil:
			return fmt.Errorf("shut down %s: %w", ep, err)
		case res.Exit != 0:
			return fmt.Errorf("shut down %s: %s: exit %d: %s", ep, line, res.Exit, strings.TrimSpace(res.Stderr))
		}
		return nil
	}
}

// dialGuest dials for one run: keys keeps the run's known_hosts in memory,
// sums the sha256 of the files every attempt uploads (sxlab-probe).
func dialGuest(keys *guest.HostKeyCache) func(context.Context, guest.Endpoint, string, string) (lab.Conn, error) {
	sums := guest.NewFileSums()
	return func(ctx context.Context, ep guest.Endpoint, knownHosts, alias string) (lab.Conn, error) {
		return dialGuestWith(ctx, ep, guest.Options{KnownHosts: knownHosts, HostKeyAlias: alias, HostKeyCache: keys, FileSums: sums})
	}
}

func dialGuestWith(ctx context.Context, ep guest.Endpoint, o guest.Options) (lab.Conn, error) {
	// The lab bounds the wait for sshd (lab.timeouts.boot) with ctx; the
	// client's own default must not cut it shorter.
	if d, ok := ctx.Deadline(); ok {
		o.ConnectTimeout = time.Until(d)
	}
	return guest.Dial(ctx, ep, o)
}

func newRunCmd() *cobra.Command {
	var (
		pf       planFlags
		resume   string
		progress string
		asJSON   bool
		keep     bool
		restore  bool
		noCheck  bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the upgrade matrix and record a verdict for every attempt",
		Args:  cobra.NoArgs,
	}
	pf.register(cmd.Flags())
	cmd.Flags().Int64("seed", 0, "seed for the simulated faults (overrides lab.seed)")
	cmd.Flags().StringVar(&resume, "resume", "", "run folder of an interrupted run: run only its attempts without a verdict")
	cmd.Flags().StringVar(&progress, "progress", "auto", "auto | tty (a bar and a line per busy slot, redrawn in place) | plain (a line per step) | none; auto: tty when stderr is a terminal, CI is unset and TERM is not dumb, else plain")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().BoolVar(&restore, "require-restore", false, "make an attempt whose machine should have restored a saved state but booted cold an error (vz)")
	cmd.Flags().BoolVar(&noCheck, "skip-image-check", false, "do not boot each image for its golden checks before the first attempt (see sxlab image check)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the machine of the first failing attempt running after the run, print how to ssh into it, and delete it on Ctrl-C")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		prog, err := newProgress(progress, c.ErrOrStderr(), os.LookupEnv)
		if err != nil {
			return err
		}
		flags := map[string]*pflag.Flag{"matrix.repeat": c.Flags().Lookup("repeat"), "lab.seed": c.Flags().Lookup("seed")}
		l, err := loadTo(c.ErrOrStderr(), pf.config, flags)
		if err != nil {
			return err
		}
		shard, err := pf.shardFor(c.ErrOrStderr())
		if err != nil {
			return err
		}
		// The first interrupt stops the run in order (cleanups still run,
		// then the journal, reports and summary); only one after
		// stopGrace exits at once (see stopper).
		// main's context ends on the same signals, and ending the run
		// from there raced the stopper: the run could stop and exit
		// before it said why. So only an end for another reason (a
		// caller's cancel) is passed on.
		ctx, cancel := context.WithCancel(context.WithoutCancel(c.Context()))
		defer cancel()
		relay := context.AfterFunc(c.Context(), func() {
			if _, bySignal := errors.AsType[signalled](context.Cause(c.Context())); !bySignal {
				cancel()
			}
		})
		defer relay()
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		done, watched := make(chan struct{}), make(chan struct{})
		defer func() { close(done); <-watched }() // what the watcher received is answered before the exit
		go func() {
			defer close(watched)
			stopper{grace: stopGrace, log: prog.Log, stop: cancel, exit: func() { os.Exit(exitIncomplete) }}.watch(done, sigs)
		}()

		reapBareTempDir(ctx, l.Config.Hosts, prog.Log)
		var created string
		opts := lab.RunOptions{Loaded: l, Plan: pf.options(shard), Resume: resume, Keep: keep, RequireRestore: restore,
			Tool: toolVersion(), NewProvider: newProvider, Dial: dialGuest(guest.NewHostKeyCache()), LookupEnv: os.LookupEnv,
			ProbeBinary: probeBinary(), Created: func(dir string) { created = dir }}
		opts.CheckImages = !noCheck // golden checks per image first; a FAILURE exits 3 (lab.ErrImageUnfit)
		opts.Started, opts.Phase, opts.Finished, opts.Transfer = prog.Started, prog.Phase, prog.Finished, prog.Transfer
		opts.Note = func(note string) { prog.Log("sxlab: note: " + note) }
		// Preflight first (a second at most): recorded in run.json, never
		// a reason not to run, since the lab is what tests the upgrade.
		if rep, perr := preflight(l, pf.only); perr == nil {
			opts.Preflight = &rep
			prog.Log("sxlab: " + preflightLine(rep))
		}
		// Before the first attempt, so no progress display is drawn yet.
		opts.Warn = func(w string) { fmt.Fprintln(c.ErrOrStderr(), "sxlab: journal: "+w) }
		res, err := lab.Run(ctx, opts)
		prog.Close() // before the summary, which must start on a clean line
		if res == nil {
			// Nothing ran, so nothing is lost: a folder made for the run
			// would only be an empty run for report and diff to trip on.
			if created != "" {
				if rerr := os.RemoveAll(created); rerr != nil {
					fmt.Fprintf(c.ErrOrStderr(), "sxlab: remove the unused run folder: %v\n", rerr)
				}
			}
			if ctx.Err() != nil {
				// Interrupted while setting up: nothing is wrong with the
				// configuration, the run just did not happen.
				return &exitError{code: exitIncomplete, err: fmt.Errorf("interrupted before the first attempt: %w", err)}
			}
			if errors.Is(err, syscall.ENOSPC) {
				// Not the configuration's fault: the same run succeeds
				// once there is room, like any attempt left undone.
				return &exitError{code: exitIncomplete, err: fmt.Errorf("%w (the disk under lab.runs_dir %s is full; free space and run again)", err, l.Config.Lab.RunsDir)}
			}
			return &exitError{code: exitUsage, err: err}
		}
		s := summarise(res)
		// Reports are rebuilt from the journal; failing to render them must
		// not hide the verdicts, so it only warns (sxlab report redoes it).
		if rerr := report.Write(res.Dir); rerr != nil {
			fmt.Fprintf(c.ErrOrStderr(), "sxlab: reports: %v (rebuild with: sxlab report %s)\n", rerr, res.Dir)
		}
		if werr := writeSummary(c.OutOrStdout(), s, asJSON); werr != nil {
			return werr
		}
		if res.Kept != nil {
			holdKept(ctx, c.OutOrStdout(), c.ErrOrStderr(), res)
		}
		if err != nil && err != lab.ErrInterrupted {
			return &exitError{code: exitIncomplete, err: err}
		}
		if s.ExitCode != exitOK {
			return &exitError{code: s.ExitCode, err: fmt.Errorf("%s", verdictWord(s.ExitCode))}
		}
		return nil
	}
	return cmd
}

// reapBareTempDir removes the simulated Macs that dead processes left in
// bare $TMPDIR, where earlier versions of sxlab run (and sim serve) kept
// them. A live machine's folder is locked, so it stays.
func reapBareTempDir(ctx context.Context, hosts []lab.Host, log func(string)) {
	for _, h := range hosts {
		if h.Provider == lab.ProviderSim {
			if err := sim.NewProvider(sim.Options{BaseDir: os.TempDir()}).Reap(ctx); err != nil {
				log("sxlab: warning: " + err.Error())
			}
			return
		}
	}
}

func verdictWord(code int) string {
	if code == exitFindings {
		return "cells failed or are flaky"
	}
	return "attempts were left without a verdict"
}

// holdKept shows a person how to reach the kept machine and waits for
// Ctrl-C, then stops and deletes it: a simulated Mac lives in this
// process, and a real one must not outlive the person's interest in it.
func holdKept(ctx context.Context, stdout, stderr io.Writer, res *lab.RunResult) {
	k := res.Kept
	if ctx.Err() == nil {
		host, port, err := net.SplitHostPort(k.Endpoint.Addr)
		if err != nil {
			host, port = k.Endpoint.Addr, "22"
		}
		kind := "machine"
		if k.Simulated {
			kind = "SIMULATED machine"
		}
		// Absolute paths: the person pastes the command in another
		// terminal, from another folder.
		dir := absPath(res.Dir)
		fmt.Fprintf(stdout, "\nkept: the %s of %s r%d is still running (evidence: %s)\n", kind, k.Label, k.Repeat, filepath.Join(dir, k.Dir))
		fmt.Fprintf(stdout, "  ssh -p %s -o UserKnownHostsFile=%s -o HostKeyAlias=%s %s@%s\n",
			port, guest.Quote(filepath.Join(dir, "known_hosts")), cmp.Or(k.Alias, k.Machine.Name()), k.Endpoint.User, host)
		switch {
		case k.Endpoint.KeyFile != "":
			fmt.Fprintf(stdout, "  key: %s\n", absPath(k.Endpoint.KeyFile))
		case k.Simulated:
			fmt.Fprintf(stdout, "  password: %s\n", k.Endpoint.Password)
		default:
			fmt.Fprintf(stdout, "  password: the one of images.%s.auth\n", k.Image.Name)
		}
		fmt.Fprintln(stdout, "Press Ctrl-C to stop and delete it.")
		<-ctx.Done()
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := errors.Join(k.Machine.Stop(cctx), k.Machine.Delete(cctx)); err != nil {
		fmt.Fprintf(stderr, "sxlab: delete the kept machine %s: %v\n", k.Machine.Name(), err)
		return
	}
	fmt.Fprintf(stderr, "sxlab: deleted the kept machine %s\n", k.Machine.Name())
}
