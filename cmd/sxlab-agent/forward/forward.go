// Package forward is sxlab-agent's core: it accepts connections on one
// listener (vsock in a guest, TCP or a unix socket in tests) and joins
// each to a fresh connection from a dial function (the guest's sshd at
// 127.0.0.1:22). It knows nothing of vsock or macOS, so it is tested on
// Linux.
package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// DialFunc opens the connection an accepted one is joined to.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Serve accepts on ln until ctx ends or ln fails, and forwards each
// connection to one from dial. A connection whose dial fails is closed
// at once (the client sees EOF, as with a refused port). Half-closes are
// passed on, so a side that finishes sending can still read the answer.
// Serve closes ln, and returns only once every connection it accepted is
// closed and its goroutines are gone; its error is nil after ctx ended.
// logf, when set, receives one line per event worth a log.
func Serve(ctx context.Context, ln net.Listener, dial DialFunc, logf func(format string, args ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			join(ctx, c, dial, logf)
		}()
	}
}

// join forwards one accepted connection.
func join(ctx context.Context, client net.Conn, dial DialFunc, logf func(string, ...any)) {
	defer client.Close()
	target, err := dial(ctx)
	if err != nil {
		logf("forward %s: dial: %v; closing the connection", client.RemoteAddr(), err)
		return
	}
	defer target.Close()
	// Closing both ends is what unblocks the copies when ctx ends.
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		target.Close()
	})
	defer stop()

	errs := make(chan error, 2)
	go func() { errs <- pipe(target, client) }()
	go func() { errs <- pipe(client, target) }()
	for range 2 {
		if err := <-errs; err != nil {
			// One side broke: the other direction cannot finish
			// meaningfully, so end both.
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				logf("forward %s: %v", client.RemoteAddr(), err)
			}
			client.Close()
			target.Close()
		}
	}
}

// closeWriter is a connection that can end its sending side alone
// (*net.TCPConn, *net.UnixConn, the agent's vsock connection).
type closeWriter interface {
	CloseWrite() error
}

// pipe copies src to dst until src ends, then half-closes dst (or closes
// it, when it cannot half-close).
func pipe(dst, src net.Conn) error {
	_, err := io.Copy(dst, src)
	if err != nil {
		return err
	}
	if cw, ok := dst.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("half-close: %w", err)
		}
		return nil
	}
	return dst.Close()
}
