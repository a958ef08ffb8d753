package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/internal/plainjson"
)

func newParseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "parse KIND [FILE|-]",
		Short: "Parse macOS command output as the lab does and print it as JSON",
		Long: "Parse output of a macOS command, e.g. pasted from a user's Mac, and print JSON.\n" +
			"KIND is one of: " + strings.Join(guest.ParserKinds(), ", ") + ".\n" +
			"Reads FILE, or standard input when FILE is - or absent.",
		Example: "  systemextensionsctl list | sxlab parse extensions\n  sxlab parse launchd job.txt",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := args[0]
			var in io.Reader = cmd.InOrStdin()
			name := "standard input"
			if len(args) == 2 && args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return usageError("parse %s: %v", kind, err)
				}
				defer f.Close()
				in, name = f, args[1]
			}
			v, err := guest.Parse(kind, in)
			if err != nil {
				return usageError("%s: %v", name, err)
			}
			enc := plainjson.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(v); err != nil {
				return fmt.Errorf("write JSON: %w", err)
			}
			return nil
		},
	}
}
