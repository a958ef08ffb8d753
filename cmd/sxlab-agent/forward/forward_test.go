package forward

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer stands in for sshd: it answers each line with its upper-
// case form prefixed by "> ", and after the client's half-close it sends
// "bye" and closes, so a test sees that half-closes pass through.
func echoServer(t *testing.T) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "> %s\n", sc.Text())
				}
				fmt.Fprintln(c, "bye")
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}

func tcpDial(addr string) DialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// serve runs Serve on a unix socket (the vsock stand-in) and returns its
// path and a stop function that waits for Serve to return.
func serve(t *testing.T, dial DialFunc) (string, func() error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, dial, t.Logf) }()
	return path, func() error { cancel(); return <-done }
}

func TestForwardsBothWaysAndPassesHalfClose(t *testing.T) {
	sshd, stopSSHD := echoServer(t)
	defer stopSSHD()
	path, stop := serve(t, tcpDial(sshd))

	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	_, err = io.WriteString(c, "ssh-2.0\nhello\n")
	require.NoError(t, err)
	require.NoError(t, c.(*net.UnixConn).CloseWrite(), "the client is done sending")
	got, err := io.ReadAll(c) // the server still answers after the half-close
	require.NoError(t, err)
	assert.Equal(t, "> ssh-2.0\n> hello\nbye\n", string(got))
	c.Close()
	require.NoError(t, stop())
}

func TestManyConcurrentConnections(t *testing.T) {
	sshd, stopSSHD := echoServer(t)
	defer stopSSHD()
	path, stop := serve(t, tcpDial(sshd))

	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("unix", path)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "conn %d\n", i)
			c.(*net.UnixConn).CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil {
				errs <- err
				return
			}
			if want := fmt.Sprintf("> conn %d\nbye\n", i); string(got) != want {
				errs <- fmt.Errorf("connection %d got %q, want %q", i, got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.NoError(t, stop())
}

func TestSSHDNotUpClosesTheConnectionCleanly(t *testing.T) {
	// A port nothing listens on: take one and free it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	path, stop := serve(t, tcpDial(addr))

	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, err := c.Read(make([]byte, 1))
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, io.EOF, "the client sees the connection end, not a hang")

	// The agent keeps serving: the next client is treated the same way.
	c2, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer c2.Close()
	require.NoError(t, c2.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c2.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, stop())
}

func TestStopEndsOpenConnections(t *testing.T) {
	sshd, stopSSHD := echoServer(t)
	defer stopSSHD()
	path, stop := serve(t, tcpDial(sshd))
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer c.Close()
	fmt.Fprintln(c, "ping")
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "> ping\n", line)

	// An open session does not keep the agent from stopping, and
	// nothing it started is left running (goleak checks at exit).
	require.NoError(t, stop())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
}

func TestAcceptFailureIsReturned(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln.Close() // Accept fails at once, not because of ctx
	err = Serve(context.Background(), ln, tcpDial("127.0.0.1:1"), nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "accept on")
}
