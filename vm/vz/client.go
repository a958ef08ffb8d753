package vz

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// callTimeout bounds one request when ctx has no deadline: a restore or a
// save of a large guest takes tens of seconds, nothing takes minutes.
const callTimeout = 5 * time.Minute

// Call sends one request to the worker listening on socket and returns its
// reply. A reply with OK false is returned as it is, not as an error:
// the caller words it (see explain).
func Call(ctx context.Context, socket string, req Request) (Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return Response{}, fmt.Errorf("reach the vz worker at %s: %w", socket, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()

	line, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("encode %s request: %w", req.Op, err)
	}
	if _, err := c.Write(append(line, '\n')); err != nil {
		return Response{}, fmt.Errorf("send %s to the vz worker: %w", req.Op, ctxErr(ctx, err))
	}
	sc := bufio.NewScanner(c)
	if !sc.Scan() {
		err := sc.Err()
		if err == nil {
			err = fmt.Errorf("the worker closed the connection without a reply")
		}
		return Response{}, fmt.Errorf("%s: %w", req.Op, ctxErr(ctx, err))
	}
	var resp Response
	if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
		return Response{}, fmt.Errorf("%s: the worker's reply is not JSON: %w", req.Op, err)
	}
	return resp, nil
}

// ctxErr prefers the context's reason over the deadline error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// DialStream asks the worker listening on socket to connect to the
// guest's vsock port and returns the connection, which from then on
// carries the guest stream's bytes.
func DialStream(ctx context.Context, socket string, port uint32) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("reach the vz worker at %s: %w", socket, err)
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	// The reply may take up to the worker's connect timeout; ctx can cut
	// it shorter.
	deadline := time.Now().Add(connectTimeout + 10*time.Second)
	if d, has := ctx.Deadline(); has && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()

	line, err := json.Marshal(Request{Op: OpConnect, Port: port})
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("connect to guest vsock port %d: %w", port, ctxErr(ctx, err))
	}
	r := bufio.NewReader(c)
	reply, err := readLine(r)
	if err != nil {
		return nil, fmt.Errorf("connect to guest vsock port %d: the worker gave no reply: %w", port, ctxErr(ctx, err))
	}
	var resp Response
	if err := json.Unmarshal(reply, &resp); err != nil {
		return nil, fmt.Errorf("connect to guest vsock port %d: the worker's reply is not JSON: %w", port, err)
	}
	if !resp.OK {
		return nil, fmt.Errorf("connect to guest vsock port %d: %s", port, resp.Error)
	}
	if !stop() {
		return nil, fmt.Errorf("connect to guest vsock port %d: %w", port, ctx.Err())
	}
	_ = c.SetDeadline(time.Time{})
	ok = true
	return &streamConn{Conn: c, r: r}, nil
}

// streamConn is a worker connection turned guest stream; r holds what
// was read past the worker's reply.
type streamConn struct {
	net.Conn
	r *bufio.Reader
}

func (s *streamConn) Read(p []byte) (int, error) { return s.r.Read(p) }

// CloseWrite half-closes the stream, as a TCP connection does.
func (s *streamConn) CloseWrite() error {
	if cw, ok := s.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
