package guest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Errors callers can test with errors.Is.
var (
	// ErrAuth: the guest's sshd rejected the credentials on every try.
	ErrAuth = errors.New("authentication failed")
	// ErrHostKeyChanged: the guest presented a host key other than the
	// pinned one (see HostKeyChangedError for both fingerprints).
	ErrHostKeyChanged = errors.New("host key changed")
	// ErrConnectTimeout: sshd did not answer within Options.ConnectTimeout;
	// the error also wraps the last attempt's cause.
	ErrConnectTimeout = errors.New("sshd did not answer")
	// ErrConnectionLost: the connection died under a command or transfer
	// (the guest rebooted, its network went away, keepalives went
	// unanswered). A command that ends without an exit status counts too.
	ErrConnectionLost = errors.New("connection lost")
	// ErrCommandTimeout: Cmd.Timeout passed before the command finished.
	ErrCommandTimeout = errors.New("timed out")
	// ErrChecksumMismatch: a transferred file's sha256 differs between the
	// two sides.
	ErrChecksumMismatch = errors.New("sha256 mismatch")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("ssh client closed")
)

// Options tune a Client. The zero value is usable: every zero field takes
// the default named in its comment.
type Options struct {
	// ConnectTimeout bounds Dial's (and Reconnect's) retries until sshd
	// answers. Default 5m: real Macs take minutes to boot.
	ConnectTimeout time.Duration
	// HandshakeTimeout bounds one TCP connect plus SSH handshake and
	// authentication. Default 20s.
	HandshakeTimeout time.Duration
	// Keepalive is the keepalive@openssh.com interval. Default 5s;
	// negative disables keepalives.
	Keepalive time.Duration
	// KeepaliveTimeout is how long one keepalive may go unanswered before
	// the connection is declared dead. Default: Keepalive, so a dead
	// connection fails running commands within about two intervals.
	KeepaliveTimeout time.Duration
	// OutputCap is how many bytes of stdout and of stderr a command keeps;
	// the tail is kept. Default 256 KiB.
	OutputCap int
	// KnownHosts is a known_hosts file used for trust on first use; ""
	// keeps the learnt key in memory only.
	KnownHosts string
	// HostKeyCache keeps KnownHosts in memory across the connections that
	// share it (one per run): the file is then read once, not once per
	// connection. nil reads the file for each connection.
	HostKeyCache *HostKeyCache
	// FileSums keeps the sha256 of uploaded local files across the
	// connections that share it (one per run), so a file uploaded in
	// every attempt is hashed once. nil hashes every upload.
	FileSums *FileSums
	// HostKeyAlias is the name the host key is pinned under (the machine's
	// clone name), so a guest whose IP changes across a reboot still
	// matches. Default: the endpoint's address.
	HostKeyAlias string
	// TermGrace is how long a command gets between SIGTERM (on timeout or
	// cancel) and the session being closed. Default 5s.
	TermGrace time.Duration
	// Logf receives progress notes (retries, reconnects); nil discards.
	Logf func(format string, args ...any)

	// BackoffInitial and BackoffMax shape the retry delays between
	// connection attempts: doubling from BackoffInitial, capped at
	// BackoffMax, each jittered by ±20%. Defaults 500ms and 2s: a refused
	// connection costs the guest nothing, and a longer wait would be paid
	// on every boot and reboot step after sshd is already up.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// JitterSeed makes the jitter reproducible; 0 derives it from the
	// endpoint, so machines booted together do not retry in lockstep.
	JitterSeed uint64
	// ProgressInterval is the least time between two Progress callbacks
	// of a transfer (the first and the last are always made). Default
	// 250ms.
	ProgressInterval time.Duration
	// SFTPConcurrency is the number of SFTP requests in flight per file.
	// Default 64.
	SFTPConcurrency int
}

func (o Options) withDefaults(ep Endpoint) Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ConnectTimeout, 5*time.Minute)
	def(&o.HandshakeTimeout, 20*time.Second)
	if o.Keepalive == 0 {
		o.Keepalive = 5 * time.Second
	}
	if o.KeepaliveTimeout <= 0 {
		o.KeepaliveTimeout = o.Keepalive
	}
	if o.OutputCap <= 0 {
		o.OutputCap = 256 << 10
	}
	def(&o.TermGrace, 5*time.Second)
	def(&o.BackoffInitial, 500*time.Millisecond)
	def(&o.BackoffMax, 2*time.Second)
	if o.BackoffMax < o.BackoffInitial {
		o.BackoffMax = o.BackoffInitial
	}
	def(&o.ProgressInterval, 250*time.Millisecond)
	if o.SFTPConcurrency <= 0 {
		o.SFTPConcurrency = 64
	}
	if o.JitterSeed == 0 {
		h := fnv.New64a()
		_, _ = io.WriteString(h, ep.Addr+"\x00"+o.HostKeyAlias)
		o.JitterSeed = h.Sum64()
	}
	return o
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// Client is an SSH connection to one guest. It implements Guest and is
// safe for concurrent use.
type Client struct {
	ep   Endpoint
	o    Options
	auth []ssh.AuthMethod
	// authNames names the methods tried, for the ErrAuth message.
	authNames string
	keys      *hostKeys

	// shut is cancelled by Close so that a Reconnect in progress gives up.
	shut     context.Context
	shutDown context.CancelFunc

	dialMu sync.Mutex // one Reconnect at a time

	mu     sync.Mutex
	cn     *conn // nil while (re)connecting or after a failed Reconnect
	closed bool
}

var _ Guest = (*Client)(nil)

// Dial connects to ep, retrying until sshd answers, ctx ends or
// o.ConnectTimeout passes. The guest's host key is pinned: to
// ep.HostKey when set, otherwise to the key seen first (trust on first
// use, recorded in o.KnownHosts when set).
func Dial(ctx context.Context, ep Endpoint, o Options) (*Client, error) {
	o = o.withDefaults(ep)
	auth, names, err := authMethods(ep)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", ep, err)
	}
	keys, err := newHostKeys(ep, o)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", ep, err)
	}
	shut, shutDown := context.WithCancelCause(context.Background())
	c := &Client{ep: ep, o: o, auth: auth, authNames: names, keys: keys,
		shut: shut, shutDown: func() { shutDown(ErrClosed) }}
	cn, err := c.connect(ctx)
	if err != nil {
		c.shutDown()
		return nil, err
	}
	c.cn = cn
	return c, nil
}

// Endpoint is the endpoint the Client dials.
func (c *Client) Endpoint() Endpoint { return c.ep }

// ServerVersion is the guest sshd's identification string, e.g.
// "SSH-2.0-OpenSSH_9.8"; the simulated Mac says SimServerVersion.
func (c *Client) ServerVersion() string {
	cn, err := c.current()
	if err != nil {
		return ""
	}
	return string(cn.ssh.ServerVersion())
}

// SimServerVersion is how the simulated Mac's sshd identifies itself, so
// a client that reaches one by address (provider ssh pointed at sxlab sim
// serve) can still label its results simulated.
const SimServerVersion = "SSH-2.0-sxlab-sim"

// Reconnect drops the current connection, if any, and dials the same
// endpoint again with the same retry bounds as Dial; use it after a step
// that reboots the guest. The host key must match the pinned one, or the
// error wraps ErrHostKeyChanged. The SFTP session is reopened on demand.
func (c *Client) Reconnect(ctx context.Context) error {
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("ssh %s: reconnect: %w", c.ep, ErrClosed)
	}
	old := c.cn
	c.cn = nil
	c.mu.Unlock()
	if old != nil {
		old.close(fmt.Errorf("%w: replaced by Reconnect", ErrConnectionLost))
	}
	c.o.logf("ssh %s: reconnecting", c.ep)
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cn.close(ErrClosed)
		return fmt.Errorf("ssh %s: reconnect: %w", c.ep, ErrClosed)
	}
	c.cn = cn
	return nil
}

// Close closes the connection; commands and transfers still running fail
// with ErrClosed. It is safe to call more than once. When it returns,
// every goroutine the Client started has ended.
func (c *Client) Close() error {
	c.shutDown()
	// dialMu waits out a Reconnect (which shut has just told to stop), so
	// the connection it might still install is closed too.
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	c.mu.Lock()
	cn := c.cn
	c.cn = nil
	c.closed = true
	c.mu.Unlock()
	if cn != nil {
		cn.close(ErrClosed)
	}
	return nil
}

// current returns the live connection.
func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.cn == nil:
		return nil, fmt.Errorf("%w: not connected (Reconnect failed or is in progress)", ErrConnectionLost)
	}
	return c.cn, nil
}

// conn is one SSH transport and what hangs off it: the keepalive, the
// SFTP session, the goroutines waiting on sessions.
type conn struct {
	ssh  *ssh.Client
	done chan struct{} // closed once the transport is gone

	mu      sync.Mutex
	closing bool
	cause   error // why the transport ended; wraps ErrConnectionLost or is ErrClosed
	wg      sync.WaitGroup

	sftpMu sync.Mutex
	sftp   *sftp.Client
}

func newConn(cl *ssh.Client, o *Options, name string) *conn {
	cn := &conn{ssh: cl, done: make(chan struct{})}
	cn.spawn(func() {
		err := cl.Wait()
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("the guest closed the connection")
		}
		cn.setCause(fmt.Errorf("%w: %v", ErrConnectionLost, err))
		close(cn.done)
	})
	if o.Keepalive > 0 {
		cn.spawn(func() { cn.keepalive(o.Keepalive, o.KeepaliveTimeout, o, name) })
	}
	return cn
}

// spawn runs f in a goroutine that close waits for; false once the
// connection is closing (a WaitGroup must not grow while it is waited on).
func (cn *conn) spawn(f func()) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.closing {
		return false
	}
	cn.wg.Add(1)
	go func() {
		defer cn.wg.Done()
		f()
	}()
	return true
}

func (cn *conn) setCause(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.cause == nil {
		cn.cause = err
	}
}

func (cn *conn) getCause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.cause
}

// fail ends the transport for cause; everything running on it fails.
func (cn *conn) fail(cause error) {
	cn.setCause(cause)
	_ = cn.ssh.Close()
}

// lost turns the error of an operation that died with the transport into
// one wrapping ErrConnectionLost (or ErrClosed), preferring the recorded
// cause. It waits briefly for the transport to finish ending, because a
// session notices a dropped connection a moment before the connection
// itself does.
func (cn *conn) lost(err error) error {
	if cause := cn.getCause(); cause != nil {
		return cause
	}
	if cn.endsSoon() {
		return cn.getCause()
	}
	return fmt.Errorf("%w: %v", ErrConnectionLost, err)
}

// endsSoon waits briefly for the transport to end; true if it did.
func (cn *conn) endsSoon() bool {
	t := time.NewTimer(250 * time.Millisecond)
	defer t.Stop()
	select {
	case <-cn.done:
		return true
	case <-t.C:
		return false
	}
}

// close ends the transport and waits for every goroutine of the
// connection.
func (cn *conn) close(cause error) {
	cn.mu.Lock()
	cn.closing = true
	if cn.cause == nil {
		cn.cause = cause
	}
	cn.mu.Unlock()
	// The transport first: that unblocks a wedged SFTP open holding sftpMu.
	_ = cn.ssh.Close()
	cn.sftpMu.Lock()
	if cn.sftp != nil {
		_ = cn.sftp.Close()
		cn.sftp = nil
	}
	cn.sftpMu.Unlock()
	cn.wg.Wait()
}

// keepalive sends keepalive@openssh.com every interval. A request left
// unanswered for timeout, or failing, ends the transport so commands on it
// fail at once instead of hanging on a guest that is gone.
func (cn *conn) keepalive(interval, timeout time.Duration, o *Options, name string) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() { // ends when answered or when the transport closes
			_, _, err := cn.ssh.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		t := time.NewTimer(timeout)
		select {
		case err := <-reply:
			t.Stop()
			if err != nil {
				cn.fail(fmt.Errorf("%w: keepalive: %v", ErrConnectionLost, err))
				return
			}
		case <-t.C:
			o.logf("ssh %s: no keepalive reply within %s; dropping the connection", name, timeout)
			cn.fail(fmt.Errorf("%w: no keepalive reply within %s", ErrConnectionLost, timeout))
			<-reply
			return
		case <-cn.done:
			t.Stop()
			<-reply
			return
		}
	}
}

// sftpClient returns the connection's SFTP session, opening it on first
// use.
func (cn *conn) sftpClient(o *Options) (*sftp.Client, error) {
	cn.sftpMu.Lock()
	defer cn.sftpMu.Unlock()
	if cn.sftp != nil {
		return cn.sftp, nil
	}
	cn.mu.Lock()
	closing := cn.closing
	cn.mu.Unlock()
	if closing {
		return nil, cn.getCause()
	}
	sc, err := newSFTPClient(cn.ssh, o)
	if err != nil {
		return nil, fmt.Errorf("open sftp session: %w", err)
	}
	cn.sftp = sc
	return sc, nil
}

// dropSFTP forgets a broken SFTP session so the next transfer on a still
// healthy transport opens a new one.
func (cn *conn) dropSFTP(sc *sftp.Client) {
	cn.sftpMu.Lock()
	defer cn.sftpMu.Unlock()
	if cn.sftp == sc {
		_ = sc.Close()
		cn.sftp = nil
	}
}
