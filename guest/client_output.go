package guest

import (
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// tailBuffer keeps the last max bytes written to it. The end of a
// command's output is where the error usually is, so the head is what
// goes when the output is too big.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte // the tail, up to 2*max before compaction
	total int64
}

func newTailBuffer(max int) *tailBuffer {
	return &tailBuffer{max: max}
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	b.total += int64(n)
	if len(p) > b.max {
		p = p[len(p)-b.max:]
	}
	b.buf = append(b.buf, p...)
	// Compact only when twice over, so each byte is copied O(1) times.
	if len(b.buf) > 2*b.max {
		k := copy(b.buf, b.buf[len(b.buf)-b.max:])
		b.buf = b.buf[:k]
	}
	return n, nil
}

// ReadFrom is what io.Copy uses instead of its own 32 KiB buffer:
// x/crypto/ssh copies each command's stdout and stderr with io.Copy, so
// every command (the upload's shasum among them) allocated 64 KiB. Most
// outputs are a line: reads start at 512 bytes and double, up to 32 KiB,
// only while they come back full.
func (b *tailBuffer) ReadFrom(r io.Reader) (int64, error) {
	const first, most = 512, 32 << 10
	buf := make([]byte, first)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			total += int64(n)
			_, _ = b.Write(buf[:n])
			if n == len(buf) && len(buf) < most {
				buf = make([]byte, 2*len(buf))
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// String is the kept tail. When the head was cut, a UTF-8 sequence split
// by the cut is dropped, so the tail is valid text whenever the output
// was.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.buf
	if len(t) > b.max {
		t = t[len(t)-b.max:]
	}
	if int64(len(t)) < b.total {
		for i := 0; i < utf8.UTFMax-1 && len(t) > 0 && !utf8.RuneStart(t[0]); i++ {
			t = t[1:]
		}
	}
	return string(t)
}

// Cut reports whether more was written than kept.
func (b *tailBuffer) Cut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total > int64(b.max)
}
