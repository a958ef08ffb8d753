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

func TestOpenSSHClientInterop(t *testing.T) {
	sshBin, sftpBin := openSSHTools(t)
	noLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	signer, pemKey := newClientKey(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	require.NoError(t, os.WriteFile(key, pemKey, 0o600))
	m := startMachine(t, func(o *Options, _ *vm.Image, _ *fakeModel) { o.AuthorizedKeys = []ssh.PublicKey{signer.PublicKey()} })
	host, port, err := net.SplitHostPort(m.ep.Addr)
	require.NoError(t, err)

	// the advertised host key, pinned the way the lab pins it
	knownHosts := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(knownHosts, []byte("["+host+"]:"+port+" "+m.ep.HostKey+"\n"), 0o600))
	opts := []string{
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", key, "-o", "LogLevel=ERROR",
		"-F", "/dev/null",
	}
	sshCmd := func(args ...string) *exec.Cmd {
		all := append(append(append([]string{}, opts...), "-p", port, m.ep.User+"@"+host), args...)
		return exec.CommandContext(ctx, sshBin, all...)
	}

	out, err := sshCmd("uname -sr; id -un").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, "Darwin 24.3.0\nadmin\n", string(out))

	var stderr bytes.Buffer
	cmd := sshCmd("frobnicate")
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 127, ee.ExitCode())
	assert.Equal(t, "zsh: command not found: frobnicate\n", stderr.String())

	tricky := `it's a "test" $HOME \ ; & | 中`
	out, err = sshCmd("printf", "%s", posixQuote(tricky)).Output()
	require.NoError(t, err)
	assert.Equal(t, tricky, string(out), "ssh joins its arguments; the quoting survives")

	// 100 MiB up and down with sftp -b
	const size = 100 << 20
	big := filepath.Join(dir, "big.bin")
	want := writeRandomFile(t, big, size)
	batch := filepath.Join(dir, "batch")
	require.NoError(t, os.WriteFile(batch, []byte("put big.bin\nget big.bin back.bin\n"), 0o600))
	all := append(append([]string{}, opts...), "-P", port, "-b", batch, m.ep.User+"@"+host)
	sftpCmd := exec.CommandContext(ctx, sftpBin, all...)
	sftpCmd.Dir = dir
	start := time.Now()
	out, err = sftpCmd.CombinedOutput()
	require.NoError(t, err, string(out))
	t.Logf("sftp put+get of 100 MiB: %v", time.Since(start))

	inTree, err := m.FS().ReadFile("/Users/admin/big.bin")
	require.NoError(t, err)
	assert.Equal(t, want, fmt.Sprintf("%x", sha256.Sum256(inTree)), "uploaded into the home folder")
	assert.Equal(t, want, sha256File(t, filepath.Join(dir, "back.bin")), "downloaded intact")
	out, err = sshCmd("shasum -a 256 big.bin").Output()
	require.NoError(t, err)
	assert.Equal(t, want+"  big.bin\n", string(out), "the sim's shasum agrees")
	out, err = sshCmd("stat -f %z big.bin").Output()
	require.NoError(t, err)
	assert.Equal(t, "104857600", strings.TrimSpace(string(out)))
}
