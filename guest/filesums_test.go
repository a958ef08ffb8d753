package guest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oldFileSums is a cache whose hashing happens an hour after now, so the
// files a test has just written count as settled.
func oldFileSums() *FileSums {
	s := NewFileSums()
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	return s
}

const rememberedNote = "remembered from an earlier upload"

// Every attempt of a run uploads sxlab-probe on its own connection; with
// the run's FileSums only the first hashes it, and the guest's shasum is
// still what every upload is checked with.
func TestUploadRemembersTheSumOfAnUnchangedFile(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.FileSums = oldFileSums()
	data := randomBytes(11, 300<<10)
	local := filepath.Join(t.TempDir(), "sxlab-probe")
	require.NoError(t, os.WriteFile(local, data, 0o755))

	require.NoError(t, dialTest(t, s, o).Upload(context.Background(), local, "probe", nil))
	next := dialTest(t, s, o) // the next attempt
	require.NoError(t, next.Upload(context.Background(), local, "probe", nil))
	got, err := os.ReadFile(filepath.Join(s.root, "probe"))
	require.NoError(t, err)
	assert.Equal(t, data, got)

	s.lieShasum.Store(true) // the bytes arrive damaged
	err = next.Upload(context.Background(), local, "probe", nil)
	require.ErrorIs(t, err, ErrChecksumMismatch, "a remembered sum is still checked against the guest's")
	assert.ErrorContains(t, err, "local "+sha256Hex(data))
	assert.ErrorContains(t, err, rememberedNote)

	// After a mismatch the sum is not trusted: the next upload hashes.
	err = next.Upload(context.Background(), local, "probe", nil)
	require.ErrorIs(t, err, ErrChecksumMismatch)
	assert.NotContains(t, err.Error(), rememberedNote)
	s.lieShasum.Store(false)
	require.NoError(t, next.Upload(context.Background(), local, "probe", nil))
}

// A file edited in place with its old size and modification time (as
// `touch -r` or a copy that keeps times leaves it), or replaced by
// another, is hashed again: a stale sum would fail the guest's check.
func TestUploadHashesAnEditedFileAgain(t *testing.T) {
	s, c := dialRemembering(t)
	dir := t.TempDir()
	local := filepath.Join(dir, "example-vpn-2.pkg")
	first := randomBytes(12, 200<<10)
	require.NoError(t, os.WriteFile(local, first, 0o644))
	require.NoError(t, c.Upload(context.Background(), local, "app.pkg", nil))
	before, err := os.Stat(local)
	require.NoError(t, err)

	second := randomBytes(13, len(first))
	for {
		// Rewrite until the status-change time moves on: within one
		// timestamp tick it cannot, whatever the cache does.
		require.NoError(t, os.WriteFile(local, second, 0o644))
		require.NoError(t, os.Chtimes(local, before.ModTime(), before.ModTime()))
		now, err := os.Stat(local)
		require.NoError(t, err)
		if ctime(t, now) != ctime(t, before) {
			require.Equal(t, before.ModTime(), now.ModTime())
			require.Equal(t, before.Size(), now.Size())
			break
		}
		time.Sleep(time.Millisecond)
	}
	s.lieShasum.Store(false)
	require.NoError(t, c.Upload(context.Background(), local, "app.pkg", nil), "the edited file is hashed again")
	got, err := os.ReadFile(filepath.Join(s.root, "app.pkg"))
	require.NoError(t, err)
	assert.Equal(t, second, got)

	// Replaced (a new file renamed over it, as guestbin's cache does).
	third := randomBytes(14, len(first))
	tmp := filepath.Join(dir, "new.tmp")
	require.NoError(t, os.WriteFile(tmp, third, 0o644))
	require.NoError(t, os.Chtimes(tmp, before.ModTime(), before.ModTime()))
	require.NoError(t, os.Rename(tmp, local))
	require.NoError(t, c.Upload(context.Background(), local, "app.pkg", nil), "the replaced file is hashed again")
	got, err = os.ReadFile(filepath.Join(s.root, "app.pkg"))
	require.NoError(t, err)
	assert.Equal(t, third, got)
}

func ctime(t *testing.T, info os.FileInfo) int64 {
	t.Helper()
	id, ok := identity(info)
	require.True(t, ok, "this platform says a file's identity")
	return id.ctime
}

// A file written in the same timestamp tick as its hashing could be
// written again without a visible change: its sum is not remembered.
func TestUploadDoesNotRememberAFileAsNewAsItsHashing(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.FileSums = NewFileSums()
	local := filepath.Join(t.TempDir(), "sxlab-probe")
	require.NoError(t, os.WriteFile(local, randomBytes(15, 100<<10), 0o755))
	info, err := os.Stat(local)
	require.NoError(t, err)
	o.FileSums.now = func() time.Time { return info.ModTime().Add(sumMargin / 2) }
	c := dialTest(t, s, o)
	require.NoError(t, c.Upload(context.Background(), local, "probe", nil))

	s.lieShasum.Store(true)
	err = c.Upload(context.Background(), local, "probe", nil)
	require.ErrorIs(t, err, ErrChecksumMismatch)
	assert.NotContains(t, err.Error(), rememberedNote, "hashed again, not remembered")
}

// A file written to while it is sent is not taken for the file that was
// hashed, nor remembered.
func TestUploadOfAFileChangedMidwayIsAnError(t *testing.T) {
	_, c := dialRemembering(t)
	local := filepath.Join(t.TempDir(), "sxlab-probe")
	require.NoError(t, os.WriteFile(local, randomBytes(16, 1<<20), 0o755))
	require.NoError(t, c.Upload(context.Background(), local, "probe", nil)) // remembered

	var once bool
	err := c.Upload(context.Background(), local, "probe", func(done, total int64) {
		if !once { // before the first byte is read: as if a build wrote it
			once = true
			f, err := os.OpenFile(local, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte("more"))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
	})
	require.Error(t, err)
	assert.ErrorContains(t, err, "the local file changed during the upload")
	require.NoError(t, c.Upload(context.Background(), local, "probe", nil), "the next upload hashes the new file")
}

// dialRemembering is a client of a fresh test server whose FileSums
// remembers files at once (oldFileSums), as every upload test needs.
func dialRemembering(t *testing.T) (*testServer, *Client) {
	t.Helper()
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.FileSums = oldFileSums()
	return s, dialTest(t, s, o)
}
