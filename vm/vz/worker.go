package vz

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// State is a VM's execution state, as the framework reports it.
type State string

const (
	StateStopped   State = "stopped"
	StateStarting  State = "starting"
	StateRunning   State = "running"
	StatePausing   State = "pausing"
	StatePaused    State = "paused"
	StateResuming  State = "resuming"
	StateStopping  State = "stopping"
	StateSaving    State = "saving"
	StateRestoring State = "restoring"
	StateError     State = "error"
)

// VM is one virtual machine behind a worker. The darwin mapping implements
// it with Virtualization.framework; tests with a fake. Calls block until
// the framework's completion handler has run.
type VM interface {
	// Start cold-boots the VM.
	Start(ctx context.Context) error
	// Restore restores the state saved at path and resumes the VM.
	Restore(ctx context.Context, path string) error
	// Stop stops the VM at once, as pulling the plug does.
	Stop(ctx context.Context) error
	// RequestStop asks the guest to shut down (macOS guests may ignore it).
	RequestStop(ctx context.Context) error
	// Save pauses the VM and saves its state to path.
	Save(ctx context.Context, path string) error
	State() State
	// StateChanges delivers every state the VM enters.
	StateChanges() <-chan State
	// Connect opens a stream to port on the guest's side of the VM's
	// virtio-socket device.
	Connect(ctx context.Context, port uint32) (net.Conn, error)
}

// Hypervisor makes VMs from bundles.
type Hypervisor interface {
	// CanRestore reports whether saved states can be restored here (macOS
	// 14+ hosts).
	CanRestore() bool
	// New builds and validates the VM of b. forRestore leaves out what a
	// saved state was saved without (the entropy device), so the device
	// set matches the golden's when it was saved.
	New(b *Bundle, forRestore bool) (VM, error)
}

// Worker operations.
const (
	OpStart       = "start"        // build the VM, restore its saved state or cold-boot it
	OpState       = "state"        // report the state
	OpStop        = "stop"         // stop the VM at once; the worker exits
	OpRequestStop = "request-stop" // ask the guest to shut down
	OpSave        = "save"         // pause and save the state (Path, default the bundle's state.vzvmsave)
	OpQuit        = "quit"         // stop the VM if it runs, and exit
	// OpConnect (Port) connects to a guest vsock port; after an OK reply
	// the connection carries that stream's bytes both ways until either
	// side closes.
	OpConnect = "connect"
)

// Request is one line the orchestrator sends.
type Request struct {
	Op   string `json:"op"`
	Path string `json:"path,omitempty"`
	// Saveable (start) builds a cold-booting VM with the device set of a
	// restore, so the state saved from it later can be restored into
	// clones: `sxlab image warm` boots goldens this way.
	Saveable bool `json:"saveable,omitempty"`
	// Port (connect) is the guest's vsock port.
	Port uint32 `json:"port,omitempty"`
}

// Response is the worker's line in reply.
type Response struct {
	OK    bool  `json:"ok"`
	State State `json:"state,omitempty"`
	// Restored: start restored the saved state (false: cold boot).
	Restored bool `json:"restored,omitempty"`
	// Note says something the caller should know, such as a failed restore
	// that fell back to a cold boot.
	Note  string    `json:"note,omitempty"`
	Error string    `json:"error,omitempty"`
	Kind  ErrorKind `json:"kind,omitempty"`
	Code  int       `json:"code,omitempty"`
	// Domain is the framework error's NSError domain (its user-info is in
	// Error, rendered by VMError).
	Domain string `json:"domain,omitempty"`
	PID    int    `json:"pid,omitempty"`
}

// WorkerOptions configure RunWorker.
type WorkerOptions struct {
	// Bundle is the clone the worker runs.
	Bundle     string
	Hypervisor Hypervisor
	// Parent, when set, is read until EOF: the orchestrator holds the
	// other end of a pipe, so EOF means it died, and the worker stops the
	// VM and exits instead of leaving an orphan running.
	Parent io.Reader
	// Listening is called once the socket accepts connections.
	Listening func(socket string)
	// Log takes one line per event; nil discards them.
	Log io.Writer
}

// RunWorker runs one VM until it stops, the orchestrator says stop or
// quit, the orchestrator dies (Parent), or ctx ends. It holds the fcntl
// lock on the bundle's config.json all along.
func RunWorker(ctx context.Context, o WorkerOptions) error {
	if o.Hypervisor == nil {
		return errors.New("vz worker: no hypervisor")
	}
	b, err := LoadBundle(o.Bundle)
	if err != nil {
		return fmt.Errorf("vz worker: %w", err)
	}
	// After LoadBundle: config.json must not be opened again once locked.
	lock, err := lockFile(b.Path(ConfigFile))
	if err != nil {
		return fmt.Errorf("vz worker: %s is already run by another worker: %w", b.Dir, err)
	}
	defer lock.release()

	sock := b.Path(SocketFile)
	// A socket file left by a dead worker; holding the lock, it is ours.
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("vz worker: %w", err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("vz worker: listen on %s: %w", sock, err)
	}
	defer os.Remove(sock)

	w := &worker{b: b, hyp: o.Hypervisor, log: o.Log, exit: make(chan error, 1), conns: map[net.Conn]bool{}}
	w.logf("worker %d: serving %s", os.Getpid(), sock)
	if o.Listening != nil {
		o.Listening(sock)
	}
	go w.accept(ln)
	parentGone := make(chan struct{})
	if o.Parent != nil {
		go func() {
			_, _ = io.Copy(io.Discard, o.Parent)
			close(parentGone)
		}()
	}

	var result error
	select {
	case result = <-w.exit:
	case <-parentGone:
		w.logf("the orchestrator is gone: stopping the VM")
		w.stopNow()
	case <-ctx.Done():
		w.logf("interrupted: stopping the VM")
		w.stopNow()
	}
	ln.Close()
	// Let an operation in progress write its reply before the worker goes.
	w.mu.Lock()
	w.closed = true
	for c := range w.conns {
		c.Close()
	}
	w.mu.Unlock()
	w.logf("worker %d: exiting", os.Getpid())
	return result
}

type worker struct {
	b   *Bundle
	hyp Hypervisor
	log io.Writer

	exitOnce sync.Once
	exit     chan error

	mu       sync.Mutex // serialises operations on vm
	vm       VM
	restored bool
	closed   bool
	conns    map[net.Conn]bool
}

func (w *worker) logf(format string, args ...any) {
	if w.log != nil {
		fmt.Fprintf(w.log, time.Now().UTC().Format(time.RFC3339)+" "+format+"\n", args...)
	}
}

func (w *worker) finish(err error) {
	w.exitOnce.Do(func() { w.exit <- err })
}

func (w *worker) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			c.Close()
			return
		}
		w.conns[c] = true
		w.mu.Unlock()
		go w.serve(c)
	}
}

// maxRequest bounds one request line.
const maxRequest = 64 << 10

// serve answers the requests on one connection, one line each, until a
// connect request turns it into a guest stream.
func (w *worker) serve(c net.Conn) {
	defer func() {
		w.mu.Lock()
		delete(w.conns, c)
		w.mu.Unlock()
		c.Close()
	}()
	// A bufio.Reader rather than a Scanner: after a connect, the bytes it
	// has read ahead belong to the guest stream.
	r := bufio.NewReaderSize(c, 4096)
	enc := json.NewEncoder(c)
	for {
		line, err := readLine(r)
		if err != nil {
			return
		}
		var req Request
		perr := json.Unmarshal(line, &req)
		if perr == nil && req.Op == OpConnect {
			w.bridge(c, r, req.Port)
			return
		}
		// The reply is written under w.mu too, so a worker on its way out
		// (which takes w.mu before closing connections) still delivers it.
		w.mu.Lock()
		var resp Response
		if perr != nil {
			resp = Response{Error: fmt.Sprintf("request is not JSON: %v", perr)}
		} else {
			resp = w.handle(req)
		}
		resp.PID = os.Getpid()
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		err = enc.Encode(resp)
		w.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (w *worker) state() State {
	if w.vm == nil {
		return StateStopped
	}
	return w.vm.State()
}

func failed(err error) Response {
	r := Response{Error: err.Error()}
	var ve *VMError
	if errors.As(err, &ve) {
		r.Kind, r.Code, r.Domain = ve.Kind, ve.Code, ve.Domain
	}
	return r
}

// handle runs one request; w.mu is held.
func (w *worker) handle(req Request) Response {
	ctx := context.Background()
	w.logf("%s", req.Op)
	switch req.Op {
	case OpState:
		return Response{OK: true, State: w.state(), Restored: w.restored}
	case OpStart:
		if w.vm != nil {
			return Response{Error: fmt.Sprintf("the VM was started already (state %s)", w.vm.State())}
		}
		restore := w.b.HasSavedState && w.hyp.CanRestore()
		saveable := restore || req.Saveable
		if saveable {
			w.logf("building the VM with the saved-state device set (no entropy device)")
		}
		vm, err := w.hyp.New(w.b, saveable)
		if err != nil {
			return failed(fmt.Errorf("build the VM of %s: %w", w.b.Dir, err))
		}
		w.vm = vm
		go w.watch(vm)
		var note string
		if restore {
			err := vm.Restore(ctx, w.b.Path(StateFile))
			if err == nil {
				w.restored = true
				return Response{OK: true, State: vm.State(), Restored: true}
			}
			// A state that does not fit (another device set, a MAC that
			// changed) still leaves a bootable disk: boot it cold.
			note = fmt.Sprintf("restoring %s failed (%v); booted cold instead (a state saved with another device set never restores, such as one saved before sxlab gave every VM a virtio-socket device: warm the golden again with sxlab image warm)", StateFile, err)
			w.logf("%s", note)
		}
		if err := vm.Start(ctx); err != nil {
			r := failed(fmt.Errorf("start the VM of %s: %w", w.b.Dir, err))
			r.State = vm.State()
			return r
		}
		return Response{OK: true, State: vm.State(), Note: note}
	case OpStop, OpQuit:
		if err := w.stopVM(ctx); err != nil {
			return failed(err)
		}
		w.finish(nil)
		return Response{OK: true, State: w.state()}
	case OpRequestStop:
		if w.vm == nil {
			return Response{Error: "the VM is not started"}
		}
		if err := w.vm.RequestStop(ctx); err != nil {
			return failed(fmt.Errorf("ask the guest to stop: %w", err))
		}
		return Response{OK: true, State: w.vm.State()}
	case OpSave:
		if w.vm == nil {
			return Response{Error: "the VM is not started"}
		}
		path := req.Path
		if path == "" {
			path = w.b.Path(StateFile)
		}
		if err := w.vm.Save(ctx, path); err != nil {
			return failed(fmt.Errorf("save the VM state to %s: %w", path, err))
		}
		return Response{OK: true, State: w.vm.State()}
	}
	return Response{Error: fmt.Sprintf("unknown operation %q (know: start, state, stop, request-stop, save, quit, connect)", req.Op)}
}

// stopVM stops a VM that is not stopped already; w.mu is held.
func (w *worker) stopVM(ctx context.Context) error {
	if w.vm == nil {
		return nil
	}
	switch w.vm.State() {
	case StateStopped, StateError:
		return nil
	}
	if err := w.vm.Stop(ctx); err != nil {
		return fmt.Errorf("stop the VM: %w", err)
	}
	return nil
}

// stopNow stops the VM on the way out, logging rather than returning
// failures: nobody is left to tell.
func (w *worker) stopNow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stopVM(context.Background()); err != nil {
		w.logf("%v", err)
	}
}

// watch ends the worker when the VM stops or fails after it ran (a guest
// that shut itself down, a crash). A stopped state before that is a failed
// restore, which start follows with a cold boot.
func (w *worker) watch(vm VM) {
	ran := false
	for s := range vm.StateChanges() {
		w.logf("state %s", s)
		switch s {
		case StateRunning, StatePaused:
			ran = true
		case StateStopped:
			if ran {
				w.finish(nil)
				return
			}
		case StateError:
			w.finish(fmt.Errorf("the VM of %s failed (state error)", w.b.Dir))
			return
		}
	}
}

// readLine reads one request line without its newline.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, more, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > maxRequest {
			return nil, fmt.Errorf("request longer than %d bytes", maxRequest)
		}
		if !more {
			return line, nil
		}
	}
}

// connectTimeout bounds the framework's connect to a guest port: the
// framework documents that a connect to a port nobody listens on "does
// nothing", so it must not wait for ever.
const connectTimeout = 30 * time.Second

// bridge connects to the guest's vsock port, answers the request, and
// then copies bytes between c (with what r read ahead) and the guest
// stream until either side ends. It does not hold w.mu while the stream
// lives: the VM's other operations go on.
func (w *worker) bridge(c net.Conn, r *bufio.Reader, port uint32) {
	reply := func(resp Response) error {
		resp.PID = os.Getpid()
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		line, _ := json.Marshal(resp)
		_, err := c.Write(append(line, '\n'))
		_ = c.SetWriteDeadline(time.Time{})
		return err
	}
	w.mu.Lock()
	vm, closed := w.vm, w.closed
	w.mu.Unlock()
	switch {
	case closed:
		_ = reply(Response{Error: "the worker is exiting"})
		return
	case port == 0:
		_ = reply(Response{Error: "connect: no port"})
		return
	case vm == nil:
		_ = reply(Response{Error: "the VM is not started"})
		return
	}
	if st := vm.State(); st != StateRunning {
		_ = reply(Response{Error: fmt.Sprintf("connect to guest port %d: the VM is %s, not running", port, st), State: st})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	gc, err := vm.Connect(ctx, port)
	cancel()
	if err != nil {
		_ = reply(failed(fmt.Errorf("connect to guest vsock port %d: %w", port, err)))
		return
	}
	defer gc.Close()
	w.logf("connect: guest vsock port %d open", port)
	if reply(Response{OK: true, State: vm.State()}) != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(gc, r) // r drains what it read ahead, then reads c
		closeWrite(gc)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(c, gc)
		closeWrite(c)
		done <- struct{}{}
	}()
	// Either side ending ends the stream: an SSH client that hangs up, or
	// a guest that went away.
	<-done
	gc.Close()
	c.Close()
	<-done
	w.logf("connect: guest vsock port %d closed", port)
}

// closeWrite half-closes c when it can, so the other side sees EOF.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
