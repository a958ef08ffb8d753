package guest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type runResult struct {
	res Result
	err error
}

func runAsync(ctx context.Context, c *Client, cmd Cmd) <-chan runResult {
	ch := make(chan runResult, 1)
	go func() {
		res, err := c.Run(ctx, cmd)
		ch <- runResult{res, err}
	}()
	return ch
}

func awaitRun(t *testing.T, ch <-chan runResult) runResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s")
		return runResult{}
	}
}

func TestRunReportsOutputAndExit(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	ctx := context.Background()

	before := time.Now()
	res, err := c.Run(ctx, Cmd{Line: "echo hello world"})
	require.NoError(t, err)
	assert.Equal(t, "echo hello world", res.Line)
	assert.Equal(t, 0, res.Exit)
	assert.Equal(t, "hello world\n", res.Stdout)
	assert.Empty(t, res.Stderr)
	assert.False(t, res.Cut)
	assert.False(t, res.Started.Before(before))
	assert.Positive(t, res.Duration)

	res, err = c.Run(ctx, Cmd{Line: "exit 3"})
	require.NoError(t, err, "a failing command is a result, not an error")
	assert.Equal(t, 3, res.Exit)

	res, err = c.Run(ctx, Cmd{Line: "echo-err it broke"})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Exit)
	assert.Equal(t, "it broke\n", res.Stderr)

	res, err = c.Run(ctx, Cmd{Line: "cat", Stdin: strings.NewReader("fed through stdin")})
	require.NoError(t, err)
	assert.Equal(t, "fed through stdin", res.Stdout)
}

func TestRunTimeoutSendsTermThenClosesTheSession(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.TermGrace = 100 * time.Millisecond
	c := dialTest(t, s, o)

	start := time.Now()
	res, err := c.Run(context.Background(), Cmd{Line: "sleep-forever", Timeout: 100 * time.Millisecond})
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCommandTimeout)
	assert.EqualError(t, err, `run "sleep-forever": timed out after 100ms`)
	assert.Equal(t, -1, res.Exit)
	s.waitEvent(t, "signal:TERM")          // asked politely first,
	s.waitEvent(t, "closed:sleep-forever") // then the session was closed
	assert.GreaterOrEqual(t, elapsed, 200*time.Millisecond, "timeout plus TERM grace")
	assert.Less(t, elapsed, promptly)

	// The connection is still good.
	res, err = c.Run(context.Background(), Cmd{Line: "echo fine"})
	require.NoError(t, err)
	assert.Equal(t, "fine\n", res.Stdout)
}

func TestRunCancelEndsACommandThatHonoursTerm(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.TermGrace = time.Hour // the command must not need it
	c := dialTest(t, s, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ch := runAsync(ctx, c, Cmd{Line: "sleep-term"})
	s.waitEvent(t, "exec:sleep-term")
	start := time.Now()
	cancel()
	r := awaitRun(t, ch)
	assert.ErrorIs(t, r.err, context.Canceled)
	s.waitEvent(t, "signal:TERM")
	assert.Less(t, time.Since(start), promptly)
}

func TestRunReportsTheExitOfACommandEndedByTerm(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.TermGrace = time.Hour
	c := dialTest(t, s, o)

	res, err := c.Run(context.Background(), Cmd{Line: "sleep-term", Timeout: 300 * time.Millisecond})
	assert.ErrorIs(t, err, ErrCommandTimeout)
	assert.Equal(t, 143, res.Exit, "128+SIGTERM, as a shell reports it")
	assert.Less(t, res.Duration, promptly)
}

func TestRunFailsPromptlyWhenTheGuestDropsTheConnection(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))

	start := time.Now()
	res, err := c.Run(context.Background(), Cmd{Line: "reboot"})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrConnectionLost)
	assert.Equal(t, -1, res.Exit)
	assert.Less(t, time.Since(start), promptly)

	// After the reboot step: Reconnect, and commands work again.
	require.NoError(t, c.Reconnect(context.Background()))
	res, err = c.Run(context.Background(), Cmd{Line: "echo back"})
	require.NoError(t, err)
	assert.Equal(t, "back\n", res.Stdout)
}

func TestRunFailsWhenKeepalivesGoUnanswered(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.Keepalive = 100 * time.Millisecond
	o.KeepaliveTimeout = 100 * time.Millisecond
	c := dialTest(t, s, o)
	s.ignoreKeepalive.Store(true)

	start := time.Now()
	_, err := c.Run(context.Background(), Cmd{Line: "sleep-forever"})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrConnectionLost)
	assert.Contains(t, err.Error(), "no keepalive reply within 100ms")
	assert.Less(t, time.Since(start), promptly, "about two keepalive intervals")
}

func TestRunFailsWhenTheGuestFreezes(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.Keepalive = 100 * time.Millisecond
	o.KeepaliveTimeout = 100 * time.Millisecond
	c := dialTest(t, s, o)

	ch := runAsync(context.Background(), c, Cmd{Line: "sleep-forever"})
	s.waitEvent(t, "exec:sleep-forever")
	start := time.Now()
	s.freeze() // TCP stays open; nothing is read or written any more
	r := awaitRun(t, ch)
	assert.ErrorIs(t, r.err, ErrConnectionLost)
	assert.Less(t, time.Since(start), promptly)
}

func TestRunOnAWedgedSessionOpenHonoursCtx(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	s.wedgeOpens.Store(true) // keepalives answered, channel opens never

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, Cmd{Line: "echo never"})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), promptly)

	_, err = c.Run(context.Background(), Cmd{Line: "echo never", Timeout: 100 * time.Millisecond})
	assert.ErrorIs(t, err, ErrCommandTimeout)
	// Close ends the abandoned opens too (noLeaks checks).
}

func TestRunKeepsTheTailOfLongOutput(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	o.OutputCap = 1000
	c := dialTest(t, s, o)

	res, err := c.Run(context.Background(), Cmd{Line: "big 200000"})
	require.NoError(t, err)
	assert.True(t, res.Cut)
	require.Len(t, res.Stdout, 1000)
	var full strings.Builder
	for i := 0; full.Len() < 200000; i++ {
		fmt.Fprintf(&full, "line %07d\n", i)
	}
	assert.True(t, strings.HasSuffix(full.String(), res.Stdout), "the kept part is the end of the output")

	res, err = c.Run(context.Background(), Cmd{Line: "echo short"})
	require.NoError(t, err)
	assert.False(t, res.Cut)
}

func TestTailBuffer(t *testing.T) {
	b := newTailBuffer(8)
	for _, p := range []string{"abc", "defgh", "ijklmnopqrstu", "vw", "xyz"} {
		n, err := b.Write([]byte(p))
		require.NoError(t, err)
		require.Equal(t, len(p), n)
	}
	assert.Equal(t, "stuvwxyz", b.String())
	assert.True(t, b.Cut())

	// What io.Copy hands it (ReadFrom): a stream in reads of any size.
	var full strings.Builder
	for i := 0; full.Len() < 100000; i++ {
		fmt.Fprintf(&full, "line %07d\n", i)
	}
	for _, r := range []io.Reader{strings.NewReader(full.String()), iotest.OneByteReader(strings.NewReader(full.String()[:3000])), iotest.HalfReader(strings.NewReader(full.String()))} {
		rb := newTailBuffer(1000)
		n, err := io.Copy(rb, r)
		require.NoError(t, err)
		require.Positive(t, n)
		want := full.String()[:n]
		assert.Equal(t, want[len(want)-min(1000, len(want)):], rb.String())
	}
	rb := newTailBuffer(10)
	_, err := io.Copy(rb, iotest.TimeoutReader(strings.NewReader("0123456789abcdef")))
	assert.ErrorIs(t, err, iotest.ErrTimeout, "a failed read is io.Copy's error")

	u := newTailBuffer(5)
	_, _ = u.Write([]byte("ab漢字")) // 2 + 3 + 3 bytes; the tail cuts 漢 in two
	assert.Equal(t, "字", u.String(), "no half rune at the head")

	small := newTailBuffer(100)
	_, _ = small.Write([]byte("all of it"))
	assert.Equal(t, "all of it", small.String())
	assert.False(t, small.Cut())
}

func TestCloseIsIdempotentAndFailsRunningCommands(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))

	ch := runAsync(context.Background(), c, Cmd{Line: "sleep-forever"})
	s.waitEvent(t, "exec:sleep-forever")
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	r := awaitRun(t, ch)
	assert.ErrorIs(t, r.err, ErrClosed)

	_, err := c.Run(context.Background(), Cmd{Line: "echo late"})
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, c.Reconnect(context.Background()), ErrClosed)
	assert.ErrorIs(t, c.Download(context.Background(), "x", t.TempDir()+"/x", nil), ErrClosed)
}

func TestCloseStopsAReconnectWaitingForTheGuest(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	lines := logTap(t, &o)
	c := dialTest(t, s, o)

	s.wedge.Store(true) // the guest never comes back
	s.dropAll()
	s.clearEvents()
	done := make(chan error, 1)
	go func() { done <- c.Reconnect(context.Background()) }()
	waitLog(t, lines, "reconnecting", 1)
	s.waitEvent(t, "accept")
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Reconnect did not stop on Close")
	}
}

// TestQuoteRoundTripsThroughTheServer: whatever the words, the command
// line built with Join reaches the guest's shell over SSH and comes back
// byte for byte, word boundaries included.
func TestQuoteRoundTripsThroughTheServer(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no /bin/sh for the test server")
	}
	noLeaks(t)
	s := newTestServer(t)
	c := dialTest(t, s, testOptions(t))
	r := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		words := make([]string, 1+r.IntN(4))
		for i := range words {
			words[i] = randomWord(r)
		}
		line := `printf '%s\000' ` + Join(words...)
		res, err := c.Run(context.Background(), Cmd{Line: line})
		require.NoError(t, err, "words %q", words)
		require.Equal(t, 0, res.Exit, "line %s: %s", line, res.Stderr)
		require.Equal(t, strings.Join(words, "\x00")+"\x00", res.Stdout, "line %s", line)
	}
}

// x/crypto/ssh before v0.59.0 could lose a session open that raced the
// end of the transport: the channel was added after the mux dropped its
// channels, the failed write of its open was reported as success, and
// NewSession waited for ever (and Close with it, waiting for the open).
// Commands started while the guest drops the connection must all end.
func TestCommandsStartedAsTheConnectionDropsAllEnd(t *testing.T) {
	noLeaks(t)
	s := newTestServer(t)
	o := testOptions(t)
	for i := range 150 {
		c, err := Dial(context.Background(), s.endpoint(), o)
		require.NoError(t, err)
		ended := make(chan error, 3)
		for range 3 {
			go func() {
				for {
					if _, err := c.Run(context.Background(), Cmd{Line: "echo x"}); err != nil {
						ended <- err
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(i%10) * 100 * time.Microsecond)
		s.dropAll()
		for range 3 {
			select {
			case err := <-ended:
				assert.ErrorIs(t, err, ErrConnectionLost)
			case <-time.After(promptly):
				require.FailNow(t, "a command started as the connection dropped never ended", "dial %d", i)
			}
		}
		closed := make(chan struct{})
		go func() { _ = c.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(promptly):
			require.FailNow(t, "Close waited for ever after the connection dropped", "dial %d", i)
		}
	}
}
