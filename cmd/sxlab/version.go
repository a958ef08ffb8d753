package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Set at build time: -ldflags "-X main.version=v0.1.0 -X main.commit=abc123".
var (
	version = "dev"
	commit  = ""
)

// vcsStamp is what is known of the source a binary was built from.
type vcsStamp struct {
	version  string
	revision string    // "" when nobody stamped it
	time     time.Time // commit time; zero when unknown
	modified bool      // built with uncommitted changes
}

// buildStamp reads the -ldflags values first, then what the Go toolchain
// stamped (`go build` in a git checkout records vcs.revision, vcs.time and
// vcs.modified; `go run`, `go test` and -buildvcs=false do not).
func buildStamp(info *debug.BuildInfo) vcsStamp {
	s := vcsStamp{version: version, revision: commit}
	if info == nil {
		return s
	}
	if s.version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		s.version = info.Main.Version
	}
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			if s.revision == "" {
				s.revision = kv.Value
			}
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, kv.Value); err == nil {
				s.time = t
			}
		case "vcs.modified":
			s.modified = kv.Value == "true"
		}
	}
	return s
}

func currentStamp() vcsStamp {
	info, _ := debug.ReadBuildInfo()
	return buildStamp(info)
}

// commitLine says which commit, when, and whether the tree had changes;
// without a vcsStamp it says how to get one.
func (s vcsStamp) commitLine() string {
	if s.revision == "" {
		return "unknown (not stamped: `go run`, `go test` and -buildvcs=false leave it out; `go build ./cmd/sxlab` in a git checkout records it)"
	}
	var b strings.Builder
	b.WriteString(s.revision)
	var notes []string
	if !s.time.IsZero() {
		notes = append(notes, s.time.UTC().Format(time.RFC3339))
	}
	if s.modified {
		notes = append(notes, "with uncommitted changes")
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, ", ") + ")")
	}
	return b.String()
}

// short is the one-line form recorded in run folders:
// "sxlab VERSION (REVISION[+modified], GO)".
func (s vcsStamp) short() string {
	rev := "unknown"
	if s.revision != "" {
		rev = s.revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if s.modified {
			rev += "+modified"
		}
	}
	return fmt.Sprintf("sxlab %s (%s, %s)", s.version, rev, runtime.Version())
}

// toolVersion is the one-line version recorded in run folders.
func toolVersion() string { return currentStamp().short() }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := currentStamp()
			fmt.Fprintf(cmd.OutOrStdout(), "sxlab %s\ncommit %s\n%s %s/%s\n", s.version, s.commitLine(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
