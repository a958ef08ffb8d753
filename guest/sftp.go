package guest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Upload copies the local file to remote over SFTP (creating or
// truncating it), then checks the guest's `shasum -a 256` of it against
// the sha256 of the local file: hashed while it is read, or remembered
// from an earlier upload of the same, unchanged file (Options.FileSums).
// p, when not nil, sees the bytes sent, at most every
// Options.ProgressInterval, and always at the start and the end.
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
	id, known := identity(info)
	sum, remembered := c.o.FileSums.lookup(local, id, known)
	cn, sc, err := c.sftpSession()
	if err != nil {
		return err
	}
	rf, err := sc.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return c.transferErr(cn, sc, err)
	}
	hashed := c.o.FileSums.start()
	var src io.Reader = lf
	var h hash.Hash
	if !remembered {
		h = sha256.New()
		src = io.TeeReader(lf, h)
	}
	m := c.meter(p, 0, info.Size())
	r := &ctxReader{ctx: ctx, r: src, m: m}
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
	after, err := lf.Stat()
	if err != nil {
		return err
	}
	if idAfter, _ := identity(after); m.done != info.Size() || idAfter != id {
		c.o.FileSums.forget(local)
		return fmt.Errorf("read %d bytes of %d: the local file changed during the upload", m.done, info.Size())
	}
	m.finish()
	if !remembered {
		sum = hex.EncodeToString(h.Sum(nil))
	}
	err = c.verify(ctx, remote, sum)
	switch {
	case remembered && errors.Is(err, ErrChecksumMismatch):
		// Most likely the bytes were damaged on the way; but the next
		// upload hashes the file again rather than trust the sum.
		c.o.FileSums.forget(local)
		return fmt.Errorf("%w (the local sum was remembered from an earlier upload of the unchanged file; the next upload hashes it again)", err)
	case err == nil && !remembered:
		c.o.FileSums.remember(local, id, known, sum, hashed)
	}
	return err
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
	part := local + ".part"
	sum, err := c.fetch(ctx, remote, part, p)
	if err != nil {
		return err
	}
	if err := c.verify(ctx, remote, sum); err != nil {
		if errors.Is(err, ErrChecksumMismatch) {
			_ = os.Remove(part)
		}
		return err
	}
	return os.Rename(part, local)
}

// fetch copies remote into part, continuing from what part already
// holds, and returns the sha256 (hex) of the whole of part. It is
// Download without the guest-side check, so that the transfer alone can
// be measured (BenchmarkDownloadOpenSSH).
func (c *Client) fetch(ctx context.Context, remote, part string, p Progress) (string, error) {
	cn, sc, err := c.sftpSession()
	if err != nil {
		return "", err
	}
	rf, err := sc.Open(remote)
	if err != nil {
		return "", c.transferErr(cn, sc, err)
	}
	defer rf.Close()
	info, err := rf.Stat()
	if err != nil {
		return "", c.transferErr(cn, sc, err)
	}
	total := info.Size()

	lf, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer lf.Close()
	h := sha256.New()
	offset, err := resumeOffset(lf, h, total)
	if err != nil {
		return "", fmt.Errorf("resume from %s: %w", part, err)
	}
	if offset > 0 {
		c.o.logf("download %s: resuming at byte %d of %d from %s", remote, offset, total, part)
	}
	if _, err := rf.Seek(offset, io.SeekStart); err != nil {
		return "", c.transferErr(cn, sc, err)
	}
	m := c.meter(p, offset, total)
	w := &ctxWriter{ctx: ctx, w: io.MultiWriter(lf, h), m: m}
	_, err = rf.WriteTo(w)
	if err != nil {
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		return "", c.transferErr(cn, sc, err)
	}
	if m.done != total {
		return "", fmt.Errorf("got %d bytes of %d: the remote file changed during the download", m.done, total)
	}
	if err := lf.Close(); err != nil {
		return "", err
	}
	m.finish()
	return hex.EncodeToString(h.Sum(nil)), nil
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

// Sizes of one SFTP read or write request.
const (
	// sftpChunkDefault is pkg/sftp's default, which every server takes.
	sftpChunkDefault = 32 << 10
	// sftpChunkMax keeps a data reply within the 256 KiB packet pkg/sftp
	// accepts (it is also OpenSSH's max-read-length).
	sftpChunkMax = 255 << 10
	// sftpHeaderRoom is what a write request needs besides its data
	// (type, id, handle of up to 256 bytes, offset, lengths), generously.
	sftpHeaderRoom = 1 << 10
)

// newSFTPClient opens the SFTP session transfers use. Its requests are as
// large as the server says it takes (limits@openssh.com): OpenSSH's
// sftp-server, the one macOS ships, says 255 KiB, and eight times fewer
// requests make a download about a third faster on loopback. A server
// that does not say gets 32 KiB, because pkg/sftp's concurrent reads
// assume every reply is as long as its request (a shorter one is taken
// for the end of the file, or leaves a gap).
func newSFTPClient(cl *ssh.Client, o *Options) (*sftp.Client, error) {
	chunk, err := sftpChunkSize(cl)
	if err != nil {
		o.logf("sftp: %v; using %d KiB requests", err, chunk>>10)
	} else {
		o.logf("sftp: requests of up to %d bytes", chunk)
	}
	return sftp.NewClient(cl,
		sftp.UseConcurrentReads(true),
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(o.SFTPConcurrency),
		sftp.MaxPacketUnchecked(chunk),
	)
}

// sftpChunkSize asks the SFTP server for its limits on a session of its
// own (pkg/sftp cannot send that request) and returns the request size
// to use; sftpChunkDefault when the server does not say, with an error
// when asking failed.
func sftpChunkSize(cl *ssh.Client) (int, error) {
	s, err := cl.NewSession()
	if err != nil {
		return sftpChunkDefault, fmt.Errorf("ask for limits: %w", err)
	}
	defer s.Close()
	w, err := s.StdinPipe()
	if err != nil {
		return sftpChunkDefault, fmt.Errorf("ask for limits: %w", err)
	}
	r, err := s.StdoutPipe()
	if err != nil {
		return sftpChunkDefault, fmt.Errorf("ask for limits: %w", err)
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		return sftpChunkDefault, fmt.Errorf("ask for limits: %w", err)
	}
	chunk, err := querySFTPLimits(r, w)
	if err != nil {
		return sftpChunkDefault, fmt.Errorf("ask for limits: %w", err)
	}
	return chunk, nil
}

// SFTP packet types (draft-ietf-secsh-filexfer-02) used by
// querySFTPLimits.
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpStatus        = 101
	fxpExtended      = 200
	fxpExtendedReply = 201
)

// querySFTPLimits speaks just enough SFTP on a fresh subsystem channel to
// read the server's limits@openssh.com reply (OpenSSH's PROTOCOL, 4.8),
// and turns them into a request size.
func querySFTPLimits(r io.Reader, w io.Writer) (int, error) {
	if err := writeSFTPPacket(w, fxpInit, binary.BigEndian.AppendUint32(nil, 3)); err != nil {
		return 0, err
	}
	typ, body, err := readSFTPPacket(r)
	if err != nil {
		return 0, err
	}
	if typ != fxpVersion || len(body) < 4 {
		return 0, fmt.Errorf("server answered init with packet type %d", typ)
	}
	const ext = "limits@openssh.com"
	offered := false
	for rest := body[4:]; len(rest) > 0; {
		var name string
		var ok bool
		if name, rest, ok = sftpString(rest); ok {
			_, rest, ok = sftpString(rest)
		}
		if !ok {
			return 0, errors.New("malformed extension list in the version packet")
		}
		offered = offered || name == ext
	}
	if !offered {
		return sftpChunkDefault, nil
	}
	const id = 1
	req := binary.BigEndian.AppendUint32(nil, id)
	req = binary.BigEndian.AppendUint32(req, uint32(len(ext)))
	req = append(req, ext...)
	if err := writeSFTPPacket(w, fxpExtended, req); err != nil {
		return 0, err
	}
	typ, body, err = readSFTPPacket(r)
	if err != nil {
		return 0, err
	}
	switch {
	case typ == fxpStatus:
		return 0, fmt.Errorf("server refused %s", ext)
	case typ != fxpExtendedReply || len(body) < 4+4*8 || binary.BigEndian.Uint32(body) != id:
		return 0, fmt.Errorf("server answered %s with packet type %d", ext, typ)
	}
	maxPacket := binary.BigEndian.Uint64(body[4:])
	maxRead := binary.BigEndian.Uint64(body[12:])
	maxWrite := binary.BigEndian.Uint64(body[20:])
	return chunkForLimits(maxPacket, maxRead, maxWrite)
}

// chunkForLimits is the largest request within the server's limits (0
// means none) and sftpChunkMax.
func chunkForLimits(maxPacket, maxRead, maxWrite uint64) (int, error) {
	if (maxPacket != 0 && maxPacket <= 2*sftpHeaderRoom) ||
		(maxRead != 0 && maxRead < sftpHeaderRoom) || (maxWrite != 0 && maxWrite < sftpHeaderRoom) {
		return 0, fmt.Errorf("implausible limits: packet %d, read %d, write %d", maxPacket, maxRead, maxWrite)
	}
	chunk := uint64(sftpChunkMax)
	for _, limit := range []uint64{maxRead, maxWrite} {
		if limit != 0 {
			chunk = min(chunk, limit)
		}
	}
	if maxPacket != 0 {
		chunk = min(chunk, maxPacket-sftpHeaderRoom)
	}
	return int(chunk), nil
}

func writeSFTPPacket(w io.Writer, typ byte, body []byte) error {
	p := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	p = append(p, typ)
	_, err := w.Write(append(p, body...))
	return err
}

func readSFTPPacket(r io.Reader) (byte, []byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, fmt.Errorf("read packet: %w", err)
	}
	n := binary.BigEndian.Uint32(head[:])
	if n == 0 || n > 256<<10 {
		return 0, nil, fmt.Errorf("packet length %d out of range", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("read packet: %w", err)
	}
	return p[0], p[1:], nil
}

// sftpString splits an SFTP string (uint32 length, bytes) off b.
func sftpString(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return "", nil, false
	}
	return string(b[4 : 4+n]), b[4+n:], true
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
