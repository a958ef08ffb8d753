package report

import (
	"encoding/json"
	"fmt"
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

// scaleRun writes a run folder the shape the demo leaves, at scale: cells
// × repeats attempts over 2 hosts × 2 slots, a third of the cells failing
// every time with triage, logs, state and a sysdiagnose, one cell flaky,
// the rest passing with the state snapshot before the upgrade. Files are
// about the demo's sizes (steps.jsonl 5–7 KB, logs.ndjson 30 KB).
func scaleRun(tb testing.TB, cells, repeats int) string {
	tb.Helper()
	d, err := lab.CreateRunDir(tb.TempDir(), "scale")
	require.NoError(tb, err)
	defer d.Close()

	t0 := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	hosts := []lab.Host{{Name: "mini-1", Provider: "sim", Slots: 2}, {Name: "mini-2", Provider: "sim", Slots: 2}}
	info := lab.RunInfo{ID: "scale", Lab: "scale-lab", Tool: "sxlab bench", Started: t0, Seed: 1,
		Hosts: hosts, Providers: []string{"sim"}, Simulated: true}
	var macos, paths, vpn []string
	for i := 0; i < (cells+3)/4; i++ {
		macos = append(macos, fmt.Sprintf("macos-15.%d", i))
	}
	paths = []string{"1->3", "2->3"}
	vpn = []string{"running", "stopped"}
	info.Config.Matrix = lab.Matrix{Axes: lab.OrderedAxes{
		{Name: "macos", Values: macos}, {Name: "path", Values: paths}, {Name: "vpn", Values: vpn},
	}, ImageAxis: "macos", PathAxis: "path", Repeat: repeats}
	require.NoError(tb, d.WriteJSON(lab.RunFile, info))

	type cell struct {
		id   string
		axes map[string]string
	}
	var cs []cell
	plan := lab.PlanInfo{Digest: "scale", Total: cells * repeats}
	for i := 0; len(cs) < cells; i++ {
		axes := map[string]string{"macos": macos[i/4], "path": paths[(i/2)%2], "vpn": vpn[i%2]}
		c := cell{id: fmt.Sprintf("%012x", 0xc0ffee000000+i), axes: axes}
		cs = append(cs, c)
		plan.Cells = append(plan.Cells, lab.PlanCell{ID: c.id, Label: scaleLabel(axes), Axes: axes})
	}
	for rep := 1; rep <= repeats; rep++ {
		for _, c := range cs {
			plan.Attempts = append(plan.Attempts, lab.PlanAttempt{Cell: c.id, Repeat: rep})
		}
	}
	require.NoError(tb, d.WriteJSON(lab.PlanFile, plan))

	journal, err := os.Create(filepath.Join(d.Path, lab.JournalFile))
	require.NoError(tb, err)
	defer journal.Close()
	slotFree := make([]time.Time, 4)
	for i := range slotFree {
		slotFree[i] = t0
	}
	n := 0
	for rep := 1; rep <= repeats; rep++ {
		for ci, c := range cs {
			slot := n % 4
			n++
			verdict := lab.Pass
			switch {
			case ci%3 == 0:
				verdict = lab.Fail
			case ci == 1 && rep%10 == 0:
				verdict = lab.Fail
			}
			started := slotFree[slot].Add(50 * time.Millisecond)
			took := 2500*time.Millisecond + time.Duration(ci%5)*200*time.Millisecond
			if verdict == lab.Fail {
				took += 3 * time.Second
			}
			slotFree[slot] = started.Add(took)
			rec := lab.Record{Cell: c.id, Label: scaleLabel(c.axes), Axes: c.axes, Repeat: rep, Try: 1, Final: true,
				Verdict: verdict, Started: started, Finished: started.Add(took), Host: hosts[slot/2].Name,
				Provider: "sim", Simulated: true, Dir: filepath.ToSlash(lab.AttemptDir(c.id, rep, 1)),
				Probes: scaleProbes(verdict)}
			rec.Slot = slot%2 + 1
			dir := filepath.Join(d.Path, filepath.FromSlash(rec.Dir))
			scaleAttempt(tb, dir, &rec)
			b, err := json.Marshal(rec)
			require.NoError(tb, err)
			_, err = journal.Write(append(b, '\n'))
			require.NoError(tb, err)
		}
	}
	require.NoError(tb, journal.Close())
	return d.Path
}

func scaleLabel(axes map[string]string) string {
	return "macos=" + axes["macos"] + " path=" + axes["path"] + " vpn=" + axes["vpn"]
}

func scaleProbes(v lab.Verdict) []lab.ProbeOutcome {
	out := []lab.ProbeOutcome{
		{Name: "extension-state", Held: true, Message: `extension com.example.vpn.tunnel 3.0/300 is "activated enabled"`,
			Observations: map[string]string{"rows": "3.0/300 [activated enabled]"}},
		{Name: "mach-endpoint", Held: true, Message: "job NetworkExtension.com.example.vpn.tunnel.3.0.300 serves ABCDE12345.com.example.vpn.tunnel",
			Observations: map[string]string{"endpoints": "ABCDE12345.com.example.vpn.tunnel", "label": "NetworkExtension.com.example.vpn.tunnel.3.0.300"}},
		{Name: "xpc", Held: true, Message: "xpc: connected to ABCDE12345.com.example.vpn.tunnel (extension 3.0/300)",
			Observations: map[string]string{"exit": "0"}},
	}
	if v == lab.Fail {
		out[1].Held, out[1].Message = false, "job NetworkExtension.com.example.vpn.tunnel.3.0.300 has no endpoints block"
		out[2].Held, out[2].Message = false, "exit 1, expected 0: xpc: ABCDE12345.com.example.vpn.tunnel: connection invalidated"
	}
	return out
}

// scaleAttempt writes an attempt folder and completes rec with what a
// failing attempt's collection adds (triage, evidence).
func scaleAttempt(tb testing.TB, dir string, rec *lab.Record) {
	tb.Helper()
	write := func(name, content string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(tb, os.WriteFile(p, []byte(content), 0o644))
	}
	at := rec.Started
	var lines []string
	step := func(name, kind, cmd, stdout, stderr string, took time.Duration, exit int) {
		e := steps.Entry{Step: name, Kind: kind, Started: at}
		if cmd != "" {
			e.Result = &guest.Result{Line: cmd, Exit: exit, Stdout: stdout, Stderr: stderr, Started: at, Duration: took}
		} else {
			e.Note = stdout
		}
		b, err := json.Marshal(e)
		require.NoError(tb, err)
		lines = append(lines, string(b))
		at = at.Add(took)
	}
	list := "1 extension(s)\n--- com.apple.system_extension.network_extension\nenabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n*\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n"
	for _, v := range []string{"2", "3"} {
		step("1 install", "prepare", "mkdir -p /tmp/sxlab", "", "", time.Millisecond, 0)
		step("1 install", "upload", "", "examples/pkg/example-vpn-"+v+".pkg -> /tmp/sxlab/example-vpn-"+v+".pkg", "", 20*time.Millisecond, 0)
		step("1 install", "install", "sudo installer -pkg /tmp/sxlab/example-vpn-"+v+".pkg -target /",
			"installer: Package name is Example VPN\ninstaller: Installing at base path /\ninstaller: The install was successful.\n", "", 200*time.Millisecond, 0)
		step("2 launch", "launch", "sudo launchctl asuser $(id -u admin) open -a '/Applications/Example VPN.app'", "", "", 50*time.Millisecond, 0)
	}
	for _, p := range rec.Probes {
		step("probe "+p.Name, "query", "systemextensionsctl list", list, "", 30*time.Millisecond, 0)
		step("9 probe", "probe", "", p.Name+" held: "+p.Message, "", time.Millisecond, 0)
	}
	write("steps.jsonl", strings.Join(lines, "\n")+"\n")
	state := func(sub string) {
		for _, f := range []string{"sw_vers", "systemextensionsctl-list", "scutil-nc-list", "scutil-nc-status", "pkgutil-pkg-info-com.example.vpn.pkg"} {
			write("state/"+sub+"/"+f+".txt", strings.Repeat("ProductName:\tmacOS\n", 12))
			write("state/"+sub+"/"+f+".json", `{"product_name":"macOS","product_version":"15.3","build_version":"24D60"}`)
		}
		write("state/"+sub+"/launchctl-list.txt", strings.Repeat("-\t0\tcom.apple.example\n", 12))
	}
	state("before")
	if rec.Verdict == lab.Fail {
		state("after")
		ev := []artifacts.Evidence{}
		var log strings.Builder
		for i := 0; i < 120; i++ {
			msg := fmt.Sprintf("activateDecision found entry to replace: com.example.vpn.tunnel, BundleVersion %d", i)
			fmt.Fprintf(&log, `{"timestamp":"%s","processImagePath":"/usr/libexec/sysextd","eventMessage":%q,"subsystem":"com.apple.sx"}`+"\n",
				rec.Started.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), msg)
			if i < 4 {
				ev = append(ev, artifacts.Evidence{Time: rec.Started.Add(time.Duration(i) * time.Millisecond), Process: "sysextd", Message: msg, Source: "logs.ndjson"})
			}
		}
		write("logs.ndjson", log.String())
		write("sysdiagnose_2026.11.30_22-00-00_sxlab.tar.gz", strings.Repeat("x", 5000))
		rec.Reason = "probe mach-endpoint: " + rec.Probes[1].Message
		rec.Triage = &artifacts.Triage{Finding: "endpoint-lost", Labels: []artifacts.Label{
			{Signature: "endpoint-lost", Meaning: "the new provider's launchd job has no endpoints block", Report: "xpc-invalidated-on-upgrade", Evidence: ev[:2]},
			{Signature: "replacement-path", Meaning: "the upgrade took sysextd's replacement path", Report: "delegate-no-callback", Evidence: ev[2:]},
		}}
	}
	write("manifest.json", strings.Repeat(`{"path":"state/before/sw_vers.txt","size":217,"sha256":"859ccd8bf61613484b4e0ede5aad6a33c0c59677c682aed64abd361d4c3c2077"},`, 22))
}
