// Command sxlab runs upgrade regression labs for macOS apps that ship a
// System Extension. The commands here only bind flags and print; the work
// is in the packages.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/internal/gctune"
	"github.com/sxlab/sxlab/lab"
)

// Exit codes, the same for every command.
const (
	exitOK         = 0
	exitFindings   = 1 // a cell failed or is flaky
	exitIncomplete = 2 // attempts left without a verdict
	exitUsage      = 3 // usage or configuration error
)

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func main() {
	gctune.Tune(os.LookupEnv)
	ctx, stop := notifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// signalled is why main's context ended: a signal arrived. sxlab run
// handles the same signals itself and words them (stopper), so it tells
// this cause apart from a caller's cancel.
type signalled struct{ sig os.Signal }

func (s signalled) Error() string { return "signal " + s.sig.String() }

// notifyContext is signal.NotifyContext with signalled as the cause.
func notifyContext(parent context.Context, sigs ...os.Signal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case sig := <-ch:
			cancel(signalled{sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel(context.Canceled)
	}
}

// run executes one command line and returns its exit code; tests call it
// directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var stopProfile func() error
	root := newRoot(stdout, stderr, &stopProfile)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if stopProfile != nil {
		if perr := stopProfile(); perr != nil {
			fmt.Fprintf(stderr, "sxlab: --cpuprofile: %v\n", perr)
		}
	}
	if err == nil {
		return exitOK
	}
	var problems lab.Problems
	var ee *exitError
	switch {
	case errors.As(err, &problems):
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		fmt.Fprintf(stderr, "sxlab: %d problem(s) in the configuration\n", len(problems))
		return exitUsage
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "sxlab: %v\n", ee.err)
		return ee.code
	default:
		fmt.Fprintf(stderr, "sxlab: %v\n", err)
		return exitUsage // cobra's own errors are usage errors
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	var stop func() error
	return newRoot(stdout, stderr, &stop)
}

// newRoot is the command tree; a --cpuprofile started by it leaves its
// stop in *stopProfile.
func newRoot(stdout, stderr io.Writer, stopProfile *func() error) *cobra.Command {
	root := &cobra.Command{
		Use:           "sxlab",
		Short:         "Upgrade regression labs for macOS apps that ship a System Extension",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// A CPU profile of any command, for a report of where a slow night
	// went (bench/README.md); hidden because it is for us, not for labs.
	var cpuProfile string
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the command to FILE")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return usageError("--cpuprofile: %v", err)
		}
		// run() stops it after Execute, whatever the command returned:
		// PersistentPostRun does not run after an error, and a run with
		// findings returns one.
		*stopProfile = stop
		return nil
	}
	root.AddCommand(newVersionCmd(), newConfigCmd(), newPlanCmd(), newRunCmd(), newParseCmd(), newSimCmd(),
		newReportCmd(), newMergeCmd(), newDiffCmd(), newJournalCmd(), newFeedbackCmd(), newDoctorCmd(), newImageCmd(), newVZWorkerCmd(),
		newPreflightCmd())
	return root
}

// startCPUProfile starts a CPU profile into file and returns what stops
// it and closes the file.
func startCPUProfile(file string) (func() error, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// writeBuffered runs write over w buffered and flushes: output that can be
// large (a plan of 100,000 cells, a diff) leaves in 64 KiB writes instead of
// one system call per fragment (800,012 of them for that plan as a table).
func writeBuffered(w io.Writer, write func(io.Writer) error) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	err := write(bw)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// absPath is p made absolute for a person to paste elsewhere; p itself if
// the working directory cannot be read.
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
