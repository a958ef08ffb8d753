package packages

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/ulikunitz/xz"
)

// pbzx is Apple's chunked xz container for large payloads: "pbzx", a
// big-endian uint64 chunk size, then chunks of (uint64 flags, uint64
// length, data). A chunk's data is an xz stream, or raw bytes when it
// did not compress (then it does not start with xz's magic). The flag
// 0x01000000 on a chunk says another follows. Apple documents no format;
// this follows the public descriptions of the format (e.g. the pbzx tool
// and libarchive's notes) and is checked by round trip with xz here.

const pbzxMore = 0x01000000

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

type pbzxReader struct {
	r     *bufio.Reader
	cur   io.Reader
	more  bool
	chunk int
	max   int64
	what  string
}

func newPBZXReader(r io.Reader, what string, lim Limits) (*pbzxReader, error) {
	br := bufio.NewReader(r)
	var h [12]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, fmt.Errorf("%s: pbzx header truncated: %w", what, err)
	}
	if string(h[:4]) != "pbzx" {
		return nil, fmt.Errorf("%s: not pbzx", what)
	}
	return &pbzxReader{r: br, more: true, max: lim.Stream, what: what}, nil
}

func (p *pbzxReader) Read(b []byte) (int, error) {
	for {
		if p.cur != nil {
			n, err := p.cur.Read(b)
			if err == io.EOF {
				p.cur = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		if !p.more {
			return 0, io.EOF
		}
		var h [16]byte
		if _, err := io.ReadFull(p.r, h[:]); err != nil {
			if err == io.EOF && p.chunk > 0 {
				// Some writers end without clearing the flag on the last
				// chunk; the stream's end is then the end.
				return 0, io.EOF
			}
			return 0, fmt.Errorf("%s: pbzx chunk %d header truncated: %w", p.what, p.chunk+1, unexpected(err))
		}
		flags := binary.BigEndian.Uint64(h[:8])
		length := binary.BigEndian.Uint64(h[8:])
		p.chunk++
		p.more = flags&pbzxMore != 0
		if length > uint64(p.max) {
			return 0, &LimitError{What: fmt.Sprintf("%s: pbzx chunk %d (%d bytes)", p.what, p.chunk, length), Limit: p.max}
		}
		data := io.LimitReader(p.r, int64(length))
		head, _ := p.r.Peek(len(xzMagic))
		if length >= uint64(len(xzMagic)) && bytes.Equal(head, xzMagic) {
			xr, err := xz.NewReader(data)
			if err != nil {
				return 0, fmt.Errorf("%s: pbzx chunk %d: %w", p.what, p.chunk, err)
			}
			p.cur = &drainOnEOF{r: xr, rest: data, what: fmt.Sprintf("%s: pbzx chunk %d", p.what, p.chunk)}
		} else {
			p.cur = &exact{r: data, left: int64(length), what: fmt.Sprintf("%s: pbzx chunk %d", p.what, p.chunk)}
		}
	}
}

// drainOnEOF skips whatever is left of a chunk after its xz stream ends
// (padding), so the next chunk header is read from the right place.
type drainOnEOF struct {
	r    io.Reader
	rest io.Reader
	what string
}

func (d *drainOnEOF) Read(b []byte) (int, error) {
	n, err := d.r.Read(b)
	if err == io.EOF {
		if _, derr := io.Copy(io.Discard, d.rest); derr != nil {
			return n, derr
		}
	} else if err != nil {
		err = fmt.Errorf("%s: %w", d.what, unexpected(err))
	}
	return n, err
}

// exact fails when fewer than left bytes arrive.
type exact struct {
	r    io.Reader
	left int64
	what string
}

func (e *exact) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("%s: truncated: %w", e.what, io.ErrUnexpectedEOF)
	}
	return n, err
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodePayload recognises a Payload's container by its first bytes:
// gzip, pbzx, xz, or a bare cpio.
func decodePayload(r io.Reader, what string, lim Limits) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(6)
	if err != nil && len(head) == 0 {
		return nil, fmt.Errorf("%s is empty", what)
	}
	var dec io.Reader
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %w", what, err)
		}
		dec = zr
	case len(head) >= 4 && string(head[:4]) == "pbzx":
		pr, err := newPBZXReader(br, what, lim)
		if err != nil {
			return nil, err
		}
		dec = pr
	case bytes.Equal(head, xzMagic):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: xz: %w", what, err)
		}
		dec = xr
	case len(head) >= 6 && string(head[:5]) == "07070":
		dec = br
	default:
		return nil, fmt.Errorf("%s: unknown payload format (starts with %q; expected gzip, pbzx, xz or cpio)", what, printable(head))
	}
	return bounded(dec, lim.Stream, what+" (decompressed)"), nil
}
