package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at build time: -ldflags "-X main.version=v0.1.0 -X main.commit=abc123".
var (
	version = "dev"
	commit  = ""
)

// buildInfo describes this binary; the commit falls back to what the Go
// toolchain stamped when built from a checkout.
func buildInfo() (ver, rev string) {
	ver, rev = version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if ver == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && rev == "" {
				rev = s.Value
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev
}

// toolVersion is the one-line version recorded in run folders.
func toolVersion() string {
	ver, rev := buildInfo()
	return fmt.Sprintf("sxlab %s (%s, %s)", ver, rev, runtime.Version())
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ver, rev := buildInfo()
			fmt.Fprintf(cmd.OutOrStdout(), "sxlab %s\ncommit %s\n%s %s/%s\n", ver, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
