// Package schema is the JSON that sxlab-probe prints on stdout, and the
// rules that turn what libSystem and libxpc answered into an outcome. It
// is pure Go (no build tag), so the lab decodes the probe's output with
// the same types the probe encodes it with, and the classification is
// tested on Linux. Nothing here has been checked against a real Mac yet:
// the codes and their meanings come from <servers/bootstrap.h>,
// <mach/kern_return.h> and <xpc/connection.h> as published by Apple.
package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Version is the schema version in every report. A lab that reads a
// report of another version refuses it rather than guessing.
const Version = 1

// Caveat is printed in every report until a Mac has run the probe.
const Caveat = "unverified on macOS: sxlab-probe has not yet been run on a real Mac"

// The probe's subcommands.
const (
	ProbeMachLookup = "mach-lookup"
	ProbeXPCConnect = "xpc-connect"
)

// Outcome is what the probe concluded about the service.
type Outcome string

const (
	// Found: bootstrap_look_up returned a send right (mach-lookup).
	Found Outcome = "found"
	// LookupFailed: launchd has no such Mach service for this user, the
	// field reports' `xpc_error=[3: No such process]` (both kinds).
	LookupFailed Outcome = "lookup-failed"
	// Reply: the service answered the message (xpc-connect).
	Reply Outcome = "reply"
	// Rejected: the service is registered (the lookup found it) but
	// closed the connection instead of answering: an NSXPC-only service
	// that cannot decode a raw dictionary, or one that checks its
	// client's code signature. Reachable, rejected the message.
	Rejected Outcome = "rejected"
	// Timeout: the service is registered but neither answered nor
	// closed the connection within --timeout.
	Timeout Outcome = "timeout"
	// Error: the probe could not do its job (libxpc missing, no
	// bootstrap port). Never a statement about the product.
	Error Outcome = "error"
)

// Event is what libxpc delivered for the one message sent.
type Event string

const (
	EventReply       Event = "reply"                  // a dictionary came back
	EventInvalid     Event = "connection-invalid"     // XPC_ERROR_CONNECTION_INVALID
	EventInterrupted Event = "connection-interrupted" // XPC_ERROR_CONNECTION_INTERRUPTED
	EventTermination Event = "termination-imminent"   // XPC_ERROR_TERMINATION_IMMINENT
	EventOtherError  Event = "other-error"            // an error object we do not know
	EventTimeout     Event = "timeout"                // nothing before --timeout
)

// Report is the probe's whole output: one JSON object on stdout.
type Report struct {
	Schema  int     `json:"schema"`
	Probe   string  `json:"probe"` // mach-lookup or xpc-connect
	Service string  `json:"service"`
	Outcome Outcome `json:"outcome"`
	// Meaning says the outcome in a sentence, for journals and people.
	Meaning string  `json:"meaning"`
	UID     int     `json:"uid"` // the user the probe ran as (the console user, if launched right)
	Lookup  *Lookup `json:"lookup,omitempty"`
	XPC     *XPC    `json:"xpc,omitempty"`
	// Error is why the probe could not do its job (Outcome is Error).
	Error  string `json:"error,omitempty"`
	Caveat string `json:"caveat"`
}

// Lookup is the result of bootstrap_look_up(bootstrap_port, service).
type Lookup struct {
	Code    int32   `json:"code"`             // kern_return_t; 0 is success
	Name    string  `json:"name"`             // BOOTSTRAP_UNKNOWN_SERVICE, KERN_SUCCESS, ...
	Meaning string  `json:"meaning"`          // what the code says about the service
	System  string  `json:"system,omitempty"` // bootstrap_strerror's text, from the Mac itself
	Found   bool    `json:"found"`            // a send right came back
	Millis  float64 `json:"duration_ms"`
}

// XPC is the outcome of one message sent on a connection to the service.
type XPC struct {
	Event Event `json:"event"`
	// Description is XPC_ERROR_KEY_DESCRIPTION of an error, or the
	// reply's xpc_copy_description (cut to a few hundred bytes).
	Description string  `json:"description,omitempty"`
	Privileged  bool    `json:"privileged"` // XPC_CONNECTION_MACH_SERVICE_PRIVILEGED was set
	TimeoutMS   float64 `json:"timeout_ms"`
	Millis      float64 `json:"duration_ms"`
}

// Bootstrap and Mach codes bootstrap_look_up can return
// (<servers/bootstrap.h>, <mach/kern_return.h>, <mach/message.h>).
const (
	KernSuccess             = 0
	KernInvalidArgument     = 4
	KernFailure             = 5
	KernInvalidName         = 15
	MachSendInvalidDest     = 0x10000003
	BootstrapNotPrivileged  = 1100
	BootstrapNameInUse      = 1101
	BootstrapUnknownService = 1102
	BootstrapServiceActive  = 1103
	BootstrapBadCount       = 1104
	BootstrapNoMemory       = 1105
	BootstrapNoChildren     = 1106
)

var lookupCodes = map[int32][2]string{
	KernSuccess:             {"KERN_SUCCESS", "launchd returned a send right: the Mach service is registered"},
	KernInvalidArgument:     {"KERN_INVALID_ARGUMENT", "launchd refused the service name as malformed"},
	KernFailure:             {"KERN_FAILURE", "the lookup failed inside launchd"},
	KernInvalidName:         {"KERN_INVALID_NAME", "the bootstrap port is not valid in this process"},
	MachSendInvalidDest:     {"MACH_SEND_INVALID_DEST", "the bootstrap port is dead: launchd could not be asked"},
	BootstrapNotPrivileged:  {"BOOTSTRAP_NOT_PRIVILEGED", "this user may not look the service up"},
	BootstrapNameInUse:      {"BOOTSTRAP_NAME_IN_USE", "the name is in use"},
	BootstrapUnknownService: {"BOOTSTRAP_UNKNOWN_SERVICE", "no Mach service of that name is registered in this user's bootstrap namespace"},
	BootstrapServiceActive:  {"BOOTSTRAP_SERVICE_ACTIVE", "the service is already active"},
	BootstrapBadCount:       {"BOOTSTRAP_BAD_COUNT", "bad count"},
	BootstrapNoMemory:       {"BOOTSTRAP_NO_MEMORY", "launchd is out of memory"},
	BootstrapNoChildren:     {"BOOTSTRAP_NO_CHILDREN", "no child bootstrap"},
}

// DescribeLookup names a bootstrap_look_up result code and says what it
// means for the service. Unknown codes are named by number.
func DescribeLookup(code int32) (name, meaning string) {
	if d, ok := lookupCodes[code]; ok {
		return d[0], d[1]
	}
	return fmt.Sprintf("code %d", code), "launchd answered with a code this probe does not know"
}

// NewLookup builds the lookup part of a report from the result code.
func NewLookup(code int32, system string, millis float64) *Lookup {
	name, meaning := DescribeLookup(code)
	return &Lookup{Code: code, Name: name, Meaning: meaning, System: system, Found: code == KernSuccess, Millis: millis}
}

// lookupIsInfrastructure says that a code is about the probe's process
// (it could not talk to launchd), not about the service.
func lookupIsInfrastructure(code int32) bool {
	return code == KernInvalidName || code == MachSendInvalidDest || code == BootstrapNoMemory
}

// ClassifyLookup gives the outcome of mach-lookup.
func ClassifyLookup(l Lookup) (Outcome, string) {
	switch {
	case l.Found:
		return Found, "the Mach service is registered with launchd"
	case lookupIsInfrastructure(l.Code):
		return Error, fmt.Sprintf("the probe could not ask launchd (%s: %s)", l.Name, l.Meaning)
	}
	return LookupFailed, fmt.Sprintf("lookup failed: %s (%s)", l.Meaning, l.Name)
}

// ClassifyConnect gives the outcome of xpc-connect from its lookup and
// the event the message produced. The lookup decides whether the service
// exists: an invalid connection to a service launchd does not know is a
// failed lookup, while one to a registered service is a rejection.
func ClassifyConnect(l Lookup, x XPC) (Outcome, string) {
	if o, m := ClassifyLookup(l); o != Found {
		if o == LookupFailed && x.Event != "" {
			m += "; the XPC connection saw " + string(x.Event)
		}
		return o, m
	}
	switch x.Event {
	case EventReply:
		return Reply, "the service answered the message"
	case EventInvalid, EventInterrupted:
		return Rejected, fmt.Sprintf("reachable, rejected the message (%s): the service is registered but closed the connection, as an NSXPC-only service or one that checks its client's signature does", x.Event)
	case EventTimeout:
		return Timeout, fmt.Sprintf("the service is registered but neither answered nor closed the connection within %s", time.Duration(x.TimeoutMS*float64(time.Millisecond)))
	case EventTermination:
		return Error, "the probe's own process was told it is about to terminate"
	}
	return Error, fmt.Sprintf("libxpc delivered an unexpected event %q: %s", x.Event, x.Description)
}

// ExitCode is the probe's exit status for an outcome: 0 the service is
// there (found, reply, rejected), 1 it is not or did not answer in time
// (lookup-failed, timeout), 2 the probe could not do its job.
func ExitCode(o Outcome) int {
	switch o {
	case Found, Reply, Rejected:
		return 0
	case LookupFailed, Timeout:
		return 1
	}
	return 2
}

// ExitUsage is the exit status for a malformed command line (EX_USAGE).
const ExitUsage = 64

// Decode reads one report, refusing output that is not a report of this
// schema version: a probe that printed something else could not run.
func Decode(r io.Reader) (Report, error) {
	var rep Report
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		if errors.Is(err, io.EOF) {
			return Report{}, errors.New("sxlab-probe printed nothing")
		}
		return Report{}, fmt.Errorf("sxlab-probe output is not its JSON report: %w", err)
	}
	if rep.Schema != Version {
		return Report{}, fmt.Errorf("sxlab-probe report has schema %d, this lab reads %d", rep.Schema, Version)
	}
	if rep.Outcome == "" || rep.Probe == "" {
		return Report{}, errors.New("sxlab-probe report has no probe or outcome")
	}
	return rep, nil
}

// Summary is the report in one line: outcome, meaning and the raw codes.
func (r Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", r.Probe, r.Service, r.Meaning)
	if r.Lookup != nil {
		fmt.Fprintf(&b, " [bootstrap_look_up %s (%d)", r.Lookup.Name, r.Lookup.Code)
		if r.Lookup.System != "" {
			fmt.Fprintf(&b, ": %s", r.Lookup.System)
		}
		b.WriteString("]")
	}
	if r.XPC != nil {
		fmt.Fprintf(&b, " [xpc %s", r.XPC.Event)
		if r.XPC.Description != "" {
			fmt.Fprintf(&b, ": %s", r.XPC.Description)
		}
		b.WriteString("]")
	}
	if r.Error != "" {
		fmt.Fprintf(&b, " [error: %s]", r.Error)
	}
	return b.String()
}
