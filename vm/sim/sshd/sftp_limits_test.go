package sshd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// More SFTP packet types the tests send and read.
const (
	sftpOpen   = 3
	sftpRead   = 5
	sftpWrite  = 6
	sftpStatus = 101
	sftpHandle = 102
	sftpData   = 103
)

// rawSFTP is the client's end of an SFTP session with pkg/sftp's request
// server behind the filter, serving a tree of its own as serveSFTP does
// (pkg/sftp's InMemHandler sleeps a microsecond a byte written); served
// is what Serve returned, once it has.
type rawSFTP struct {
	net.Conn
	served chan error
}

func serveFiltered(t *testing.T) *rawSFTP {
	t.Helper()
	client, server := net.Pipe()
	srv := sftp.NewRequestServer(newSFTPFilter(server), sftpHandlers(shell.NewFS(), nil, nil), sftp.WithRSMaxTxPacket(sftpMaxRead))
	c := &rawSFTP{Conn: client, served: make(chan error, 1)}
	go func() {
		err := srv.Serve()
		srv.Close()
		c.served <- err
	}()
	t.Cleanup(func() { client.Close() })
	return c
}

// result waits for Serve to end.
func (c *rawSFTP) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.served:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not end the session")
		return nil
	}
}

func sftpPacket(typ byte, fields ...any) []byte {
	b := []byte{0, 0, 0, 0, typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			b = binary.BigEndian.AppendUint32(b, v)
		case uint64:
			b = binary.BigEndian.AppendUint64(b, v)
		case string:
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		case []byte: // as an SFTP string
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func (c *rawSFTP) send(t *testing.T, pkt []byte) {
	t.Helper()
	_, err := c.Write(pkt)
	require.NoError(t, err)
}

// recv reads one packet: its type and the rest.
func (c *rawSFTP) recv(t *testing.T) (byte, *sftpFields) {
	t.Helper()
	typ, body, err := readRawPacket(c)
	require.NoError(t, err)
	return typ, &sftpFields{b: body}
}

func readRawPacket(r io.Reader) (byte, []byte, error) {
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return 0, nil, err
	}
	if n == 0 || n > sftpMaxPacket {
		return 0, nil, errors.New("bad packet length")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return p[0], p[1:], nil
}

func (c *rawSFTP) init(t *testing.T) map[string]string {
	t.Helper()
	c.send(t, sftpPacket(sftpInit, uint32(3)))
	typ, r := c.recv(t)
	require.Equal(t, byte(sftpVersion), typ)
	assert.Equal(t, uint32(3), r.uint32())
	exts := map[string]string{}
	for len(r.b) > 0 && !r.short {
		name := r.string()
		exts[name] = r.string()
	}
	require.False(t, r.short, "the extension list parses")
	return exts
}

func TestSFTPOffersOpenSSHsLimits(t *testing.T) {
	c := serveFiltered(t)
	exts := c.init(t)
	assert.Equal(t, "1", exts["limits@openssh.com"], "offered with version 1, as sftp-server does")
	assert.Equal(t, "1", exts["posix-rename@openssh.com"], "pkg/sftp's own extensions are still there")

	c.send(t, sftpPacket(sftpExtended, uint32(7), "limits@openssh.com"))
	typ, r := c.recv(t)
	require.Equal(t, byte(sftpExtendedReply), typ)
	assert.Equal(t, uint32(7), r.uint32(), "the request's id")
	var got [4]uint64
	require.NoError(t, binary.Read(bytes.NewReader(r.b), binary.BigEndian, &got))
	assert.Equal(t, [4]uint64{256 << 10, 255 << 10, 255 << 10, 251}, got,
		"max-packet-length, max-read-length, max-write-length, max-open-handles")
	assert.Len(t, r.b, 32, "nothing after the four limits")

	// Bytes after the name are ignored, as sftp-server ignores them.
	c.send(t, sftpPacket(sftpExtended, uint32(8), "limits@openssh.com", "junk"))
	typ, r = c.recv(t)
	require.Equal(t, byte(sftpExtendedReply), typ)
	assert.Equal(t, uint32(8), r.uint32())

	// Other extended requests are still pkg/sftp's: an unknown one is
	// unsupported (SSH_FX_OP_UNSUPPORTED, 8), as sftp-server answers it.
	c.send(t, sftpPacket(sftpExtended, uint32(9), "frobnicate@example.com"))
	typ, r = c.recv(t)
	require.Equal(t, byte(sftpStatus), typ)
	assert.Equal(t, uint32(9), r.uint32())
	assert.Equal(t, uint32(8), r.uint32())

	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.result(t), io.EOF, "the client ended the session")
}

// The largest requests the limits allow work through pkg/sftp's server:
// a write of max-write-length, a read of max-read-length answered in
// full, a longer read answered with max-read-length, as sftp-server
// answers it, and a packet of exactly max-packet-length is taken.
func TestSFTPLargestRequestsWork(t *testing.T) {
	c := serveFiltered(t)
	c.init(t)
	c.send(t, sftpPacket(sftpOpen, uint32(1), "/f", uint32(0x1|0x2|0x8), uint32(0))) // read, write, create
	typ, r := c.recv(t)
	require.Equal(t, byte(sftpHandle), typ, "open")
	r.uint32()
	handle := r.string()

	data := make([]byte, 3*sftpMaxWrite)
	rand.NewChaCha8([32]byte{4}).Read(data)
	for i := range 3 {
		off := i * sftpMaxWrite
		c.send(t, sftpPacket(sftpWrite, uint32(10+i), handle, uint64(off), data[off:off+sftpMaxWrite]))
		typ, r = c.recv(t)
		require.Equal(t, byte(sftpStatus), typ)
		r.uint32()
		require.Equal(t, uint32(0), r.uint32(), "write %d: SSH_FX_OK", i)
	}
	// A write whose packet is exactly max-packet-length long.
	last := sftpMaxPacket - (1 + 4 + 4 + len(handle) + 8 + 4)
	tail := bytes.Repeat([]byte{'x'}, last)
	pkt := sftpPacket(sftpWrite, uint32(13), handle, uint64(len(data)), tail)
	require.Len(t, pkt, 4+sftpMaxPacket)
	c.send(t, pkt)
	typ, r = c.recv(t)
	require.Equal(t, byte(sftpStatus), typ)
	r.uint32()
	require.Equal(t, uint32(0), r.uint32(), "a packet of max-packet-length is taken")
	data = append(data, tail...)

	for _, tc := range []struct {
		off, ask, want int
	}{
		{0, sftpMaxRead, sftpMaxRead},
		{sftpMaxRead, 1 << 20, sftpMaxRead}, // longer than max-read-length
		{len(data) - 100, sftpMaxRead, 100}, // the end of the file
	} {
		c.send(t, sftpPacket(sftpRead, uint32(20), handle, uint64(tc.off), uint32(tc.ask)))
		typ, r = c.recv(t)
		require.Equal(t, byte(sftpData), typ)
		r.uint32()
		got := r.string()
		require.False(t, r.short)
		assert.Len(t, got, tc.want, "read of %d at %d", tc.ask, tc.off)
		assert.True(t, bytes.Equal(data[tc.off:tc.off+tc.want], []byte(got)), "read of %d at %d", tc.ask, tc.off)
	}
}

// What sftp-server refuses ends the session with its exit status, and
// nothing of the packet reaches pkg/sftp.
func TestSFTPRefusesWhatSFTPServerRefuses(t *testing.T) {
	oversized := binary.BigEndian.AppendUint32(nil, sftpMaxPacket+1)
	oversized = append(oversized, sftpExtended)
	cases := []struct {
		name   string
		init   bool
		pkt    []byte
		status int
	}{
		// sftp-server.c process(): "bad message", sftp_server_cleanup_exit(11),
		// read from the length alone
		{"oversized extended request", true, oversized, 11},
		{"oversized write", true, binary.BigEndian.AppendUint32(nil, 1<<30), 11},
		// process_extended(): sshbuf_get_cstring fails, fatal_fr
		{"name longer than the packet", true, sftpPacket(sftpExtended, uint32(1), uint32(99), "limits"), 255},
		{"no name", true, sftpPacket(sftpExtended, uint32(1)), 255},
		{"no id", true, sftpPacket(sftpExtended), 255},
		// process(): "Received extended request before init"
		{"limits before init", false, sftpPacket(sftpExtended, uint32(1), "limits@openssh.com"), 255},
		{"open before init", false, sftpPacket(sftpOpen, uint32(1), "/f", uint32(1), uint32(0)), 255},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := serveFiltered(t)
			if tc.init {
				c.init(t)
			}
			go func() { _, _ = c.Write(tc.pkt) }() // the server may stop reading mid-packet
			err := c.result(t)
			var refused *sftpRefusal
			require.ErrorAs(t, err, &refused)
			assert.Equal(t, tc.status, refused.exit)
			_, _, err = readRawPacket(c)
			assert.Error(t, err, "the session is over, with no reply")
		})
	}
}

// Many reads in flight, each followed by a limits request: pkg/sftp's
// workers write the data replies while the filter writes the limits
// replies, and every packet arrives whole.
func TestSFTPLimitsRepliesNeverSplitAPacket(t *testing.T) {
	c := serveFiltered(t)
	c.init(t)
	c.send(t, sftpPacket(sftpOpen, uint32(1), "/f", uint32(0x1|0x2|0x8), uint32(0)))
	_, r := c.recv(t)
	r.uint32()
	handle := r.string()
	data := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{5}).Read(data)
	for off := 0; off < len(data); off += sftpMaxWrite {
		c.send(t, sftpPacket(sftpWrite, uint32(2), handle, uint64(off), data[off:min(off+sftpMaxWrite, len(data))]))
		typ, _ := c.recv(t)
		require.Equal(t, byte(sftpStatus), typ)
	}

	const rounds = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range rounds {
			off := (i * 4096) % (len(data) - sftpMaxRead)
			if _, err := c.Write(sftpPacket(sftpRead, uint32(1000+i), handle, uint64(off), uint32(sftpMaxRead))); err != nil {
				return
			}
			if _, err := c.Write(sftpPacket(sftpExtended, uint32(5000+i), "limits@openssh.com")); err != nil {
				return
			}
		}
	})
	var reads, limits int
	for reads+limits < 2*rounds {
		typ, r := c.recv(t)
		id := r.uint32()
		switch typ {
		case sftpData:
			off := (int(id-1000) * 4096) % (len(data) - sftpMaxRead)
			require.True(t, bytes.Equal(data[off:off+sftpMaxRead], []byte(r.string())), "read %d", id)
			reads++
		case sftpExtendedReply:
			require.Equal(t, uint64(sftpMaxPacket), binary.BigEndian.Uint64(r.b), "limits %d", id)
			limits++
		default:
			t.Fatalf("packet type %d (id %d)", typ, id)
		}
	}
	wg.Wait()
	assert.Equal(t, rounds, reads)
	assert.Equal(t, rounds, limits)
}

// recorder is a channel's write side that keeps what was written, and a
// read side of the client's bytes that says when it has read them all.
type recorder struct {
	in      *bytes.Reader
	drained chan struct{}
	once    sync.Once
	mu      sync.Mutex
	out     []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.in.Read(p)
	if r.in.Len() == 0 {
		r.once.Do(func() { close(r.drained) })
	}
	return n, err
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = append(r.out, p...)
	return len(p), nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) written() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.out...)
}

// The filter's reply waits while pkg/sftp is between the two Writes of
// one packet (header, payload), and goes out after the payload.
func TestSFTPLimitsReplyWaitsForTheEndOfAPacket(t *testing.T) {
	client := append(sftpPacket(sftpInit, uint32(3)), sftpPacket(sftpExtended, uint32(7), "limits@openssh.com")...)
	ch := &recorder{in: bytes.NewReader(client), drained: make(chan struct{})}
	f := newSFTPFilter(ch)
	buf := make([]byte, 64)
	n, err := f.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, byte(sftpInit), buf[4], "INIT goes to pkg/sftp")
	_, _ = f.Read(buf[n:]) // the rest of INIT

	data := sftpPacket(sftpData, uint32(1), bytes.Repeat([]byte{'d'}, 1000))
	header, payload := data[:13], data[13:]
	_, err = f.Write(header)
	require.NoError(t, err)

	read := make(chan error, 1)
	go func() {
		_, err := f.Read(buf) // answers the limits request, then finds the end
		read <- err
	}()
	<-ch.drained
	time.Sleep(50 * time.Millisecond) // give the reply the chance to cut in
	assert.Equal(t, header, ch.written(), "no reply inside pkg/sftp's packet")

	_, err = f.Write(payload)
	require.NoError(t, err)
	assert.ErrorIs(t, <-read, io.EOF)

	typ, body, err := readRawPacket(bytes.NewReader(ch.written()[len(data):]))
	require.NoError(t, err)
	assert.Equal(t, byte(sftpExtendedReply), typ)
	assert.Equal(t, uint32(7), binary.BigEndian.Uint32(body))
	assert.Equal(t, data, ch.written()[:len(data)], "pkg/sftp's packet went out whole, first")
}

func TestSFTPVersionAlreadyListingLimitsIsUnchanged(t *testing.T) {
	v := sftpPacket(sftpVersion, uint32(3), "limits@openssh.com", "1", "statvfs@openssh.com", "2")
	assert.Equal(t, v, withLimits(append([]byte(nil), v...)))
	broken := sftpPacket(sftpVersion, uint32(3), "limits", uint32(99))
	assert.Equal(t, broken, withLimits(append([]byte(nil), broken...)), "a list that does not parse is passed on")
}
