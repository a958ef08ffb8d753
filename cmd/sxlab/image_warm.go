package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/guestbin"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/vz"
)

// agentEnv names a prebuilt darwin/arm64 sxlab-agent, for an sxlab run
// away from a checkout.
const agentEnv = "SXLAB_AGENT"

// agentBinary gives warm its sxlab-agent: built from this checkout (cached),
// or the file SXLAB_AGENT names.
func agentBinary() func(ctx context.Context) (string, error) {
	b := &guestbin.Builder{Prebuilt: map[string]string{guestbin.Agent: os.Getenv(agentEnv)}}
	return func(ctx context.Context) (string, error) {
		p, err := b.Path(ctx, guestbin.Agent)
		if err != nil && os.Getenv(agentEnv) == "" {
			return "", fmt.Errorf("%w (or set %s to a darwin/arm64 sxlab-agent)", err, agentEnv)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", agentEnv, err)
		}
		return p, err
	}
}

func newImageCopyCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "copy BUNDLE NEW",
		Short: "Copy a golden bundle under a new name, with its own MAC and no saved state",
		Long: `Copy a golden bundle in the vz store (copy-on-write on APFS) as NEW, with a
fresh MAC address and without its saved state. A warm golden restores into
one clone at a time, because its state is tied to its MAC; to restore two
at once on a host with two slots, copy the golden, warm both, and list
both in images.NAME.vz.bundles.`,
		Args: cobra.ExactArgs(2),
	}
	sf.register(cmd)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		store, err := sf.resolve()
		if err != nil {
			return err
		}
		dst, err := vz.CopyBundle(store, args[0], args[1], rand.Reader)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.OutOrStdout(), "copied %s to %s (its own MAC, no saved state: warm it with sxlab image warm)\n", args[0], dst)
		return nil
	}
	return cmd
}

func newImageWarmCmd() *cobra.Command {
	var (
		sf        storeFlags
		bundle    string
		asJSON    bool
		withAgent bool
	)
	cmd := &cobra.Command{
		Use:   "warm IMAGE",
		Short: "Boot an image's golden bundles, run its prepare commands and save their state",
		Long: `Boot each golden bundle of images.IMAGE.vz (bundle, or every one of
bundles) itself, with its own MAC; wait for SSH (lab.timeouts.boot) with the
image's user and auth; run sw_vers, check passwordless sudo, then run
images.IMAGE.prepare in order
(each bounded by lab.timeouts.command); then pause the VM, save its state
next to the bundle as state.vzvmsave and stop it. Clones of a warm golden
restore that state in seconds instead of booting for minutes (macOS 14+
hosts).

For an image with agent: true (or with --agent), warm then installs
sxlab-agent before it saves the state: it uploads the darwin/arm64 agent
over SFTP (built from this checkout, or the file SXLAB_AGENT names),
installs it as the LaunchDaemon com.sxlab.agent, and connects through the
VM's virtio-socket device to vsock port 7022 until sshd's banner answers
(docs/agent.md). --agent=false warms an agent image without it (runs then
fall back to TCP and say so). Unverified on macOS.

A failure shuts the guest down over SSH and leaves the golden without a
saved state, so clones boot cold. Needs macOS on Apple Silicon.`,
		Args: cobra.ExactArgs(1),
	}
	sf.register(cmd)
	cmd.Flags().StringVar(&bundle, "bundle", "", "warm only this bundle of the image")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was done as JSON")
	cmd.Flags().BoolVar(&withAgent, "agent", false, "install sxlab-agent before saving (default: images.IMAGE.agent); --agent=false skips it")
	cmd.RunE = func(c *cobra.Command, args []string) error {
		name := args[0]
		l, err := load(sf.config, nil)
		if err != nil {
			return err
		}
		cfgImg, ok := l.Config.Images[name]
		if !ok {
			return fmt.Errorf("image %s is not in %s (known: %s)", name, l.File, strings.Join(slices.Sorted(maps.Keys(l.Config.Images)), ", "))
		}
		if cfgImg.VZ == nil {
			return fmt.Errorf("images.%s has no vz section: only vz goldens are warmed (give images.%s.vz.bundle)", name, name)
		}
		bundles := cfgImg.VZ.Goldens()
		if bundle != "" {
			if !slices.Contains(bundles, bundle) {
				return fmt.Errorf("--bundle %s: not a bundle of images.%s.vz (it has: %s)", bundle, name, strings.Join(bundles, ", "))
			}
			bundles = []string{bundle}
		}
		if !c.Flags().Changed("agent") {
			withAgent = cfgImg.Agent
		} else if note := agentOverride(name, l.File, withAgent, cfgImg.Agent); note != "" {
			fmt.Fprintln(c.ErrOrStderr(), note)
		}
		// Before anything is touched: Warm drops the old saved state.
		if _, err := vz.NewHypervisor(); err != nil {
			return fmt.Errorf("warm image %s: %w; sxlab doctor says what a vz host needs", name, err)
		}
		images, err := l.ResolveImages(os.LookupEnv)
		if err != nil {
			return err
		}
		store, err := sf.storeOf(l)
		if err != nil {
			return err
		}
		p, err := vz.NewProvider(vzOptions(store))
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		out, errw := c.OutOrStdout(), c.ErrOrStderr()
		prep := prepareGuest(cfgImg.Prepare, name, time.Duration(l.Config.Lab.Timeouts.Boot), time.Duration(l.Config.Lab.Timeouts.Command), errw,
			func(ctx context.Context, ep guest.Endpoint, o guest.Options) (guest.Guest, error) {
				return guest.Dial(ctx, ep, o)
			})
		steps := vz.WarmSteps{Prepare: prep}
		if withAgent {
			steps.Agent = &vz.AgentInstall{
				Binary:  agentBinary(),
				Command: time.Duration(l.Config.Lab.Timeouts.Command),
				Log:     errw,
				Dial: func(ctx context.Context, ep guest.Endpoint) (guest.Guest, error) {
					return guest.Dial(ctx, ep, guest.Options{ConnectTimeout: time.Duration(l.Config.Lab.Timeouts.Boot)})
				},
			}
		}
		var results []vz.WarmResult
		for _, b := range bundles {
			fmt.Fprintf(errw, "warming %s (bundle %s): booting\n", name, b)
			res, err := p.Warm(ctx, images[name], b, steps)
			if err != nil {
				return err
			}
			results = append(results, res)
			if !asJSON {
				fmt.Fprintf(out, "warmed %s: %s (MAC %s), boot to address %s, prepare %s, save %s, state %s\n",
					name, res.Bundle, res.MAC, res.BootToAddress.Round(time.Second), res.Prepare.Round(time.Second),
					res.Save.Round(time.Second), artifacts.HumanSize(res.StateBytes))
				if res.Agent {
					fmt.Fprintf(out, "  sxlab-agent installed: sshd answered over vsock port %d (%s), unverified on macOS\n", vm.AgentPort, res.AgentBanner)
				}
				if res.ReplacedState {
					fmt.Fprintln(out, "  (its earlier saved state was replaced)")
				}
			}
		}
		if asJSON {
			return writeJSON(out, results)
		}
		return nil
	}
	return cmd
}

// agentOverride says what --agent=want means for runs when the config
// says otherwise ("" when they agree).
func agentOverride(image, file string, want, configured bool) string {
	switch {
	case want == configured:
		return ""
	case want:
		return fmt.Sprintf("--agent: installing sxlab-agent although images.%s.agent is false in %s: runs use its vsock channel only once it is true", image, file)
	default:
		return fmt.Sprintf("--agent=false: not installing sxlab-agent although images.%s.agent is true in %s: runs will find no agent on vsock port %d and use TCP (the journal says so)", image, file, vm.AgentPort)
	}
}

// prepareGuest logs in to a booted golden (waiting up to boot for sshd),
// runs sw_vers, checks passwordless sudo, then runs each prepare command
// (each up to command), and says which failed and how.
func prepareGuest(cmds []string, image string, boot, command time.Duration, log io.Writer,
	dial func(context.Context, guest.Endpoint, guest.Options) (guest.Guest, error)) vz.Prepare {
	return func(ctx context.Context, ep guest.Endpoint) error {
		fmt.Fprintf(log, "  waiting for sshd at %s (up to %s, lab.timeouts.boot)\n", ep, boot)
		g, err := dial(ctx, ep, guest.Options{ConnectTimeout: boot})
		if err != nil {
			return fmt.Errorf("log in as %s: %w", ep.User, err)
		}
		defer g.Close()
		run := func(where, line string) error {
			fmt.Fprintf(log, "  %s: %s\n", where, line)
			res, err := g.Run(ctx, guest.Cmd{Line: line, Timeout: command})
			if err != nil {
				return fmt.Errorf("%s (%s): %w", where, line, err)
			}
			if res.Exit != 0 {
				msg := strings.TrimSpace(res.Stderr)
				if msg == "" {
					msg = strings.TrimSpace(res.Stdout)
				}
				return fmt.Errorf("%s (%s): exit %d: %s", where, line, res.Exit, msg)
			}
			return nil
		}
		if err := run("sw_vers", "sw_vers"); err != nil {
			return err
		}
		// Every lab step and the shutdown at the end of an attempt need it;
		// better found now than after the state is saved.
		if err := run("passwordless sudo", "sudo -n true"); err != nil {
			return fmt.Errorf("%w (%s needs passwordless sudo: echo '%s ALL=(ALL) NOPASSWD: ALL' | sudo tee /etc/sudoers.d/%s)", err, ep.User, ep.User, ep.User)
		}
		for i, line := range cmds {
			if err := run(fmt.Sprintf("images.%s.prepare[%d]", image, i), line); err != nil {
				return err
			}
		}
		return nil
	}
}
