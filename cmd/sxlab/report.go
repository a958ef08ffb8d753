package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/report"
)

func newReportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "report RUN_DIR",
		Short: "Rebuild report.html, the cell pages, junit.xml and summary.md of a run folder from its journal",
		Long: "Rebuilds the reports of a run folder from results.jsonl and what the attempts left in their\n" +
			"folders. Nothing is re-run. The files are replaced atomically.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dir := args[0]
			if _, err := os.Stat(filepath.Join(dir, lab.RunFile)); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return usageError("%s: not a run folder (no run.json)", dir)
				}
				return usageError("%s: %v", dir, err)
			}
			if err := report.Write(dir); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			excluded, err := report.Excluded(dir)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			for _, d := range excluded {
				fmt.Fprintf(c.ErrOrStderr(), "sxlab: report: %s; left out (see sxlab journal check)\n", filepath.Join(dir, d.String()))
			}
			for _, f := range []string{report.HTMLFile, report.JUnitFile, report.SummaryFile} {
				fmt.Fprintln(c.OutOrStdout(), filepath.Join(dir, f))
			}
			return nil
		},
	}
}
