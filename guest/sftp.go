package guest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pkg/sftp"
)

// Upload copies the local file to remote over SFTP (creating or
// truncating it), then checks the guest's `shasum -a 256` of it against
// the sha256 of what was read locally. p, when not nil, sees the bytes
// sent, at most every Options.ProgressInterval, and always at the start
// and the end.
func (c *Client) Upload(ctx context.Context, local, remote string, p Progress) error {
	err := c.upload(ctx, local, remote, p)
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", local, remote, err)
	}
	return nil
}

func (c *Client) upload(ctx context.Context, local, remote string, p Progress) error {
	lf, err := os.Open(local)
	if err != nil {
		return err
	}
	defer lf.Close()
	info, err := lf.Stat()
	if err != nil {
		return err
	}
	cn, sc, err := c.sftpSession()
	if err != nil {
		return err
	}
	rf, err := sc.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return c.transferErr(cn, sc, err)
	}
	h := sha256.New()
	m := c.meter(p, 0, info.Size())
	r := &ctxReader{ctx: ctx, r: io.TeeReader(lf, h), m: m}
	// Concurrent writes keep many requests in flight; the hash check
	// below catches what a failed concurrent write might leave.
	_, err = rf.ReadFromWithConcurrency(r, c.o.SFTPConcurrency)
	if cerr := rf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return c.transferErr(cn, sc, err)
	}
	if m.done != info.Size() {
		return fmt.Errorf("read %d bytes of %d: the local file changed during the upload", m.done, info.Size())
	}
	m.finish()
	return c.verify(ctx, remote, hex.EncodeToString(h.Sum(nil)))
}

// Download copies remote to local over SFTP, through local+".part": when
// a .part file is already there (a transfer broken off earlier), it
// continues from its size, so only the rest crosses the network. The
// finished file is checked against the guest's `shasum -a 256` and then
// renamed into place; on a mismatch the .part file is removed, as its
// head cannot be trusted. A broken transfer leaves the .part file for the
// next try (after Reconnect when the connection was lost).
func (c *Client) Download(ctx context.Context, remote, local string, p Progress) error {
	err := c.download(ctx, remote, local, p)
	if err != nil {
		return fmt.Errorf("download %s to %s: %w", remote, local, err)
	}
	return nil
}

func (c *Client) download(ctx context.Context, remote, local string, p Progress) error {
	cn, sc, err := c.sftpSession()
	if err != nil {
		return err
	}
	rf, err := sc.Open(remote)
	if err != nil {
		return c.transferErr(cn, sc, err)
	}
	defer rf.Close()
	info, err := rf.Stat()
	if err != nil {
		return c.transferErr(cn, sc, err)
	}
	total := info.Size()

	part := local + ".part"
	lf, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	h := sha256.New()
	offset, err := resumeOffset(lf, h, total)
	if err != nil {
		return fmt.Errorf("resume from %s: %w", part, err)
	}
	if offset > 0 {
		c.o.logf("download %s: resuming at byte %d of %d from %s", remote, offset, total, part)
	}
	if _, err := rf.Seek(offset, io.SeekStart); err != nil {
		return c.transferErr(cn, sc, err)
	}
	m := c.meter(p, offset, total)
	w := &ctxWriter{ctx: ctx, w: io.MultiWriter(lf, h), m: m}
	_, err = rf.WriteTo(w)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return c.transferErr(cn, sc, err)
	}
	if m.done != total {
		return fmt.Errorf("got %d bytes of %d: the remote file changed during the download", m.done, total)
	}
	if err := lf.Close(); err != nil {
		return err
	}
	m.finish()
	if err := c.verify(ctx, remote, hex.EncodeToString(h.Sum(nil))); err != nil {
		if errors.Is(err, ErrChecksumMismatch) {
			_ = os.Remove(part)
		}
		return err
	}
	return os.Rename(part, local)
}

// resumeOffset hashes the part file's content, which is where the
// download continues; a part file longer than the remote file is stale
// and starts over.
func resumeOffset(lf *os.File, h hash.Hash, total int64) (int64, error) {
	info, err := lf.Stat()
	if err != nil {
		return 0, err
	}
	size := info.Size()
	if size > total {
		if err := lf.Truncate(0); err != nil {
			return 0, err
		}
		size = 0
	}
	if size > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(lf, 0, size)); err != nil {
			return 0, err
		}
	}
	_, err = lf.Seek(size, io.SeekStart)
	return size, err
}

// verify compares the guest's sha256 of remote with want.
func (c *Client) verify(ctx context.Context, remote, want string) error {
	res, err := c.Run(ctx, Cmd{Line: "shasum -a 256 " + Quote(remote)})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if res.Exit != 0 {
		return fmt.Errorf("verify: shasum exited %d: %s", res.Exit, strings.TrimSpace(res.Stderr))
	}
	// Output: "HEX  PATH"; the path may be escaped, the hex never is.
	got, _, _ := strings.Cut(strings.TrimLeft(res.Stdout, "\\"), " ")
	if _, err := hex.DecodeString(got); err != nil || len(got) != sha256.Size*2 {
		return fmt.Errorf("verify: cannot read shasum's output %q", res.Stdout)
	}
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: local %s, guest %s", ErrChecksumMismatch, want, strings.ToLower(got))
	}
	return nil
}

func (c *Client) sftpSession() (*conn, *sftp.Client, error) {
	cn, err := c.current()
	if err != nil {
		return nil, nil, err
	}
	sc, err := cn.sftpClient(&c.o)
	if err != nil {
		return nil, nil, c.transferErr(cn, nil, err)
	}
	return cn, sc, nil
}

// transferErr reports an SFTP failure, as ErrConnectionLost when the
// transport (or the SFTP session) went away under it.
func (c *Client) transferErr(cn *conn, sc *sftp.Client, err error) error {
	select {
	case <-cn.done:
		return cn.lost(err)
	default:
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, sftp.ErrSSHFxConnectionLost) {
		if sc != nil {
			cn.dropSFTP(sc) // the next transfer opens a new session if the transport lives
		}
		return cn.lost(err)
	}
	return err
}

// meter throttles Progress callbacks. Only one goroutine feeds it (the
// reader of an upload, the writer of a download).
type meter struct {
	p     Progress
	every time.Duration
	last  time.Time
	done  int64
	total int64
}

func (c *Client) meter(p Progress, done, total int64) *meter {
	m := &meter{p: p, every: c.o.ProgressInterval, done: done, total: total, last: time.Now()}
	if p != nil {
		p(done, total)
	}
	return m
}

func (m *meter) add(n int) {
	m.done += int64(n)
	if m.p == nil {
		return
	}
	if now := time.Now(); now.Sub(m.last) >= m.every {
		m.last = now
		m.p(m.done, m.total)
	}
}

func (m *meter) finish() {
	if m.p != nil {
		m.p(m.done, m.total)
	}
}

// ctxReader ends an upload when ctx ends (SFTP calls take no context)
// and counts progress.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	m   *meter
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	r.m.add(n)
	return n, err
}

// ctxWriter is ctxReader's twin for downloads.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
	m   *meter
}

func (w *ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := w.w.Write(p)
	w.m.add(n)
	return n, err
}
