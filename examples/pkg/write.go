package examplepkg

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"html"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/blacktop/go-macho/pkg/codesign"
	cstypes "github.com/blacktop/go-macho/pkg/codesign/types"
)

// The writers here make the demo's packages byte for byte the same on
// every run: fixed times, fixed owners, members in sorted order. They
// are the generator's, not the reader's: the reader is tested against
// packages made by bsdtar and GNU cpio too (packages/pkg_tools_test.go).

// epoch is every file's modification time.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one file of a payload, by its path relative to the install
// location; directories are implied.
type File struct {
	Path string
	Mode uint32 // permission bits; 0 means 0644
	Data []byte
}

// CPIO writes files as an odc cpio archive (the format pkgbuild's
// payloads use), with "." and every parent directory before its files.
func CPIO(files []File) []byte {
	var b bytes.Buffer
	dirs := map[string]bool{".": true}
	var all []string
	for _, f := range files {
		for d := path.Dir(f.Path); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		all = append(all, d)
	}
	sort.Strings(all)
	byPath := map[string]File{}
	for _, f := range files {
		byPath[f.Path] = f
		all = append(all, f.Path)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ino := 1
	for _, p := range all {
		name := p
		if p != "." {
			name = "./" + p
		}
		if dirs[p] {
			odc(&b, ino, 0o040755, name, nil)
		} else {
			f := byPath[p]
			mode := f.Mode
			if mode == 0 {
				mode = 0o644
			}
			odc(&b, ino, 0o100000|mode, name, f.Data)
		}
		ino++
	}
	odc(&b, 0, 0, "TRAILER!!!", nil)
	return b.Bytes()
}

func odc(b *bytes.Buffer, ino int, mode uint32, name string, data []byte) {
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	// dev ino mode uid gid nlink rdev mtime namesize filesize; root:admin
	// as pkgbuild records it.
	fmt.Fprintf(b, "070707%06o%06o%06o%06o%06o%06o%06o%011o%06o%011o", 0, ino, mode, 0, 80, nlink, 0, epoch.Unix(), len(name)+1, len(data))
	b.WriteString(name)
	b.WriteByte(0)
	b.Write(data)
}

// Gzip compresses deterministically (no name, fixed time).
func Gzip(data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.ModTime = epoch
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// Member is one file of a xar archive, by slash path.
type Member struct {
	Path string
	Data []byte
	// Zlib stores the member compressed (xar's "application/x-gzip");
	// a Payload is stored as is, being compressed already.
	Zlib bool
}

// XAR writes a xar archive (a flat package) with a sha1 TOC checksum and
// per-member sha1 checksums, as pkgbuild and productbuild do.
func XAR(members []Member) []byte {
	type node struct {
		name     string
		member   *Member
		children map[string]*node
	}
	root := &node{children: map[string]*node{}}
	for i := range members {
		m := &members[i]
		n := root
		segs := strings.Split(m.Path, "/")
		for j, s := range segs {
			c, ok := n.children[s]
			if !ok {
				c = &node{name: s, children: map[string]*node{}}
				n.children[s] = c
			}
			if j == len(segs)-1 {
				c.member = m
			}
			n = c
		}
	}
	var heap bytes.Buffer
	heap.Write(make([]byte, sha1.Size)) // the TOC checksum, filled in below
	var toc strings.Builder
	id := 0
	var walk func(n *node, indent string)
	walk = func(n *node, indent string) {
		names := make([]string, 0, len(n.children))
		for k := range n.children {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			c := n.children[k]
			id++
			fmt.Fprintf(&toc, "%s<file id=\"%d\">\n%s <name>%s</name>\n", indent, id, indent, html.EscapeString(c.name))
			fmt.Fprintf(&toc, "%s <ctime>%s</ctime>\n%s <mtime>%s</mtime>\n%s <mode>0%o</mode>\n%s <uid>0</uid>\n%s <gid>0</gid>\n",
				indent, epoch.Format(time.RFC3339), indent, epoch.Format(time.RFC3339), indent, map[bool]uint32{true: 0o644, false: 0o755}[c.member != nil], indent, indent)
			if c.member == nil {
				fmt.Fprintf(&toc, "%s <type>directory</type>\n", indent)
				walk(c, indent+" ")
			} else {
				data, enc := c.member.Data, "application/octet-stream"
				if c.member.Zlib {
					var z bytes.Buffer
					w, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
					w.Write(data)
					w.Close()
					data, enc = z.Bytes(), "application/x-gzip"
				}
				ext, arc := sha1.Sum(c.member.Data), sha1.Sum(data)
				fmt.Fprintf(&toc, "%s <type>file</type>\n%s <data>\n%s  <length>%d</length>\n%s  <offset>%d</offset>\n%s  <size>%d</size>\n%s  <encoding style=\"%s\"/>\n%s  <extracted-checksum style=\"sha1\">%s</extracted-checksum>\n%s  <archived-checksum style=\"sha1\">%s</archived-checksum>\n%s </data>\n",
					indent, indent, indent, len(data), indent, heap.Len(), indent, len(c.member.Data), indent, enc, indent, hex.EncodeToString(ext[:]), indent, hex.EncodeToString(arc[:]), indent)
				heap.Write(data)
			}
			fmt.Fprintf(&toc, "%s</file>\n", indent)
		}
	}
	walk(root, "  ")
	xml := "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xar>\n <toc>\n  <checksum style=\"sha1\">\n   <offset>0</offset>\n   <size>20</size>\n  </checksum>\n  <creation-time>" +
		epoch.Format("2006-01-02T15:04:05") + "</creation-time>\n" + toc.String() + " </toc>\n</xar>\n"
	var ctoc bytes.Buffer
	w, _ := zlib.NewWriterLevel(&ctoc, zlib.BestCompression)
	w.Write([]byte(xml))
	w.Close()
	sum := sha1.Sum(ctoc.Bytes())
	h := heap.Bytes()
	copy(h, sum[:])
	var out bytes.Buffer
	binary.Write(&out, binary.BigEndian, struct {
		Magic        uint32
		Size         uint16
		Version      uint16
		TOCComp      uint64
		TOCUncomp    uint64
		ChecksumAlgo uint32
	}{0x78617221, 28, 1, uint64(ctoc.Len()), uint64(len(xml)), 1})
	out.Write(ctoc.Bytes())
	out.Write(h)
	return out.Bytes()
}

// Arch is a Mach-O slice's CPU.
type Arch struct {
	Name       string
	CPU, Sub   uint32
	Code       []byte // the __text section: exit(0)
	Align      uint32 // log2 of the fat alignment
	AlignBytes int
}

var (
	// ARM64: mov x0, #0; mov x16, #1; svc #0x80 (exit(0) by syscall).
	ARM64 = Arch{Name: "arm64", CPU: 0x0100000c, Sub: 0, Code: le32(0xd2800000, 0xd2800030, 0xd4001001), Align: 14, AlignBytes: 1 << 14}
	// X86_64: xor edi, edi; mov eax, 0x2000001; syscall.
	X86_64 = Arch{Name: "x86_64", CPU: 0x01000007, Sub: 3, Code: []byte{0x31, 0xff, 0xb8, 0x01, 0x00, 0x00, 0x02, 0x0f, 0x05}, Align: 12, AlignBytes: 1 << 12}
)

func le32(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// Signing is what an executable's ad-hoc code signature carries.
type Signing struct {
	Identifier   string
	TeamID       string
	Entitlements []byte // an XML plist
	InfoPlist    []byte // bound into the signature's Info.plist slot
	Hardened     bool
}

// MachO writes a minimal MH_EXECUTE for one architecture with real load
// commands — __PAGEZERO, __TEXT, __LINKEDIT, LC_LOAD_DYLINKER, LC_UUID,
// LC_BUILD_VERSION (macOS), LC_MAIN, LC_CODE_SIGNATURE — and an ad-hoc
// code signature made by go-macho's signer. Layout after
// mach-o/loader.h; it is not meant to run, only to be read as a real
// build would be.
func MachO(a Arch, uuid [16]byte, minOS uint32, marker string, s Signing) ([]byte, error) {
	const (
		textSize  = 0x4000
		vmBase    = 0x100000000
		ncmds     = 8
		pagezero  = 72
		textCmd   = 72 + 80
		linkedit  = 72
		dylinker  = 32 // 12 + "/usr/lib/dyld\0" padded to 8
		uuidCmd   = 24
		buildCmd  = 24
		mainCmd   = 24
		sigCmd    = 16
		cmdsBytes = pagezero + textCmd + linkedit + dylinker + uuidCmd + buildCmd + mainCmd + sigCmd
	)
	textOff := uint64(32 + cmdsBytes)
	text := append(append([]byte{}, a.Code...), []byte(marker)...)
	build := func(sigSize uint32) []byte {
		var b bytes.Buffer
		le := binary.LittleEndian
		w := func(v ...any) {
			for _, x := range v {
				binary.Write(&b, le, x)
			}
		}
		name16 := func(s string) []byte { n := make([]byte, 16); copy(n, s); return n }
		// mach_header_64: MH_NOUNDEFS|MH_DYLDLINK|MH_TWOLEVEL|MH_PIE
		w(uint32(0xfeedfacf), a.CPU, a.Sub, uint32(2), uint32(ncmds), uint32(cmdsBytes), uint32(0x00200085), uint32(0))
		w(uint32(0x19), uint32(pagezero), name16("__PAGEZERO"), uint64(0), uint64(vmBase), uint64(0), uint64(0), uint32(0), uint32(0), uint32(0), uint32(0))
		w(uint32(0x19), uint32(textCmd), name16("__TEXT"), uint64(vmBase), uint64(textSize), uint64(0), uint64(textSize), uint32(5), uint32(5), uint32(1), uint32(0))
		w(name16("__text"), name16("__TEXT"), uint64(vmBase+textOff), uint64(len(text)), uint32(textOff), uint32(2), uint32(0), uint32(0), uint32(0x80000400), uint32(0), uint32(0), uint32(0))
		w(uint32(0x19), uint32(linkedit), name16("__LINKEDIT"), uint64(vmBase+textSize), uint64(0x4000), uint64(textSize), uint64(sigSize), uint32(1), uint32(1), uint32(0), uint32(0))
		w(uint32(0xe), uint32(dylinker), uint32(12))
		b.Write(append([]byte("/usr/lib/dyld"), make([]byte, dylinker-12-13)...))
		w(uint32(0x1b), uint32(uuidCmd), uuid)
		w(uint32(0x32), uint32(buildCmd), uint32(1), minOS, uint32(0x000e0000), uint32(0)) // platform macOS, sdk 14.0, no tools
		w(uint32(0x80000028), uint32(mainCmd), textOff, uint64(0))
		w(uint32(0x1d), uint32(sigCmd), uint32(textSize), sigSize)
		b.Write(text)
		b.Write(make([]byte, textSize-b.Len()))
		return b.Bytes()
	}
	sign := func(body []byte) ([]byte, error) {
		flags := cstypes.ADHOC
		if s.Hardened {
			flags |= cstypes.RUNTIME
		}
		cfg := &codesign.Config{ID: s.Identifier, TeamID: s.TeamID, IsMain: true, Flags: flags, CodeSize: uint64(len(body)),
			TextOffset: 0, TextSize: textSize, Entitlements: s.Entitlements, InfoPlist: s.InfoPlist}
		cfg.InitSlotHashes()
		return codesign.Sign(bytes.NewReader(body), cfg)
	}
	// The signature's size does not depend on the bytes it hashes, so a
	// first pass measures it and the second signs the final header.
	first, err := sign(build(0))
	if err != nil {
		return nil, err
	}
	size := uint32((len(first) + 15) &^ 15)
	body := build(size)
	sig, err := sign(body)
	if err != nil {
		return nil, err
	}
	if len(sig) > int(size) {
		return nil, fmt.Errorf("code signature grew from %d to %d bytes", size, len(sig))
	}
	return append(append(body, sig...), make([]byte, int(size)-len(sig))...), nil
}

// Fat joins thin Mach-O files into a universal one (mach-o/fat.h: a
// big-endian header, then each slice at its architecture's alignment).
func Fat(arches []Arch, slices [][]byte) []byte {
	var b bytes.Buffer
	be := binary.BigEndian
	binary.Write(&b, be, []uint32{0xcafebabe, uint32(len(slices))})
	off := 0x4000
	offs := make([]int, len(slices))
	for i, s := range slices {
		off = (off + arches[i].AlignBytes - 1) &^ (arches[i].AlignBytes - 1)
		offs[i] = off
		binary.Write(&b, be, []uint32{arches[i].CPU, arches[i].Sub, uint32(off), uint32(len(s)), arches[i].Align})
		off += len(s)
	}
	for i, s := range slices {
		b.Write(make([]byte, offs[i]-b.Len()))
		b.Write(s)
	}
	return b.Bytes()
}
