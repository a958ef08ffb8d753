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
