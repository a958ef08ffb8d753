package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/golden"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
)

func newImageCheckCmd() *cobra.Command {
	var (
		config, host string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "check IMAGE",
		Short: "Boot an image and check its golden is fit for the lab (automatic login, FileVault, TCC, MDM, ...)",
		Long: `Clone and boot images.IMAGE on its host as an attempt would (or connect, for
an ssh host), then check the golden: Remote Login, passwordless sudo, the
console user (automatic login), FileVault off, SIP, the TCC grants UI
approval needs (Accessibility and Apple Events for
/usr/libexec/sshd-keygen-wrapper), the MDM enrolment and system extension
policy approve: mdm needs, Network Extension debug logging, sleep and screen
lock, free space, sysdiagnose, and the guest clock against the host's. Each
is ok, warning, FAILURE (with the fix) or unknown (the guest's answer could
not be read). What the scenario asks of the image decides whether a missing
grant or policy is a FAILURE. No Mac has run these checks yet: all but
Remote Login say "unverified on macOS".

Exit status: 0 when no check is a FAILURE, 1 when one is, 2 when the image
could not be booted or reached, 3 for a configuration error.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&config, "config", "", "configuration file (default ./config.yaml, then $XDG_CONFIG_HOME/sxlab/config.yaml)")
	cmd.Flags().StringVar(&host, "host", "", "boot the image on this host (default: the first host whose provider has a section for the image)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks, with every command and its output, as JSON")
	cmd.RunE = func(c *cobra.Command, args []string) error {
		l, err := load(config, nil)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		fmt.Fprintf(c.ErrOrStderr(), "checking image %s: cloning and booting it\n", args[0])
		res, err := lab.CheckImage(ctx, lab.ImageCheckOptions{Loaded: l, Image: args[0], Host: host,
			NewProvider: newProvider, LookupEnv: os.LookupEnv,
			Dial: func(ctx context.Context, ep guest.Endpoint, knownHosts, alias string) (lab.Conn, error) {
				return dialGuestWith(ctx, ep, guest.Options{KnownHosts: knownHosts, HostKeyAlias: alias})
			}})
		if err != nil {
			code := exitIncomplete // the lab could not get to the checks
			if se := (*lab.SetupError)(nil); errors.As(err, &se) {
				code = exitUsage
			}
			return &exitError{code: code, err: err}
		}
		if asJSON {
			if err := writeJSON(c.OutOrStdout(), res); err != nil {
				return err
			}
		} else {
			printImageCheck(c.OutOrStdout(), res)
		}
		if res.Failed() {
			return &exitError{code: exitFindings, err: fmt.Errorf("image %s: %d check(s) FAILED", res.Image, count(res.Checks, golden.Failure))}
		}
		return nil
	}
	return cmd
}

func count(cs []golden.Check, s golden.Status) int {
	n := 0
	for _, c := range cs {
		if c.Status == s {
			n++
		}
	}
	return n
}

// printImageCheck prints one line per check, its fix under it.
func printImageCheck(w io.Writer, r *lab.ImageCheck) {
	kind := r.Provider
	if r.Simulated {
		kind += ", SIMULATED Mac"
	}
	var needs []string
	if r.Needs.UI {
		needs = append(needs, "approval through System Settings (ui)")
	}
	if r.Needs.MDM {
		needs = append(needs, "approve: mdm")
	}
	if len(needs) == 0 {
		needs = append(needs, "no approval step")
	}
	fmt.Fprintf(w, "image %s on host %s (%s); its cells use %s\n", r.Image, r.Host, kind, strings.Join(needs, " and "))
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	for _, c := range r.Checks {
		line := fmt.Sprintf("  %-8s %-*s  %s", c.Status, width, c.Name, c.Detail)
		if c.Unverified {
			line += " (unverified on macOS)"
		}
		fmt.Fprintln(w, line)
		if c.Fix != "" && c.Status != golden.OK {
			fmt.Fprintf(w, "  %-8s %-*s  fix: %s\n", "", width, "", c.Fix)
		}
	}
	fmt.Fprintf(w, "%d ok, %d warning(s), %d FAILURE(s), %d unknown\n",
		count(r.Checks, golden.OK), count(r.Checks, golden.Warning), count(r.Checks, golden.Failure), count(r.Checks, golden.Unknown))
}
