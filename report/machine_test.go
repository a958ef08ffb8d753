package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

const leaked = "Virtualization.framework refused a VM with its two-VM limit (VZErrorVirtualMachineLimitExceeded) while 0 VM process(es) ran: the host leaked a VM slot, which only a reboot frees; reboot it"

// machineRun is a vz run on two Macs: mini-1 leaked a VM slot and was
// quarantined; on mini-2 one try restored and talked over vsock, one
// fell back to a cold boot and to TCP.
func machineRun(t *testing.T, infoKnowsQuarantine bool) string {
	t.Helper()
	d, err := lab.CreateRunDir(t.TempDir(), "run-m")
	require.NoError(t, err)
	defer d.Close()
	info := lab.RunInfo{ID: "run-m", Lab: "machines", Tool: "sxlab test", Started: fxT0, Seed: 1, Providers: []string{"vz"},
		Hosts: []lab.Host{{Name: "mini-1", Provider: "vz", Slots: 2}, {Name: "mini-2", Provider: "vz", Slots: 2}}}
	if infoKnowsQuarantine {
		info.Quarantined = []lab.QuarantinedHost{{Host: "mini-1", Reason: leaked}}
	}
	info.Config.Matrix = lab.Matrix{Axes: lab.OrderedAxes{{Name: "macos", Values: []string{"macos-15.4"}}}, ImageAxis: "macos", Repeat: 2}
	require.NoError(t, d.WriteJSON(lab.RunFile, info))
	cell := fxCell{"bbbbbbbbbbb1", map[string]string{"macos": "macos-15.4"}}
	label := "macos=macos-15.4"
	require.NoError(t, d.WriteJSON(lab.PlanFile, lab.PlanInfo{Digest: "m", Total: 2,
		Cells:    []lab.PlanCell{{ID: cell.id, Label: label, Axes: cell.axes}},
		Attempts: []lab.PlanAttempt{{Cell: cell.id, Repeat: 1}, {Cell: cell.id, Repeat: 2}}}))
	rec := func(repeat, try int, host string, v lab.Verdict) lab.Record {
		started := fxT0.Add(time.Duration(repeat*10+try) * time.Second)
		return lab.Record{Cell: cell.id, Label: label, Axes: cell.axes, Repeat: repeat, Try: try, Final: true, Verdict: v,
			Started: started, Finished: started.Add(time.Minute), Host: host, Slot: 1, Provider: "vz",
			Dir: filepath.ToSlash(lab.AttemptDir(cell.id, repeat, try)), Probes: []lab.ProbeOutcome{{Name: "xpc", Held: v == lab.Pass}}}
	}
	quarantined := rec(1, 1, "mini-1", lab.Error)
	quarantined.Final = false
	quarantined.Reason = "clone macos-15.4: VZErrorVirtualMachineLimitExceeded"
	quarantined.Quarantine = leaked
	quarantined.Probes = nil
	restored := rec(1, 2, "mini-2", lab.Pass)
	restored.Start, restored.ToSSH, restored.Channel = lab.StartRestored, 4.25, lab.ChannelVsock
	fellBack := rec(2, 1, "mini-2", lab.Pass)
	fellBack.Start, fellBack.StartNote, fellBack.ToSSH = lab.StartCold, "restoring state.vzvmsave failed (the device set differs); booted cold instead", 71.5
	fellBack.Channel, fellBack.ChannelNote = lab.ChannelTCP, "the guest agent's vsock port 7022 did not answer (EOF); over TCP instead"
	j, err := lab.OpenJournal(filepath.Join(d.Path, lab.JournalFile))
	require.NoError(t, err)
	for _, r := range []lab.Record{quarantined, restored, fellBack} {
		require.NoError(t, j.Append(r))
	}
	require.NoError(t, j.Close())
	require.NoError(t, Write(d.Path))
	return d.Path
}

func read(t *testing.T, dir, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	require.NoError(t, err)
	return string(b)
}

func TestReportsSayWhichHostIsQuarantined(t *testing.T) {
	for _, known := range []bool{true, false} {
		dir := machineRun(t, known)
		page := read(t, dir, HTMLFile)
		q := section(t, page, "quarantined")
		assert.Contains(t, q, "host mini-1 needs a reboot; none of its attempts counts against the product", "run.json knows it: %v", known)
		assert.Contains(t, q, "the host leaked a VM slot")
		assert.NotContains(t, q, "mini-2")

		md := read(t, dir, SummaryFile)
		assert.Contains(t, md, "> **QUARANTINED**: host mini-1 needs a reboot; none of its attempts counts against the product")
		assert.Less(t, strings.Index(md, "QUARANTINED"), strings.Index(md, "| provider |"), "in the header, before the counts")
	}
}

func TestReportsSayHowEachTryStartedAndWasReached(t *testing.T) {
	dir := machineRun(t, true)
	r, err := Load(dir)
	require.NoError(t, err)
	c := fxCellOf(t, r, "bbbbbbbbbbb1")
	page := read(t, dir, "cells/bbbbbbbbbbb1/"+CellPageFile)

	restored := try(t, page, attemptAnchor(c.Tries[1]))
	assert.Contains(t, restored, "restored from saved state")
	assert.Contains(t, restored, "SSH after 4.2 s")
	assert.Contains(t, restored, "over vsock (the guest agent)")
	assert.NotContains(t, restored, "fell back")

	fell := try(t, page, attemptAnchor(c.Tries[2]))
	assert.Contains(t, fell, "cold boot (the restore fell back)")
	assert.Contains(t, fell, "over tcp (fell back)")
	assert.Contains(t, fell, "start: restoring state.vzvmsave failed (the device set differs); booted cold instead")
	assert.Contains(t, fell, "channel: the guest agent&#39;s vsock port 7022 did not answer (EOF); over TCP instead")

	q := try(t, page, attemptAnchor(c.Tries[0]))
	assert.Contains(t, q, "host mini-1 quarantined: ")
	assert.Contains(t, q, "this try does not count against the product")

	front := read(t, dir, HTMLFile)
	assert.Contains(t, front, "channel: vsock 1, tcp 1 (1 fell back from vsock); start: restored 1, cold 1 (1 restore(s) fell back to a cold boot)")
	assert.Contains(t, read(t, dir, SummaryFile), "Tries by channel: vsock 1, tcp 1 (1 fell back from vsock); start: restored 1, cold 1")

	junit := read(t, dir, JUnitFile)
	assert.Contains(t, junit, "machine: restored from saved state, SSH after 4.2 s, over vsock (the guest agent)")
	assert.Contains(t, junit, "channel: the guest agent&#39;s vsock port 7022 did not answer")
}

func TestReportsOfAJournalWithoutMachineFieldsSayNothingOfThem(t *testing.T) {
	r := fxLoad(t, true)
	assert.Empty(t, r.Machines())
	assert.Empty(t, r.Quarantined())
	html, err := HTML(r)
	require.NoError(t, err)
	assert.NotContains(t, string(html), "machines</dt>")
	assert.NotContains(t, string(html), `id="quarantined"`)
	assert.NotContains(t, string(Markdown(r)), "QUARANTINED")
}
