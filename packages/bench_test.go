package packages

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	examplepkg "github.com/sxlab/sxlab/examples/pkg"
)

// peakHeap samples the heap while f runs and returns its highest value
// above the heap before f: what reading a package costs in memory.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	return max(peak, ms.HeapAlloc) - base
}

func BenchmarkReadDemoPackages(b *testing.B) {
	var files []string
	for _, bd := range examplepkg.Builds {
		files = append(files, filepath.Join("..", "examples", "pkg", examplepkg.FileName(bd.N)))
	}
	read := func() {
		for _, f := range files {
			if _, err := Open(f, Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Peak memory is sampled on one untimed pass: the sampler would
	// otherwise be timed too.
	peak := peakHeap(read)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		read()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// bigPkg writes a component package whose gzip'd odc payload holds the
// demo app plus a 200 MB resource of incompressible bytes, streaming, so
// the benchmark's own setup stays small.
func bigPkg(b *testing.B, size int64) string {
	dir := b.TempDir()
	payload := filepath.Join(dir, "Payload")
	f, err := os.Create(payload)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha1.New()
	bw := bufio.NewWriter(io.MultiWriter(f, sum))
	gz, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	// The demo app's files, then the big one, then the trailer.
	demo := demoPkg(b, 1)
	x, err := openXar(bytes.NewReader(demo), int64(len(demo)), DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	r, _ := x.open("example-vpn.pkg/Payload")
	zr, _ := gzip.NewReader(r)
	cp, _ := io.ReadAll(zr)
	gz.Write(cp[:bytes.Index(cp, []byte("TRAILER!!!"))-76])
	name := "./Example VPN.app/Contents/Resources/big.bin"
	fmt.Fprintf(gz, "070707%06o%06o%06o%06o%06o%06o%06o%011o%06o%011o%s\x00", 0, 999, 0o100644, 0, 80, 1, 0, 0, len(name)+1, size, name)
	rnd := rand.New(rand.NewSource(1))
	block := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(block)) {
		rnd.Read(block)
		gz.Write(block[:min(int64(len(block)), left)])
	}
	fmt.Fprintf(gz, "070707%06o%06o%06o%06o%06o%06o%06o%011o%06o%011o%s\x00", 0, 0, 0, 0, 0, 1, 0, 0, 11, 0, "TRAILER!!!")
	gz.Close()
	bw.Flush()
	st, _ := f.Stat()
	f.Close()
	pi := []byte(`<pkg-info identifier="com.example.vpn.pkg" version="1.0" install-location="/Applications"/>`)
	toc := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><xar><toc><checksum style="sha1"><offset>0</offset><size>20</size></checksum>`+
		`<file id="1"><name>PackageInfo</name><type>file</type><data><length>%d</length><offset>20</offset><size>%d</size><encoding style="application/octet-stream"/></data></file>`+
		`<file id="2"><name>Payload</name><type>file</type><data><length>%d</length><offset>%d</offset><size>%d</size><encoding style="application/octet-stream"/><archived-checksum style="sha1">%s</archived-checksum></data></file></toc></xar>`,
		len(pi), len(pi), st.Size(), 20+len(pi), st.Size(), hex.EncodeToString(sum.Sum(nil)))
	var ctoc bytes.Buffer
	zw := zlib.NewWriter(&ctoc)
	zw.Write([]byte(toc))
	zw.Close()
	out := filepath.Join(dir, "big.pkg")
	o, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []any{uint32(xarMagic), uint16(28), uint16(1), uint64(ctoc.Len()), uint64(len(toc)), uint32(1)} {
		binary.Write(o, binary.BigEndian, v)
	}
	o.Write(ctoc.Bytes())
	tocSum := sha1.Sum(ctoc.Bytes())
	o.Write(tocSum[:])
	o.Write(pi)
	pf, _ := os.Open(payload)
	io.Copy(o, pf)
	pf.Close()
	o.Close()
	os.Remove(payload)
	return out
}

func BenchmarkRead200MBPayload(b *testing.B) {
	const size = 200 << 20
	file := bigPkg(b, size)
	b.SetBytes(size)
	read := func() {
		p, err := Open(file, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Apps) != 1 {
			b.Fatalf("apps: %d", len(p.Apps))
		}
	}
	peak := peakHeap(read)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		read()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}
