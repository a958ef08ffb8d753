package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
)

func TestSimServeAnswersAndStopsWithItsContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	cmd := newSimCmd()
	cmd.SetArgs([]string{"serve", "--config", demoConfig, "--image", "macos-15.3", "--time-scale", "0"})
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() {
		err := cmd.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()

	fields := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
		if strings.Contains(line, "Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, pr) // the rest of the output

	require.Contains(t, fields, "address")
	assert.Equal(t, "admin", fields["user"])
	assert.Equal(t, "admin", fields["password"])
	assert.Regexp(t, `^SHA256:[A-Za-z0-9+/]{43} \(ssh-ed25519 `, fields["host key"])
	assert.Contains(t, fields["try"], "sw_vers")

	authorized := strings.TrimSuffix(fields["host key"][strings.Index(fields["host key"], "(")+1:], ")")
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorized))
	require.NoError(t, err)
	assert.Equal(t, ssh.FingerprintSHA256(hk), strings.Fields(fields["host key"])[0], "the fingerprint is the key's")
	client, err := ssh.Dial("tcp", fields["address"], &ssh.ClientConfig{
		User: "admin", Auth: []ssh.AuthMethod{ssh.Password("admin")}, HostKeyCallback: ssh.FixedHostKey(hk), Timeout: 5 * time.Second,
	})
	require.NoError(t, err)
	s, err := client.NewSession()
	require.NoError(t, err)
	out, err := s.Output("sw_vers")
	require.NoError(t, err)
	assert.Contains(t, string(out), "ProductVersion:\t\t15.3")
	client.Close()

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("sim serve did not stop when its context ended")
	}
}

func TestSimServeRefusesImplicitWildcardListen(t *testing.T) {
	cmd := newSimCmd()
	cmd.SetArgs([]string{"serve", "--config", demoConfig, "--image", "macos-15.3", "--listen", ":2222"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	var ee *exitError
	require.True(t, errors.As(err, &ee), "%v", err)
	assert.Equal(t, exitUsage, ee.code)
	assert.Contains(t, err.Error(), "0.0.0.0:2222")
}

func TestSimServeNeedsAKnownSimImage(t *testing.T) {
	cmd := newSimCmd()
	cmd.SetArgs([]string{"serve", "--config", demoConfig, "--image", "nope"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "macos-15.3, macos-15.3-mdm, macos-15.4, macos-15.4-mdm")
}

func TestReadAuthorizedKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(file, []byte("# mine\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqFdHsTvyBrsJn+2EvmqmVtbcoEhMpkYvaQahMTwvzw me@host\n\n"), 0o600))
	keys, err := readAuthorizedKeys(file)
	require.NoError(t, err)
	assert.Len(t, keys, 1)
	require.NoError(t, os.WriteFile(file, []byte("nonsense\n"), 0o600))
	_, err = readAuthorizedKeys(file)
	assert.Error(t, err)
}

// `sim serve` without --image simulates the matrix's first image and says
// which on stderr.
func TestSimServeDefaultsToTheFirstImage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errb lockedBuffer
	done := make(chan error, 1)
	go func() {
		err := simServe(ctx, simServeFlags{config: demoConfig, listen: "127.0.0.1:0", timeScale: 0}, pw, &errb)
		pw.Close()
		done <- err
	}()
	fields := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
		if strings.Contains(sc.Text(), "Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	require.Contains(t, fields, "address", errb.String())
	assert.Contains(t, errb.String(), "simulating macos-15.3, the first image of the matrix (--image picks another: macos-15.3, macos-15.3-mdm, macos-15.4, macos-15.4-mdm, macos-15.4-tunnel-mdm)")

	client, err := ssh.Dial("tcp", fields["address"], &ssh.ClientConfig{
		User: "admin", Auth: []ssh.AuthMethod{ssh.Password("admin")}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	require.NoError(t, err)
	s, err := client.NewSession()
	require.NoError(t, err)
	out, err := s.Output("sw_vers")
	require.NoError(t, err)
	assert.Contains(t, string(out), "ProductVersion:\t\t15.3")
	client.Close()

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(promptlySim):
		t.Fatal("sim serve did not stop when its context ended")
	}
}

// promptlySim bounds waits for a simulated Mac to stop: what it rules out
// is not stopping at all.
const promptlySim = time.Minute
