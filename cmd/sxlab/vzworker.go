package main

import (
	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/vm/vz"
)

// newVZWorkerCmd is the hidden command the vz provider starts once per VM:
// a crash inside Virtualization.framework then ends one worker, not the run.
func newVZWorkerCmd() *cobra.Command {
	var watchStdin bool
	cmd := &cobra.Command{
		Use:    "vz-worker CLONE",
		Short:  "Run one vz VM and serve its control socket (started by the vz provider)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVar(&watchStdin, "watch-stdin", false, "stop the VM and exit when stdin closes (the provider holds the other end)")
	cmd.RunE = func(c *cobra.Command, args []string) error {
		h, err := vz.NewHypervisor()
		if err != nil {
			return err
		}
		o := vz.WorkerOptions{Bundle: args[0], Hypervisor: h, Log: c.ErrOrStderr()}
		if watchStdin {
			o.Parent = c.InOrStdin()
		}
		return vz.RunWorker(c.Context(), o)
	}
	return cmd
}
