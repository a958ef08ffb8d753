package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/report"
)

func newFeedbackCmd() *cobra.Command {
	var opt report.FeedbackOptions
	c := &cobra.Command{
		Use:   "feedback RUN_DIR CELL",
		Short: "Bundle a failing cell's evidence for Apple's Feedback Assistant",
		Long: "Writes RUN_DIR/feedback/<cell>/: FEEDBACK.md (a suggested title, the environment, both app versions,\n" +
			"the steps with timestamps, expected and observed, the repro rate, the signatures with their log lines,\n" +
			"the attachments) with the attempt's sysdiagnose, logs, state snapshots and both packages.\n\n" +
			"CELL is a cell id (or a unique prefix), axis values as for --only (vpn=running,path=2->3) or a unique\n" +
			"part of the cell's label. The attempt is the cell's first failing one unless --attempt names a repeat.\n" +
			"A bundle made before for the cell is replaced. Bundles of simulated runs say SIMULATED.",
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			dir, query := args[0], args[1]
			if _, err := os.Stat(filepath.Join(dir, lab.RunFile)); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return usageError("%s: not a run folder (no run.json)", dir)
				}
				return usageError("%s: %v", dir, err)
			}
			if opt.Attempt < 0 {
				return usageError("--attempt %d: attempts count from 1", opt.Attempt)
			}
			r, err := report.Load(dir)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			b, err := report.BuildFeedback(r, query, opt)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			out, errw := c.OutOrStdout(), c.ErrOrStderr()
			if b.Simulated {
				fmt.Fprintln(errw, "SIMULATED: this bundle comes from simulated Macs, not from real macOS; do not file it with Apple as it is.")
			}
			for _, m := range b.Missing {
				fmt.Fprintf(errw, "missing evidence: %s: %s\n", m.What, m.Reason)
			}
			var total int64
			for _, f := range b.Files {
				total += f.Size
			}
			fmt.Fprintf(out, "title: %s\n", b.Title)
			fmt.Fprintf(out, "bundle: %s (attempt %d of cell %s, %d attachment(s), %s)\n", b.Dir, b.Repeat, b.Cell, len(b.Files), artifacts.HumanSize(total))
			fmt.Fprintf(out, "feedback: %s\n", b.Markdown)
			if b.Zip != "" {
				fmt.Fprintf(out, "zip: %s\n", b.Zip)
			}
			return nil
		},
	}
	c.Flags().IntVar(&opt.Attempt, "attempt", 0, "the repeat to report (default: the cell's first failing attempt)")
	c.Flags().BoolVar(&opt.Zip, "zip", false, "also write RUN_DIR/feedback/<cell>.zip, one archive to drag into Feedback Assistant")
	return c
}
