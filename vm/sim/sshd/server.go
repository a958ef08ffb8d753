// Package sshd is the simulated machine's SSH server: OpenSSH's limits
// and channel semantics (exec, shell, env, signals, exit-status) over
// golang.org/x/crypto/ssh, with an SFTP subsystem over the machine's
// tree. Commands go to a Shell; the server knows nothing of what they do.
package sshd

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

// Limits as OpenSSH's sshd applies them by default.
const (
	MaxStartups      = 10 // concurrent unauthenticated connections (MaxStartups)
	MaxSessions      = 10 // sessions per connection (MaxSessions)
	sshdMaxAuthTries = 6  // MaxAuthTries
	sshdLoginGrace   = 30 * time.Second
	// Version says what the server is: nothing pretends to be a Mac's
	// OpenSSH in the banner.
	Version = guest.SimServerVersion
)

// Why a connection or a command ended (context causes).
var (
	errConnClosed = errors.New("connection closed")
	errChanClosed = errors.New("session closed by the client")
	// ErrRebooting is the cause DropAll gives connections a reboot ends.
	ErrRebooting = errors.New("machine rebooting")
	errStopped   = errors.New("machine stopped")
)

// sshdSignal is a `signal` channel request: it ends the running command,
// and the session reports exit-signal like sshd does for a killed process.
type sshdSignal struct{ name string }

func (s *sshdSignal) Error() string { return "signal " + s.name }

// ServerConfig is the server side of the handshake: the machine's host
// key and its one user, by password and by public key.
func ServerConfig(hostKey ssh.Signer, user, password string, keys []ssh.PublicKey, logf func(string, ...any)) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{MaxAuthTries: sshdMaxAuthTries, ServerVersion: Version}
	if password != "" {
		cfg.PasswordCallback = func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			okUser := subtle.ConstantTimeCompare([]byte(c.User()), []byte(user))
			okPass := subtle.ConstantTimeCompare(pw, []byte(password))
			if okUser&okPass == 1 {
				return nil, nil
			}
			return nil, fmt.Errorf("wrong password for %s", c.User())
		}
	}
	if len(keys) > 0 {
		cfg.PublicKeyCallback = func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == user {
				for _, a := range keys {
					if bytes.Equal(a.Marshal(), k.Marshal()) {
						return nil, nil
					}
				}
			}
			return nil, fmt.Errorf("public key %s not authorized for %s", ssh.FingerprintSHA256(k), c.User())
		}
	}
	cfg.AuthLogCallback = func(c ssh.ConnMetadata, method string, err error) {
		if err != nil && method != "none" {
			logf("sim: %s: %s authentication for %s failed: %v", c.RemoteAddr(), method, c.User(), err)
		}
	}
	cfg.AddHostKey(hostKey)
	return cfg
}

// Shell runs the commands of exec and shell requests.
type Shell interface {
	// Run runs one command line (an exec request) and returns its status.
	Run(ctx context.Context, line string, env map[string]string, sio shell.IO) int
	// Interactive reads command lines from sio.In (a shell request).
	Interactive(ctx context.Context, env map[string]string, sio shell.IO) int
}

// Config is what a Server serves.
type Config struct {
	Listener net.Listener
	SSH      *ssh.ServerConfig // see ServerConfig
	Shell    Shell
	FS       *shell.FS // the tree SFTP serves
	Home     string    // guest path where SFTP starts
	// WG counts the server's goroutines; the machine waits on it at Stop.
	// Serve's own count must be added before Serve is started.
	WG   *sync.WaitGroup
	Logf func(string, ...any)
	// Hang and Cutter carry the machine's sabotage (nil: none): Hang
	// makes matching exec commands hang, Cutter cuts SFTP transfers.
	Hang   *regexp.Regexp
	Cutter *Cutter
	// Route, when set, carries the connections Listener accepts (the
	// guest's NAT network to the host), so a VPN can capture them; see
	// Route. ServeConn's connections (the loopback) never go over it.
	Route *Route
}

// Server serves one machine's SSH port from Start to Stop, across
// reboots. It starts booting: it accepts and drops connections until
// SetBooting(false).
type Server struct {
	ctx    context.Context // the machine's run; cancelled by Stop
	ln     net.Listener
	host   *bufconn.Listener // DialHost's connections: the same NAT path, in memory
	config *ssh.ServerConfig
	sh     Shell
	root   *shell.FS
	home   string // where sftp starts
	wg     *sync.WaitGroup
	logf   func(string, ...any)
	hang   *regexp.Regexp
	cutter *Cutter
	route  *Route

	// stdinBufs are the copy buffers of commands' stdin: io.Copy's own
	// 32 KiB per command was 2 % of a simulated run's CPU, nearly all of
	// it zeroing memory no command read into.
	stdinBufs sync.Pool

	mu      sync.Mutex
	booting bool // accept and close at once, as a Mac that is not up yet
	closed  bool
	conns   map[*sshdConn]struct{}
	unauth  int
	running int             // exec and shell commands in flight
	idle    []chan struct{} // closed when running drops to 0
}

// New returns a server for cfg that runs until ctx ends or Close.
func New(ctx context.Context, cfg Config) *Server {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Server{
		ctx: ctx, ln: cfg.Listener, config: cfg.SSH, sh: cfg.Shell, root: cfg.FS, home: cfg.Home,
		wg: cfg.WG, logf: logf, hang: cfg.Hang, cutter: cfg.Cutter, route: cfg.Route,
		booting: true, conns: map[*sshdConn]struct{}{},
		stdinBufs: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }},
		host:      bufconn.Listen(hostConnBuffer),
	}
}

// hostConnBuffer is what each direction of a DialHost connection holds
// before its writer waits, as for a full TCP window: four of
// x/crypto/ssh's 32 KiB channel data packets.
const hostConnBuffer = 128 << 10

type sshdConn struct {
	net.Conn
	cancel context.CancelCauseFunc
}

// Serve accepts connections, on the listener and from DialHost, until
// Close; WG must count it.
func (s *Server) Serve() {
	s.wg.Add(1)
	go s.serve(s.host)
	s.serve(s.ln)
}

// DialHost is a connection from the host to sshd over the guest's NAT
// network, the path a connection to the listener's address takes (the
// route, booting, MaxStartups), made in memory for a client in this
// process: a CPU profile of 600 simulated attempts put 18 % of the run
// in the loopback's read and write calls under both ends of SSH. It
// fails once the server is closed.
func (s *Server) DialHost(ctx context.Context) (net.Conn, error) {
	return s.host.DialContext(ctx)
}

// serve accepts ln's connections until it closes; WG counts it.
func (s *Server) serve(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil || s.isClosed() {
				return
			}
			s.logf("sim: accept: %v", err)
			// out of file descriptors and the like: pause rather than spin
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		if s.route != nil {
			c = s.route.Wrap(c)
		}
		s.admit(c)
	}
}

// ServeConn serves one connection that reached sshd from inside the
// guest (the guest agent's forward to 127.0.0.1:22), under the same
// rules as the listener's: dropped while booting, MaxStartups.
func (s *Server) ServeConn(c net.Conn) { s.admit(c) }

func (s *Server) admit(c net.Conn) {
	s.mu.Lock()
	if s.closed || s.booting || s.unauth >= MaxStartups {
		busy := s.unauth >= MaxStartups && !s.booting
		s.mu.Unlock()
		if busy {
			s.logf("sim: drop connection from %s: too many unauthenticated connections (MaxStartups %d)", c.RemoteAddr(), MaxStartups)
		}
		c.Close()
		return
	}
	s.unauth++
	ctx, cancel := context.WithCancelCause(s.ctx)
	sc := &sshdConn{Conn: c, cancel: cancel}
	s.conns[sc] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.handle(ctx, sc)
}

func (s *Server) forget(c *sshdConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.cancel(errConnClosed)
	c.Close()
}

func (s *Server) handle(ctx context.Context, c *sshdConn) {
	defer s.wg.Done()
	defer s.forget(c)
	_ = c.SetDeadline(time.Now().Add(sshdLoginGrace))
	sconn, chans, reqs, err := ssh.NewServerConn(c, s.config)
	s.mu.Lock()
	s.unauth--
	s.mu.Unlock()
	if err != nil {
		s.logf("sim: %s: handshake: %v", c.RemoteAddr(), err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	s.logf("sim: %s: %s logged in", c.RemoteAddr(), sconn.User())

	var noMoreSessions atomic.Bool
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for req := range reqs {
			switch req.Type {
			case "no-more-sessions@openssh.com":
				noMoreSessions.Store(true)
				_ = req.Reply(true, nil)
			default:
				// OpenSSH's sshd answers keepalive@openssh.com and every
				// global request it does not know with a failure reply;
				// clients take any reply as a sign of life.
				_ = req.Reply(false, nil)
			}
		}
	}()

	var sessions atomic.Int32
	for nc := range chans {
		switch {
		case nc.ChannelType() != "session":
			_ = nc.Reject(ssh.Prohibited, "only sessions are allowed")
		case noMoreSessions.Load():
			_ = nc.Reject(ssh.Prohibited, "no more sessions")
		case sessions.Load() >= MaxSessions:
			_ = nc.Reject(ssh.Prohibited, fmt.Sprintf("too many sessions (MaxSessions %d)", MaxSessions))
		case s.isBooting():
			_ = nc.Reject(ssh.ConnectionFailed, "shutting down")
		default:
			sessions.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer sessions.Add(-1)
				s.session(ctx, c, nc)
			}()
		}
	}
}

func (s *Server) isBooting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.booting
}

// session serves one session channel of connection c: requests until the
// channel closes, at most one program (exec, shell or the sftp subsystem).
func (s *Server) session(connCtx context.Context, c *sshdConn, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancelCause(connCtx)
	env := map[string]string{}
	var done chan struct{} // set once a program runs; closed when it ends
	start := func(run func()) {
		done = make(chan struct{})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(done)
			run()
		}()
	}
	for req := range reqs {
		switch req.Type {
		case "pty-req", "window-change":
			// accepted and ignored: the sim has no terminal
			_ = req.Reply(true, nil)
		case "env":
			var kv struct{ Name, Value string }
			if done != nil || ssh.Unmarshal(req.Payload, &kv) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			env[kv.Name] = kv.Value
			_ = req.Reply(true, nil)
		case "exec", "shell":
			var x struct{ Command string }
			if req.Type == "exec" && ssh.Unmarshal(req.Payload, &x) != nil || done != nil || !s.begin() {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			cmdEnv := env
			start(func() {
				defer s.end()
				s.runCommand(ctx, ch, x.Command, cmdEnv)
			})
		case "subsystem":
			var x struct{ Name string }
			if ssh.Unmarshal(req.Payload, &x) != nil || x.Name != "sftp" || done != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			start(func() {
				s.serveSFTP(ctx, ch, func() {
					s.logf("sim: sabotage: cutting the connection of %s mid-transfer", c.RemoteAddr())
					c.cancel(errCut)
					c.Close()
				})
			})
		case "signal":
			var sig struct{ Signal string }
			if done != nil && ssh.Unmarshal(req.Payload, &sig) == nil {
				s.logf("sim: signal %s", sig.Signal)
				cancel(&sshdSignal{name: sig.Signal})
			}
			_ = req.Reply(false, nil) // sent without want-reply; this is a no-op then
		default:
			// keepalive@openssh.com, x11-req, auth-agent-req@openssh.com,
			// eow@openssh.com...: a failure reply, as OpenSSH's sshd sends
			_ = req.Reply(false, nil)
		}
	}
	// the client closed the channel, or the connection is gone
	cancel(errChanClosed)
	if done != nil {
		<-done
	}
	ch.Close()
}

// runCommand runs an exec request (or, with an empty command, a shell
// reading commands from stdin) and reports how it ended.
func (s *Server) runCommand(ctx context.Context, ch ssh.Channel, command string, env map[string]string) {
	stdin, stopStdin := s.stdin(ctx, ch)
	sio := shell.IO{In: stdin, Out: ch, Err: ch.Stderr()}
	var code int
	switch {
	case s.hang != nil && command != "" && s.hang.MatchString(command):
		s.logf("sim: sabotage: %q hangs", command)
		<-ctx.Done()
	case command == "":
		code = s.sh.Interactive(ctx, env, sio)
	default:
		code = s.sh.Run(ctx, command, env, sio)
	}
	stopStdin()
	var sig *sshdSignal
	switch cause := context.Cause(ctx); {
	case errors.As(cause, &sig):
		_ = ch.CloseWrite()
		_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: sig.name}))
	case cause != nil:
		// the client left, or the machine reboots or stops: a real Mac
		// reports nothing either
	default:
		_ = ch.CloseWrite()
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
	}
	_ = ch.Close()
}

// stdin gives a command the channel's input in a form that fails as soon
// as the command's context ends, so a command blocked reading stdin
// (cat) still returns on a signal.
func (s *Server) stdin(ctx context.Context, ch ssh.Channel) (io.Reader, func()) {
	pr, pw := io.Pipe()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := s.stdinBufs.Get().(*[]byte)
		_, err := io.CopyBuffer(pw, ch, *buf)
		s.stdinBufs.Put(buf)
		pw.CloseWithError(err) // nil: EOF
	}()
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(context.Cause(ctx)) })
	return pr, func() {
		stop()
		pr.Close()
	}
}

// serveSFTP serves the sftp subsystem on ch with OpenSSH's sftp-server
// limits (see sftpFilter); cut drops the connection (for a sabotaged
// transfer). The session ends with sftp-server's exit status: 0, or what
// it exits with on a packet it refuses.
//
// The allocator (pkg/sftp calls it experimental) reuses a session's
// packet buffers instead of allocating 255 KiB per write request: a
// 2.5 MB upload went from 8.5 to 6.0 MB allocated and a quarter less
// CPU. It is safe as long as no handler keeps a request's bytes, and
// none does: the tree copies what WriteAt is given, or only compares
// it with a shared file's bytes (shell.FS.follows).
func (s *Server) serveSFTP(ctx context.Context, ch ssh.Channel, cut func()) {
	srv := sftp.NewRequestServer(newSFTPFilter(ch), sftpHandlers(s.root, s.cutter, cut),
		sftp.WithStartDirectory(s.home), sftp.WithRSMaxTxPacket(sftpMaxRead), sftp.WithRSAllocator())
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve()
	status := 0
	var refused *sftpRefusal
	switch {
	case errors.As(err, &refused):
		status = refused.exit
		s.logf("sim: sftp: %v: ending the session with status %d, as sftp-server does", refused, status)
	case err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil:
		s.logf("sim: sftp: %v", err)
	}
	if ctx.Err() == nil {
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
	}
	srv.Close()
}

// begin counts a command in; false while the machine is going down.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.booting || s.closed {
		return false
	}
	s.running++
	return true
}

func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if s.running == 0 {
		for _, c := range s.idle {
			close(c)
		}
		s.idle = nil
	}
}

// IdleCh is closed when no command runs.
func (s *Server) IdleCh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(chan struct{})
	if s.running == 0 {
		close(c)
	} else {
		s.idle = append(s.idle, c)
	}
	return c
}

// SetBooting makes the server drop new connections and commands (true),
// as a Mac that is going down or not up yet, or serve them (false).
func (s *Server) SetBooting(b bool) {
	s.mu.Lock()
	s.booting = b
	s.mu.Unlock()
}

// DropAll ends every connection at once, authenticated or not.
func (s *Server) DropAll(cause error) {
	s.mu.Lock()
	conns := make([]*sshdConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.cancel(cause)
		c.Close()
	}
}

// Close stops listening and drops every connection.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ln.Close()
	s.host.Close()
	s.DropAll(errStopped)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
