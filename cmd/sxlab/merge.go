package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/internal/plainjson"
	"github.com/sxlab/sxlab/report"
)

func newMergeCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "merge RUN_DIR... --out DIR",
		Short: "Join the run folders of the shards of one plan into one run",
		Long: `Join the run folders of the shards of one plan (sxlab run --shard i/n)
into one run folder: journal, attempt folders, run.json and plan.json.
Shards of different plans are refused. Journal lines that resume and
report leave out (torn, edited, unknown verdict, outside the plan: see
sxlab journal check) are left out here too, each named by its line.
Journals of sxlab before checksums are read as before. Attempts run by more than one shard
keep the first shard's result; attempts no shard finished are listed, and
the exit code is then 2.`,
		Args: cobra.MinimumNArgs(1),
	}
	cmd.Flags().StringVar(&out, "out", "", "new run folder to write (must not exist or be empty)")
	cmd.RunE = func(c *cobra.Command, dirs []string) error {
		if out == "" {
			return usageError("merge: --out DIR is required")
		}
		res, err := report.Merge(dirs, out)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		w := c.OutOrStdout()
		for _, e := range res.Excluded {
			fmt.Fprintf(c.ErrOrStderr(), "sxlab: merge: %s; left out (see sxlab journal check)\n", e)
		}
		fmt.Fprintf(w, "merged %d run(s) into %s\n", len(res.Shards), res.Dir)
		if err := report.Write(res.Dir); err != nil {
			return &exitError{code: exitIncomplete, err: fmt.Errorf("merge: reports: %w", err)}
		}
		for _, o := range res.Overlapping {
			fmt.Fprintf(c.ErrOrStderr(), "sxlab: merge: attempt %s ran in more than one shard; kept the first\n", o)
		}
		if len(res.Missing) > 0 {
			for _, m := range res.Missing {
				fmt.Fprintf(c.ErrOrStderr(), "sxlab: merge: attempt %s has no verdict in any shard\n", m)
			}
			return &exitError{code: exitIncomplete, err: fmt.Errorf("merge: %d attempt(s) of the plan have no verdict", len(res.Missing))}
		}
		return nil
	}
	return cmd
}

func newDiffCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff BASE_RUN NEW_RUN",
		Short: "Compare two runs cell by cell; exit 1 when a cell newly fails",
		Long: `Compare two runs cell by cell: cells newly failing, fixed, and with a
changed failure rate. A flip between pass and fail always counts; a change
involving a flaky cell counts only when the 95% intervals of the two rates
do not overlap. Exit 1 when a cell newly fails or fails more often: the
nightly job's gate.`,
		Args: cobra.ExactArgs(2),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the comparison as JSON")
	cmd.RunE = func(c *cobra.Command, args []string) error {
		d, err := report.Diff(args[0], args[1])
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		for _, e := range d.Excluded {
			fmt.Fprintf(c.ErrOrStderr(), "sxlab: diff: %s; left out (see sxlab journal check)\n", e)
		}
		if asJSON {
			enc := plainjson.NewEncoder(c.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(d); err != nil {
				return err
			}
		} else if err := writeBuffered(c.OutOrStdout(), func(w io.Writer) error { return report.WriteDiff(w, d) }); err != nil {
			return err
		}
		if d.NewlyFailing() {
			return &exitError{code: exitFindings, err: fmt.Errorf("diff: cells newly fail")}
		}
		return nil
	}
	return cmd
}
