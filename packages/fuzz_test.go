package packages

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	examplepkg "github.com/sxlab/sxlab/examples/pkg"
)

// Fuzz targets for the paths that read hostile bytes. Each must return
// an error or a result, never panic, and stay within small limits.
// Run one: go test ./packages -run '^$' -fuzz FuzzXar -fuzztime 30s

//
// Go's fuzz coordinator prints exec counts only as workers report, which
// for these targets can lag far behind; with SXLAB_FUZZ_COUNTS=DIR each
// worker writes its own count to DIR/PID every 4096 execs.

var execs int

func countExec() {
	execs++
	if dir := os.Getenv("SXLAB_FUZZ_COUNTS"); dir != "" && execs%4096 == 0 {
		_ = os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), []byte(strconv.Itoa(execs)+"\n"), 0o644)
	}
}

var fuzzLimits = Limits{TOC: 1 << 20, Plist: 1 << 20, Stream: 8 << 20, Kept: 8 << 20, Entries: 10000}

func seedPkgs(f *testing.F) [][]byte {
	var out [][]byte
	for _, b := range examplepkg.Builds {
		raw, err := os.ReadFile(filepath.Join("..", "examples", "pkg", examplepkg.FileName(b.N)))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

func FuzzXar(f *testing.F) {
	for _, b := range seedPkgs(f) {
		f.Add(b)
	}
	f.Add([]byte("xar!\x00\x1c\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		countExec()
		_, _ = ReadPkg(bytes.NewReader(b), int64(len(b)), fuzzLimits)
	})
}

func FuzzCPIO(f *testing.F) {
	f.Add(examplepkg.CPIO([]examplepkg.File{{Path: "A.app/Contents/Info.plist", Data: []byte("<plist/>")}}))
	f.Add([]byte("0707010000000100008180000000000000000000000001000000000000000400000000000000000000000000000000020000000000a\x00\x00\x00abcd"))
	f.Fuzz(func(t *testing.T, b []byte) {
		countExec()
		c := newCPIOReader(bytes.NewReader(b), fuzzLimits, "Payload")
		for i := 0; i < 1000; i++ {
			if _, err := c.Next(); err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, c); err != nil {
				return
			}
		}
	})
}

func FuzzPlist(f *testing.F) {
	f.Add([]byte(appInfoXML))
	f.Add([]byte("bplist00\xd1\x01\x02Q1Q2\x08\x0b\x0d\x00\x00\x00\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		countExec()
		_, _, _ = parseInfoPlist(b, fuzzLimits)
	})
}

func FuzzMachO(f *testing.F) {
	m, err := examplepkg.MachO(examplepkg.ARM64, [16]byte{1}, 13<<16, "x", examplepkg.Signing{Identifier: "a", TeamID: "ABCDE12345", Entitlements: []byte("<plist><dict/></plist>")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(m)
	f.Add(examplepkg.Fat([]examplepkg.Arch{examplepkg.ARM64}, [][]byte{m}))
	f.Fuzz(func(t *testing.T, b []byte) {
		countExec()
		_, _ = parseExecutable(b, fuzzLimits)
	})
}

// FuzzXarTOC fuzzes the table of contents itself: the checksums that
// stop most of FuzzXar's mutations early are left out, so the member
// offsets, encodings and the payload behind them are reached.
func FuzzXarTOC(f *testing.F) {
	demo := seedPkgs(f)[0]
	size := binary.BigEndian.Uint64(demo[8:])
	zr, err := zlib.NewReader(bytes.NewReader(demo[28 : 28+size]))
	if err != nil {
		f.Fatal(err)
	}
	toc, _ := io.ReadAll(zr)
	heap := demo[28+size:]
	f.Add(bytes.Replace(toc, []byte(`<checksum style="sha1">`), []byte(`<checksum style="none">`), 1))
	f.Fuzz(func(t *testing.T, toc []byte) {
		countExec()
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(toc)
		zw.Close()
		b := make([]byte, 28, 28+z.Len()+len(heap))
		copy(b, demo[:28])
		binary.BigEndian.PutUint64(b[8:], uint64(z.Len()))
		binary.BigEndian.PutUint64(b[16:], uint64(len(toc)))
		b = append(append(b, z.Bytes()...), heap...)
		_, _ = ReadPkg(bytes.NewReader(b), int64(len(b)), fuzzLimits)
	})
}
