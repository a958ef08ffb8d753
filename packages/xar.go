package packages

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// The xar format (flat packages are xar archives): a big-endian header,
// a zlib-compressed XML table of contents, then the heap the TOC points
// into. Layout after xar's include/xar.h and its public man page; the
// TOC checksum is the hash of the compressed TOC, stored in the heap at
// the offset the TOC names.
const (
	xarMagic      = 0x78617221 // "xar!"
	xarHeaderSize = 28
)

type xarHeader struct {
	Magic            uint32
	Size             uint16
	Version          uint16
	TOCCompressed    uint64
	TOCUncompressed  uint64
	ChecksumAlgoritm uint32
}

// xarTOC is the part of the TOC this reader uses.
type xarTOC struct {
	TOC struct {
		Checksum *struct {
			Style  string `xml:"style,attr"`
			Offset int64  `xml:"offset"`
			Size   int64  `xml:"size"`
		} `xml:"checksum"`
		Signature *struct {
			Style string `xml:"style,attr"`
		} `xml:"signature"`
		XSignature *struct {
			Style string `xml:"style,attr"`
		} `xml:"x-signature"`
		Files []xarTOCFile `xml:"file"`
	} `xml:"toc"`
}

type xarTOCFile struct {
	Name  string       `xml:"name"`
	Type  string       `xml:"type"`
	Data  *xarData     `xml:"data"`
	Files []xarTOCFile `xml:"file"`
}

type xarData struct {
	Length   int64 `xml:"length"`
	Offset   int64 `xml:"offset"`
	Size     int64 `xml:"size"`
	Encoding struct {
		Style string `xml:"style,attr"`
	} `xml:"encoding"`
	Archived struct {
		Style string `xml:"style,attr"`
		Value string `xml:",chardata"`
	} `xml:"archived-checksum"`
}

// xarArchive is an opened xar: its members by path, and where its heap
// starts.
type xarArchive struct {
	r         io.ReaderAt
	size      int64
	heap      int64
	files     map[string]*xarData // regular files by slash path
	order     []string            // member paths in TOC order
	signature string              // "RSA", "CMS", "RSA+CMS" or ""
	limits    Limits
}

// openXar reads the header and TOC of a xar of the given size.
func openXar(r io.ReaderAt, size int64, lim Limits) (*xarArchive, error) {
	var hb [xarHeaderSize]byte
	if _, err := r.ReadAt(hb[:], 0); err != nil {
		return nil, fmt.Errorf("xar header: file too short (%d bytes) for a xar header: %w", size, err)
	}
	var h xarHeader
	_ = binary.Read(bytes.NewReader(hb[:]), binary.BigEndian, &h)
	if h.Magic != xarMagic {
		return nil, fmt.Errorf("not a xar archive (a flat .pkg starts with \"xar!\", this starts with \"%s\")", printable(hb[:4]))
	}
	if h.Size < xarHeaderSize {
		return nil, fmt.Errorf("xar header: size field %d is smaller than the %d-byte header", h.Size, xarHeaderSize)
	}
	if h.TOCCompressed > uint64(lim.TOC) || h.TOCUncompressed > uint64(lim.TOC) {
		return nil, &LimitError{What: fmt.Sprintf("xar table of contents (%d compressed, %d inflated)", h.TOCCompressed, h.TOCUncompressed), Limit: lim.TOC}
	}
	heap := int64(h.Size) + int64(h.TOCCompressed)
	if heap > size {
		return nil, fmt.Errorf("xar truncated: the table of contents ends at byte %d, the file has %d", heap, size)
	}
	ctoc := make([]byte, h.TOCCompressed)
	if _, err := r.ReadAt(ctoc, int64(h.Size)); err != nil {
		return nil, fmt.Errorf("xar table of contents: %w", err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(ctoc))
	if err != nil {
		return nil, fmt.Errorf("xar table of contents is not zlib data: %w", err)
	}
	tocXML, err := readAllBounded(zr, int64(h.TOCUncompressed), "xar table of contents (inflated past its stated size)")
	if err != nil {
		return nil, fmt.Errorf("xar table of contents: %w", err)
	}
	var toc xarTOC
	if err := xml.Unmarshal(tocXML, &toc); err != nil {
		return nil, fmt.Errorf("xar table of contents is not valid XML: %w", err)
	}
	x := &xarArchive{r: r, size: size, heap: heap, files: map[string]*xarData{}, limits: lim}
	if c := toc.TOC.Checksum; c != nil && c.Style != "" && c.Style != "none" {
		if err := x.checkTOC(ctoc, c.Style, c.Offset, c.Size); err != nil {
			return nil, err
		}
	}
	var sig []string
	if toc.TOC.Signature != nil {
		sig = append(sig, toc.TOC.Signature.Style)
	}
	if toc.TOC.XSignature != nil {
		sig = append(sig, toc.TOC.XSignature.Style)
	}
	x.signature = strings.Join(sig, "+")
	n := 0
	if err := x.walk(toc.TOC.Files, "", 0, &n); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *xarArchive) walk(files []xarTOCFile, dir string, depth int, n *int) error {
	if depth > 64 {
		return errors.New("xar table of contents nests deeper than 64 directories")
	}
	for i := range files {
		f := &files[i]
		*n++
		if *n > x.limits.Entries {
			return &LimitError{What: "xar member count", Limit: int64(x.limits.Entries)}
		}
		if f.Name == "" || f.Name == "." || f.Name == ".." || strings.Contains(f.Name, "/") {
			return fmt.Errorf("xar member %q in %q: not a plain file name", f.Name, dir)
		}
		p := f.Name
		if dir != "" {
			p = dir + "/" + f.Name
		}
		switch f.Type {
		case "directory":
			if err := x.walk(f.Files, p, depth+1, n); err != nil {
				return err
			}
		case "file", "":
			if f.Data == nil {
				f.Data = &xarData{} // an empty file has no <data>
			}
			if f.Data.Offset < 0 || f.Data.Length < 0 || f.Data.Size < 0 {
				return fmt.Errorf("xar member %s: negative offset or length", p)
			}
			if x.heap+f.Data.Offset+f.Data.Length > x.size || x.heap+f.Data.Offset+f.Data.Length < x.heap {
				return fmt.Errorf("xar truncated: member %s ends at byte %d, the file has %d", p, x.heap+f.Data.Offset+f.Data.Length, x.size)
			}
			x.files[p] = f.Data
			x.order = append(x.order, p)
		}
	}
	return nil
}

func (x *xarArchive) checkTOC(ctoc []byte, style string, off, size int64) error {
	h, err := newHash(style)
	if err != nil {
		return fmt.Errorf("xar table of contents checksum: %w", err)
	}
	if size != int64(h.Size()) || off < 0 || x.heap+off+size > x.size {
		return fmt.Errorf("xar truncated or corrupt: table-of-contents checksum at heap offset %d size %d does not fit", off, size)
	}
	want := make([]byte, size)
	if _, err := x.r.ReadAt(want, x.heap+off); err != nil {
		return fmt.Errorf("xar table of contents checksum: %w", err)
	}
	h.Write(ctoc)
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("xar table of contents checksum (%s) does not match: the archive is corrupt", style)
	}
	return nil
}

func newHash(style string) (hash.Hash, error) {
	switch strings.ToLower(style) {
	case "sha1":
		return sha1.New(), nil
	case "md5":
		return md5.New(), nil
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unknown checksum style %q", style)
}

// open returns member p decoded, bounded by the stream limit. The
// archived checksum is verified when the stream is read to its end.
func (x *xarArchive) open(p string) (io.Reader, error) {
	d, ok := x.files[p]
	if !ok {
		return nil, fmt.Errorf("xar has no member %s", p)
	}
	raw := io.Reader(io.NewSectionReader(x.r, x.heap+d.Offset, d.Length))
	if d.Archived.Style != "" && d.Archived.Value != "" {
		h, err := newHash(d.Archived.Style)
		if err != nil {
			return nil, fmt.Errorf("xar member %s: %w", p, err)
		}
		want, err := hex.DecodeString(strings.TrimSpace(d.Archived.Value))
		if err != nil {
			return nil, fmt.Errorf("xar member %s: archived checksum is not hex", p)
		}
		raw = &checkedReader{r: io.TeeReader(raw, h), h: h, want: want, what: "xar member " + p}
	}
	var dec io.Reader
	switch style := d.Encoding.Style; style {
	case "", "application/octet-stream":
		dec = raw
	case "application/x-gzip": // xar's name for zlib
		zr, err := zlib.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("xar member %s: not zlib data: %w", p, err)
		}
		dec = zr
	case "application/x-bzip2":
		dec = bzip2.NewReader(raw)
	case "application/x-xz":
		xr, err := xz.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("xar member %s: not xz data: %w", p, err)
		}
		dec = xr
	case "application/x-lzma": // the LZMA "alone" format, not xz
		lr, err := lzma.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("xar member %s: not lzma data: %w", p, err)
		}
		dec = lr
	default:
		return nil, fmt.Errorf("xar member %s: unsupported encoding %q", p, style)
	}
	return bounded(dec, x.limits.Stream, "xar member "+p+" (decompressed)"), nil
}

// readSmall reads a small member (PackageInfo, Distribution) whole.
func (x *xarArchive) readSmall(p string) ([]byte, error) {
	r, err := x.open(p)
	if err != nil {
		return nil, err
	}
	b, err := readAllBounded(r, x.limits.Plist, "xar member "+p)
	if err != nil {
		return nil, fmt.Errorf("xar member %s: %w", p, err)
	}
	return b, nil
}

// checkedReader fails at EOF when the bytes read do not hash to want.
type checkedReader struct {
	r    io.Reader
	h    hash.Hash
	want []byte
	what string
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF && !bytes.Equal(c.h.Sum(nil), c.want) {
		return n, fmt.Errorf("%s: archived checksum does not match: the archive is corrupt", c.what)
	}
	return n, err
}

func printable(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, "\\x%02x", c)
		}
	}
	return s.String()
}
