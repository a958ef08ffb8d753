package guest_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim"
)

// TestSimDownloadCutMidwayResumes: the simulated Mac drops the connection
// once 300 kB of a 1.2 MB download have crossed. Download fails with
// ErrConnectionLost and keeps what arrived in the .part file; after
// Reconnect, the next Download carries on from there and the file
// arrives whole and verified.
func TestSimDownloadCutMidwayResumes(t *testing.T) {
	simNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := sim.NewProvider(sim.Options{BaseDir: t.TempDir(), Seed: 1, Sabotage: func(string) sim.Sabotage {
		return sim.Sabotage{CutSFTPAfter: 300_000, CutSFTPTimes: 1}
	}})
	img := vm.Image{Name: "macos-15.3", User: "admin", Password: "admin",
		Sim: &vm.SimImage{ProductVersion: "15.3", Build: "24D60"}}
	m, err := p.NewMachine(ctx, img, "guest-cut-test")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Delete(context.Background())) })
	data := make([]byte, 1_200_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	require.NoError(t, m.FS().WriteFile("/tmp/sysdiagnose.tar.gz", data, 0o644))
	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	c, err := guest.Dial(ctx, ep, guest.Options{ConnectTimeout: 20 * time.Second,
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	local := filepath.Join(t.TempDir(), "sysdiagnose.tar.gz")
	err = c.Download(ctx, "/tmp/sysdiagnose.tar.gz", local, nil)
	require.ErrorIs(t, err, guest.ErrConnectionLost)
	assert.NoFileExists(t, local, "a broken download is never taken for the file")
	part, err := os.ReadFile(local + ".part")
	require.NoError(t, err, "what arrived is kept for the next try")
	require.Less(t, len(part), len(data))
	assert.True(t, bytes.Equal(data[:len(part)], part), "the .part file holds the head of the file")

	require.NoError(t, c.Reconnect(ctx))
	var mu sync.Mutex
	var first [2]int64
	calls := 0
	progress := func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if calls == 0 {
			first = [2]int64{done, total}
		}
		calls++
	}
	require.NoError(t, c.Download(ctx, "/tmp/sysdiagnose.tar.gz", local, progress))
	got, err := os.ReadFile(local)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got), "the file arrives whole")
	assert.Equal(t, [2]int64{int64(len(part)), int64(len(data))}, first, "the second download starts where the first broke off")
	assert.NoFileExists(t, local+".part")
}

// TestSimUploadCutMidwayIsConnectionLost: an upload the guest's network
// drops fails with ErrConnectionLost, and the transport is gone with it.
func TestSimUploadCutMidwayIsConnectionLost(t *testing.T) {
	simNoLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := sim.NewProvider(sim.Options{BaseDir: t.TempDir(), Seed: 1, Sabotage: func(string) sim.Sabotage {
		return sim.Sabotage{CutSFTPAfter: 100_000}
	}})
	img := vm.Image{Name: "macos-15.3", User: "admin", Password: "admin",
		Sim: &vm.SimImage{ProductVersion: "15.3", Build: "24D60"}}
	m, err := p.NewMachine(ctx, img, "guest-cut-upload-test")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Delete(context.Background())) })
	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	c, err := guest.Dial(ctx, ep, guest.Options{ConnectTimeout: 20 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	local := filepath.Join(t.TempDir(), "Example VPN.pkg")
	require.NoError(t, os.WriteFile(local, bytes.Repeat([]byte("pkg "), 100_000), 0o644))
	err = c.Upload(ctx, local, "/tmp/Example VPN.pkg", nil)
	require.ErrorIs(t, err, guest.ErrConnectionLost)
	_, err = c.Run(ctx, guest.Cmd{Line: "true"})
	assert.ErrorIs(t, err, guest.ErrConnectionLost, "the connection is gone until Reconnect")
}
