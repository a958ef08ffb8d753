package macos

import (
	"bytes"
	"context"
	"debug/macho"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// The lab's XPC probe, sxlab-probe (docs/probe.md of the probe's
// branch): a darwin/arm64 Mach-O the lab uploads and runs as the
// console user. The sim cannot run Mach-O code, so an uploaded arm64
// executable is answered from the model, by the probe's documented
// command line and report; any other file is not run at all (the shell
// answers "exec format error").

// isArm64Executable is the rule the lab's own check applies: a thin
// Mach-O with Cpu arm64 and Type exec, or a universal file with such a
// slice.
func isArm64Executable(r io.ReaderAt) bool {
	if f, err := macho.NewFile(r); err == nil {
		return f.Cpu == macho.CpuArm64 && f.Type == macho.TypeExec
	}
	ff, err := macho.NewFatFile(r)
	if err != nil {
		return false
	}
	for _, a := range ff.Arches {
		if a.Cpu == macho.CpuArm64 && a.Type == macho.TypeExec {
			return true
		}
	}
	return false
}

// uploadedProgram is the command for an executable file in the tree that
// the model can answer for: an arm64 Mach-O (the probe).
func (m *Mac) uploadedProgram(guestPath string) (shell.Command, bool) {
	fi, err := m.fs.Stat(guestPath)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 || fi.Mode()&fs.ModeSymlink != 0 {
		return nil, false
	}
	f, err := m.fs.Open(guestPath)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if !isArm64Executable(f) {
		return nil, false
	}
	return m.cmdProbe, true
}

const (
	probeCaveat  = "unverified on macOS: sxlab-probe has not yet been run on a real Mac"
	probeUsage   = "usage: sxlab-probe mach-lookup SERVICE\n       sxlab-probe xpc-connect SERVICE [--timeout 5s] [--privileged]\n       sxlab-probe help\n"
	probeLookup  = "launchd returned a send right: the Mach service is registered"
	probeUnknown = "no Mach service of that name is registered in this user's bootstrap namespace"
)

// The probe's report, field for field as the probe prints it.
type probeReport struct {
	Schema  int                `json:"schema"`
	Probe   string             `json:"probe"`
	Service string             `json:"service"`
	Outcome string             `json:"outcome"`
	Meaning string             `json:"meaning"`
	UID     int                `json:"uid"`
	Lookup  *probeLookupResult `json:"lookup,omitempty"`
	XPC     *probeXPC          `json:"xpc,omitempty"`
	Caveat  string             `json:"caveat"`
}

type probeLookupResult struct {
	Code    int32   `json:"code"`
	Name    string  `json:"name"`
	Meaning string  `json:"meaning"`
	System  string  `json:"system,omitempty"`
	Found   bool    `json:"found"`
	Millis  float64 `json:"duration_ms"`
}

type probeXPC struct {
	Event       string  `json:"event"`
	Description string  `json:"description,omitempty"`
	Privileged  bool    `json:"privileged"`
	TimeoutMS   float64 `json:"timeout_ms"`
	Millis      float64 `json:"duration_ms"`
}

// cmdProbe answers sxlab-probe's command line from the model: the
// service is registered while an enabled copy's job lists it under its
// endpoints (what launchctl print shows); a Network Extension provider
// speaks NSXPC, so a raw message is rejected (connection-invalid).
func (m *Mac) cmdProbe(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	usage := func(msg string) int {
		fmt.Fprintf(stderr(p), "sxlab-probe: %s\n%s", msg, probeUsage)
		return exitUsage
	}
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout(p), probeUsage)
		return exitOK
	}
	if len(args) == 0 || (args[0] != "mach-lookup" && args[0] != "xpc-connect") {
		return usage("give a probe: mach-lookup or xpc-connect")
	}
	kind := args[0]
	var service string
	timeout := 5 * time.Second
	privileged := false
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case kind == "xpc-connect" && (a == "--timeout" || a == "-timeout") && i+1 < len(args):
			i++
			d, err := time.ParseDuration(args[i])
			if err != nil || d <= 0 {
				return usage(fmt.Sprintf("--timeout %q: a positive duration, such as 5s", args[i]))
			}
			timeout = d
		case kind == "xpc-connect" && strings.HasPrefix(a, "--timeout="):
			d, err := time.ParseDuration(strings.TrimPrefix(a, "--timeout="))
			if err != nil || d <= 0 {
				return usage(fmt.Sprintf("%s: a positive duration, such as 5s", a))
			}
			timeout = d
		case kind == "xpc-connect" && (a == "--privileged" || a == "-privileged"):
			privileged = true
		case strings.HasPrefix(a, "-"):
			return usage(fmt.Sprintf("unknown flag %s", a))
		case service == "":
			service = a
		default:
			return usage(fmt.Sprintf("one service, not %q too", a))
		}
	}
	if service == "" {
		return usage("give the Mach service name")
	}
	m.begin()
	registered := m.lookupService(service) != nil
	m.mu.Unlock()
	uid := m.userUID()
	if p.Root {
		uid = 0
	}
	rep := probeReport{Schema: 1, Probe: kind, Service: service, UID: uid, Caveat: probeCaveat}
	if registered {
		rep.Lookup = &probeLookupResult{Code: 0, Name: "KERN_SUCCESS", Meaning: probeLookup, System: "Success", Found: true, Millis: 0.2}
	} else {
		rep.Lookup = &probeLookupResult{Code: 1102, Name: "BOOTSTRAP_UNKNOWN_SERVICE", Meaning: probeUnknown, System: "Unknown service name", Millis: 0.2}
	}
	code := exitOK
	switch {
	case kind == "mach-lookup" && registered:
		rep.Outcome, rep.Meaning = "found", "the Mach service is registered with launchd"
	case kind == "mach-lookup":
		rep.Outcome, rep.Meaning = "lookup-failed", "lookup failed: "+probeUnknown+" (BOOTSTRAP_UNKNOWN_SERVICE)"
		code = exitFailure
	default:
		if err := m.sleep(ctx, m.dur.xpc); err != nil {
			return exitInterrupted
		}
		rep.XPC = &probeXPC{Event: "connection-invalid", Description: "Connection invalid", Privileged: privileged,
			TimeoutMS: float64(timeout) / float64(time.Millisecond), Millis: 2.4}
		if registered {
			rep.Outcome = "rejected"
			rep.Meaning = "reachable, rejected the message (connection-invalid): the service is registered but closed the connection, as an NSXPC-only service or one that checks its client's signature does"
		} else {
			rep.Outcome = "lookup-failed"
			rep.Meaning = "lookup failed: " + probeUnknown + " (BOOTSTRAP_UNKNOWN_SERVICE); the XPC connection saw connection-invalid"
			code = exitFailure
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr(p), "sxlab-probe: %v\n", err)
		return 2
	}
	_, _ = stdout(p).Write(b.Bytes())
	return code
}
