package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/lab"
)

func newJournalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "Check (and repair) a run folder's journal, results.jsonl",
	}
	var repair bool
	check := &cobra.Command{
		Use:   "check RUN_DIR [--repair]",
		Short: "Say which journal lines resume, report and merge leave out, and why",
		Long: `Reads results.jsonl as resume, report and merge read it and prints every
line they leave out, by number: a torn last line (a write cut short), a line
whose checksum does not match (edited or damaged), one that does not parse,
has an unknown verdict, names an attempt outside the plan, or is over the
1 MiB bound. Exit 0 when every line is good, 1 when some are not.

--repair rewrites the journal from its good lines, atomically, keeping the
original beside it as results.jsonl.orig-<time>, and notes the repair in
run.json. It refuses a run folder that a running sxlab holds.`,
		Args: cobra.ExactArgs(1),
	}
	check.Flags().BoolVar(&repair, "repair", false, "rewrite the journal from its good lines, keeping the original beside it")
	check.RunE = func(c *cobra.Command, args []string) error {
		dir := args[0]
		var info lab.RunInfo
		if err := lab.ReadJSON(dir, lab.RunFile, &info); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return usageError("%s: not a run folder (no run.json)", dir)
			}
			return usageError("%s: %v", dir, err)
		}
		var plan lab.PlanInfo
		if err := lab.ReadJSON(dir, lab.PlanFile, &plan); err != nil {
			return usageError("%s: %v", dir, err)
		}
		jr, err := lab.ReadRunJournal(dir, info, plan)
		if err != nil {
			return usageError("%s: %v", dir, err)
		}
		w := c.OutOrStdout()
		format := "checksummed lines (format 2)"
		if info.Format < lab.JournalFormat {
			format = "written by sxlab before journal checksums; lines without a checksum are read as before"
		}
		path := filepath.Join(dir, lab.JournalFile)
		fmt.Fprintf(w, "%s: %d good line(s), %d left out; %s\n", path, len(jr.Records), len(jr.Damage), format)
		for _, d := range jr.Damage {
			fmt.Fprintf(w, "%s:%d: %s\n", path, d.Line, d.Err)
		}
		if len(jr.Damage) == 0 {
			return nil
		}
		if !repair {
			return &exitError{code: exitFindings, err: fmt.Errorf("journal check: %d line(s) are left out by resume, report and merge (rewrite from the good ones with --repair)", len(jr.Damage))}
		}
		rep, err := lab.RepairJournal(dir, time.Now())
		if err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("journal repair: %w", err)}
		}
		fmt.Fprintf(w, "repaired: %s now holds the %d good line(s); the original is %s\n", path, rep.Kept, rep.Original)
		return nil
	}
	cmd.AddCommand(check)
	return cmd
}
