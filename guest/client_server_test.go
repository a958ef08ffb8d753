package guest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
)

// testServer is a small sshd for the client's tests: password, key and
// (optionally) keyboard-interactive auth, an exec handler with a handful
// of scripted commands (anything else goes to /bin/sh -c), an SFTP
// subsystem working in a temp dir, and knobs for the ways a booting or
// dying Mac misbehaves. Server goroutines never call t.Fatal; tests
// observe the server through its counters and events.
type testServer struct {
	t        testing.TB
	addr     string
	root     string // SFTP working directory; relative paths resolve here
	user     string
	password string
	userKey  atomic.Pointer[ssh.PublicKey] // accepted for publickey auth

	hostKey atomic.Pointer[ssh.Signer]

	// knobs
	wedge           atomic.Bool  // accept TCP, never say a word
	wedgeOpens      atomic.Bool  // handshake, then never answer a channel open
	ignoreKeepalive atomic.Bool  // leave keepalive@openssh.com unanswered
	kbdOnly         atomic.Bool  // offer keyboard-interactive only
	lieShasum       atomic.Bool  // shasum reports a wrong hash
	dropSFTPAfter   atomic.Int64 // >0: drop the connection once after this many SFTP bytes went out

	// counters
	accepts      atomic.Int64 // TCP connections accepted
	handshakes   atomic.Int64 // completed handshakes (authenticated)
	authAttempts atomic.Int64 // password and keyboard-interactive attempts
	sftpSent     atomic.Int64 // bytes sent on SFTP channels

	events chan string // "exec:LINE", "signal:NAME", "closed:LINE", "drop"

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*srvConn]struct{}
	frozen chan struct{} // non-nil while frozen; closed to thaw
	closed bool
	wg     sync.WaitGroup
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return s
}

// newTestServer starts a server listening on 127.0.0.1.
func newTestServer(t testing.TB) *testServer {
	s := newIdleServer(t)
	s.start()
	return s
}

// newIdleServer reserves an address but does not listen yet: dials are
// refused until start.
func newIdleServer(t testing.TB) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	s := &testServer{
		t: t, addr: addr, root: t.TempDir(),
		user: "admin", password: "secret",
		events: make(chan string, 4096),
		conns:  map[*srvConn]struct{}{},
	}
	hk := newSigner(t)
	s.hostKey.Store(&hk)
	t.Cleanup(s.close)
	return s
}

func (s *testServer) start() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	require.NoError(s.t, err)
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			s.event("accept")
			sc := &srvConn{Conn: nc, srv: s}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = nc.Close()
				return
			}
			s.conns[sc] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				s.serve(sc)
			}()
		}
	}()
}

func (s *testServer) close() {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		_ = s.ln.Close()
	}
	for c := range s.conns {
		_ = c.Conn.Close()
	}
	if s.frozen != nil {
		close(s.frozen)
		s.frozen = nil
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *testServer) endpoint() Endpoint {
	return Endpoint{Addr: s.addr, User: s.user, Password: s.password}
}

func (s *testServer) publicHostKey() ssh.PublicKey { return (*s.hostKey.Load()).PublicKey() }

func (s *testServer) setHostKey(k ssh.Signer) { s.hostKey.Store(&k) }

// dropAll ends every connection the way a rebooting guest does: the
// data already sent arrives, then EOF.
func (s *testServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.drop()
	}
}

// freeze stops every connection dead: nothing read, nothing written,
// TCP still open (a hung guest).
func (s *testServer) freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen == nil {
		s.frozen = make(chan struct{})
	}
}

func (s *testServer) gate() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frozen
}

func (s *testServer) event(e string) {
	select {
	case s.events <- e:
	default:
	}
}

// clearEvents forgets the events so far.
func (s *testServer) clearEvents() {
	for {
		select {
		case <-s.events:
		default:
			return
		}
	}
}

// waitEvent waits for an event starting with prefix, skipping others.
func (s *testServer) waitEvent(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-s.events:
			if strings.HasPrefix(e, prefix) {
				return e
			}
		case <-timeout:
			t.Fatalf("no server event %q within 10s", prefix)
			return ""
		}
	}
}

// srvConn lets the server freeze or drop a connection.
type srvConn struct {
	net.Conn
	srv     *testServer
	dropped atomic.Bool
}

func (c *srvConn) Read(p []byte) (int, error) {
	if g := c.srv.gate(); g != nil {
		<-g
	}
	return c.Conn.Read(p)
}

func (c *srvConn) Write(p []byte) (int, error) {
	if g := c.srv.gate(); g != nil {
		<-g
	}
	if c.dropped.Load() {
		return len(p), nil // into the void: the guest is gone
	}
	return c.Conn.Write(p)
}

// drop half-closes: the client reads what was sent, then EOF, and closes
// its end, which ends the server's read loop. A full close here could
// reset the connection and lose data already sent.
func (c *srvConn) drop() {
	if c.dropped.Swap(true) {
		return
	}
	c.srv.event("drop")
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		_ = c.Conn.Close()
	}
}

func (s *testServer) config() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{}
	if s.kbdOnly.Load() {
		cfg.KeyboardInteractiveCallback = func(md ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			s.authAttempts.Add(1)
			ans, err := ask("", "", []string{"Password:"}, []bool{false})
			if err != nil {
				return nil, err
			}
			if len(ans) == 1 && md.User() == s.user && ans[0] == s.password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	} else {
		cfg.PasswordCallback = func(md ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			s.authAttempts.Add(1)
			if md.User() == s.user && string(pw) == s.password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	if k := s.userKey.Load(); k != nil {
		want := (*k).Marshal()
		cfg.PublicKeyCallback = func(md ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if md.User() == s.user && string(k.Marshal()) == string(want) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		}
	}
	cfg.AddHostKey(*s.hostKey.Load())
	return cfg
}

func (s *testServer) serve(c *srvConn) {
	defer func() {
		_ = c.Conn.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if s.wedge.Load() {
		_, _ = io.Copy(io.Discard, c.Conn) // until the client gives up
		return
	}
	sconn, chans, reqs, err := ssh.NewServerConn(c, s.config())
	if err != nil {
		return
	}
	defer sconn.Close()
	s.handshakes.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for r := range reqs {
			if r.Type == "keepalive@openssh.com" && s.ignoreKeepalive.Load() {
				continue
			}
			if r.WantReply {
				_ = r.Reply(false, nil) // as OpenSSH does
			}
		}
	}()
	var sessions sync.WaitGroup
	var held []ssh.NewChannel // wedged opens, kept unanswered
	for nc := range chans {
		if s.wedgeOpens.Load() {
			held = append(held, nc)
			s.event("held-open")
			continue
		}
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			s.session(c, ch, creqs)
		}()
	}
	sessions.Wait()
	_ = held
}

func (s *testServer) session(c *srvConn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan string, 16)
	var work sync.WaitGroup
	defer work.Wait()
	defer cancel() // runs before work.Wait: the command ends with its channel
	for r := range reqs {
		switch r.Type {
		case "exec":
			var p struct{ Command string }
			if ssh.Unmarshal(r.Payload, &p) != nil {
				_ = r.Reply(false, nil)
				continue
			}
			_ = r.Reply(true, nil)
			s.event("exec:" + p.Command)
			work.Add(1)
			go func() {
				defer work.Done()
				status, signal := s.exec(ctx, c, p.Command, ch, sigs)
				switch {
				case signal != "":
					_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
						Signal     string
						CoreDumped bool
						Error      string
						Lang       string
					}{Signal: signal}))
				case status >= 0:
					_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
				default:
					s.event("closed:" + p.Command)
				}
				_ = ch.Close()
			}()
		case "subsystem":
			var p struct{ Name string }
			if ssh.Unmarshal(r.Payload, &p) != nil || p.Name != "sftp" {
				_ = r.Reply(false, nil)
				continue
			}
			_ = r.Reply(true, nil)
			work.Add(1)
			go func() {
				defer work.Done()
				srv, err := sftp.NewServer(&sftpChannel{Channel: ch, c: c, srv: s},
					sftp.WithServerWorkingDirectory(s.root))
				if err != nil {
					_ = ch.Close()
					return
				}
				_ = srv.Serve()
				_ = srv.Close()
			}()
		case "signal":
			var p struct{ Signal string }
			_ = ssh.Unmarshal(r.Payload, &p)
			s.event("signal:" + p.Signal)
			select {
			case sigs <- p.Signal:
			default:
			}
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}

// sftpChannel counts what the SFTP server sends and drops the
// connection once past the dropSFTPAfter mark.
type sftpChannel struct {
	ssh.Channel
	c   *srvConn
	srv *testServer
}

func (ch *sftpChannel) Write(p []byte) (int, error) {
	n, err := ch.Channel.Write(p)
	sent := ch.srv.sftpSent.Add(int64(n))
	if mark := ch.srv.dropSFTPAfter.Load(); mark > 0 && sent >= mark && ch.srv.dropSFTPAfter.CompareAndSwap(mark, 0) {
		ch.c.drop()
	}
	return n, err
}

// exec runs one command line: status >= 0 is an exit status, signal an
// exit signal, neither means the channel went away first.
func (s *testServer) exec(ctx context.Context, c *srvConn, line string, ch ssh.Channel, sigs <-chan string) (status int, signal string) {
	words, ok := shellWords(line)
	if !ok || len(words) == 0 {
		words = []string{""}
	}
	out, errOut := ch, ch.Stderr()
	switch words[0] {
	case "echo":
		fmt.Fprintln(out, strings.Join(words[1:], " "))
		return 0, ""
	case "echo-err":
		fmt.Fprintln(errOut, strings.Join(words[1:], " "))
		return 1, ""
	case "exit":
		n, _ := strconv.Atoi(words[len(words)-1])
		return n, ""
	case "cat":
		_, _ = io.Copy(out, ch)
		return 0, ""
	case "big": // big N: numbered lines, at least N bytes
		n, _ := strconv.Atoi(words[1])
		for i, w := 0, 0; w < n; i++ {
			k, _ := fmt.Fprintf(out, "line %07d\n", i)
			w += k
		}
		return 0, ""
	case "sleep-forever": // ignores signals: only closing the channel ends it
		<-ctx.Done()
		return -1, ""
	case "sleep-term": // ends on SIGTERM, like most programs
		for {
			select {
			case sig := <-sigs:
				if sig == "TERM" {
					return -1, "TERM"
				}
			case <-ctx.Done():
				return -1, ""
			}
		}
	case "reboot": // like `shutdown -r now`: the connection goes away
		c.drop()
		<-ctx.Done()
		return -1, ""
	case "shasum":
		if len(words) != 4 || words[1] != "-a" || words[2] != "256" {
			fmt.Fprintln(errOut, "usage: shasum -a 256 FILE")
			return 1, ""
		}
		p := words[3]
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.root, p)
		}
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(errOut, "shasum: %s: %v\n", words[3], err)
			return 1, ""
		}
		defer f.Close()
		h := sha256.New()
		_, _ = io.Copy(h, f)
		sum := h.Sum(nil)
		if s.lieShasum.Load() {
			sum[0] ^= 0xff
		}
		fmt.Fprintf(out, "%s  %s\n", hex.EncodeToString(sum), words[3])
		return 0, ""
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Dir = s.root
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode(), ""
	}
	if err != nil {
		fmt.Fprintln(errOut, err)
		return 127, ""
	}
	return 0, ""
}

// shellWords splits a command line the way sh would for the quoting
// Quote produces (single quotes, backslashes, plain double quotes).
func shellWords(line string) ([]string, bool) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; ch {
		case ' ', '\t', '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, false
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				return nil, false
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case '\\':
			if i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			}
			inWord = true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, true
}

// noLeaks fails the test if it leaves goroutines behind. Register it
// first: cleanups run last-in first-out, so it checks after the server
// and clients are closed.
func noLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// testOptions are fast but forgiving defaults for a loaded CI machine.
// promptly bounds how long a test waits for something that should end at
// once (a cancel, a dropped connection, a short timeout). It is not a speed
// check: what it rules out is waiting for ever or for an hour-long
// timeout, and it leaves room for a loaded 2-core machine under -race.
// Which thing ended the wait is asserted on the error, not on the clock.
const promptly = 20 * time.Second

func testOptions(t *testing.T) Options {
	return Options{
		ConnectTimeout:   10 * time.Second,
		HandshakeTimeout: 5 * time.Second,
		Keepalive:        time.Second,
		KeepaliveTimeout: 5 * time.Second,
		TermGrace:        200 * time.Millisecond,
		BackoffInitial:   10 * time.Millisecond,
		BackoffMax:       50 * time.Millisecond,
		ProgressInterval: time.Millisecond,
		Logf:             testLogf(t),
	}
}

// testLogf logs through t, but never after the test finished (a late
// log from a goroutine would panic).
func testLogf(t *testing.T) func(string, ...any) {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() })
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf(format, args...)
		}
	}
}

func dialTest(t *testing.T, s *testServer, o Options) *Client {
	t.Helper()
	c, err := Dial(context.Background(), s.endpoint(), o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
