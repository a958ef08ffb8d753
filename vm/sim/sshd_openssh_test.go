package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/vm"
)

// openSSHTools finds OpenSSH's ssh and sftp. Locally their absence skips
// the test; in CI it fails it (CI must install openssh-client).
func openSSHTools(t *testing.T) (sshBin, sftpBin string) {
	t.Helper()
	sshBin, err1 := exec.LookPath("ssh")
	sftpBin, err2 := exec.LookPath("sftp")
	if err := errors.Join(err1, err2); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OpenSSH client missing (install openssh-client in CI): %v", err)
		}
		t.Skipf("OpenSSH client missing: %v", err)
	}
	return sshBin, sftpBin
}

// writeRandomFile writes size pseudo-random bytes and returns their
// sha256.
func writeRandomFile(t *testing.T, name string, size int64) string {
	t.Helper()
	f, err := os.Create(name)
	require.NoError(t, err)
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	_, err = io.CopyN(w, rand.NewChaCha8([32]byte{1, 2, 3}), size)
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return hex.EncodeToString(h.Sum(nil))
}

func sha256File(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// openSSHTarget is a simulated Mac that OpenSSH's ssh and sftp reach
// with a key and the advertised host key pinned, the way the lab pins it.
type openSSHTarget struct {
	m               *testMachine
	dir, host, port string
	opts            []string // for both ssh and sftp
	sshBin, sftpBin string
}

func newOpenSSHTarget(t *testing.T) *openSSHTarget {
	t.Helper()
	sshBin, sftpBin := openSSHTools(t)
	signer, pemKey := newClientKey(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	require.NoError(t, os.WriteFile(key, pemKey, 0o600))
	m := startMachine(t, func(o *Options, _ *vm.Image, _ *fakeModel) { o.AuthorizedKeys = []ssh.PublicKey{signer.PublicKey()} })
	host, port, err := net.SplitHostPort(m.ep.Addr)
	require.NoError(t, err)
	knownHosts := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(knownHosts, []byte("["+host+"]:"+port+" "+m.ep.HostKey+"\n"), 0o600))
	return &openSSHTarget{
		m: m, dir: dir, host: host, port: port, sshBin: sshBin, sftpBin: sftpBin,
		opts: []string{
			"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + knownHosts,
			"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", key, "-o", "LogLevel=ERROR",
			"-F", "/dev/null",
		},
	}
}

func (o *openSSHTarget) ssh(ctx context.Context, args ...string) *exec.Cmd {
	all := append(append(append([]string{}, o.opts...), "-p", o.port, o.m.ep.User+"@"+o.host), args...)
	return exec.CommandContext(ctx, o.sshBin, all...)
}

// sftp runs the batch of sftp commands in o.dir.
func (o *openSSHTarget) sftp(t *testing.T, ctx context.Context, batch string, flags ...string) *exec.Cmd {
	t.Helper()
	name := filepath.Join(o.dir, "batch")
	require.NoError(t, os.WriteFile(name, []byte(batch), 0o600))
	all := append(append(append([]string{}, o.opts...), flags...), "-P", o.port, "-b", name, o.m.ep.User+"@"+o.host)
	cmd := exec.CommandContext(ctx, o.sftpBin, all...)
	cmd.Dir = o.dir
	return cmd
}

func TestOpenSSHClientInterop(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := newOpenSSHTarget(t)
	m, dir := o.m, o.dir

	out, err := o.ssh(ctx, "uname -sr; id -un").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "Darwin 24.3.0\nadmin\n", string(out))

	var stderr bytes.Buffer
	cmd := o.ssh(ctx, "frobnicate")
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 127, ee.ExitCode())
	assert.Equal(t, "zsh: command not found: frobnicate\n", stderr.String())

	tricky := `it's a "test" $HOME \ ; & | 中`
	out, err = o.ssh(ctx, "printf", "%s", posixQuote(tricky)).Output()
	require.NoError(t, err)
	assert.Equal(t, tricky, string(out), "ssh joins its arguments; the quoting survives")

	// 100 MiB up and down with sftp -b
	const size = 100 << 20
	big := filepath.Join(dir, "big.bin")
	want := writeRandomFile(t, big, size)
	start := time.Now()
	out, err = o.sftp(t, ctx, "put big.bin\nget big.bin back.bin\n").CombinedOutput()
	require.NoError(t, err, string(out))
	t.Logf("sftp put+get of 100 MiB: %v", time.Since(start))

	inTree, err := m.FS().ReadFile("/Users/admin/big.bin")
	require.NoError(t, err)
	assert.Equal(t, want, fmt.Sprintf("%x", sha256.Sum256(inTree)), "uploaded into the home folder")
	assert.Equal(t, want, sha256File(t, filepath.Join(dir, "back.bin")), "downloaded intact")
	out, err = o.ssh(ctx, "shasum -a 256 big.bin").Output()
	require.NoError(t, err)
	assert.Equal(t, want+"  big.bin\n", string(out), "the sim's shasum agrees")
	out, err = o.ssh(ctx, "stat -f %z big.bin").Output()
	require.NoError(t, err)
	assert.Equal(t, "104857600", strings.TrimSpace(string(out)))
}

// TestOpenSSHSFTPUsesTheLimits: OpenSSH's sftp, which we did not write,
// finds limits@openssh.com on the sim as on a Mac and sizes its requests
// from it (its debug output, sftp-client.c do_init, says so), and a put
// and get of a few MB that are not a multiple of that size round-trip.
func TestOpenSSHSFTPUsesTheLimits(t *testing.T) {
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := newOpenSSHTarget(t)
	want := writeRandomFile(t, filepath.Join(o.dir, "probe.bin"), 6<<20+777)

	out, err := o.sftp(t, ctx, "put probe.bin\nget probe.bin back.bin\n", "-vvv").CombinedOutput()
	require.NoError(t, err, string(out))
	// what sftp says of the server's extensions and its request sizes
	var said []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "Server supports extension") || strings.Contains(line, "buffer sizes") {
			said = append(said, strings.TrimSpace(line))
		}
	}
	assert.Contains(t, said, `debug2: Server supports extension "limits@openssh.com" revision 1`)
	assert.Contains(t, said, "debug3: server upload/download buffer sizes 261120 / 261120; using 261120 / 261120",
		"255 KiB both ways, as against a Mac's sftp-server")
	assert.Equal(t, want, sha256File(t, filepath.Join(o.dir, "back.bin")), "downloaded intact")
	inTree, err := o.m.FS().ReadFile("/Users/admin/probe.bin")
	require.NoError(t, err)
	assert.Equal(t, want, fmt.Sprintf("%x", sha256.Sum256(inTree)), "uploaded intact")
}
