package guest

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeLimitsServer answers querySFTPLimits like an SFTP server that
// offers exts in its version packet and answers the limits request with
// reply (type, body), or drops the connection when reply is nil.
type fakeLimitsServer struct {
	exts      []string
	replyType byte
	reply     []byte
}

func (f fakeLimitsServer) serve(c net.Conn) {
	defer c.Close()
	if typ, _, err := readSFTPPacket(c); err != nil || typ != fxpInit {
		return
	}
	version := binary.BigEndian.AppendUint32(nil, 3)
	for _, e := range f.exts {
		version = appendSFTPString(version, e)
		version = appendSFTPString(version, "1")
	}
	if writeSFTPPacket(c, fxpVersion, version) != nil {
		return
	}
	if typ, _, err := readSFTPPacket(c); err != nil || typ != fxpExtended || f.reply == nil {
		return
	}
	_ = writeSFTPPacket(c, f.replyType, f.reply)
}

func appendSFTPString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

func limitsReply(id uint32, packet, read, write uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, id)
	for _, v := range []uint64{packet, read, write, 0} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func TestSFTPRequestSizeFollowsTheServersLimits(t *testing.T) {
	openssh := []string{"posix-rename@openssh.com", "limits@openssh.com", "fsync@openssh.com"}
	cases := []struct {
		name    string
		server  fakeLimitsServer
		want    int
		wantErr string
	}{
		{"OpenSSH", fakeLimitsServer{openssh, fxpExtendedReply, limitsReply(1, 256<<10, 255<<10, 255<<10)}, 255 << 10, ""},
		{"smaller read limit", fakeLimitsServer{openssh, fxpExtendedReply, limitsReply(1, 256<<10, 64<<10, 255<<10)}, 64 << 10, ""},
		{"smaller write limit", fakeLimitsServer{openssh, fxpExtendedReply, limitsReply(1, 256<<10, 255<<10, 40000)}, 40000, ""},
		{"packet limit leaves room for the header", fakeLimitsServer{openssh, fxpExtendedReply, limitsReply(1, 40000, 0, 0)}, 40000 - 1024, ""},
		{"no limits at all", fakeLimitsServer{openssh, fxpExtendedReply, limitsReply(1, 0, 0, 0)}, 255 << 10, ""},
		{"limits not offered", fakeLimitsServer{exts: []string{"posix-rename@openssh.com"}}, 32 << 10, ""},
		{"no extensions", fakeLimitsServer{}, 32 << 10, ""},
		{"request refused", fakeLimitsServer{openssh, fxpStatus, binary.BigEndian.AppendUint32(nil, 1)}, 0, "server refused limits@openssh.com"},
		{"reply to another request", fakeLimitsServer{openssh, fxpExtendedReply, limitsReply(7, 256<<10, 255<<10, 255<<10)}, 0, "packet type 201"},
		{"short reply", fakeLimitsServer{openssh, fxpExtendedReply, []byte{0, 0, 0, 1, 0}}, 0, "packet type 201"},
		{"implausible limits", fakeLimitsServer{openssh, fxpExtendedReply, limitsReply(1, 256<<10, 100, 255<<10)}, 0, "implausible limits"},
		{"connection dropped", fakeLimitsServer{exts: openssh}, 0, "read packet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				tc.server.serve(server)
			}()
			got, err := querySFTPLimits(client, client)
			_ = client.Close()
			<-done
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSFTPRequestSizeRejectsAMalformedVersionPacket(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		if _, _, err := readSFTPPacket(server); err != nil {
			return
		}
		// An extension name claiming more bytes than the packet has.
		body := binary.BigEndian.AppendUint32(nil, 3)
		body = binary.BigEndian.AppendUint32(body, 99)
		_ = writeSFTPPacket(server, fxpVersion, append(body, "limits"...))
	}()
	_, err := querySFTPLimits(client, client)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "malformed extension list")
}

// pkg/sftp's server (the test server's) offers no limits, so requests
// stay at the 32 KiB every server takes. (The sim's offers OpenSSH's:
// TestSimTransfersUseOpenSSHsRequestSize.)
func TestSFTPRequestSizeIs32KiBWithoutLimits(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	cn, err := c.current()
	require.NoError(t, err)
	got, err := sftpChunkSize(cn.ssh)
	require.NoError(t, err)
	assert.Equal(t, 32<<10, got)
}
