package packages

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ulikunitz/xz"

	examplepkg "github.com/sxlab/sxlab/examples/pkg"
)

func demoPkg(t testing.TB, n int) []byte {
	b, err := os.ReadFile(filepath.Join("..", "examples", "pkg", examplepkg.FileName(n)))
	require.NoError(t, err)
	return b
}

func writeTemp(t *testing.T, name string, b []byte) string {
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

func TestATruncatedPackageIsAnErrorNamingTheFile(t *testing.T) {
	full := demoPkg(t, 1)
	for cut := 0; cut < len(full); cut += 97 {
		p := writeTemp(t, "cut.pkg", full[:cut])
		_, err := Open(p, Limits{})
		require.Error(t, err, "cut at %d of %d", cut, len(full))
		assert.Contains(t, err.Error(), p)
	}
}

func TestAWrongMagicIsNamed(t *testing.T) {
	b := append([]byte("PK\x03\x04"), demoPkg(t, 1)[4:]...)
	p := writeTemp(t, "bad.pkg", b)
	_, err := Open(p, Limits{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)
	assert.Contains(t, err.Error(), `not a xar archive`)
	assert.Contains(t, err.Error(), `"PK\x03\x04"`)
}

func TestAFlippedByteFailsAChecksum(t *testing.T) {
	b := demoPkg(t, 2)
	b[len(b)-10] ^= 0xff // inside the Payload, the last member
	_, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{})
	require.Error(t, err)
}

// bigPayloadPkg is a component package whose payload holds one file of
// size zeros, gzip'd (a few KB on disk per MB inflated).
func bigPayloadPkg(size int) []byte {
	cp := examplepkg.CPIO([]examplepkg.File{{Path: "Big.app/Contents/MacOS/big", Data: make([]byte, size)}})
	return examplepkg.XAR([]examplepkg.Member{
		{Path: "PackageInfo", Data: []byte(`<pkg-info identifier="x" version="1" install-location="/Applications"/>`)},
		{Path: "Payload", Data: examplepkg.Gzip(cp)},
	})
}

func TestAPayloadPastTheLimitIsRefusedByName(t *testing.T) {
	b := bigPayloadPkg(8 << 20)
	_, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{Stream: 1 << 20})
	var le *LimitError
	require.ErrorAs(t, err, &le)
	assert.Contains(t, err.Error(), "Payload")
	assert.Contains(t, err.Error(), "decompression bomb")
	// Within the stream limit but past what may be kept in memory.
	_, err = ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{Kept: 1 << 20})
	require.ErrorAs(t, err, &le)
	assert.Contains(t, err.Error(), "/Applications/Big.app/Contents/MacOS/big")
}

func TestAnInflatedTOCPastTheLimitIsRefused(t *testing.T) {
	b := demoPkg(t, 1)
	binary.BigEndian.PutUint64(b[16:], 1<<40) // uncompressed TOC size
	_, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{})
	var le *LimitError
	require.ErrorAs(t, err, &le)
	assert.Contains(t, err.Error(), "table of contents")
}

func TestAZipBombIsRefusedByName(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("Bomb.app/Contents/Info.plist")
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 6<<20))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.Less(t, buf.Len(), 100<<10)
	p := writeTemp(t, "bomb.zip", buf.Bytes())
	_, err = Open(p, Limits{})
	var le *LimitError
	require.ErrorAs(t, err, &le)
	assert.Contains(t, err.Error(), p)
	assert.Contains(t, err.Error(), "Info.plist")
}

// pbzx writes data as pbzx with xz chunks of chunk bytes (the last raw
// when raw is set), the layout Apple's large payloads use.
func pbzx(t testing.TB, data []byte, chunk int, rawLast bool) []byte {
	var b bytes.Buffer
	b.WriteString("pbzx")
	binary.Write(&b, binary.BigEndian, uint64(chunk))
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		part := data[off:end]
		flags := uint64(chunk)
		if end < len(data) {
			flags |= pbzxMore
		}
		enc := part
		if !(rawLast && end == len(data)) {
			enc = xzCompress(t, part)
		}
		binary.Write(&b, binary.BigEndian, flags)
		binary.Write(&b, binary.BigEndian, uint64(len(enc)))
		b.Write(enc)
	}
	return b.Bytes()
}

// xzCompress compresses with the xz tool (XZ Utils) when it is there,
// so the chunks come from an encoder we did not pick; else with the
// library the reader decodes with.
func xzCompress(t testing.TB, b []byte) []byte {
	if p, err := exec.LookPath("xz"); err == nil {
		c := exec.Command(p, "-c", "-6")
		c.Stdin = bytes.NewReader(b)
		out, err := c.Output()
		require.NoError(t, err)
		return out
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("xz is missing in CI (apt-get install xz-utils)")
	}
	var z bytes.Buffer
	xw, err := xz.NewWriter(&z)
	require.NoError(t, err)
	xw.Write(b)
	require.NoError(t, xw.Close())
	return z.Bytes()
}

func TestReadsAPbzxPayload(t *testing.T) {
	ref := demoPkg(t, 4)
	x, err := openXar(bytes.NewReader(ref), int64(len(ref)), DefaultLimits())
	require.NoError(t, err)
	r, err := x.open("example-vpn.pkg/Payload")
	require.NoError(t, err)
	dec, err := decodePayload(r, "Payload", DefaultLimits())
	require.NoError(t, err)
	cpio, err := io.ReadAll(dec)
	require.NoError(t, err)
	for _, rawLast := range []bool{false, true} {
		pi, err := x.readSmall("example-vpn.pkg/PackageInfo")
		require.NoError(t, err)
		b := examplepkg.XAR([]examplepkg.Member{{Path: "PackageInfo", Data: pi}, {Path: "Payload", Data: pbzx(t, cpio, 4096, rawLast)}})
		p, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{})
		require.NoError(t, err, "raw last chunk: %v", rawLast)
		require.Len(t, p.Apps, 1)
		assert.Equal(t, "6B16DB12-DDBB-5FB8-A502-468D3ABD9F18", p.Apps[0].Extensions[0].Executable.Slice("arm64").UUID)
	}
}

func TestAPbzxBombIsRefused(t *testing.T) {
	cp := examplepkg.CPIO([]examplepkg.File{{Path: "x", Data: make([]byte, 2<<20)}})
	b := examplepkg.XAR([]examplepkg.Member{
		{Path: "PackageInfo", Data: []byte(`<pkg-info identifier="x" version="1"/>`)},
		{Path: "Payload", Data: pbzx(t, cp, 512<<10, false)},
	})
	_, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{Stream: 1 << 20})
	var le *LimitError
	require.ErrorAs(t, err, &le)
}

func TestReadsANewcPayloadFromGNUCpio(t *testing.T) {
	root, work := t.TempDir(), t.TempDir()
	stageApp(t, root, "2.0", "200")
	componentDir(t, work, root, "2.0")
	sh(t, root, fmt.Sprintf("find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip > %q", filepath.Join(work, "Payload")))
	out := filepath.Join(t.TempDir(), "newc.pkg")
	bsdtarXar(t, work, out, "PackageInfo", "Payload")
	p, err := Open(out, Limits{})
	require.NoError(t, err)
	checkExampleApp(t, p, "2.0", "200")
}

func TestASimulatedManifestSaysWhatItIs(t *testing.T) {
	_, err := Open("../vm/sim/macos/testdata/simpkg/example-vpn-1.simpkg.json", Limits{})
	require.ErrorIs(t, err, ErrSimulated)
	assert.Contains(t, err.Error(), "example-vpn-1.simpkg.json")
}

func TestADiskImageWithoutAToolSaysWhatIsNeeded(t *testing.T) {
	if _, err := os.Stat("/usr/bin/hdiutil"); err == nil {
		t.Skip("macOS: hdiutil is always there")
	}
	t.Setenv("PATH", t.TempDir())
	p := writeTemp(t, "x.dmg", []byte("not really"))
	_, err := Open(p, Limits{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)
	assert.Contains(t, err.Error(), "7z")
	assert.Contains(t, err.Error(), "hdiutil")
}

func TestAPackageWithoutAnAppSaysSo(t *testing.T) {
	b := examplepkg.XAR([]examplepkg.Member{
		{Path: "PackageInfo", Data: []byte(`<pkg-info identifier="x" version="1"/>`)},
		{Path: "Payload", Data: examplepkg.Gzip(examplepkg.CPIO([]examplepkg.File{{Path: "usr/local/bin/tool", Data: []byte("x")}}))},
	})
	p, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{})
	require.NoError(t, err)
	p.File = "tool.pkg"
	_, err = p.App("")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "tool.pkg") && strings.Contains(err.Error(), "no app"), err.Error())
}

func TestAnExecutableThatIsNotMachOIsNamed(t *testing.T) {
	cp := examplepkg.CPIO([]examplepkg.File{
		{Path: "A.app/Contents/Info.plist", Data: []byte(`<plist><dict><key>CFBundleIdentifier</key><string>a</string><key>CFBundleExecutable</key><string>A</string></dict></plist>`)},
		{Path: "A.app/Contents/MacOS/A", Data: []byte("#!/bin/sh\necho hi\n")},
	})
	b := examplepkg.XAR([]examplepkg.Member{{Path: "PackageInfo", Data: []byte(`<pkg-info identifier="x" version="1"/>`)}, {Path: "Payload", Data: examplepkg.Gzip(cp)}})
	_, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/A.app/Contents/MacOS/A")
	assert.Contains(t, err.Error(), "not a Mach-O")
	assert.False(t, errors.Is(err, ErrSimulated))
}

// withSignature rewrites a xar's TOC to carry the signature elements
// productsign writes (an RSA signature and a CMS x-signature), without
// their bytes: the reader reports presence only.
func withSignature(t *testing.T, b []byte) []byte {
	x, err := openXar(bytes.NewReader(b), int64(len(b)), DefaultLimits())
	require.NoError(t, err)
	require.Empty(t, x.signature)
	size := binary.BigEndian.Uint64(b[8:])
	zr, err := zlib.NewReader(bytes.NewReader(b[28 : 28+size]))
	require.NoError(t, err)
	toc, err := io.ReadAll(zr)
	require.NoError(t, err)
	sig := `<signature style="RSA"><offset>20</offset><size>256</size><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>AAAA</X509Certificate></X509Data></KeyInfo></signature><x-signature style="CMS"><offset>276</offset><size>1000</size></x-signature>`
	toc = bytes.Replace(toc, []byte("</checksum>"), []byte("</checksum>"+sig), 1)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(toc)
	zw.Close()
	// The TOC checksum covers the compressed TOC: recompute it.
	sum := sha1.Sum(z.Bytes())
	heap := bytes.Clone(b[28+size:])
	copy(heap, sum[:])
	out := bytes.Clone(b[:28])
	binary.BigEndian.PutUint64(out[8:], uint64(z.Len()))
	binary.BigEndian.PutUint64(out[16:], uint64(len(toc)))
	return append(append(out, z.Bytes()...), heap...)
}

func TestReportsThePackageSignatureStyles(t *testing.T) {
	b := withSignature(t, demoPkg(t, 1))
	p, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{})
	require.NoError(t, err)
	assert.Equal(t, "RSA+CMS", p.Signature)
	plain := demoPkg(t, 1)
	p, err = ReadPkg(bytes.NewReader(plain), int64(len(plain)), Limits{})
	require.NoError(t, err)
	assert.Empty(t, p.Signature)
}
