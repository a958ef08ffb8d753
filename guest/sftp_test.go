package guest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// progressLog records Progress calls.
type progressLog struct {
	mu    sync.Mutex
	calls [][2]int64
}

func (p *progressLog) fn(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, [2]int64{done, total})
}

// check: starts at from, never goes back, ends at total.
func (p *progressLog) check(t *testing.T, from, total int64) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.GreaterOrEqual(t, len(p.calls), 2)
	assert.Equal(t, [2]int64{from, total}, p.calls[0])
	assert.Equal(t, [2]int64{total, total}, p.calls[len(p.calls)-1])
	for i := 1; i < len(p.calls); i++ {
		assert.GreaterOrEqual(t, p.calls[i][0], p.calls[i-1][0])
		assert.Equal(t, total, p.calls[i][1])
	}
}

func TestUploadVerifiesAndReportsProgress(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	data := randomBytes(1, 3<<20+17)
	local := filepath.Join(t.TempDir(), "app N.pkg")
	require.NoError(t, os.WriteFile(local, data, 0o644))

	var p progressLog
	require.NoError(t, c.Upload(context.Background(), local, "app N.pkg", p.fn))
	got, err := os.ReadFile(filepath.Join(s.root, "app N.pkg"))
	require.NoError(t, err)
	assert.Equal(t, sha256Hex(data), sha256Hex(got))
	p.check(t, 0, int64(len(data)))

	// Uploading again replaces the file (a shorter one leaves no tail).
	require.NoError(t, os.WriteFile(local, data[:100], 0o644))
	require.NoError(t, c.Upload(context.Background(), local, "app N.pkg", nil))
	got, err = os.ReadFile(filepath.Join(s.root, "app N.pkg"))
	require.NoError(t, err)
	assert.Equal(t, data[:100], got)
}

func TestDownloadVerifiesAndReportsProgress(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	data := randomBytes(2, 3<<20+5)
	require.NoError(t, os.WriteFile(filepath.Join(s.root, "sysdiagnose.tar.gz"), data, 0o644))
	local := filepath.Join(t.TempDir(), "sysdiagnose.tar.gz")

	var p progressLog
	require.NoError(t, c.Download(context.Background(), "sysdiagnose.tar.gz", local, p.fn))
	got, err := os.ReadFile(local)
	require.NoError(t, err)
	assert.Equal(t, sha256Hex(data), sha256Hex(got))
	assert.NoFileExists(t, local+".part")
	p.check(t, 0, int64(len(data)))
}

func TestUploadReportsAHashMismatch(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	data := randomBytes(3, 100<<10)
	local := filepath.Join(t.TempDir(), "x.pkg")
	require.NoError(t, os.WriteFile(local, data, 0o644))
	s.lieShasum.Store(true) // as if the file arrived damaged

	err := c.Upload(context.Background(), local, "x.pkg", nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrChecksumMismatch)
	want := sha256.Sum256(data)
	lie := want
	lie[0] ^= 0xff
	assert.Contains(t, err.Error(), "local "+hex.EncodeToString(want[:]))
	assert.Contains(t, err.Error(), "guest "+hex.EncodeToString(lie[:]))
	assert.Contains(t, err.Error(), "upload "+local+" to x.pkg")
}

func TestDownloadHashMismatchLeavesNothingBehind(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	require.NoError(t, os.WriteFile(filepath.Join(s.root, "log.ndjson"), randomBytes(4, 70<<10), 0o644))
	local := filepath.Join(t.TempDir(), "log.ndjson")
	s.lieShasum.Store(true)

	err := c.Download(context.Background(), "log.ndjson", local, nil)
	assert.ErrorIs(t, err, ErrChecksumMismatch)
	assert.NoFileExists(t, local)
	assert.NoFileExists(t, local+".part", "a part that fails verification is not resumed from")
}

func TestDownloadOfAMissingFileNamesIt(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	err := c.Download(context.Background(), "no/such.file", filepath.Join(t.TempDir(), "x"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "download no/such.file")
	assert.NotErrorIs(t, err, ErrConnectionLost)
}

func TestDownloadResumesFromThePartialFile(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	lines := logTap(t, &o)
	c := dialTest(t, s, o)
	const size = 8 << 20
	data := randomBytes(5, size)
	require.NoError(t, os.WriteFile(filepath.Join(s.root, "big.bin"), data, 0o644))
	local := filepath.Join(t.TempDir(), "big.bin")

	s.dropSFTPAfter.Store(3 << 20) // the guest goes away mid-transfer, once
	err := c.Download(context.Background(), "big.bin", local, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrConnectionLost)
	assert.NoFileExists(t, local)
	info, err := os.Stat(local + ".part")
	require.NoError(t, err)
	have := info.Size()
	require.Positive(t, have, "some of the file arrived before the drop")
	require.Less(t, have, int64(size))

	require.NoError(t, c.Reconnect(context.Background()))
	before := s.sftpSent.Load()
	var p progressLog
	require.NoError(t, c.Download(context.Background(), "big.bin", local, p.fn))
	sent := s.sftpSent.Load() - before
	waitLog(t, lines, "resuming at byte", 1)

	got, err := os.ReadFile(local)
	require.NoError(t, err)
	assert.Equal(t, sha256Hex(data), sha256Hex(got))
	assert.NoFileExists(t, local+".part")
	assert.Less(t, sent, int64(size)-have+(1<<20), "only the rest was sent the second time (plus protocol overhead)")
	p.check(t, have, size)
}

func TestTransfersStopWhenCtxIsCancelled(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	require.NoError(t, os.WriteFile(filepath.Join(s.root, "f"), randomBytes(6, 4<<20), 0o644))
	local := filepath.Join(t.TempDir(), "f")

	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	err := c.Download(ctx, "f", local, func(done, total int64) {
		if done > 0 {
			once.Do(cancel)
		}
	})
	assert.ErrorIs(t, err, context.Canceled)
	assert.NoFileExists(t, local)

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err = c.Upload(ctx, local+".part", "g", nil)
	assert.ErrorIs(t, err, context.Canceled)

	// The connection is fine afterwards, and the download can resume.
	require.NoError(t, c.Download(context.Background(), "f", local, nil))
}

// BenchmarkDownload measures a verified 64 MiB download from the test
// server over loopback (sftp transfer, local sha256, remote shasum).
func BenchmarkDownload(b *testing.B) {
	s := newTestServer(b)
	const size = 64 << 20
	require.NoError(b, os.WriteFile(filepath.Join(s.root, "bench.bin"), randomBytes(7, size), 0o644))
	c, err := Dial(context.Background(), s.endpoint(), Options{Keepalive: -1})
	require.NoError(b, err)
	defer c.Close()
	local := filepath.Join(b.TempDir(), "bench.bin")
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		require.NoError(b, c.Download(context.Background(), "bench.bin", local, nil))
		b.StopTimer()
		require.NoError(b, os.Remove(local))
		b.StartTimer()
	}
}

// BenchmarkUpload measures a verified upload of a file the size of the
// shipped sxlab-probe (2.5 MB), as every probing attempt makes one, to the
// test server over loopback: SFTP writes, the local sha256 and the
// guest's shasum (the test server's, in this process). "hashed" hashes
// the local file while sending it, as the first upload of a run does;
// "remembered" takes its sum from the run's FileSums, as the later ones
// do. Allocations include the test server's.
func BenchmarkUpload(b *testing.B) {
	s := newTestServer(b)
	const size = 2522914
	local := filepath.Join(b.TempDir(), "sxlab-probe")
	require.NoError(b, os.WriteFile(local, randomBytes(8, size), 0o755))
	for _, bc := range []struct {
		name string
		sums *FileSums
	}{{"hashed", nil}, {"remembered", oldFileSums()}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := Dial(context.Background(), s.endpoint(), Options{Keepalive: -1, FileSums: bc.sums})
			require.NoError(b, err)
			defer c.Close()
			b.SetBytes(size)
			for b.Loop() {
				require.NoError(b, c.Upload(context.Background(), local, "sxlab-probe", nil))
			}
		})
	}
}

// BenchmarkRunShort is one short command, as the lab sends dozens per
// attempt (the upload's shasum among them). Allocations include the test
// server's.
func BenchmarkRunShort(b *testing.B) {
	s := newTestServer(b)
	require.NoError(b, os.WriteFile(filepath.Join(s.root, "f"), []byte("probe\n"), 0o644))
	c, err := Dial(context.Background(), s.endpoint(), Options{Keepalive: -1})
	require.NoError(b, err)
	defer c.Close()
	for b.Loop() {
		res, err := c.Run(context.Background(), Cmd{Line: "shasum -a 256 f"})
		require.NoError(b, err)
		require.Equal(b, 0, res.Exit)
	}
}
