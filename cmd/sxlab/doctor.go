package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/doctor"
)

func newDoctorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this machine can run the configured hosts, and say how to fix what it cannot",
		Long: `Check, for each configured host, what its provider needs of this machine:
the OS and architecture, the macOS version (saved state needs 14), the
virtualization entitlement of this binary, the login keychain and a
graphical login (guests of macOS 15.2+ need one of them), Local Network
access to guests, free disk under the store and runs_dir, running VMs
against the limit of two, a VM slot the framework leaked (a refusal
recorded since the last boot: reboot), tart on PATH, and bootpd's lease
time.

Exits 0 when the configured providers can run here (warnings allowed),
1 when a check failed.`,
		Args: cobra.NoArgs,
	}
	file := configFlag(cmd)
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		l, err := load(*file, nil)
		if err != nil {
			return err
		}
		r := doctor.Check(c.Context(), doctor.Local(), doctor.ConfigFrom(l))
		if err := r.WriteText(c.OutOrStdout()); err != nil {
			return err
		}
		if !r.OK() {
			return &exitError{code: exitFindings, err: fmt.Errorf("doctor: %d check(s) failed", r.Count(doctor.Failure))}
		}
		return nil
	}
	return cmd
}
