package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/packages"
)

func resultOf(verdicts map[string][]lab.Verdict, remaining int) *lab.RunResult {
	res := &lab.RunResult{Dir: "runs/x", Info: lab.RunInfo{ID: "x", Providers: []string{"sim"}, Simulated: true}, Remaining: remaining}
	for label, vs := range verdicts {
		for i, v := range vs {
			res.Records = append(res.Records, lab.Record{Cell: label, Label: label, Repeat: i + 1, Final: true, Verdict: v})
		}
	}
	res.Cells = lab.Summarise(res.Records)
	return res
}

func TestSummaryExitCodes(t *testing.T) {
	assert.Equal(t, 0, summarise(resultOf(map[string][]lab.Verdict{"a": {lab.Pass, lab.Pass}}, 0)).ExitCode)
	assert.Equal(t, 1, summarise(resultOf(map[string][]lab.Verdict{"a": {lab.Pass}, "b": {lab.Fail, lab.Pass}}, 0)).ExitCode, "flaky is a finding")
	assert.Equal(t, 2, summarise(resultOf(map[string][]lab.Verdict{"a": {lab.Fail}}, 3)).ExitCode, "attempts left without a verdict")
	assert.Equal(t, 2, summarise(resultOf(map[string][]lab.Verdict{"a": {lab.Error}}, 0)).ExitCode, "errors only: no verdict for the cell")
}

func TestSummaryText(t *testing.T) {
	res := resultOf(map[string][]lab.Verdict{"vpn=running": {lab.Fail, lab.Fail, lab.Fail}, "vpn=stopped": {lab.Pass, lab.Pass, lab.Pass}}, 0)
	for i := range res.Records {
		if res.Records[i].Verdict == lab.Fail {
			res.Records[i].Triage = &artifacts.Triage{Finding: "endpoint-lost"}
		}
	}
	s := summarise(res)
	var b bytes.Buffer
	require.NoError(t, writeSummary(&b, s, false))
	out := b.String()
	assert.Contains(t, out, "SIMULATED")
	assert.Contains(t, out, "attempts: 3 pass, 3 fail, 0 error")
	assert.Contains(t, out, "FAIL       vpn=running  3/3 failed (95%: 44%–100%); finding: endpoint-lost ×3")
	assert.NotContains(t, out, "vpn=stopped", "passing cells are only counted")
	assert.Contains(t, out, "run folder: runs/x")

	b.Reset()
	require.NoError(t, writeSummary(&b, s, true))
	var back runSummary
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	assert.True(t, back.Simulated)
	assert.Equal(t, 1, back.ExitCode)
	assert.Equal(t, lab.CellFail, back.Cells[0].Verdict, "worst first")
}

// An ssh host pointed at `sxlab sim serve`: both lines of the summary
// name the same thing, the ssh host and that its Mac is simulated.
func TestSummaryNamesASimulatedSSHHostConsistently(t *testing.T) {
	res := &lab.RunResult{Dir: "runs/x", Info: lab.RunInfo{ID: "x", Providers: []string{"ssh"}, Simulated: true,
		Hosts: []lab.Host{{Name: "mini", Provider: "ssh", Slots: 1}}}}
	res.Records = []lab.Record{{Cell: "a", Label: "a", Repeat: 1, Final: true, Verdict: lab.Pass, Host: "mini", Simulated: true}}
	res.Cells = lab.Summarise(res.Records)
	var b bytes.Buffer
	require.NoError(t, writeSummary(&b, summarise(res), false))
	out := b.String()
	assert.Contains(t, out, "run x: 1 attempt(s) on ssh host mini (a simulated Mac)\n")
	assert.Contains(t, out, "SIMULATED: these results come from simulated Macs (ssh host mini), not from real macOS.")
	assert.NotContains(t, out, "provider sim", "no sim provider ran")

	// The sim provider keeps its name.
	b.Reset()
	require.NoError(t, writeSummary(&b, summarise(resultOf(map[string][]lab.Verdict{"a": {lab.Pass}}, 0)), false))
	assert.Contains(t, b.String(), "run x: 1 attempt(s) on sim\n")
	assert.Contains(t, b.String(), "(provider sim)")
}

func TestSummaryNamesAQuarantinedHost(t *testing.T) {
	res := resultOf(map[string][]lab.Verdict{"a": {lab.Pass, lab.Pass}}, 0)
	res.Info.Quarantined = []lab.QuarantinedHost{{Host: "mini-2", Reason: "the host leaked a VM slot; reboot it"}}
	s := summarise(res)
	assert.Equal(t, 0, s.ExitCode, "the other host finished the plan")
	var text bytes.Buffer
	require.NoError(t, writeSummary(&text, s, false))
	assert.Contains(t, text.String(), "QUARANTINED host mini-2: the host leaked a VM slot; reboot it")
	var js bytes.Buffer
	require.NoError(t, writeSummary(&js, s, true))
	var back runSummary
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	assert.Equal(t, res.Info.Quarantined, back.Quarantined)
}

func TestSummaryLinesBreakBetweenWordsAtTheTerminalWidth(t *testing.T) {
	line := "  FAIL       macos=macos-15.3 path=1->3 vpn=running approval=approved  3/3 failed (95%: 44%–100%); finding: endpoint-lost ×3\n"
	out := wrapText("cells: 8 pass, 4 fail\n"+line, 120)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 3, "%q", out)
	assert.Equal(t, "cells: 8 pass, 4 fail", lines[0])
	assert.True(t, strings.HasSuffix(lines[1], "finding:"), "broken before a word: %q", lines[1])
	assert.Equal(t, "             endpoint-lost ×3", lines[2], "the finding whole, under the label")
	assert.Equal(t, strings.Join(strings.Fields(line), " "), strings.Join(strings.Fields(out[len(lines[0])+1:]), " "), "nothing lost")
}

// An interrupted run's summary counts its unfinished cells as incomplete,
// not as the pass or fail their first attempts showed.
func TestSummaryOfAnInterruptedRun(t *testing.T) {
	res := resultOf(map[string][]lab.Verdict{"vpn=running": {lab.Fail}, "vpn=stopped": {lab.Pass, lab.Pass, lab.Pass}}, 2)
	var attempts []lab.PlanAttempt
	var cells []lab.PlanCell
	for _, c := range []string{"vpn=running", "vpn=stopped"} {
		cells = append(cells, lab.PlanCell{ID: c, Label: c})
		for r := 1; r <= 3; r++ {
			attempts = append(attempts, lab.PlanAttempt{Cell: c, Repeat: r})
		}
	}
	res.Cells = lab.SummarisePlan(res.Records, cells, attempts)
	var b bytes.Buffer
	require.NoError(t, writeSummary(&b, summarise(res), false))
	out := b.String()
	assert.Contains(t, out, "cells: 1 pass, 0 fail, 0 flaky, 1 incomplete")
	assert.Contains(t, out, "INCOMPLETE vpn=running  1/1 failed (95%: 21%–100%), 2 without a verdict")
	assert.Contains(t, out, "2 without a verdict (resume with: sxlab run --resume runs/x)")
}

// What preflight found before the first attempt gets one line, and never
// the exit code: the cells are what the lab saw.
func TestSummaryCountsPreflightInOneLine(t *testing.T) {
	res := resultOf(map[string][]lab.Verdict{"a": {lab.Pass, lab.Pass}}, 0)
	var b bytes.Buffer
	require.NoError(t, writeSummary(&b, summarise(res), false))
	assert.NotContains(t, b.String(), "preflight", "not run: nothing to say")

	res.Info.Preflight = &packages.Report{Errors: 2, Warnings: 1, Rows: []packages.Row{
		{Path: "2->3", Check: "extension-uuid-changes", Status: packages.Error},
		{Path: "2->3", Check: "extension-version-increases", Status: packages.Error},
		{Path: "2->3", Check: "mach-service-versioned", Status: packages.Warning},
	}}
	s := summarise(res)
	assert.Equal(t, 0, s.ExitCode, "preflight errors do not change a verdict")
	b.Reset()
	require.NoError(t, writeSummary(&b, s, false))
	out := b.String()
	assert.Contains(t, out, "\npreflight: 2 errors, 1 warning (sxlab preflight for details)\n")
	assert.Equal(t, 1, strings.Count(out, "preflight:"), "one line")

	res.Info.Preflight = &packages.Report{Rows: []packages.Row{{Path: "2->3", Check: "extension-uuid-changes", Status: packages.OK}}}
	b.Reset()
	require.NoError(t, writeSummary(&b, summarise(res), false))
	assert.NotContains(t, b.String(), "preflight", "a clean preflight adds no line")

	res.Info.Preflight = &packages.Report{Errors: 1, Unreadable: []packages.Problem{{Version: "3", File: "vpn-3.pkg", Reason: "bad magic"}}}
	b.Reset()
	require.NoError(t, writeSummary(&b, summarise(res), true))
	var back runSummary
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.NotNil(t, back.Preflight)
	assert.Equal(t, preflightCounts{Errors: 1, Unreadable: 1}, *back.Preflight)
	assert.Equal(t, "preflight: 1 error, 0 warnings, 1 package unreadable (sxlab preflight for details)", preflightSummaryLine(back.Preflight))
}
