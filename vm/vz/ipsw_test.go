package vz

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ipswName = "UniversalMac_15.3.1_24D70_Restore.ipsw"

// ipswBytes is a restore image's stand-in: bytes that differ everywhere,
// so that a misplaced resume shows.
func ipswBytes() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 256<<10)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// rangeServer serves content, honouring Range, and records the Range
// header of each request.
type rangeServer struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string
}

func newRangeServer(t *testing.T, content []byte) *rangeServer {
	s := &rangeServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		http.ServeContent(w, r, ipswName, time.Time{}, bytes.NewReader(content))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *rangeServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// writePart leaves a partial download in the store.
func writePart(t *testing.T, store string, data []byte) string {
	t.Helper()
	part := filepath.Join(store, IPSWDir, ipswName+partSuffix)
	require.NoError(t, os.MkdirAll(filepath.Dir(part), 0o755))
	require.NoError(t, os.WriteFile(part, data, 0o644))
	return part
}

func TestDownloadIPSWResumesFromAPartialFile(t *testing.T) {
	content := ipswBytes()
	srv := newRangeServer(t, content)
	store := t.TempDir()
	part := writePart(t, store, content[:100000])

	var first, last [2]int64
	calls := 0
	got, err := DownloadIPSW(context.Background(), srv.URL+"/restore/"+ipswName, IPSWOptions{
		Store: store,
		Progress: func(done, total int64) {
			if calls == 0 {
				first = [2]int64{done, total}
			}
			calls++
			last = [2]int64{done, total}
		},
	})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(store, IPSWDir, ipswName), got)
	assert.Equal(t, []string{"bytes=100000-"}, srv.seen())
	data, err := os.ReadFile(got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, data), "the resumed file equals the served one")
	assert.NoFileExists(t, part)
	assert.Equal(t, [2]int64{100000, int64(len(content))}, first, "progress starts from what was on disk")
	assert.Equal(t, [2]int64{int64(len(content)), int64(len(content))}, last)
}

func TestDownloadIPSWStartsOverWhenTheServerIgnoresRange(t *testing.T) {
	content := ipswBytes()
	var sawRange atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawRange.Store(r.Header.Get("Range"))
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content)
	}))
	defer srv.Close()
	store := t.TempDir()
	writePart(t, store, []byte("stale bytes of some other download"))

	got, err := DownloadIPSW(context.Background(), srv.URL+"/"+ipswName, IPSWOptions{Store: store})
	require.NoError(t, err)
	assert.Equal(t, "bytes=34-", sawRange.Load())
	data, err := os.ReadFile(got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, data), "a 200 answer replaces the partial file")
}

func TestDownloadIPSWNamesTheURLAndStatusOfAFailure(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	store := t.TempDir()
	u := srv.URL + "/gone/" + ipswName
	_, err := DownloadIPSW(context.Background(), u, IPSWOptions{Store: store})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "download "+u+": HTTP 404 Not Found")
	assert.NoFileExists(t, filepath.Join(store, IPSWDir, ipswName))
}

func TestDownloadIPSWKeepsThePartWhenTheConnectionIsCut(t *testing.T) {
	content := ipswBytes()
	half := len(content) / 2
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content[:half])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer cut.Close()
	store := t.TempDir()
	part := filepath.Join(store, IPSWDir, ipswName+partSuffix)

	_, err := DownloadIPSW(context.Background(), cut.URL+"/"+ipswName, IPSWOptions{Store: store})
	require.Error(t, err)
	assert.Contains(t, err.Error(), part+" is resumed next time")
	fi, err := os.Stat(part)
	require.NoError(t, err)
	assert.EqualValues(t, half, fi.Size())
	assert.NoFileExists(t, filepath.Join(store, IPSWDir, ipswName))

	good := newRangeServer(t, content)
	got, err := DownloadIPSW(context.Background(), good.URL+"/"+ipswName, IPSWOptions{Store: store})
	require.NoError(t, err)
	assert.Equal(t, []string{"bytes=" + strconv.Itoa(half) + "-"}, good.seen())
	data, err := os.ReadFile(got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, data))
}

func TestDownloadIPSWStopsWhenCancelled(t *testing.T) {
	content := ipswBytes()
	half := len(content) / 2
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content[:half])
		w.(http.Flusher).Flush()
		select { // stall until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	store := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := DownloadIPSW(ctx, srv.URL+"/"+ipswName, IPSWOptions{Store: store, Progress: func(done, _ int64) {
		if done >= int64(half) {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	fi, err := os.Stat(filepath.Join(store, IPSWDir, ipswName+partSuffix))
	require.NoError(t, err, "the part stays for the next try")
	assert.EqualValues(t, half, fi.Size())
}

func TestDownloadIPSWReusesADownloadedFile(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	store := t.TempDir()
	dest := filepath.Join(store, IPSWDir, ipswName)
	require.NoError(t, os.MkdirAll(filepath.Dir(dest), 0o755))
	require.NoError(t, os.WriteFile(dest, []byte("downloaded last week"), 0o644))

	got, err := DownloadIPSW(context.Background(), srv.URL+"/x/"+ipswName, IPSWOptions{Store: store})
	require.NoError(t, err)
	assert.Equal(t, dest, got)
	assert.Zero(t, hits.Load(), "the server is not asked")
}

func TestResolveIPSW(t *testing.T) {
	store := t.TempDir()
	local := filepath.Join(t.TempDir(), "my.ipsw")
	require.NoError(t, os.WriteFile(local, []byte("image"), 0o644))

	got, err := ResolveIPSW(context.Background(), local, IPSWOptions{Store: store})
	require.NoError(t, err)
	assert.Equal(t, local, got)

	_, err = ResolveIPSW(context.Background(), "/nonexistent/x.ipsw", IPSWOptions{Store: store})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "restore image /nonexistent/x.ipsw: no such file")

	_, err = ResolveIPSW(context.Background(), filepath.Dir(local), IPSWOptions{Store: store})
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Dir(local)+": not a regular file")

	_, err = ResolveIPSW(context.Background(), "ftp://example.com/x.ipsw", IPSWOptions{Store: store})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "only http and https")

	_, err = ResolveIPSW(context.Background(), "https://example.com/", IPSWOptions{Store: store})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no file name")
	assert.Empty(t, storeNames(t, store))
}

func TestResolveIPSWLatestAsksTheInstaller(t *testing.T) {
	content := ipswBytes()
	srv := newRangeServer(t, content)
	store := t.TempDir()
	got, err := ResolveIPSW(context.Background(), LatestIPSW, IPSWOptions{Store: store, Installer: &stubInstaller{latest: srv.URL + "/fw/" + ipswName}})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(store, IPSWDir, ipswName), got)

	_, err = ResolveIPSW(context.Background(), LatestIPSW, IPSWOptions{Store: store, Installer: &stubInstaller{latestErr: errors.New("no network")}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "find the latest restore image: no network")
}
