package packages

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// cpio archives as macOS installer payloads carry them: the portable
// "odc" format (magic 070707, octal fields; what mkbom/pkgbuild write)
// and, cheaply, "newc" (070701/070702, hex fields, 4-byte alignment).
// Field layouts after the cpio(5) manual page of libarchive.

const cpioTrailer = "TRAILER!!!"

// cpioEntry is one member; Data must be read (or skipped) before Next.
type cpioEntry struct {
	Name string
	Mode uint32
	Size int64
}

// File type bits of the mode (sys/stat.h).
const (
	modeType    = 0o170000
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
)

type cpioReader struct {
	r       *bufio.Reader
	pad     int64 // alignment padding after the current entry's data
	left    int64 // unread bytes of the current entry's data
	newc    bool
	entries int
	limits  Limits
	what    string // names the stream in errors, e.g. "Payload"
	done    bool
}

func newCPIOReader(r io.Reader, lim Limits, what string) *cpioReader {
	return &cpioReader{r: bufio.NewReaderSize(r, 64<<10), limits: lim, what: what}
}

// Next returns the next entry, or io.EOF after the trailer. A stream
// that ends without a trailer is an error: the archive is truncated.
func (c *cpioReader) Next() (*cpioEntry, error) {
	if c.done {
		return nil, io.EOF
	}
	if _, err := c.r.Discard(int(c.left)); err != nil {
		return nil, c.truncated("entry data", err)
	}
	if c.left = 0; c.pad > 0 {
		if _, err := c.r.Discard(int(c.pad)); err != nil {
			return nil, c.truncated("padding", err)
		}
		c.pad = 0
	}
	magic, err := c.r.Peek(6)
	if err != nil {
		return nil, c.truncated("header (no TRAILER!!! entry)", err)
	}
	var e *cpioEntry
	switch string(magic) {
	case "070707":
		e, err = c.odc()
	case "070701", "070702":
		e, err = c.newcHeader()
	default:
		return nil, fmt.Errorf("%s: cpio entry %d: bad magic %q (odc is 070707, newc 070701)", c.what, c.entries+1, printable(magic))
	}
	if err != nil {
		return nil, err
	}
	if e.Name == cpioTrailer {
		c.done = true
		return nil, io.EOF
	}
	c.entries++
	if c.entries > c.limits.Entries {
		return nil, &LimitError{What: c.what + " cpio entry count", Limit: int64(c.limits.Entries)}
	}
	if e.Size > c.limits.Stream {
		return nil, &LimitError{What: fmt.Sprintf("%s: cpio entry %s (%d bytes)", c.what, e.Name, e.Size), Limit: c.limits.Stream}
	}
	c.left = e.Size
	if c.newc {
		c.pad = (4 - e.Size%4) % 4
	}
	return e, nil
}

// Read reads the current entry's data.
func (c *cpioReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		return n, c.truncated("entry data", io.ErrUnexpectedEOF)
	}
	return n, err
}

func (c *cpioReader) truncated(what string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s: cpio truncated after %d entries (%s): %w", c.what, c.entries, what, err)
}

func (c *cpioReader) field(b []byte, base int, name string) (int64, error) {
	v, err := strconv.ParseInt(string(b), base, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s: cpio entry %d: %s field %q is not a number", c.what, c.entries+1, name, printable(b))
	}
	return v, nil
}

func (c *cpioReader) name(size int64, pad int64) (string, error) {
	if size < 1 || size > 4096 {
		return "", fmt.Errorf("%s: cpio entry %d: name size %d is out of range", c.what, c.entries+1, size)
	}
	b := make([]byte, size+pad)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return "", c.truncated("name", err)
	}
	return string(b[:size-1]), nil // without the NUL
}

func (c *cpioReader) odc() (*cpioEntry, error) {
	var h [76]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return nil, c.truncated("odc header", err)
	}
	mode, err := c.field(h[18:24], 8, "mode")
	if err != nil {
		return nil, err
	}
	nsize, err := c.field(h[59:65], 8, "namesize")
	if err != nil {
		return nil, err
	}
	size, err := c.field(h[65:76], 8, "filesize")
	if err != nil {
		return nil, err
	}
	name, err := c.name(nsize, 0)
	if err != nil {
		return nil, err
	}
	c.newc = false
	return &cpioEntry{Name: name, Mode: uint32(mode), Size: size}, nil
}

func (c *cpioReader) newcHeader() (*cpioEntry, error) {
	var h [110]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return nil, c.truncated("newc header", err)
	}
	mode, err := c.field(h[14:22], 16, "mode")
	if err != nil {
		return nil, err
	}
	size, err := c.field(h[54:62], 16, "filesize")
	if err != nil {
		return nil, err
	}
	nsize, err := c.field(h[94:102], 16, "namesize")
	if err != nil {
		return nil, err
	}
	name, err := c.name(nsize, (4-(110+nsize)%4)%4)
	if err != nil {
		return nil, err
	}
	c.newc = true
	return &cpioEntry{Name: name, Mode: uint32(mode), Size: size}, nil
}
