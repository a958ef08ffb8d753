package sim

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

// BenchmarkUploadProbe is the upload every probing attempt makes: a
// file the size of the shipped sxlab-probe (2.5 MB) sent by the lab's
// client (guest.Client.Upload: SFTP writes of the size the server's
// limits allow, the local sha256 hashed while sending, as a run's first
// upload does, and the sim's shasum) to a simulated Mac over loopback. Allocations
// include the sim's SSH and SFTP server, in this process.
func BenchmarkUploadProbe(b *testing.B) {
	const size = 2522914
	local := filepath.Join(b.TempDir(), "sxlab-probe")
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{8}).Read(data)
	require.NoError(b, os.WriteFile(local, data, 0o755))

	ctx := context.Background()
	p := NewProvider(Options{BaseDir: b.TempDir(), Seed: 1})
	img := vm.Image{Name: "bench", Sim: &vm.SimImage{ProductVersion: "15.3", Build: "24D60"}}
	m, err := p.NewMachine(ctx, img, "bench-mac")
	require.NoError(b, err)
	defer func() { require.NoError(b, m.Delete(ctx)) }()
	require.NoError(b, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(b, err)
	c, err := guest.Dial(ctx, ep, guest.Options{Keepalive: -1})
	require.NoError(b, err)
	defer c.Close()

	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, c.Upload(ctx, local, "/Users/admin/sxlab-probe", nil))
	}
}
