package sim

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/sshd"
)

func TestPasswordAuth(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	out, _, code := run(t, dial(t, m.ep), "hello")
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello from admin\n", out)

	for name, cfg := range map[string]*ssh.ClientConfig{
		"wrong password": clientConfig(t, m.ep, ssh.Password("nope")),
		"wrong user":     func() *ssh.ClientConfig { c := clientConfig(t, m.ep); c.User = "root"; return c }(),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := ssh.Dial("tcp", m.ep.Addr, cfg)
			if c != nil {
				c.Close()
			}
			assert.ErrorContains(t, err, "unable to authenticate")
		})
	}
}

func TestImagePasswordReplacesTheDefault(t *testing.T) {
	noLeaks(t)
	m := startMachine(t, func(_ *Options, img *vm.Image, _ *fakeModel) { img.User, img.Password = "tester", "s3cret" })
	assert.Equal(t, "tester", m.ep.User)
	out, _, _ := run(t, dial(t, m.ep), "whoami; echo $HOME")
	assert.Equal(t, "tester\n/Users/tester\n", out)
	c, err := ssh.Dial("tcp", m.ep.Addr, clientConfig(t, m.ep, ssh.Password("admin")))
	if c != nil {
		c.Close()
	}
	assert.Error(t, err)
}

func TestPublicKeyAuth(t *testing.T) {
	noLeaks(t)
	good, _ := newClientKey(t)
	bad, _ := newClientKey(t)
	m := startMachine(t, func(o *Options, _ *vm.Image, _ *fakeModel) { o.AuthorizedKeys = []ssh.PublicKey{good.PublicKey()} })
	out, _, code := run(t, dial(t, m.ep, ssh.PublicKeys(good)), "hello")
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello from admin\n", out)

	c, err := ssh.Dial("tcp", m.ep.Addr, clientConfig(t, m.ep, ssh.PublicKeys(bad)))
	if c != nil {
		c.Close()
	}
	assert.ErrorContains(t, err, "unable to authenticate")
}

func TestExecSeparatesStdoutStderrAndExitStatus(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := dial(t, m.ep)
	out, errs, code := run(t, c, "echo out; echo err >&2; fail; exit 3")
	assert.Equal(t, "out\n", out)
	assert.Equal(t, "err\nfail: it failed\n", errs)
	assert.Equal(t, 3, code)

	out, errs, code = run(t, c, "true")
	assert.Equal(t, "", out+errs)
	assert.Equal(t, 0, code)
}

func TestUnknownCommandIsZshsCommandNotFound(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	out, errs, code := run(t, dial(t, m.ep), "frobnicate --now")
	assert.Equal(t, "", out)
	assert.Equal(t, "zsh: command not found: frobnicate\n", errs)
	assert.Equal(t, 127, code)
}

func TestModelCommandPanicIsACrashNotAnOutage(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := dial(t, m.ep)
	_, errs, code := run(t, c, "panic")
	assert.Equal(t, 134, code)
	assert.Contains(t, errs, "panic crashed: boom")
	out, _, _ := run(t, c, "hello")
	assert.Equal(t, "hello from admin\n", out)
}

// startBlocking starts `block` on a new session and waits until it runs.
func startBlocking(t *testing.T, c *ssh.Client) *ssh.Session {
	t.Helper()
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, s.Start("block"))
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "started\n", line)
	return s
}

func TestSignalEndsABlockingCommand(t *testing.T) {
	noLeaks(t)
	m := startMachine(t, func(o *Options, _ *vm.Image, _ *fakeModel) { o.TimeScale = 1 }) // sleep really waits
	c := dial(t, m.ep)
	s := startBlocking(t, c)
	require.NoError(t, s.Signal(ssh.SIGTERM))
	err := s.Wait()
	var ee *ssh.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, "TERM", ee.Signal(), "reported like a killed process")

	// sleep is cancelled the same way, and stdin readers too
	for _, cmd := range []string{"sleep 3600", "cat"} {
		s, err := c.NewSession()
		require.NoError(t, err)
		_, err = s.StdinPipe() // held open: cat would wait forever
		require.NoError(t, err)
		require.NoError(t, s.Start(cmd))
		require.NoError(t, s.Signal(ssh.SIGINT))
		done := make(chan error, 1)
		go func() { done <- s.Wait() }()
		select {
		case err := <-done:
			require.ErrorAs(t, err, &ee, cmd)
			assert.Equal(t, "INT", ee.Signal(), cmd)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s survived SIGINT", cmd)
		}
	}
}

func TestKeepalivesAreAnswered(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := dial(t, m.ep)
	ok, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
	require.NoError(t, err, "answered")
	assert.False(t, ok, "with a failure reply, as OpenSSH's sshd does")

	s, err := c.NewSession()
	require.NoError(t, err)
	defer s.Close()
	ok, err = s.SendRequest("keepalive@openssh.com", true, nil)
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestSessionLimitPerConnection(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := dial(t, m.ep)
	var sessions []*ssh.Session
	for i := 0; i < sshd.MaxSessions; i++ {
		s, err := c.NewSession()
		require.NoError(t, err, "session %d", i+1)
		sessions = append(sessions, s)
	}
	_, err := c.NewSession()
	var oe *ssh.OpenChannelError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, ssh.Prohibited, oe.Reason)

	// a second connection has its own budget
	out, _, _ := run(t, dial(t, m.ep), "hello")
	assert.Equal(t, "hello from admin\n", out)

	// closing a session frees a slot
	require.NoError(t, sessions[0].Run("true"))
	require.Eventually(t, func() bool {
		s, err := c.NewSession()
		if err != nil {
			return false
		}
		s.Close()
		return true
	}, 5*time.Second, 10*time.Millisecond)
	for _, s := range sessions[1:] {
		s.Close()
	}
}

func TestUnauthenticatedConnectionsAreCapped(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	readBanner := func(c net.Conn) (string, error) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	for i := 0; i < sshd.MaxStartups; i++ {
		c, err := net.Dial("tcp", m.ep.Addr)
		require.NoError(t, err)
		conns = append(conns, c)
		banner, err := readBanner(c)
		require.NoError(t, err)
		require.Equal(t, sshd.Version+"\r\n", banner)
	}
	extra, err := net.Dial("tcp", m.ep.Addr)
	require.NoError(t, err)
	_, err = readBanner(extra)
	extra.Close()
	assert.ErrorIs(t, err, io.EOF, "the 11th unauthenticated connection is dropped")

	conns[0].Close()
	require.Eventually(t, func() bool {
		c, err := ssh.Dial("tcp", m.ep.Addr, clientConfig(t, m.ep))
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, 5*time.Second, 20*time.Millisecond, "a slot frees when a connection leaves")
}

func TestRebootDropsConnectionsAndSshdReturnsWithTheSameKey(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	// 60 s of simulated boot at time_scale 0.01: 0.6 s of real time
	m := startMachine(t, func(o *Options, _ *vm.Image, fm *fakeModel) {
		o.TimeScale = 0.01
		fm.bootDelay.Store(int64(60 * time.Second))
	})
	before := m.Now()
	c := dial(t, m.ep)
	other := dial(t, m.ep)
	blocked := startBlocking(t, other)

	_, errs, code := run(t, c, "reboot")
	assert.Equal(t, 1, code, "reboot needs root")
	assert.Contains(t, errs, "not permitted")

	_, _, code = run(t, c, "sudo reboot")
	assert.Equal(t, 0, code, "the exit status of the command that asked for the reboot arrives")

	waitDone := make(chan error, 1)
	go func() { waitDone <- c.Wait() }()
	select {
	case <-waitDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection survived the reboot")
	}
	err := blocked.Wait()
	var ee *ssh.ExitError
	assert.False(t, errors.As(err, &ee), "a command cut by the reboot reports no status: %v", err)

	// booting: connections are dropped at once
	cl, err := ssh.Dial("tcp", m.ep.Addr, clientConfig(t, m.ep))
	if cl != nil {
		cl.Close()
	}
	require.Error(t, err)

	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	want := m.ep
	want.Stream, ep.Stream = nil, nil // funcs do not compare
	assert.Equal(t, want, ep, "same address, same host key")
	out, _, code := run(t, dial(t, ep), "hello") // dial pins the old host key
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello from admin\n", out)
	assert.Equal(t, int32(2), m.model.boots.Load())
	assert.GreaterOrEqual(t, m.Now().Sub(before), 60*time.Second, "the guest clock shows the simulated boot")
}

func TestStopDuringRebootEndsEverything(t *testing.T) {
	noLeaks(t)
	m := startMachine(t, func(o *Options, _ *vm.Image, _ *fakeModel) { o.TimeScale = 1 })
	m.model.bootDelay.Store(int64(time.Hour))
	m.Reboot()
	m.Reboot() // a second one while rebooting is ignored
	require.NoError(t, m.Stop(context.Background()))
}

func TestEnvPtyAndShellRequests(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := dial(t, m.ep)

	s, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s.Setenv("LANG", "de_DE.UTF-8"))
	require.NoError(t, s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}))
	out, err := s.Output("echo $LANG; envof LANG")
	require.NoError(t, err)
	assert.Equal(t, "de_DE.UTF-8\nde_DE.UTF-8\n", string(out))

	s, err = c.NewSession()
	require.NoError(t, err)
	s.Stdin = strings.NewReader("cd /tmp\npwd\necho 'two\nlines'\nexit 4\necho never\n")
	var stdout strings.Builder
	s.Stdout = &stdout
	require.NoError(t, s.Shell())
	err = s.Wait()
	var ee *ssh.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 4, ee.ExitStatus())
	assert.Equal(t, "/tmp\ntwo\nlines\n", stdout.String())
}

func TestOtherChannelsAndSubsystemsAreRefused(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := dial(t, m.ep)
	_, err := c.Dial("tcp", "127.0.0.1:1")
	assert.Error(t, err, "no port forwarding")
	s, err := c.NewSession()
	require.NoError(t, err)
	defer s.Close()
	assert.Error(t, s.RequestSubsystem("netconf"))
}

// A restart empties /tmp (docs/macos-behaviour.md rule 26); other
// folders keep what they had.
func TestRebootEmptiesTmp(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	require.NoError(t, m.FS().MkdirAll("/tmp/sxlab", 0o755))
	require.NoError(t, m.FS().WriteFile("/tmp/sxlab/sxlab-probe", []byte("probe"), 0o755))
	require.NoError(t, m.FS().WriteFile("/private/tmp/left", []byte("x"), 0o644))
	require.NoError(t, m.FS().WriteFile("/Users/admin/kept", []byte("kept"), 0o644))
	m.Reboot()
	ep, err := m.Endpoint(context.Background())
	require.NoError(t, err)
	_, _, code := run(t, dial(t, ep), "hello")
	require.Equal(t, 0, code)
	for _, gone := range []string{"/tmp/sxlab/sxlab-probe", "/tmp/sxlab", "/private/tmp/left"} {
		_, err := m.FS().Stat(gone)
		assert.ErrorIs(t, err, fs.ErrNotExist, gone)
	}
	_, err = m.FS().Stat("/tmp")
	assert.NoError(t, err, "the folder itself stays")
	data, err := m.FS().ReadFile("/Users/admin/kept")
	require.NoError(t, err)
	assert.Equal(t, "kept", string(data))
}
