package guest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// authTries is how many handshakes may fail authentication before Dial
// gives up: a Mac that has just booted sometimes rejects a good password
// while its directory services start, but three in a row is a wrong
// credential.
const authTries = 3

// connect dials until a handshake succeeds, ctx ends, the client is
// closed or ConnectTimeout passes.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	// Close must be able to stop a Reconnect that waits for a guest.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(c.shut, func() { cancel(ErrClosed) })
	defer stop()

	start := time.Now()
	deadline := start.Add(c.o.ConnectTimeout)
	var last error
	authFails := 0
	for attempt := 1; ; attempt++ {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, c.timeoutErr(start, attempt-1, last)
		}
		cl, err := c.handshake(ctx, min(c.o.HandshakeTimeout, remaining))
		if err == nil {
			if attempt > 1 {
				c.o.logf("ssh %s: connected after %d attempts in %s", c.ep, attempt, time.Since(start).Round(time.Millisecond))
			}
			return newConn(cl, &c.o, c.ep.String()), nil
		}
		if ctx.Err() != nil {
			return nil, c.canceledErr(ctx, start, attempt, err)
		}
		err = localNetworkHint(err, runtime.GOOS)
		last = err
		switch classify(err) {
		case failPermanent:
			return nil, fmt.Errorf("ssh %s: %w", c.ep, err)
		case failAuth:
			authFails++
			if authFails >= authTries {
				return nil, fmt.Errorf("ssh %s: %w (%s) after %d tries", c.ep, ErrAuth, c.authNames, authFails)
			}
		}
		wait := backoff(c.o.BackoffInitial, c.o.BackoffMax, attempt, c.o.JitterSeed)
		c.o.logf("ssh %s: attempt %d: %v; retrying in %s", c.ep, attempt, err, wait.Round(time.Millisecond))
		if left := time.Until(deadline); wait > left {
			wait = max(left, 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, c.canceledErr(ctx, start, attempt, last)
		case <-t.C:
		}
	}
}

func (c *Client) timeoutErr(start time.Time, attempts int, last error) error {
	if last == nil {
		last = errors.New("no attempt fitted in the time")
	}
	return fmt.Errorf("ssh %s: %w after %s (%d attempts): %w",
		c.ep, ErrConnectTimeout, time.Since(start).Round(time.Millisecond), attempts, last)
}

func (c *Client) canceledErr(ctx context.Context, start time.Time, attempts int, last error) error {
	return fmt.Errorf("ssh %s: gave up after %s (%d attempts, last: %v): %w",
		c.ep, time.Since(start).Round(time.Millisecond), attempts, last, context.Cause(ctx))
}

// handshakeTimeoutError: TCP connected, but the SSH handshake did not
// finish in time (sshd still starting, or wedged).
type handshakeTimeoutError struct {
	addr    string
	timeout time.Duration
}

func (e *handshakeTimeoutError) Error() string {
	return fmt.Sprintf("ssh handshake with %s: no answer within %s", e.addr, roundForPeople(e.timeout))
}

// roundForPeople rounds a duration for a message: the last try is given
// what is left of the connect timeout, "69.410069ms", which says nothing
// more than "69ms".
func roundForPeople(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// handshake makes one TCP connection and SSH handshake, bounded by
// timeout and ctx. x/crypto/ssh has no context support, so the
// connection is closed from the outside when time is up; that unblocks
// NewClientConn, which is waited for, so nothing is left behind.
func (c *Client) handshake(ctx context.Context, timeout time.Duration) (*ssh.Client, error) {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nc net.Conn
	var err error
	if c.ep.Stream != nil {
		nc, err = c.ep.Stream(hctx)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(hctx, "tcp", c.ep.Addr)
	}
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              c.ep.User,
		Auth:              c.auth,
		HostKeyCallback:   c.keys.callback,
		HostKeyAlgorithms: c.keys.algorithms(),
		// The outer bound is hctx; this only covers the TCP part x/crypto
		// would do itself.
		Timeout: timeout,
	}
	stop := context.AfterFunc(hctx, func() { _ = nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, c.ep.Addr, cfg)
	if !stop() {
		// Time ran out (or ctx ended) and the connection was closed under
		// the handshake; whatever it returned is moot.
		if err == nil {
			_ = sc.Close()
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, &handshakeTimeoutError{addr: c.ep.Addr, timeout: timeout}
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

type failKind int

const (
	failRetry failKind = iota
	failAuth
	failPermanent
)

// permanentError marks a failure no retry can fix (bad configuration).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// classify decides what a failed attempt means. Everything not known to
// be permanent is retried: while a Mac boots, sshd refuses, resets,
// closes mid-handshake or does not answer, in any order.
func classify(err error) failKind {
	if _, ok := errors.AsType[*HostKeyChangedError](err); ok {
		return failPermanent
	}
	if _, ok := errors.AsType[*permanentError](err); ok {
		return failPermanent
	}
	s := err.Error()
	switch {
	// x/crypto/ssh reports authentication failures only as text.
	case strings.Contains(s, "unable to authenticate"),
		strings.Contains(s, "too many authentication"),
		strings.Contains(s, "Too many authentication failures"):
		return failAuth
	case strings.Contains(s, "no common algorithm"):
		return failPermanent
	}
	return failRetry
}

// localNetworkHint explains EHOSTUNREACH on macOS, where it usually means
// the program is not allowed on the local network (macOS 15's Local
// Network privacy), not that the guest is down.
func localNetworkHint(err error, goos string) error {
	if goos != "darwin" || !errors.Is(err, syscall.EHOSTUNREACH) {
		return err
	}
	return fmt.Errorf("%w (on macOS this usually means Local Network access is denied: allow this program, or the terminal running it, in System Settings > Privacy & Security > Local Network)", err)
}

// backoff is the delay before attempt+1: exponential from initial,
// capped at max, with ±20% jitter drawn from (seed, attempt) so it is
// reproducible but differs between guests.
func backoff(initial, max time.Duration, attempt int, seed uint64) time.Duration {
	d := initial
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	r := rand.New(rand.NewPCG(seed, uint64(attempt)))
	return time.Duration(float64(d) * (0.8 + 0.4*r.Float64()))
}

// authMethods builds the client's authentication from ep: the key first
// (when given), then the password, also over keyboard-interactive, which
// macOS's sshd offers instead of "password" in some configurations.
func authMethods(ep Endpoint) ([]ssh.AuthMethod, string, error) {
	var methods []ssh.AuthMethod
	var names []string
	if ep.KeyFile != "" {
		signer, err := loadKey(ep.KeyFile)
		if err != nil {
			return nil, "", err
		}
		methods = append(methods, ssh.PublicKeys(signer))
		names = append(names, "publickey")
	}
	if ep.Password != "" {
		pw := ep.Password
		methods = append(methods,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
		names = append(names, "password")
	}
	if len(methods) == 0 {
		return nil, "", errors.New("no credentials: the endpoint has neither a password nor a key file")
	}
	return methods, strings.Join(names, ", "), nil
}

func loadKey(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if _, ok := errors.AsType[*ssh.PassphraseMissingError](err); ok {
		return nil, fmt.Errorf("private key %s is protected by a passphrase; sxlab cannot prompt for it: use a key without one (or load it into a file without the passphrase)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return signer, nil
}
