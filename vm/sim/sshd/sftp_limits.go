package sshd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// What OpenSSH's sftp-server says in its limits@openssh.com reply
// (OpenSSH's PROTOCOL, 4.8; sftp-server.c, process_extended_limits), the
// same from OpenSSH 8.7 to 10.x and in Apple's builds of it
// (apple-oss-distributions/OpenSSH, OpenSSH-267 to OpenSSH-354).
const (
	// sftpMaxPacket is max-packet-length, SFTP_MAX_MSG_LENGTH: a packet
	// whose length field says more ends the session (sftp-server's
	// process(): sftp_server_cleanup_exit(11)).
	sftpMaxPacket = 256 << 10
	// sftpMaxRead is max-read-length (SFTP_MAX_READ_LENGTH): longer reads
	// are answered with this much.
	sftpMaxRead = sftpMaxPacket - 1024
	// sftpMaxWrite is max-write-length.
	sftpMaxWrite = sftpMaxPacket - 1024
	// sftpMaxHandles is max-open-handles: sftp-server says its
	// RLIMIT_NOFILE soft limit less 5, and launchd starts sshd with a
	// soft limit of 256 (unverified on macOS). The sim does not count
	// handles.
	sftpMaxHandles = 256 - 5
)

// Exit statuses of sftp-server that the sim's SFTP session ends with.
const (
	sftpExitBadMessage = 11  // a packet over sftpMaxPacket
	sftpExitFatal      = 255 // fatal(): a request it cannot parse
)

// SFTP packet types (draft-ietf-secsh-filexfer-02) the filter reads.
const (
	sftpInit          = 1
	sftpVersion       = 2
	sftpExtended      = 200
	sftpExtendedReply = 201
)

const sftpLimitsExt = "limits@openssh.com"

// sftpRefusal is a packet sftp-server would not take: it ends the
// session with exit.
type sftpRefusal struct {
	exit   int
	reason string
}

func (r *sftpRefusal) Error() string { return r.reason }

// sftpFilter is the sftp subsystem's channel as pkg/sftp's RequestServer
// sees it: it adds limits@openssh.com to the server's VERSION packets,
// answers that request itself with sftp-server's values, and refuses
// what sftp-server refuses (a packet over max-packet-length, a request
// before INIT, an extended request it cannot parse) by failing pkg/sftp's
// read, which ends the session (serveSFTP sends the exit status). Every
// other byte passes unchanged. pkg/sftp offers no hook for an extension
// of the server's own, and its list of extensions is global.
type sftpFilter struct {
	ch io.ReadWriteCloser

	// Read side: pkg/sftp's receive loop is its only caller.
	head   [5]byte // the current packet's length and type
	queued []byte  // what pkg/sftp gets before more is read from ch
	left   uint32  // bytes of the current packet still to pass from ch
	inited bool    // INIT seen
	rerr   error

	// Write side: pkg/sftp writes a packet in two Writes (header, then
	// payload; sendPacket in its packet.go) under a lock of its own, so
	// the filter's replies wait for a packet boundary under mu.
	mu      sync.Mutex
	between *sync.Cond // broadcast when the stream is between packets
	wlen    [4]byte    // the length field of the packet being written
	nlen    int        // bytes of wlen seen
	wleft   uint32     // bytes of that packet still to come after its length
	hold    []byte     // a VERSION packet being collected, to extend
	werr    error
}

func newSFTPFilter(ch io.ReadWriteCloser) *sftpFilter {
	f := &sftpFilter{ch: ch}
	f.between = sync.NewCond(&f.mu)
	return f
}

// Read gives pkg/sftp the client's packets but those the filter answers
// or refuses.
func (f *sftpFilter) Read(p []byte) (int, error) {
	for len(f.queued) == 0 && f.left == 0 {
		if f.rerr != nil {
			return 0, f.rerr
		}
		f.rerr = f.next()
	}
	if len(f.queued) > 0 {
		n := copy(p, f.queued)
		f.queued = f.queued[n:]
		return n, nil
	}
	n, err := f.ch.Read(p[:min(len(p), int(f.left))])
	f.left -= uint32(n)
	if errors.Is(err, io.EOF) && f.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// next reads the start of the client's next packet, as sftp-server's
// process() does, and queues it for pkg/sftp, or answers or refuses it.
func (f *sftpFilter) next() error {
	if _, err := io.ReadFull(f.ch, f.head[:4]); err != nil {
		return err // io.EOF between packets: the client is done
	}
	n := binary.BigEndian.Uint32(f.head[:4])
	switch {
	case n > sftpMaxPacket:
		return &sftpRefusal{sftpExitBadMessage, fmt.Sprintf("bad message: packet of %d bytes, over %d", n, sftpMaxPacket)}
	case n == 0:
		f.queued = f.head[:4] // pkg/sftp refuses it
		return nil
	}
	if _, err := io.ReadFull(f.ch, f.head[4:]); err != nil {
		return unexpectedEOF(err)
	}
	typ := f.head[4]
	if typ != sftpInit && !f.inited {
		return &sftpRefusal{sftpExitFatal, fmt.Sprintf("received %d request before init", typ)}
	}
	f.inited = true
	if typ == sftpExtended {
		pkt := make([]byte, 4+n)
		copy(pkt, f.head[:])
		if _, err := io.ReadFull(f.ch, pkt[5:]); err != nil {
			return unexpectedEOF(err)
		}
		return f.extended(pkt)
	}
	f.queued, f.left = f.head[:], n-1
	return nil
}

// extended answers limits@openssh.com and queues the other extended
// requests for pkg/sftp; one whose id or name does not parse is fatal to
// sftp-server (process_extended: sshbuf_get_cstring; fatal_fr).
func (f *sftpFilter) extended(pkt []byte) error {
	r := sftpFields{b: pkt[5:]}
	id, name := r.uint32(), r.string()
	switch {
	case r.short:
		return &sftpRefusal{sftpExitFatal, "malformed extended request"}
	case name != sftpLimitsExt:
		f.queued = pkt
		return nil
	}
	reply := binary.BigEndian.AppendUint32(nil, 1+4+4*8)
	reply = append(reply, sftpExtendedReply)
	reply = binary.BigEndian.AppendUint32(reply, id)
	for _, v := range []uint64{sftpMaxPacket, sftpMaxRead, sftpMaxWrite, sftpMaxHandles} {
		reply = binary.BigEndian.AppendUint64(reply, v)
	}
	return f.send(reply)
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// send writes one whole packet of the filter's own between two of
// pkg/sftp's.
func (f *sftpFilter) send(pkt []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for !f.isBetween() && f.werr == nil {
		f.between.Wait()
	}
	if f.werr != nil {
		return f.werr
	}
	if _, err := f.ch.Write(pkt); err != nil {
		f.werr = err
		f.between.Broadcast()
	}
	return f.werr
}

func (f *sftpFilter) isBetween() bool { return f.nlen == 0 && f.wleft == 0 && f.hold == nil }

// Write passes pkg/sftp's packets on as they come, in as many writes as
// pkg/sftp makes, and keeps track of where each ends; a VERSION packet is
// held until it is whole, to add limits@openssh.com. (A VERSION packet
// is recognised when its length and type come in one Write, as
// pkg/sftp writes them.)
func (f *sftpFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(p)
	for len(p) > 0 && f.werr == nil {
		var out []byte
		switch {
		case f.hold != nil:
			k := min(len(p), int(f.wleft))
			f.hold, f.wleft, p = append(f.hold, p[:k]...), f.wleft-uint32(k), p[k:]
			if f.wleft > 0 {
				continue
			}
			out, f.hold = withLimits(f.hold), nil
		case f.isBetween() && isVersionStart(p):
			f.hold, f.wleft, p = append([]byte(nil), p[:4]...), binary.BigEndian.Uint32(p), p[4:]
			continue
		default:
			k := f.span(p)
			out, p = p[:k], p[k:]
		}
		if _, err := f.ch.Write(out); err != nil {
			f.werr = err
		}
	}
	if f.isBetween() || f.werr != nil {
		f.between.Broadcast()
	}
	if f.werr != nil {
		return 0, f.werr
	}
	return n, nil
}

// span is how much of p passes as it is: all of it, or up to where a
// VERSION packet starts. It moves the packet boundaries on past it.
func (f *sftpFilter) span(p []byte) int {
	i := 0
	for i < len(p) {
		if i > 0 && f.isBetween() && isVersionStart(p[i:]) {
			break
		}
		if f.wleft == 0 {
			k := copy(f.wlen[f.nlen:], p[i:])
			f.nlen += k
			i += k
			if f.nlen == len(f.wlen) {
				f.nlen, f.wleft = 0, binary.BigEndian.Uint32(f.wlen[:])
			}
			continue
		}
		k := min(len(p)-i, int(f.wleft))
		f.wleft -= uint32(k)
		i += k
	}
	return i
}

func isVersionStart(p []byte) bool {
	if len(p) < 5 || p[4] != sftpVersion {
		return false
	}
	n := binary.BigEndian.Uint32(p)
	return n >= 5 && n <= sftpMaxPacket
}

// withLimits adds limits@openssh.com version "1" to a VERSION packet
// that does not list it (sftp-server lists it after lsetstat@openssh.com;
// the order carries no meaning), or returns it unchanged when it does or
// does not parse.
func withLimits(pkt []byte) []byte {
	r := sftpFields{b: pkt[9:]} // length, type, version
	for len(r.b) > 0 && !r.short {
		name, _ := r.string(), r.string()
		if name == sftpLimitsExt {
			return pkt
		}
	}
	if r.short {
		return pkt
	}
	for _, s := range []string{sftpLimitsExt, "1"} {
		pkt = binary.BigEndian.AppendUint32(pkt, uint32(len(s)))
		pkt = append(pkt, s...)
	}
	binary.BigEndian.PutUint32(pkt, uint32(len(pkt)-4))
	return pkt
}

// Close closes the channel first, so that a write stuck on it ends,
// then wakes a reply waiting for a packet boundary.
func (f *sftpFilter) Close() error {
	err := f.ch.Close()
	f.mu.Lock()
	if f.werr == nil {
		f.werr = net.ErrClosed
	}
	f.between.Broadcast()
	f.mu.Unlock()
	return err
}

// sftpFields reads SFTP's big-endian fields off a packet; short is set
// once a field runs past its end.
type sftpFields struct {
	b     []byte
	short bool
}

func (r *sftpFields) uint32() uint32 {
	if r.short || len(r.b) < 4 {
		r.short = true
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *sftpFields) string() string {
	n := r.uint32()
	if r.short || uint64(n) > uint64(len(r.b)) {
		r.short = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
