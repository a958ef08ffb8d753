package guest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// logTap forwards the client's log lines to t and to a channel a test can
// wait on.
func logTap(t *testing.T, o *Options) <-chan string {
	lines := make(chan string, 1024)
	base := o.Logf
	o.Logf = func(format string, args ...any) {
		base(format, args...)
		select {
		case lines <- fmt.Sprintf(format, args...):
		default:
		}
	}
	return lines
}

func waitLog(t *testing.T, lines <-chan string, substr string, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for n > 0 {
		select {
		case l := <-lines:
			if strings.Contains(l, substr) {
				n--
			}
		case <-timeout:
			t.Fatalf("no log line containing %q within 10s", substr)
		}
	}
}

type dialResult struct {
	c   *Client
	err error
}

func dialAsync(ctx context.Context, ep Endpoint, o Options) <-chan dialResult {
	ch := make(chan dialResult, 1)
	go func() {
		c, err := Dial(ctx, ep, o)
		ch <- dialResult{c, err}
	}()
	return ch
}

func awaitDial(t *testing.T, ch <-chan dialResult) dialResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { _ = r.c.Close() })
		}
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("Dial did not return within 15s")
		return dialResult{}
	}
}

func TestDialRetriesUntilSSHDAnswers(t *testing.T) {
	noLeaks(t)
	s := newIdleServer(t)
	o := testOptions(t)
	lines := logTap(t, &o)

	res := dialAsync(context.Background(), s.endpoint(), o)
	waitLog(t, lines, "connection refused", 2) // the guest is still booting
	s.start()

	r := awaitDial(t, res)
	require.NoError(t, r.err)
	out, err := r.c.Run(context.Background(), Cmd{Line: "echo up"})
	require.NoError(t, err)
	assert.Equal(t, "up\n", out.Stdout)
}

func TestDialGivesUpWhenCtxIsCancelledWhileWaiting(t *testing.T) {
	noLeaks(t)
	s := newIdleServer(t) // never answers
	o := testOptions(t)
	lines := logTap(t, &o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	res := dialAsync(ctx, s.endpoint(), o)
	waitLog(t, lines, "connection refused", 1)
	start := time.Now()
	cancel()
	r := awaitDial(t, res)
	require.Error(t, r.err)
	assert.ErrorIs(t, r.err, context.Canceled)
	assert.NotErrorIs(t, r.err, ErrConnectTimeout)
	assert.Less(t, time.Since(start), promptly)
}

func TestDialTimeoutWrapsTheLastCause(t *testing.T) {
	noLeaks(t)
	s := newIdleServer(t)
	o := testOptions(t)
	o.ConnectTimeout = 200 * time.Millisecond

	start := time.Now()
	_, err := Dial(context.Background(), s.endpoint(), o)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrConnectTimeout)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	assert.Contains(t, err.Error(), "ssh admin@"+s.addr+": sshd did not answer after ")
	assert.Contains(t, err.Error(), "connection refused")
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	assert.Less(t, time.Since(start), promptly)
}

func TestDialWedgedHandshakeIsBounded(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	s.wedge.Store(true) // accepts TCP, never sends its banner
	o := testOptions(t)
	o.HandshakeTimeout = 100 * time.Millisecond
	o.ConnectTimeout = 500 * time.Millisecond

	start := time.Now()
	_, err := Dial(context.Background(), s.endpoint(), o)
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrConnectTimeout)
	// The last try gets what is left of ConnectTimeout, maybe under 100ms,
	// and any duration Go can print must do ("69ms", "850µs").
	m := regexp.MustCompile(`ssh handshake with ` + regexp.QuoteMeta(s.addr) + `: no answer within (\S+?)(?:\)|:|$)`).FindStringSubmatch(err.Error())
	require.NotNil(t, m, err.Error())
	within, perr := time.ParseDuration(m[1])
	require.NoError(t, perr, "the bound is a duration: %s", err)
	assert.Greater(t, within, time.Duration(0))
	assert.LessOrEqual(t, within, o.HandshakeTimeout, "never more than the handshake timeout")
	assert.GreaterOrEqual(t, s.accepts.Load(), int64(2), "each wedged attempt is given up and retried")
	assert.GreaterOrEqual(t, elapsed, 500*time.Millisecond)
	assert.Less(t, elapsed, promptly)
}

func TestDialCancelDuringWedgedHandshake(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	s.wedge.Store(true)
	o := testOptions(t)
	o.HandshakeTimeout = time.Hour // only ctx can end it
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	res := dialAsync(ctx, s.endpoint(), o)
	s.waitEvent(t, "accept")
	start := time.Now()
	cancel()
	r := awaitDial(t, res)
	assert.ErrorIs(t, r.err, context.Canceled)
	assert.Less(t, time.Since(start), promptly)
}

func TestDialWrongPasswordFailsAfterThreeTries(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	ep := s.endpoint()
	ep.Password = "wrong"

	_, err := Dial(context.Background(), ep, testOptions(t))
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrAuth)
	assert.EqualError(t, err, "ssh admin@"+s.addr+": authentication failed (password) after 3 tries")
	assert.Equal(t, int64(3), s.authAttempts.Load(), "the server saw exactly three password attempts")
	assert.Equal(t, int64(0), s.handshakes.Load())
}

func TestDialKeyboardInteractiveAnswersThePassword(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	s.kbdOnly.Store(true)
	c := dialTest(t, s, testOptions(t))
	res, err := c.Run(context.Background(), Cmd{Line: "echo kbd"})
	require.NoError(t, err)
	assert.Equal(t, "kbd\n", res.Stdout)
}

// testKeyFile writes a fresh ed25519 private key in OpenSSH format,
// encrypted when passphrase is not empty.
func testKeyFile(t *testing.T, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "id_ed25519")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(block), 0o600))
	pub, err := ssh.NewPublicKey(priv.Public())
	require.NoError(t, err)
	return path, pub
}

func TestDialWithKeyFile(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	path, pub := testKeyFile(t, "")
	s.userKey.Store(&pub)
	ep := s.endpoint()
	ep.Password, ep.KeyFile = "", path

	c, err := Dial(context.Background(), ep, testOptions(t))
	require.NoError(t, err)
	defer c.Close()
	res, err := c.Run(context.Background(), Cmd{Line: "echo key"})
	require.NoError(t, err)
	assert.Equal(t, "key\n", res.Stdout)
	assert.Equal(t, int64(0), s.authAttempts.Load(), "no password was involved")
}

func TestDialKeyFileProblemsNameTheFile(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	dir := t.TempDir()
	encrypted, _ := testKeyFile(t, "hunter2")
	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, []byte("not a key"), 0o600))
	missing := filepath.Join(dir, "missing")

	for name, tc := range map[string]struct{ path, want string }{
		"passphrase": {encrypted, "protected by a passphrase"},
		"garbage":    {garbage, "private key " + garbage},
		"missing":    {missing, missing},
	} {
		t.Run(name, func(t *testing.T) {
			ep := s.endpoint()
			ep.KeyFile = tc.path
			_, err := Dial(context.Background(), ep, testOptions(t))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.path)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	assert.Equal(t, int64(0), s.accepts.Load(), "a bad key is reported before dialling")
}

func TestDialNoCredentials(t *testing.T) {
	_, err := Dial(context.Background(), Endpoint{Addr: "127.0.0.1:1", User: "admin"}, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no credentials")
}

func TestBackoffIsExponentialCappedAndDeterministic(t *testing.T) {
	base := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, b := range base {
		attempt := i + 1
		d := backoff(100*time.Millisecond, time.Second, attempt, 42)
		b *= time.Millisecond
		assert.GreaterOrEqual(t, d, b*8/10, "attempt %d", attempt)
		assert.LessOrEqual(t, d, b*12/10, "attempt %d", attempt)
		assert.Equal(t, d, backoff(100*time.Millisecond, time.Second, attempt, 42), "same seed, same delay")
	}
	differ := false
	for attempt := 1; attempt < 10; attempt++ {
		if backoff(time.Second, time.Minute, attempt, 1) != backoff(time.Second, time.Minute, attempt, 2) {
			differ = true
		}
	}
	assert.True(t, differ, "guests with different seeds do not retry in lockstep")
}

func TestLocalNetworkHintOnlyOnDarwin(t *testing.T) {
	unreach := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}

	err := localNetworkHint(unreach, "darwin")
	assert.ErrorIs(t, err, syscall.EHOSTUNREACH)
	assert.Contains(t, err.Error(), "System Settings > Privacy & Security > Local Network")

	assert.Equal(t, error(unreach), localNetworkHint(unreach, "linux"))
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	assert.Equal(t, error(refused), localNetworkHint(refused, "darwin"))
}

func TestClassify(t *testing.T) {
	assert.Equal(t, failRetry, classify(syscall.ECONNREFUSED))
	assert.Equal(t, failRetry, classify(errors.New("ssh: handshake failed: EOF")))
	assert.Equal(t, failRetry, classify(&handshakeTimeoutError{addr: "x", timeout: time.Second}))
	assert.Equal(t, failAuth, classify(errors.New("ssh: handshake failed: ssh: unable to authenticate, attempted methods [none password], no supported methods remain")))
	assert.Equal(t, failPermanent, classify(fmt.Errorf("ssh: handshake failed: %w", &HostKeyChangedError{})))
	assert.Equal(t, failPermanent, classify(&permanentError{errors.New("known_hosts: bad")}))
}
