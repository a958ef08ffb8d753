package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/macho"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"howett.net/plist"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServesUntilStopped(t *testing.T) {
	// sshd stand-in: greets like sshd does.
	sshd, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer sshd.Close()
	go func() {
		for {
			c, err := sshd.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "SSH-2.0-OpenSSH_9.8")
			c.Close()
		}
	}()
	vsock, err := net.Listen("tcp", "127.0.0.1:0") // stands in for the vsock listener
	require.NoError(t, err)
	var gotPort uint32
	listen := func(port uint32) (net.Listener, error) { gotPort = port; return vsock, nil }

	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--target", sshd.Addr().String(), "--port", "5005"}, new(bytes.Buffer), &stderr, listen)
	}()

	c, err := net.Dial("tcp", vsock.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "SSH-2.0-OpenSSH_9.8\n", line, "the client reaches sshd through the agent")
	cancel()
	assert.Equal(t, 0, <-done)
	assert.Equal(t, uint32(5005), gotPort)
	assert.Contains(t, stderr.String(), "unverified on macOS")
}

func TestListenFailureExits1(t *testing.T) {
	var stderr bytes.Buffer
	code := run(t.Context(), nil, new(bytes.Buffer), &stderr, listenVsock)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "listen on vsock port 7022")
}

func TestPlistSubcommand(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 0, run(t.Context(), []string{"plist", "--binary", "/opt/sxlab-agent", "--port", "7000"}, &out, new(bytes.Buffer), nil))
	var got map[string]any
	_, err := plist.Unmarshal(out.Bytes(), &got)
	require.NoError(t, err)
	assert.Equal(t, []any{"/opt/sxlab-agent", "--port", "7000", "--target", "127.0.0.1:22"}, got["ProgramArguments"])
}

func TestBadArguments(t *testing.T) {
	for args, want := range map[string][]string{
		"port 0":       {"--port", "0"},
		"bad target":   {"--target", "localhost"},
		"extra":        {"serve"},
		"binary flag":  {"--binary", "/x"},
		"plist binary": {"plist", "--binary", "relative"},
	} {
		var stderr bytes.Buffer
		assert.Equal(t, 64, run(t.Context(), want, new(bytes.Buffer), &stderr, nil), args)
		assert.NotEmpty(t, stderr.String(), args)
	}
}

// TestCrossBuildIsAnArm64MachO: the agent builds for darwin/arm64 without
// cgo (issue 13's CI requirement).
func TestCrossBuildIsAnArm64MachO(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the agent")
	}
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "sxlab-agent")
	cmd := exec.CommandContext(t.Context(), goCmd, "build", "-trimpath", "-o", out, ".")
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	f, err := macho.Open(out)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, macho.CpuArm64, f.Cpu)
	assert.Equal(t, macho.TypeExec, f.Type)
}
