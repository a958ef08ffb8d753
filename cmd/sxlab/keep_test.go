package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// demoConfigAt writes the demo configuration into dir with its package
// paths made absolute and the simulated Macs at time scale 0, so it runs
// from any working directory in a second.
func demoConfigAt(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(demoConfig)
	require.NoError(t, err)
	repo, err := filepath.Abs(filepath.Dir(demoConfig))
	require.NoError(t, err)
	cfg := strings.ReplaceAll(string(data), "examples/pkg/", filepath.Join(repo, "examples", "pkg")+"/")
	cfg = regexp.MustCompile(`time_scale: [0-9.]+`).ReplaceAllString(cfg, "time_scale: 0")
	path := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	return path
}

// lockedBuffer is written by the run and read by the test meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The ssh command --keep prints is pasted into another terminal, from
// another folder: its paths are absolute and OpenSSH accepts the host key
// with them from /.
func TestKeepPrintsASSHCommandThatWorksFromAnywhere(t *testing.T) {
	dir := t.TempDir()
	demoConfigAt(t, dir)
	t.Chdir(dir) // runs_dir is ./runs: the run folder's path is relative

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"run", "--config", "config.yaml", "--only", "macos=macos-15.3,vpn=running", "--repeat", "1", "--keep", "--progress", "none"}, &out, &errb)
	}()
	var sshLine string
	require.Eventually(t, func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "ssh -p ") {
				sshLine = strings.TrimSpace(l)
			}
		}
		return sshLine != "" && strings.Contains(out.String(), "Press Ctrl-C")
	}, 2*time.Minute, 20*time.Millisecond, "no ssh line: %s\n%s", out.String(), errb.String())

	m := regexp.MustCompile(`UserKnownHostsFile=(\S+)`).FindStringSubmatch(sshLine)
	require.NotNil(t, m, sshLine)
	assert.True(t, filepath.IsAbs(m[1]), "absolute: %s", sshLine)
	assert.FileExists(t, m[1])
	ev := regexp.MustCompile(`evidence: (\S+)\)`).FindStringSubmatch(out.String())
	require.NotNil(t, ev, out.String())
	assert.True(t, filepath.IsAbs(ev[1]), ev[1])
	assert.DirExists(t, ev[1])

	if sshBin, err := exec.LookPath("ssh"); err == nil {
		// From /, without a password (BatchMode): OpenSSH checks the
		// host key before it gives up on authentication.
		args := append(strings.Fields(sshLine)[1:], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=20", "true")
		c := exec.Command(sshBin, args...)
		c.Dir = "/"
		b, _ := c.CombinedOutput()
		assert.NotContains(t, string(b), "Host key verification failed", "%s", b)
		assert.NotContains(t, string(b), "No such file", "%s", b)
		assert.Contains(t, string(b), "Permission denied", "got past the host key check: %s", b)
	}

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, exitFindings, code, errb.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("the kept machine was not deleted after Ctrl-C")
	}
}
