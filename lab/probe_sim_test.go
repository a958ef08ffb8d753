package lab

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guestbin"
)

// testProbe builds the real sxlab-probe for darwin/arm64 once per test
// binary, into the user's guestbin cache as `sxlab run` does (the first
// build on a machine takes a while; later ones are a cache hit). Tests
// whose scenario runs an xpc-connect or mach-lookup probe upload it.
var testProbe = &guestbin.Builder{}

func testProbeBinary(ctx context.Context) (string, error) {
	return testProbe.Path(ctx, guestbin.Probe)
}

// demoOnce is the demo lab with one attempt per cell.
func demoOnce(t *testing.T) string {
	t.Helper()
	cfg := strings.Replace(demoConfig(t), "  repeat: 3 ", "  repeat: 1 ", 1)
	require.NotEqual(t, demoConfig(t), cfg, "the demo's repeat line moved")
	return cfg
}

// TestDemoXPCProbeIsSxlabProbe: the demo's xpc probe uploads the real
// sxlab-probe and runs it as the console user, and what the journal says
// about it is the probe's JSON report, not a command's exit status.
func TestDemoXPCProbeIsSxlabProbe(t *testing.T) {
	o, sl := simRunOptions(t, demoOnce(t), nil)
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	sl.assertNothingLeft(t)

	const service = "ABCDE12345.com.example.vpn.tunnel"
	fin := Finished(res.Records)
	require.NotEmpty(t, fin)
	for _, r := range fin {
		var xpc *ProbeOutcome
		for i := range r.Probes {
			if r.Probes[i].Name == "xpc" {
				xpc = &r.Probes[i]
			}
		}
		require.NotNil(t, xpc, "%s: %s", r.Label, r.Reason)
		obs := xpc.Observations
		assert.Equal(t, service, obs["service"], r.Label)
		assert.Equal(t, "501", obs["uid"], "%s: ran as the console user", r.Label)
		assert.Contains(t, obs["caveat"], "unverified on macOS", r.Label)
		assert.NotContains(t, obs, "exit", "%s: not a command probe's observation", r.Label)
		assert.Contains(t, xpc.Message, "xpc-connect "+service+": ", r.Label)
		if xpc.Held {
			assert.Equal(t, "rejected", obs["outcome"], "%s: an NSXPC provider closes a raw connection", r.Label)
			assert.Equal(t, "KERN_SUCCESS (0)", obs["lookup"], r.Label)
			assert.Equal(t, "connection-invalid", obs["xpc"], r.Label)
			continue
		}
		assert.Equal(t, Fail, r.Verdict, r.Label)
		assert.Equal(t, "lookup-failed", obs["outcome"], r.Label)
		assert.Equal(t, "BOOTSTRAP_UNKNOWN_SERVICE (1102)", obs["lookup"], r.Label)
		if r.Axes["vpn"] == "running" {
			require.NotNil(t, r.Triage, r.Label)
			assert.Equal(t, "endpoint-lost", r.Triage.Finding, r.Label)
		}

		b, err := os.ReadFile(filepath.Join(res.Dir, r.Dir, "steps.jsonl"))
		require.NoError(t, err)
		assert.True(t, strings.Contains(string(b), `"command":"sudo launchctl asuser 501 sudo -u admin /tmp/sxlab/sxlab-probe xpc-connect `+service+` --timeout 5s"`),
			"%s: steps.jsonl shows the probe run as the console user", r.Label)
	}
}

// oneDemoCell is the demo narrowed to one failing cell (macos-15.3,
// 2->3, vpn=running, approved), one attempt.
func oneDemoCell(t *testing.T) string {
	t.Helper()
	cfg := demoOnce(t)
	for re, repl := range map[string]string{
		`(?m)^    macos: \[.*\]$`:            "    macos: [macos-15.3]",
		`(?m)^    path: \[.*\]$`:             `    path: ["2->3"]`,
		`(?m)^    vpn: \[running, stopped\]`: "    vpn: [running]", // pending is excluded with running
		`(?s)\n  include:\n.*?\n  repeat:`:   "\n  repeat:",        // no extra cells
	} {
		r := regexp.MustCompile(re)
		require.Regexp(t, r, cfg)
		cfg = r.ReplaceAllString(cfg, repl)
	}
	return cfg
}

// TestLinuxProbeIsTheLabsError: an ELF uploaded as sxlab-probe is not run
// by the Mac (exec format error, exit 126); the attempt is the lab's
// error, retried, and never a product failure.
func TestLinuxProbeIsTheLabsError(t *testing.T) {
	elf, err := os.Executable() // this test binary: a Linux (or host) executable
	require.NoError(t, err)
	o, sl := simRunOptions(t, oneDemoCell(t), nil)
	o.ProbeBinary = func(context.Context) (string, error) { return elf, nil }
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	sl.assertNothingLeft(t)

	require.NotEmpty(t, res.Records)
	for _, r := range res.Records {
		assert.Equal(t, Error, r.Verdict, "try %d: %s", r.Try, r.Reason)
		assert.Contains(t, r.Reason, "sxlab-probe could not be executed (exit 126")
		assert.Contains(t, r.Reason, "Exec format error")
		assert.Nil(t, r.Triage, "an error is not triaged as a product failure")
	}
	fin := Finished(res.Records)
	require.Len(t, fin, 1)
	for _, r := range fin {
		assert.Equal(t, 3, r.Try, "retried: retry.max is 2")
	}
}

// TestCommandProbeThatNeverExitsEndsAtItsTimeout: a product's own check
// that hangs ends at the probe's timeout as the lab's error, not after
// lab.timeouts.command, and is not taken for a product failure.
func TestCommandProbeThatNeverExitsEndsAtItsTimeout(t *testing.T) {
	cfg := simLabConfig
	i := strings.Index(cfg, "scenario:\n")
	j := strings.Index(cfg, "probes:\n")
	k := strings.Index(cfg, "retry:\n")
	require.True(t, i > 0 && j > i && k > j)
	// sleep 1000000 at time scale 0.01 is 10,000 s of real time: only the
	// probe's bound can end it within the test.
	cfg = cfg[:i] + "scenario:\n  - probe: [hang]\n" +
		"probes:\n  - name: hang\n    kind: command\n    run: sleep 1000000\n    timeout: 2s\n" + cfg[k:]
	cfg = strings.Replace(cfg, "sim: {time_scale: 0}", "sim: {time_scale: 0.01}", 1)
	cfg = strings.Replace(cfg, "vpn: [running, stopped]", "vpn: [stopped]", 1)
	cfg = strings.Replace(cfg, "max: 1\n", "max: 0\n", 1)
	o, sl := simRunOptions(t, cfg, nil)

	start := time.Now()
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	took := time.Since(start)
	sl.assertNothingLeft(t)
	fin := Finished(res.Records)
	require.Len(t, fin, 1)
	for _, r := range fin {
		assert.Equal(t, Error, r.Verdict, r.Reason)
		assert.Contains(t, r.Reason, "probe hang")
		assert.Contains(t, r.Reason, "timed out")
	}
	assert.Less(t, took, 2*time.Minute, "the run outlived the probe's timeout by far (generous: no flakes)")
}
