package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/cmd/sxlab-probe/schema"
)

// fakeSystem answers like launchd and libxpc would for one service.
type fakeSystem struct {
	code      int32
	text      string
	lookupErr error
	event     schema.Event
	desc      string
	sendErr   error
	hang      bool // never answer: Send waits for ctx like the darwin code
	sent      []string
}

func (f *fakeSystem) UID() int { return 501 }

func (f *fakeSystem) Lookup(service string) (int32, string, error) {
	return f.code, f.text, f.lookupErr
}

func (f *fakeSystem) Send(ctx context.Context, service string, privileged bool) (schema.Event, string, error) {
	f.sent = append(f.sent, service)
	if f.hang {
		<-ctx.Done()
		return schema.EventTimeout, "", nil
	}
	return f.event, f.desc, f.sendErr
}

func opener(f *fakeSystem) func() (system, error) {
	return func() (system, error) { return f, nil }
}

// probeRun runs the program and decodes its report the way the lab does.
func probeRun(t *testing.T, f *fakeSystem, args ...string) (schema.Report, int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut, opener(f))
	rep, err := schema.Decode(&out)
	require.NoError(t, err, "stdout must be a report; stderr: %s", errOut.String())
	return rep, code, errOut.String()
}

func TestMachLookupFound(t *testing.T) {
	rep, code, _ := probeRun(t, &fakeSystem{code: 0, text: "Success"}, "mach-lookup", "ABCDE12345.com.example.vpn.tunnel")
	assert.Equal(t, 0, code)
	assert.Equal(t, schema.Found, rep.Outcome)
	assert.Equal(t, "ABCDE12345.com.example.vpn.tunnel", rep.Service)
	assert.Equal(t, 501, rep.UID)
	require.NotNil(t, rep.Lookup)
	assert.True(t, rep.Lookup.Found)
	assert.Equal(t, "KERN_SUCCESS", rep.Lookup.Name)
	assert.GreaterOrEqual(t, rep.Lookup.Millis, 0.0)
	assert.Nil(t, rep.XPC, "mach-lookup opens no connection")
	assert.Contains(t, rep.Caveat, "unverified on macOS")
}

func TestMachLookupUnknownServiceIsALookupFailure(t *testing.T) {
	rep, code, _ := probeRun(t, &fakeSystem{code: schema.BootstrapUnknownService, text: "Unknown service name"}, "mach-lookup", "ABCDE12345.com.example.vpn.tunnel")
	assert.Equal(t, 1, code)
	assert.Equal(t, schema.LookupFailed, rep.Outcome)
	assert.Equal(t, "BOOTSTRAP_UNKNOWN_SERVICE", rep.Lookup.Name)
	assert.Equal(t, int32(1102), rep.Lookup.Code)
	assert.Equal(t, "Unknown service name", rep.Lookup.System)
	assert.Contains(t, rep.Meaning, "no Mach service of that name")
}

func TestXPCConnectOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sys     fakeSystem
		want    schema.Outcome
		exit    int
		meaning string
	}{
		{"reply", fakeSystem{event: schema.EventReply, desc: "<dictionary: 0x1> { count = 0 }"}, schema.Reply, 0, "answered"},
		{"nsxpc rejects the raw message", fakeSystem{event: schema.EventInvalid, desc: "Connection invalid"}, schema.Rejected, 0, "reachable, rejected the message"},
		{"interrupted", fakeSystem{event: schema.EventInterrupted, desc: "Connection interrupted"}, schema.Rejected, 0, "reachable, rejected the message"},
		{"unregistered service", fakeSystem{code: schema.BootstrapUnknownService, event: schema.EventInvalid, desc: "Connection invalid"}, schema.LookupFailed, 1, "connection-invalid"},
		{"no bootstrap", fakeSystem{code: schema.MachSendInvalidDest, event: schema.EventInvalid}, schema.Error, 2, "could not ask launchd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := tc.sys
			rep, code, _ := probeRun(t, &sys, "xpc-connect", "ABCDE12345.com.example.vpn.tunnel")
			assert.Equal(t, tc.want, rep.Outcome)
			assert.Equal(t, tc.exit, code)
			assert.Contains(t, rep.Meaning, tc.meaning)
			require.NotNil(t, rep.XPC)
			assert.Equal(t, tc.sys.event, rep.XPC.Event)
			assert.Equal(t, []string{"ABCDE12345.com.example.vpn.tunnel"}, sys.sent, "the connection is tried even after a failed lookup, for the evidence")
		})
	}
}

func TestXPCConnectTimesOut(t *testing.T) {
	start := time.Now()
	rep, code, _ := probeRun(t, &fakeSystem{hang: true}, "xpc-connect", "svc", "--timeout", "30ms")
	assert.Less(t, time.Since(start), 10*time.Second, "the timeout bounds the probe")
	assert.Equal(t, schema.Timeout, rep.Outcome)
	assert.Equal(t, 1, code)
	assert.Equal(t, 30.0, rep.XPC.TimeoutMS)
	assert.GreaterOrEqual(t, rep.XPC.Millis, 30.0)
}

func TestProbeThatCannotRunSaysSoInItsReport(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"mach-lookup", "svc"}, &out, &errOut, func() (system, error) {
		return nil, errors.New("sxlab-probe needs macOS")
	})
	assert.Equal(t, 2, code)
	rep, err := schema.Decode(&out)
	require.NoError(t, err)
	assert.Equal(t, schema.Error, rep.Outcome)
	assert.Contains(t, rep.Error, "needs macOS")
	assert.Contains(t, errOut.String(), "needs macOS")

	rep, code, _ = probeRun(t, &fakeSystem{lookupErr: errors.New("no bootstrap port")}, "xpc-connect", "svc")
	assert.Equal(t, 2, code)
	assert.Equal(t, schema.Error, rep.Outcome)
	assert.Contains(t, rep.Error, "bootstrap_look_up svc: no bootstrap port")
}

func TestParseArgs(t *testing.T) {
	req, err := parseArgs([]string{"xpc-connect", "svc", "--timeout", "2s", "--privileged"})
	require.NoError(t, err)
	assert.Equal(t, request{probe: "xpc-connect", service: "svc", timeout: 2 * time.Second, privileged: true}, req)

	req, err = parseArgs([]string{"xpc-connect", "--timeout=750ms", "svc"})
	require.NoError(t, err)
	assert.Equal(t, 750*time.Millisecond, req.timeout)

	req, err = parseArgs([]string{"mach-lookup", "svc"})
	require.NoError(t, err)
	assert.Equal(t, defaultTimeout, req.timeout)

	for args, want := range map[string]string{
		"":                            "no probe given",
		"ping svc":                    `unknown probe "ping"`,
		"mach-lookup":                 "no service name given",
		"mach-lookup a b":             "one service name expected",
		"mach-lookup --timeout 1s a":  "flag provided but not defined: -timeout",
		"xpc-connect svc --timeout 0": "--timeout must be positive",
		"xpc-connect svc --timeout x": "invalid value",
	} {
		_, err := parseArgs(strings.Fields(args))
		assert.ErrorContains(t, err, want, "args %q", args)
	}
}

func TestUsageErrorsExit64WithoutAReport(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"xpc-connect"}, &out, &errOut, opener(&fakeSystem{}))
	assert.Equal(t, schema.ExitUsage, code)
	assert.Empty(t, out.String(), "a usage error prints no report")
	assert.Contains(t, errOut.String(), "usage:")
}

func TestLongRepliesAreClipped(t *testing.T) {
	rep, _, _ := probeRun(t, &fakeSystem{event: schema.EventReply, desc: strings.Repeat("x", 5000)}, "xpc-connect", "svc")
	assert.Less(t, len(rep.XPC.Description), 500)
}

// FuzzParseArgs: no command line makes the probe panic.
func FuzzParseArgs(f *testing.F) {
	f.Add("xpc-connect svc --timeout 5s")
	f.Add("mach-lookup -- --x")
	f.Add("xpc-connect --timeout=-1s svc")
	f.Fuzz(func(t *testing.T, line string) {
		_, _ = parseArgs(strings.Fields(line))
	})
}
