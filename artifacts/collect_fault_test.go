package artifacts_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

// dyingGuest stops its simulated Mac when the guest is asked to run its
// dieAt-th command: the connection goes down under the collection.
type dyingGuest struct {
	guest.Guest
	m     vm.Machine
	dieAt int
	mu    sync.Mutex
	runs  []string
}

func (g *dyingGuest) Run(ctx context.Context, cmd guest.Cmd) (guest.Result, error) {
	g.mu.Lock()
	g.runs = append(g.runs, cmd.Line)
	n := len(g.runs)
	g.mu.Unlock()
	if n == g.dieAt {
		if err := g.m.Stop(ctx); err != nil {
			return guest.Result{}, err
		}
	}
	return g.Guest.Run(ctx, cmd)
}

func missingWhat(ms []artifacts.Missing) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.What)
	}
	return out
}

// TestDyingGuestKeepsWhatWasCollected: the guest dies after the
// sysdiagnose and the after-state, under log show; what was collected
// stays, the rest is missing with its reason, nothing else is tried,
// and the manifest is still written.
func TestDyingGuestKeepsWhatWasCollected(t *testing.T) {
	simNoLeaks(t)
	img := image153()
	mac := bootSim(t, img, 1, "dying")
	// Runs: 1 sysdiagnose, 2 the snapshot's commands in one session (the
	// clock, sw_vers, systemextensionsctl, scutil, launchctl list,
	// pkgutil; no job of the app is found, so no second session), 3 log show.
	g := &dyingGuest{Guest: mac.client, m: mac.m, dieAt: 3}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, artifacts.StepsFile), []byte("{}\n"), 0o644))
	since := time.Now()

	res := demoCollector(artifacts.OnFailure).After(context.Background(), g, dir, true, since)

	require.NotEmpty(t, res.Sysdiagnose)
	assert.FileExists(t, filepath.Join(dir, res.Sysdiagnose))
	transcript := readFile(t, filepath.Join(dir, "state", "after.txt"))
	assert.Contains(t, transcript, "\n$ sw_vers\nProductName:", "what the guest said before it died is kept")
	assert.Contains(t, transcript, "\n$ systemextensionsctl list\n0 extension(s)\n# exit 0\n")
	assert.Len(t, g.runs, 3, "nothing is tried once the guest is gone: %q; missing %+v", g.runs, res.Missing)

	what := missingWhat(res.Missing)
	assert.Contains(t, what, "logs")
	assert.NotContains(t, strings.Join(what, " "), "systemextensionsctl", "the snapshot was whole")
	assert.Nil(t, res.Facts.Logs)
	require.NotNil(t, res.Facts.After)
	assert.Equal(t, "15.3", res.Facts.After.SwVers.ProductVersion)

	var m artifacts.Manifest
	readJSON(t, filepath.Join(dir, artifacts.ManifestFile), &m)
	listed := map[string]bool{}
	for _, e := range m.Files {
		listed[e.Path] = true
	}
	assert.True(t, listed[res.Sysdiagnose])
	assert.True(t, listed["state/after.txt"])
	assert.True(t, listed["state/after.json"])
	assert.True(t, listed[artifacts.StepsFile])
	require.NoError(t, artifacts.VerifyManifest(dir))
}

// TestGuestDyingUnderTheSnapshot: the guest dies as the snapshot's
// session is sent. Each command is tried once more alone (the connection
// may have been the trouble, not the guest), and once the guest is found
// gone, every one is in the transcript and in missing with why, the
// first naming its command.
func TestGuestDyingUnderTheSnapshot(t *testing.T) {
	simNoLeaks(t)
	img := image153()
	mac := bootSim(t, img, 1, "dying")
	g := &dyingGuest{Guest: mac.client, m: mac.m, dieAt: 2} // 1 sysdiagnose, 2 the snapshot
	dir := t.TempDir()

	res := demoCollector(artifacts.OnFailure).After(context.Background(), g, dir, true, time.Now())

	require.NotEmpty(t, res.Sysdiagnose, "what came before stays")
	assert.Len(t, g.runs, 3, "the batch, then its first command alone; the rest is skipped: %q", g.runs)
	what := missingWhat(res.Missing)
	require.NotEmpty(t, what)
	assert.Equal(t, "state/after.txt (clock)", what[0])
	assert.Contains(t, what, "state/after.txt (systemextensionsctl-list)")
	assert.Contains(t, what, "logs")
	for _, m := range res.Missing[1:] {
		assert.True(t, strings.HasPrefix(m.Reason, "skipped: "), "%+v", m)
	}
	transcript := readFile(t, filepath.Join(dir, "state", "after.txt"))
	assert.Contains(t, transcript, "\n$ systemextensionsctl list\n# no answer: skipped: ")
	require.NoError(t, artifacts.VerifyManifest(dir))
}

// flakyGuest breaks its first downloads the way a dropped connection
// does, leaving part of the file behind, and counts reconnects.
type flakyGuest struct {
	guest.Guest
	breaks     int // downloads to break
	reconnects int
	refuse     bool // Reconnect fails
}

func (g *flakyGuest) Download(ctx context.Context, remote, local string, p guest.Progress) error {
	if g.breaks > 0 {
		g.breaks--
		if err := os.WriteFile(local+".part", []byte("partial"), 0o644); err != nil {
			return err
		}
		return fmt.Errorf("download %s: %w: EOF", remote, guest.ErrConnectionLost)
	}
	return g.Guest.Download(ctx, remote, local, p)
}

func (g *flakyGuest) Reconnect(context.Context) error {
	g.reconnects++
	if g.refuse {
		return fmt.Errorf("sshd did not answer")
	}
	return nil
}

// TestDownloadResumesAfterReconnect: a transfer broken by a lost
// connection is tried again after a reconnect; the guest's sha256 check
// of guest.Client.Download passes only if the .part content was right or
// replaced, so a passing manifest proves the archive whole.
func TestDownloadResumesAfterReconnect(t *testing.T) {
	simNoLeaks(t)
	mac := bootSim(t, image153(), 1, "flaky")
	g := &flakyGuest{Guest: mac.client, breaks: 1}
	dir := t.TempDir()

	// A fresh machine has no receipt: look for the app's packages instead.
	col := demoCollector(artifacts.OnFailure)
	col.App.Packages = nil
	res := col.After(context.Background(), g, dir, true, time.Time{})

	assert.Empty(t, res.Missing)
	assert.Equal(t, 1, g.reconnects)
	require.NotEmpty(t, res.Sysdiagnose)
	members := tarMembers(t, filepath.Join(dir, res.Sysdiagnose))
	assert.NotEmpty(t, members)
	assert.NoFileExists(t, filepath.Join(dir, res.Sysdiagnose+".part"))
	require.NoError(t, artifacts.VerifyManifest(dir))
}

// TestDownloadGivesUpKeepingThePart: when the guest cannot be reached
// again, the sysdiagnose is missing, the bytes received are kept and
// said so, and the rest of the collection is skipped.
func TestDownloadGivesUpKeepingThePart(t *testing.T) {
	simNoLeaks(t)
	mac := bootSim(t, image153(), 1, "gone")
	g := &flakyGuest{Guest: mac.client, breaks: 10, refuse: true}
	dir := t.TempDir()

	res := demoCollector(artifacts.OnFailure).After(context.Background(), g, dir, true, time.Time{})

	assert.Empty(t, res.Sysdiagnose)
	require.NotEmpty(t, res.Missing)
	assert.Equal(t, "sysdiagnose", res.Missing[0].What)
	assert.Contains(t, res.Missing[0].Reason, "connection lost")
	assert.Regexp(t, `the 7 bytes received are kept in sysdiagnose_.*\.tar\.gz\.part`, res.Missing[0].Reason)
	assert.Equal(t, 1, g.reconnects, "one refused reconnect is enough to give up")
	for _, m := range res.Missing[1:] {
		assert.Contains(t, m.Reason, "skipped: guest unreachable: sshd did not answer", m.What)
	}
	require.NoError(t, artifacts.VerifyManifest(dir))
}

// TestCollectionTimeout: the policy's timeout ends a collection that
// hangs; the manifest is still written.
func TestCollectionTimeout(t *testing.T) {
	simNoLeaks(t)
	mac := bootSim(t, image153(), 1, "slow")
	col := demoCollector(artifacts.OnFailure)
	col.Policy.Timeout = time.Nanosecond
	dir := t.TempDir()
	res := col.After(context.Background(), mac.client, dir, true, time.Time{})
	require.NotEmpty(t, res.Missing)
	assert.Equal(t, "sysdiagnose", res.Missing[0].What)
	assert.Contains(t, res.Missing[0].Reason, "deadline exceeded")
	assert.FileExists(t, filepath.Join(dir, artifacts.ManifestFile))
}

func TestGuestNowAndLogStart(t *testing.T) {
	simNoLeaks(t)
	mac := bootSim(t, image153(), 1, "clock")
	before := time.Now().Add(-time.Second)
	now, err := artifacts.GuestNow(context.Background(), mac.client)
	require.NoError(t, err)
	assert.Equal(t, time.UTC, now.Location())
	assert.False(t, now.Before(before.Truncate(time.Second)), "the sim's clock starts at the host's and only jumps forward")
	assert.Equal(t, "2025-07-27 19:42:55+0000", artifacts.LogStart(time.Date(2025, 7, 27, 15, 42, 55, 0, time.FixedZone("EDT", -4*3600))))
}
