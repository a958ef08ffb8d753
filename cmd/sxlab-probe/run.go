package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sxlab/sxlab/cmd/sxlab-probe/schema"
)

// system is what the probe needs from macOS. The darwin implementation
// calls libSystem and libxpc; tests give a fake, so everything else here
// runs on Linux.
type system interface {
	// Lookup is bootstrap_look_up(bootstrap_port, service): its result
	// code and bootstrap_strerror's text for it. A non-nil error means the
	// lookup could not be attempted at all.
	Lookup(service string) (code int32, text string, err error)
	// Send connects to the service, sends one message and waits for
	// libxpc's answer. It must return EventTimeout soon after ctx ends.
	Send(ctx context.Context, service string, privileged bool) (ev schema.Event, description string, err error)
	// UID is the real user id the probe runs as.
	UID() int
}

// request is one parsed command line.
type request struct {
	probe      string
	service    string
	timeout    time.Duration
	privileged bool
}

const defaultTimeout = 5 * time.Second

const usage = `usage:
  sxlab-probe mach-lookup SERVICE
  sxlab-probe xpc-connect SERVICE [--timeout 5s] [--privileged]

Prints a JSON report on stdout. Exit 0: the service is there; 1: it is
not, or it did not answer in time; 2: the probe could not run; 64: usage.
Unverified on macOS.`

// parseArgs reads the command line. Flags may come before or after the
// service name.
func parseArgs(args []string) (request, error) {
	if len(args) == 0 {
		return request{}, errors.New("no probe given")
	}
	req := request{probe: args[0], timeout: defaultTimeout}
	fs := flag.NewFlagSet("sxlab-probe "+req.probe, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	switch req.probe {
	case schema.ProbeMachLookup:
	case schema.ProbeXPCConnect:
		fs.DurationVar(&req.timeout, "timeout", defaultTimeout, "how long to wait for the service's answer")
		fs.BoolVar(&req.privileged, "privileged", false, "look the service up in the privileged (system) bootstrap, XPC_CONNECTION_MACH_SERVICE_PRIVILEGED")
	case "-h", "--help", "help":
		return request{}, flag.ErrHelp
	default:
		return request{}, fmt.Errorf("unknown probe %q (mach-lookup, xpc-connect)", req.probe)
	}
	var positional []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return request{}, fmt.Errorf("%s: %w", req.probe, err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
	switch {
	case len(positional) == 0:
		return request{}, fmt.Errorf("%s: no service name given", req.probe)
	case len(positional) > 1:
		return request{}, fmt.Errorf("%s: one service name expected, got %q", req.probe, positional)
	case strings.TrimSpace(positional[0]) == "":
		return request{}, fmt.Errorf("%s: the service name is empty", req.probe)
	case req.timeout <= 0:
		return request{}, fmt.Errorf("%s: --timeout must be positive, got %s", req.probe, req.timeout)
	}
	req.service = positional[0]
	return req, nil
}

// run is the whole program but for os.Exit.
func run(args []string, stdout, stderr io.Writer, open func() (system, error)) int {
	req, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sxlab-probe: %v\n%s\n", err, usage)
		return schema.ExitUsage
	}
	rep := probe(req, open)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // reply descriptions are full of <...>
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr, "sxlab-probe: writing the report: %v\n", err)
		return 2
	}
	if rep.Error != "" {
		fmt.Fprintf(stderr, "sxlab-probe: %s\n", rep.Error)
	}
	return schema.ExitCode(rep.Outcome)
}

// probe carries out one request and always returns a report: failures of
// the probe itself become Outcome Error with the reason.
func probe(req request, open func() (system, error)) schema.Report {
	rep := schema.Report{Schema: schema.Version, Probe: req.probe, Service: req.service, UID: os.Getuid(), Caveat: schema.Caveat}
	fail := func(err error) schema.Report {
		rep.Outcome, rep.Error = schema.Error, err.Error()
		rep.Meaning = "the probe could not do its job: " + err.Error()
		return rep
	}
	sys, err := open()
	if err != nil {
		return fail(err)
	}
	rep.UID = sys.UID()

	started := time.Now()
	code, text, err := sys.Lookup(req.service)
	if err != nil {
		return fail(fmt.Errorf("bootstrap_look_up %s: %w", req.service, err))
	}
	rep.Lookup = schema.NewLookup(code, text, millis(time.Since(started)))
	if req.probe == schema.ProbeMachLookup {
		rep.Outcome, rep.Meaning = schema.ClassifyLookup(*rep.Lookup)
		return rep
	}

	// The connection is tried even when the lookup failed: what libxpc
	// says then (connection-invalid) is evidence for the report. The
	// clock starts before the deadline is set, so a timed-out send never
	// reports less than its timeout.
	started = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), req.timeout)
	defer cancel()
	ev, desc, err := sys.Send(ctx, req.service, req.privileged)
	if err != nil {
		return fail(fmt.Errorf("xpc connection to %s: %w", req.service, err))
	}
	rep.XPC = &schema.XPC{Event: ev, Description: clip(desc), Privileged: req.privileged,
		TimeoutMS: millis(req.timeout), Millis: millis(time.Since(started))}
	rep.Outcome, rep.Meaning = schema.ClassifyConnect(*rep.Lookup, *rep.XPC)
	return rep
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// clip keeps descriptions of large replies readable in a journal.
func clip(s string) string {
	const limit = 400
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
