package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/steps"
)

// The fixture is a small run written with lab's own types: macos
// (15.3, 15.4) x path (2->3) x vpn (running, stopped), 3 repeats.
//
//	15.3 running: fail 3/3, triaged endpoint-lost (r1 has a sysdiagnose and
//	              logs; r2 could not take a sysdiagnose)
//	15.3 stopped: pass 3/3
//	15.4 running: flaky 1/3 (r2 unclassified)
//	15.4 stopped: r1 errored twice (retried, then final); r2, r3 never ran
const (
	fxFinding  = "endpoint-lost-on-replace"
	fxEvidence = "job has no endpoints block; connection invalidated"
)

var fxT0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fxGuestAhead is how far the fixture guest's clock is ahead of the host's.
const fxGuestAhead = 47 * time.Second

// fxSnapshot is the after-state reading the fixture's finding cites.
const fxSnapshot = "launchctl print system/NetworkExtension.com.example.vpn.tunnel.3.0.300: no endpoints block (state = running)"

type fxCell struct {
	id   string
	axes map[string]string
}

func (c fxCell) label() string {
	return "macos=" + c.axes["macos"] + " path=" + c.axes["path"] + " vpn=" + c.axes["vpn"]
}

var (
	fxFail   = fxCell{"aaaaaaaaaaa1", map[string]string{"macos": "macos-15.3", "path": "2->3", "vpn": "running"}}
	fxPass   = fxCell{"aaaaaaaaaaa2", map[string]string{"macos": "macos-15.3", "path": "2->3", "vpn": "stopped"}}
	fxFlaky  = fxCell{"aaaaaaaaaaa3", map[string]string{"macos": "macos-15.4", "path": "2->3", "vpn": "running"}}
	fxErrors = fxCell{"aaaaaaaaaaa4", map[string]string{"macos": "macos-15.4", "path": "2->3", "vpn": "stopped"}}
	fxCells  = []fxCell{fxFail, fxPass, fxFlaky, fxErrors}
)

func fxProbes(failAt string) []lab.ProbeOutcome {
	var out []lab.ProbeOutcome
	for _, name := range []string{"extension-state", "mach-endpoint", "xpc"} {
		p := lab.ProbeOutcome{Name: name, Held: true, Message: name + " held"}
		if failAt != "" && (name == failAt || name == "xpc") {
			p.Held = false
			p.Message = name + ": connection invalidated"
			p.Observations = map[string]string{"exit": "1"}
		}
		out = append(out, p)
	}
	return out
}

func fxRecord(c fxCell, repeat, try int, final bool, v lab.Verdict, simulated bool) lab.Record {
	started := fxT0.Add(time.Duration(repeat*10+try) * time.Second)
	r := lab.Record{Cell: c.id, Label: c.label(), Axes: c.axes, Repeat: repeat, Try: try, Final: final, Verdict: v,
		Started: started, Finished: started.Add(2500 * time.Millisecond), Host: "local", Provider: "sim", Simulated: simulated,
		Dir: filepath.ToSlash(lab.AttemptDir(c.id, repeat, try))}
	if !simulated {
		r.Provider = "tart"
	}
	if v != lab.Error {
		// The guest's clock runs fxGuestAhead ahead of the host's.
		r.Clock = []lab.ClockReading{{Host: started.Add(100 * time.Millisecond), Guest: started.Add(100*time.Millisecond + fxGuestAhead)}}
	}
	switch v {
	case lab.Pass:
		r.Probes = fxProbes("")
	case lab.Fail:
		r.Probes = fxProbes("mach-endpoint")
		r.Reason = "probe mach-endpoint: connection invalidated"
	case lab.Error:
		r.Reason = "guest: sshd never answered on 127.0.0.1:2222"
	}
	return r
}

// fxRun writes the fixture run folder and returns its path.
func fxRun(t *testing.T, simulated bool) string {
	t.Helper()
	runs := t.TempDir()
	d, err := lab.CreateRunDir(runs, "run-1")
	require.NoError(t, err)
	defer d.Close()

	provider := "sim"
	if !simulated {
		provider = "tart"
	}
	info := lab.RunInfo{ID: "run-1", Lab: "fixture-lab", Tool: "sxlab test", Started: fxT0, Seed: 7,
		Hosts: []lab.Host{{Name: "local", Provider: provider, Slots: 2}}, Providers: []string{provider}, Simulated: simulated}
	info.Config.Matrix = lab.Matrix{
		Axes: lab.OrderedAxes{
			{Name: "macos", Values: []string{"macos-15.3", "macos-15.4"}},
			{Name: "path", Values: []string{"2->3"}},
			{Name: "vpn", Values: []string{"running", "stopped"}},
		},
		ImageAxis: "macos", PathAxis: "path", Repeat: 3,
	}
	require.NoError(t, d.WriteJSON(lab.RunFile, info))
	plan := lab.PlanInfo{Digest: "fixture", Total: 12}
	for _, c := range fxCells {
		plan.Cells = append(plan.Cells, lab.PlanCell{ID: c.id, Label: c.label(), Axes: c.axes})
	}
	for rep := 1; rep <= 3; rep++ {
		for _, c := range fxCells {
			plan.Attempts = append(plan.Attempts, lab.PlanAttempt{Cell: c.id, Repeat: rep})
		}
	}
	require.NoError(t, d.WriteJSON(lab.PlanFile, plan))

	var recs []lab.Record
	for rep := 1; rep <= 3; rep++ {
		f := fxRecord(fxFail, rep, 1, true, lab.Fail, simulated)
		f.Triage = &artifacts.Triage{Finding: fxFinding, Labels: []artifacts.Label{{
			Signature: fxFinding, Meaning: "the new provider's Mach service never registered", Report: "xpc-invalidated-on-upgrade",
			Evidence: []artifacts.Evidence{
				{Time: fxT0.Add(time.Minute), Process: "nesessionmanager", Message: fxEvidence, Source: "logs.ndjson"},
				{Time: fxT0.Add(61 * time.Second), Process: "launchd", Message: fxSnapshot, Source: "state/after/launchctl-print-x.txt"},
			},
		}, {
			Signature: "replacement-path", Meaning: "the upgrade took the replacement path",
			Evidence: []artifacts.Evidence{{Time: fxT0.Add(time.Minute), Process: "nesessionmanager", Message: fxEvidence, Source: "logs.ndjson"}},
		}}}
		if rep == 2 {
			f.Missing = []artifacts.Missing{{What: "sysdiagnose", Reason: "sysdiagnose timed out after 15m"}}
		}
		recs = append(recs, f, fxRecord(fxPass, rep, 1, true, lab.Pass, simulated))
		fl := fxRecord(fxFlaky, rep, 1, true, lab.Pass, simulated)
		if rep == 2 {
			fl = fxRecord(fxFlaky, rep, 1, true, lab.Fail, simulated)
			fl.Triage = &artifacts.Triage{Finding: artifacts.Unclassified}
		}
		recs = append(recs, fl)
	}
	recs = append(recs, fxRecord(fxErrors, 1, 1, false, lab.Error, simulated), fxRecord(fxErrors, 1, 2, true, lab.Error, simulated))

	j, err := lab.OpenJournal(filepath.Join(d.Path, lab.JournalFile))
	require.NoError(t, err)
	for _, r := range recs {
		require.NoError(t, j.Append(r))
	}
	require.NoError(t, j.Close())

	// Attempt folders: steps for every attempt that reached the guest,
	// evidence for the failing cell's first repeat.
	for _, r := range recs {
		if r.Verdict == lab.Error {
			continue
		}
		fxSteps(t, filepath.Join(d.Path, r.Dir), r.Started)
	}
	r1 := filepath.Join(d.Path, lab.AttemptDir(fxFail.id, 1, 1))
	fxFile(t, filepath.Join(r1, "logs.ndjson"), `{"processImagePath":"nesessionmanager","eventMessage":"`+fxEvidence+`"}`+"\n")
	fxFile(t, filepath.Join(r1, "sysdiagnose_r1.tar.gz"), "not really a tarball")
	fxFile(t, filepath.Join(r1, "state", "after", "extensions.txt"), "1 extension(s)\n")
	return d.Path
}

func fxSteps(t *testing.T, dir string, started time.Time) {
	t.Helper()
	entries := []steps.Entry{
		{Step: "1 install", Kind: "install", Started: started.Add(100 * time.Millisecond), Result: &guest.Result{
			Line: "sudo installer -pkg /tmp/sxlab/example-vpn-2.pkg -target /", Exit: 0, Stdout: "installer: The install was successful.\n",
			Started: started.Add(100 * time.Millisecond), Duration: 1500 * time.Millisecond}},
		{Step: "2 upload", Kind: "upload", Started: started.Add(2 * time.Second), Note: "example-vpn-3.pkg -> /tmp/sxlab/example-vpn-3.pkg"},
		{Step: "probe xpc", Kind: "probe", Started: started.Add(2200 * time.Millisecond), Result: &guest.Result{
			Line: "\"/Applications/Example VPN.app/Contents/MacOS/Example VPN\" --check-xpc", Exit: 1,
			Stderr: "xpc: connection invalidated\n", Started: started.Add(2200 * time.Millisecond), Duration: 42 * time.Millisecond}},
	}
	var b strings.Builder
	for _, e := range entries {
		line, err := json.Marshal(e)
		require.NoError(t, err)
		b.Write(line)
		b.WriteString("\n")
	}
	fxFile(t, filepath.Join(dir, "steps.jsonl"), b.String())
}

func fxFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// fxLoad loads the fixture.
func fxLoad(t *testing.T, simulated bool) *Run {
	t.Helper()
	r, err := Load(fxRun(t, simulated))
	require.NoError(t, err)
	return r
}

func fxCellOf(t *testing.T, r *Run, id string) Cell {
	t.Helper()
	for _, c := range r.Cells {
		if c.Cell == id {
			return c
		}
	}
	t.Fatalf("cell %s not in the run", id)
	return Cell{}
}
