package artifacts_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

func labelIDs(tr *artifacts.Triage) []string {
	var ids []string
	for _, l := range tr.Labels {
		ids = append(ids, l.Signature)
	}
	return ids
}

// TestSimDemoFindings runs the demo's cells on simulated Macs as the lab
// does and triages them: the failing macos-15.3 vpn=running attempts
// carry the endpoint-lost finding, the approval=pending ones the
// coalesced finding, and passing attempts no finding at all.
func TestSimDemoFindings(t *testing.T) {
	simNoLeaks(t)
	cat, err := artifacts.LoadCatalog()
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		img     vm.Image
		cell    cell
		finding string // "" = the attempt passes
		labels  []string
	}{
		{"15.3 2->3 vpn=running", image153(), cell{"2", "3", "running", "approved"}, "endpoint-lost",
			[]string{"replacement-path", "listener-name-held", "bootstrap-lookup-failed"}},
		{"15.3 1->3 vpn=running", image153(), cell{"1", "3", "running", "approved"}, "endpoint-lost",
			[]string{"replacement-path", "listener-name-held", "bootstrap-lookup-failed"}},
		{"15.3 2->3 approval=pending", plain(image153()), cell{"2", "3", "stopped", "pending"}, "approval-coalesced",
			[]string{"replacement-path", "staging-remove-failed"}},
		{"15.3 1->3 approval=pending", plain(image153()), cell{"1", "3", "stopped", "pending"}, "approval-coalesced",
			[]string{"replacement-path", "staging-remove-failed"}},
		{"15.4 race strikes", image154(1), cell{"2", "3", "stopped", "approved"}, "endpoint-lost",
			[]string{"replacement-path", "bootstrap-lookup-failed"}},
		{"15.3 vpn=stopped passes", image153(), cell{"2", "3", "stopped", "approved"}, "", nil},
		{"15.4 approval=pending passes", plain(image154(0.2)), cell{"2", "3", "stopped", "pending"}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mac := bootSim(t, tc.img, 1, "triage")
			a := runAttempt(t, mac.client, demoCollector(artifacts.OnFailure), cat, tc.cell, tc.img)
			require.Equal(t, tc.finding != "", a.failed, "verdict of the attempt")
			assert.Empty(t, a.before)
			assert.Empty(t, a.result.Missing)
			require.NoError(t, artifacts.VerifyManifest(a.dir))
			if tc.finding == "" {
				assert.Nil(t, a.triage, "a passing attempt carries no finding")
				return
			}
			require.NotNil(t, a.triage)
			b, _ := json.MarshalIndent(a.triage, "", "  ")
			t.Logf("triage (simulated Mac):\n%s", b)
			assert.Equal(t, tc.finding, a.triage.Finding, "labels: %v", labelIDs(a.triage))
			assert.Equal(t, tc.finding, a.triage.Labels[0].Signature)
			assert.Subset(t, labelIDs(a.triage), tc.labels)
			assert.NotContains(t, labelIDs(a.triage), "delegate-released", "the app keeps its delegate")
			for _, l := range a.triage.Labels {
				require.NotEmpty(t, l.Evidence, l.Signature)
				for _, e := range l.Evidence {
					assert.NotEmpty(t, e.Source, "%s: %+v", l.Signature, e)
					if e.Source == artifacts.LogsFile {
						assert.False(t, e.Time.IsZero(), "%s: a log line has its time", l.Signature)
					}
				}
			}
		})
	}
}

// TestSimFailedAttemptFolder: what a failing attempt leaves, file by
// file, and that every file is in the manifest with its sha256.
func TestSimFailedAttemptFolder(t *testing.T) {
	simNoLeaks(t)
	cat, err := artifacts.LoadCatalog()
	require.NoError(t, err)
	img := image153()
	mac := bootSim(t, img, 1, "folder")
	a := runAttempt(t, mac.client, demoCollector(artifacts.OnFailure), cat, cell{"2", "3", "running", "approved"}, img)
	require.True(t, a.failed)
	require.Empty(t, a.result.Missing)

	// The sysdiagnose: downloaded whole, with progress, and a real archive.
	require.NotEmpty(t, a.result.Sysdiagnose)
	assert.Regexp(t, `^sysdiagnose_.*\.tar\.gz$`, a.result.Sysdiagnose)
	members := tarMembers(t, filepath.Join(a.dir, a.result.Sysdiagnose))
	assert.True(t, slices.ContainsFunc(members, func(m string) bool { return strings.HasSuffix(m, "system_logs.logarchive/logs.ndjson") }), "%v", members)
	require.NotEmpty(t, a.progress)
	last := a.progress[len(a.progress)-1]
	assert.Equal(t, last[1], last[0], "the progress bar ends full")
	info, err := os.Stat(filepath.Join(a.dir, a.result.Sysdiagnose))
	require.NoError(t, err)
	assert.Equal(t, info.Size(), last[1])
	assert.NoFileExists(t, filepath.Join(a.dir, a.result.Sysdiagnose+".part"))

	// The snapshots: one transcript and one parsed file each, before and after.
	files, err := os.ReadDir(filepath.Join(a.dir, "state"))
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	assert.Equal(t, []string{"after.json", "after.txt", "before.json", "before.txt"}, names)
	for _, sub := range []string{artifacts.BeforeDir, artifacts.AfterDir} {
		transcript := readFile(t, filepath.Join(a.dir, sub+".txt"))
		for _, line := range []string{"sw_vers", "systemextensionsctl list", "scutil --nc list", "scutil --nc status 'Example VPN' 2>&1", "sudo launchctl list", "pkgutil --pkg-info com.example.vpn.pkg"} {
			assert.Contains(t, transcript, "\n$ "+line+"\n", "%s ran %s", sub, line)
		}
		assert.Regexp(t, `\n\$ sw_vers\nProductName:\s+macOS\nProductVersion:\s+15\.3\n`, transcript, "the output as the guest printed it")
		assert.Contains(t, transcript, "\n# exit 0\n")
	}
	// Before the upgrade: version 2's job, with its endpoint. After: version 3's, without.
	before, err := artifacts.ReadState(a.dir, artifacts.BeforeDir)
	require.NoError(t, err)
	require.Len(t, before.Jobs, 1)
	assert.Equal(t, "NetworkExtension.com.example.vpn.tunnel.2.0.200", before.Jobs[0].Label)
	assert.True(t, before.Jobs[0].Job.HasEndpointsBlock())
	assert.Contains(t, readFile(t, filepath.Join(a.dir, "state", "before.txt")), "\n$ sudo launchctl print system/NetworkExtension.com.example.vpn.tunnel.2.0.200\n")
	var onDisk artifacts.State
	readJSON(t, filepath.Join(a.dir, "state", "after.json"), &onDisk)
	require.Len(t, onDisk.Jobs, 1)
	assert.Equal(t, "NetworkExtension.com.example.vpn.tunnel.3.0.300", onDisk.Jobs[0].Label)
	assert.False(t, onDisk.Jobs[0].Job.HasEndpointsBlock())
	assert.Equal(t, "15.3", onDisk.SwVers.ProductVersion)
	after := a.result.Facts.After
	require.NotNil(t, after)
	assert.Equal(t, "Connected", after.VPNStatus.Status, "the tunnel works; only XPC is broken")
	require.Len(t, after.Packages, 1)
	assert.Equal(t, "com.example.vpn.pkg", after.Packages[0].PackageID)

	// The log: the attempt's own window, the lab's predicate and the app's subsystem.
	logs := a.result.Facts.Logs
	require.NotEmpty(t, logs)
	for _, e := range logs {
		assert.NotEqual(t, "boot session UUID", e.Message[:min(len(e.Message), 17)], "boot lines are outside the predicate")
	}
	assert.True(t, slices.ContainsFunc(logs, func(e guest.LogEntry) bool { return e.Subsystem == "com.example.vpn" }), "the app's own subsystem is collected")

	// The manifest lists every file but itself, and sha256sum agrees.
	var m artifacts.Manifest
	readJSON(t, filepath.Join(a.dir, artifacts.ManifestFile), &m)
	var listed []string
	for _, e := range m.Files {
		listed = append(listed, e.Path)
	}
	assert.Equal(t, walkFiles(t, a.dir), listed)
	assert.Contains(t, listed, artifacts.StepsFile)
	assert.Contains(t, listed, artifacts.LogsFile)
	assert.Contains(t, listed, a.result.Sysdiagnose)
	requireSha256sum(t, a.dir, m)

	// The guest's work folder is gone (an ssh host is not thrown away).
	res, err := mac.client.Run(context.Background(), guest.Cmd{Line: "ls /var/tmp"})
	require.NoError(t, err)
	assert.NotContains(t, res.Stdout, "sxlab-collect-")
}

// TestSimPolicy: never collects nothing but the manifest; always collects
// a passing attempt's state and logs, without a sysdiagnose; failure
// skips a pass.
func TestSimPolicy(t *testing.T) {
	simNoLeaks(t)
	cat, err := artifacts.LoadCatalog()
	require.NoError(t, err)
	img := image153()
	pass := cell{"2", "3", "stopped", "approved"}
	for _, tc := range []struct {
		on          string
		cell        cell
		wantLogs    bool
		wantBefore  bool
		sysdiagnose bool
	}{
		{artifacts.OnNever, cell{"2", "3", "running", "approved"}, false, false, false},
		{artifacts.OnAlways, pass, true, true, false},
		{artifacts.OnFailure, pass, false, true, false},
	} {
		t.Run(tc.on, func(t *testing.T) {
			mac := bootSim(t, img, 1, "policy")
			a := runAttempt(t, mac.client, demoCollector(tc.on), cat, tc.cell, img)
			assert.Empty(t, a.result.Missing)
			assert.Equal(t, tc.wantLogs, fileExists(filepath.Join(a.dir, artifacts.LogsFile)), "logs")
			assert.Equal(t, tc.wantLogs, fileExists(filepath.Join(a.dir, artifacts.AfterDir+".txt")), "after-state")
			assert.Equal(t, tc.wantBefore, fileExists(filepath.Join(a.dir, artifacts.BeforeDir+".json")), "before-state")
			assert.Equal(t, tc.sysdiagnose, a.result.Sysdiagnose != "")
			require.NoError(t, artifacts.VerifyManifest(a.dir))
		})
	}
}

// TestSimLogWindow: log show starts at the guest's clock as GuestNow
// read it: what was logged before is out, what after is in; with no start
// the window falls back to the last boot.
func TestSimLogWindow(t *testing.T) {
	simNoLeaks(t)
	img := image153()
	mac := bootSim(t, img, 1, "window")
	ctx := context.Background()
	run := func(line string) {
		res, err := mac.client.Run(ctx, guest.Cmd{Line: line})
		require.NoError(t, err)
		require.Equal(t, 0, res.Exit, "%s: %s", line, res.Stderr)
	}
	// The simulated clock jumps over sleeps, so this puts 5 s between
	// the boot's lines and the window's start.
	run("sleep 5")
	since, err := artifacts.GuestNow(ctx, mac.client)
	require.NoError(t, err)
	pkg := demoApp(t).Versions["2"].Package
	require.NoError(t, mac.client.Upload(ctx, pkg, "/tmp/v2.pkg", nil))
	run("sudo installer -pkg /tmp/v2.pkg -target /")

	col := demoCollector(artifacts.OnAlways)
	col.Policy.Predicate = `process == "launchd" OR subsystem == "com.apple.install"`
	col.App.BundleID = ""
	messages := func(since time.Time) []string {
		a := col.After(ctx, mac.client, t.TempDir(), false, since)
		require.Empty(t, a.Missing)
		var out []string
		for _, e := range a.Facts.Logs {
			out = append(out, e.Message)
		}
		return out
	}
	windowed := messages(since)
	assert.True(t, slices.ContainsFunc(windowed, func(m string) bool { return strings.HasPrefix(m, "Package name is") }), "%q", windowed)
	assert.False(t, slices.ContainsFunc(windowed, func(m string) bool { return strings.HasPrefix(m, "boot session UUID") }), "%q", windowed)
	whole := messages(time.Time{})
	assert.True(t, slices.ContainsFunc(whole, func(m string) bool { return strings.HasPrefix(m, "boot session UUID") }), "%q", whole)
}

func tarMembers(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		require.NoError(t, err)
		names = append(names, h.Name)
	}
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v), file)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// walkFiles lists the folder's regular files but the manifest, sorted,
// relative with forward slashes.
func walkFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err == nil && rel != artifacts.ManifestFile {
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	}))
	slices.Sort(out)
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}
