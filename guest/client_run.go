package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// Run runs cmd.Line in a new session. A non-zero exit is a Result, not an
// error. When cmd.Timeout passes or ctx ends first, the command gets
// SIGTERM, then Options.TermGrace to exit, then its session is closed;
// the error wraps ErrCommandTimeout or ctx's error. (Over SSH, closing
// the session of a command without a terminal does not kill it; a
// command that ignores SIGTERM may go on running in the guest.)
//
// When the connection dies under the command, or the command ends
// without an exit status, the error wraps ErrConnectionLost: a step
// running `shutdown -r now` should expect exactly that, then Reconnect.
//
// The Result always carries what was seen: the output tails, Exit (-1
// when no exit status arrived), Started and Duration.
func (c *Client) Run(ctx context.Context, cmd Cmd) (Result, error) {
	res := Result{Line: cmd.Line, Exit: -1, Started: time.Now()}
	stdout, stderr := newTailBuffer(c.o.OutputCap), newTailBuffer(c.o.OutputCap)
	finish := func(err error) (Result, error) {
		res.Duration = time.Since(res.Started)
		res.Stdout, res.Stderr = stdout.String(), stderr.String()
		res.Cut = stdout.Cut() || stderr.Cut()
		if err != nil {
			err = fmt.Errorf("run %q: %w", cmd.Line, err)
		}
		return res, err
	}

	cn, err := c.current()
	if err != nil {
		return finish(err)
	}
	if ctx.Err() != nil {
		return finish(context.Cause(ctx))
	}
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cmd.Timeout,
			fmt.Errorf("%w after %s", ErrCommandTimeout, cmd.Timeout))
		defer cancel()
	}

	sess, err := cn.startSession(ctx, cmd, stdout, stderr)
	if err != nil {
		return finish(err)
	}
	waitCh := make(chan error, 1)
	if !cn.spawn(func() { waitCh <- sess.Wait() }) {
		_ = sess.Close()
		return finish(cn.getCause())
	}

	var werr error
	select {
	case werr = <-waitCh:
	case <-ctx.Done():
		select { // the command may have finished at the same moment
		case werr = <-waitCh:
		default:
			werr = c.stop(sess, waitCh)
			if ee, ok := errors.AsType[*ssh.ExitError](werr); ok {
				res.Exit = ee.ExitStatus()
			}
			return finish(ctxErr(ctx, res.Started))
		}
	}
	_ = sess.Close()

	if werr == nil {
		res.Exit = 0
		return finish(nil)
	}
	if ee, ok := errors.AsType[*ssh.ExitError](werr); ok {
		res.Exit = ee.ExitStatus()
		return finish(nil)
	}
	return finish(cn.lost(werr))
}

// stop ends a command that outlived its time: SIGTERM, TermGrace, then
// close the session. It returns the session's end, or nil when even that
// did not come (a frozen guest; the keepalive will end the transport and
// the waiting goroutine with it).
func (c *Client) stop(sess *ssh.Session, waitCh <-chan error) error {
	_ = sess.Signal(ssh.SIGTERM)
	grace := time.NewTimer(c.o.TermGrace)
	defer grace.Stop()
	select {
	case err := <-waitCh:
		_ = sess.Close()
		return err
	case <-grace.C:
	}
	_ = sess.Close()
	// A live guest acknowledges the close at once; don't wait long for
	// one that does not.
	ack := time.NewTimer(min(c.o.TermGrace, time.Second))
	defer ack.Stop()
	select {
	case err := <-waitCh:
		return err
	case <-ack.C:
		return nil
	}
}

// startSession opens a session and starts line in it, bounded by ctx: a
// guest that accepts the connection but never answers a channel open
// must not hang the caller. An abandoned open is cleaned up when it
// completes or when the connection closes.
func (cn *conn) startSession(ctx context.Context, cmd Cmd, stdout, stderr *tailBuffer) (*ssh.Session, error) {
	type opened struct {
		s   *ssh.Session
		err error
	}
	start := time.Now()
	ch := make(chan opened)
	abandon := make(chan struct{})
	ok := cn.spawn(func() {
		s, err := cn.ssh.NewSession()
		if err == nil {
			s.Stdin, s.Stdout, s.Stderr = cmd.Stdin, stdout, stderr
			if err = s.Start(cmd.Line); err != nil {
				_ = s.Close()
				s = nil
			}
		}
		select {
		case ch <- opened{s, err}:
		case <-abandon:
			if s != nil { // started just too late: no grace, but still TERM
				_ = s.Signal(ssh.SIGTERM)
				_ = s.Close()
			}
		}
	})
	if !ok {
		return nil, cn.getCause()
	}
	select {
	case o := <-ch:
		if o.err == nil {
			return o.s, nil
		}
		if _, refused := errors.AsType[*ssh.OpenChannelError](o.err); refused {
			return nil, fmt.Errorf("open session: %w", o.err)
		}
		return nil, cn.startErr(o.err)
	case <-ctx.Done():
		close(abandon)
		return nil, ctxErr(ctx, start)
	}
}

// startErr tells a refused exec from a dead transport. A transport that
// is failing shows in NewSession or Start a moment before the connection
// ends, as io.EOF or the socket's own error (x/crypto v0.59.0 returns the
// failed write of a channel open); anything else counts as lost only if
// the connection ends right after it.
func (cn *conn) startErr(err error) error {
	if cause := cn.getCause(); cause != nil {
		return cause
	}
	var netErr *net.OpError
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &netErr) {
		return cn.lost(err)
	}
	if cn.endsSoon() {
		return cn.getCause()
	}
	return fmt.Errorf("start: %w", err)
}

// ctxErr says why ctx ended: a Cmd.Timeout says its own duration, any
// other end gets the time the command had.
func ctxErr(ctx context.Context, start time.Time) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrCommandTimeout) {
		return cause
	}
	return fmt.Errorf("%w after %s", cause, time.Since(start).Round(time.Millisecond))
}
