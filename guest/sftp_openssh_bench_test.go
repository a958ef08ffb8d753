package guest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// openSSHBench names a real sshd and a file on it, from the environment
// that bench/sftp-vs-openssh.sh sets.
type openSSHBench struct {
	ep     Endpoint
	remote string
}

func openSSHBenchEnv(b *testing.B) openSSHBench {
	b.Helper()
	addr := os.Getenv("SXLAB_OPENSSH_ADDR")
	if addr == "" {
		b.Skip("SXLAB_OPENSSH_ADDR is not set: run bench/sftp-vs-openssh.sh")
	}
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			b.Fatalf("%s is not set (SXLAB_OPENSSH_ADDR is): set SXLAB_OPENSSH_USER, _KEY, _HOSTKEY and _FILE too", name)
		}
		return v
	}
	hostKey, err := os.ReadFile(get("SXLAB_OPENSSH_HOSTKEY"))
	require.NoError(b, err, "SXLAB_OPENSSH_HOSTKEY")
	return openSSHBench{
		ep: Endpoint{
			Addr:    addr,
			User:    get("SXLAB_OPENSSH_USER"),
			KeyFile: get("SXLAB_OPENSSH_KEY"),
			HostKey: strings.TrimSpace(string(hostKey)),
		},
		remote: get("SXLAB_OPENSSH_FILE"),
	}
}

// BenchmarkDownloadOpenSSH downloads SXLAB_OPENSSH_FILE from a real
// OpenSSH sshd (bench/sftp-vs-openssh.sh starts one on loopback and
// compares with OpenSSH's sftp). "transfer" is the SFTP copy into the
// .part file with its local sha256, what OpenSSH's sftp get does plus the
// hash; "verified" is the whole Download, which then waits for the
// guest's shasum of the file.
func BenchmarkDownloadOpenSSH(b *testing.B) {
	env := openSSHBenchEnv(b)
	ctx := context.Background()
	c, err := Dial(ctx, env.ep, Options{Keepalive: -1, ConnectTimeout: 10 * time.Second})
	require.NoError(b, err)
	defer c.Close()
	cn, sc, err := c.sftpSession()
	require.NoError(b, err)
	info, err := sc.Stat(env.remote)
	require.NoError(b, err)
	chunk, err := sftpChunkSize(cn.ssh)
	require.NoError(b, err)
	local := filepath.Join(b.TempDir(), "download.bin")

	b.Run("transfer", func(b *testing.B) {
		b.SetBytes(info.Size())
		for b.Loop() {
			_, err := c.fetch(ctx, env.remote, local+".part", nil)
			require.NoError(b, err)
			b.StopTimer()
			require.NoError(b, os.Remove(local+".part"))
			b.StartTimer()
		}
		// The request size the server allows, which newSFTPClient uses.
		b.ReportMetric(float64(chunk), "offered-request-bytes")
	})
	b.Run("verified", func(b *testing.B) {
		b.SetBytes(info.Size())
		for b.Loop() {
			require.NoError(b, c.Download(ctx, env.remote, local, nil))
			b.StopTimer()
			require.NoError(b, os.Remove(local))
			b.StartTimer()
		}
	})
}
