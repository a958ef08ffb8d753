package sshd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/pkg/sftp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// echoShell answers every command line with the line itself and exits
// with its length: enough to see what the server hands a shell.
type echoShell struct{}

func (echoShell) Run(_ context.Context, line string, env map[string]string, sio shell.IO) int {
	fmt.Fprintf(sio.Out, "ran %q FOO=%s\n", line, env["FOO"])
	fmt.Fprintln(sio.Err, "to stderr")
	return len(line)
}

func (echoShell) Interactive(_ context.Context, _ map[string]string, sio shell.IO) int {
	b, _ := io.ReadAll(sio.In)
	fmt.Fprintf(sio.Out, "read %q\n", b)
	return 0
}

func startServer(t *testing.T) (*ssh.Client, *shell.FS) {
	t.Helper()
	tree := shell.NewFS()
	require.NoError(t, tree.MkdirAll("/Users/admin", 0o755))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	srv := New(ctx, Config{
		Listener: ln, SSH: ServerConfig(signer, "admin", "pw", nil, t.Logf), Shell: echoShell{},
		FS: tree, Home: "/Users/admin", WG: &wg, Logf: t.Logf,
	})
	wg.Add(1)
	go srv.Serve()
	srv.SetBooting(false)
	t.Cleanup(func() {
		cancel()
		srv.Close()
		wg.Wait()
	})
	c, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{
		User: "admin", Auth: []ssh.AuthMethod{ssh.Password("pw")},
		HostKeyCallback: ssh.FixedHostKey(signer.PublicKey()),
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, tree
}

func TestExecReachesTheShellWithItsEnvAndStatus(t *testing.T) {
	c, _ := startServer(t)
	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.Setenv("FOO", "bar"))
	var out, errb strings.Builder
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run("sw_vers")
	var exit *ssh.ExitError
	require.True(t, errors.As(err, &exit), "%v", err)
	assert.Equal(t, len("sw_vers"), exit.ExitStatus())
	assert.Equal(t, "ran \"sw_vers\" FOO=bar\n", out.String())
	assert.Equal(t, "to stderr\n", errb.String())

	// a shell request reads its command lines from stdin
	s, err = c.NewSession()
	require.NoError(t, err)
	s.Stdin = strings.NewReader("echo hi\n")
	out.Reset()
	s.Stdout = &out
	require.NoError(t, s.Shell())
	require.NoError(t, s.Wait())
	assert.Equal(t, "read \"echo hi\\n\"\n", out.String())
}

func TestSFTPServesTheTreeFromHome(t *testing.T) {
	c, tree := startServer(t)
	sc, err := sftp.NewClient(c)
	require.NoError(t, err)
	defer sc.Close()
	f, err := sc.Create("pkg.simpkg.json")
	require.NoError(t, err)
	_, err = f.Write([]byte("{}"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	data, err := tree.ReadFile("/Users/admin/pkg.simpkg.json")
	require.NoError(t, err)
	assert.Equal(t, "{}", string(data))
	_, err = sc.Stat("/../../etc/passwd")
	assert.Error(t, err, "nothing outside the tree")
}
