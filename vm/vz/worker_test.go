package vz

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shortTemp is a temporary folder with a short path: unix socket paths are
// limited to about 104 bytes, and t.TempDir's can be longer.
func shortTemp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vz")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cloneFixture makes a clone of the fixture in a short folder; state adds
// a saved state.
func cloneFixture(t *testing.T, state bool) string {
	t.Helper()
	dir := filepath.Join(shortTemp(t), "c")
	require.NoError(t, os.Mkdir(dir, 0o755))
	for _, f := range []string{ConfigFile, DiskFile, NVRAMFile} {
		data, err := os.ReadFile(filepath.Join(fixture, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	if state {
		require.NoError(t, os.WriteFile(filepath.Join(dir, StateFile), []byte("saved"), 0o644))
	}
	return dir
}

type runningWorker struct {
	sock   string
	done   chan error
	parent *io.PipeWriter
}

// startWorker runs RunWorker in this process over h.
func startWorker(t *testing.T, dir string, h Hypervisor) *runningWorker {
	t.Helper()
	pr, pw := io.Pipe()
	listening := make(chan string, 1)
	w := &runningWorker{done: make(chan error, 1), parent: pw}
	go func() {
		w.done <- RunWorker(context.Background(), WorkerOptions{Bundle: dir, Hypervisor: h, Parent: pr,
			Listening: func(s string) { listening <- s }})
	}()
	select {
	case w.sock = <-listening:
	case err := <-w.done:
		t.Fatalf("worker ended before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not listen")
	}
	t.Cleanup(func() {
		pw.Close()
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			t.Error("worker did not exit after its parent went")
		}
	})
	return w
}

func (w *runningWorker) call(t *testing.T, op string) Response {
	t.Helper()
	resp, err := Call(t.Context(), w.sock, Request{Op: op})
	require.NoError(t, err)
	return resp
}

func (w *runningWorker) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not exit")
		return nil
	}
}

func TestWorkerColdBootThenStop(t *testing.T) {
	h := &fakeHypervisor{canRestore: true}
	w := startWorker(t, cloneFixture(t, false), h)

	assert.Equal(t, Response{OK: true, State: StateStopped, PID: os.Getpid()}, w.call(t, OpState))
	resp := w.call(t, OpStart)
	require.True(t, resp.OK, resp.Error)
	assert.Equal(t, StateRunning, resp.State)
	assert.False(t, resp.Restored)
	assert.Equal(t, []bool{false}, h.forRestore, "no saved state: built with entropy")

	resp = w.call(t, OpStart)
	assert.False(t, resp.OK)
	assert.Contains(t, resp.Error, "started already")

	resp = w.call(t, OpStop)
	require.True(t, resp.OK, resp.Error)
	assert.Equal(t, StateStopped, resp.State)
	require.NoError(t, w.wait(t), "a stopped VM ends the worker cleanly")
	_, err := os.Stat(w.sock)
	assert.ErrorIs(t, err, os.ErrNotExist, "the socket is removed on the way out")
	assert.Equal(t, []string{"start", "stop"}, h.lastVM().Ops())
}

func TestWorkerRestoresSavedState(t *testing.T) {
	dir := cloneFixture(t, true)
	h := &fakeHypervisor{canRestore: true}
	w := startWorker(t, dir, h)
	resp := w.call(t, OpStart)
	require.True(t, resp.OK, resp.Error)
	assert.True(t, resp.Restored)
	assert.Equal(t, StateRunning, resp.State)
	assert.Equal(t, []bool{true}, h.forRestore, "restoring: built without entropy, like the saved device set")
	assert.Equal(t, []string{"restore " + filepath.Join(dir, StateFile)}, h.lastVM().Ops())
	assert.True(t, w.call(t, OpState).Restored)
}

func TestWorkerBootsColdWhenRestoreFails(t *testing.T) {
	h := &fakeHypervisor{canRestore: true, restoreErr: &VMError{Msg: "restore: the state does not match", Code: 12}}
	w := startWorker(t, cloneFixture(t, true), h)
	resp := w.call(t, OpStart)
	require.True(t, resp.OK, resp.Error)
	assert.False(t, resp.Restored)
	assert.Contains(t, resp.Note, "booted cold instead")
	assert.Equal(t, StateRunning, w.call(t, OpState).State, "the stopped state of the failed restore did not end the worker")
}

func TestWorkerBootsColdOnHostsWithoutRestore(t *testing.T) {
	h := &fakeHypervisor{canRestore: false}
	w := startWorker(t, cloneFixture(t, true), h)
	resp := w.call(t, OpStart)
	require.True(t, resp.OK, resp.Error)
	assert.False(t, resp.Restored)
	assert.Equal(t, []bool{false}, h.forRestore)
}

func TestWorkerReportsKindOfFailure(t *testing.T) {
	h := &fakeHypervisor{startErr: &VMError{Kind: KindVMLimit, Code: codeVMLimit, Msg: "start: limit exceeded"}}
	w := startWorker(t, cloneFixture(t, false), h)
	resp := w.call(t, OpStart)
	assert.False(t, resp.OK)
	assert.Equal(t, KindVMLimit, resp.Kind)
	assert.Equal(t, codeVMLimit, resp.Code)
	assert.Contains(t, resp.Error, "limit exceeded")
	assert.Error(t, w.wait(t), "a VM in state error ends the worker with an error")
}

func TestWorkerStopsTheVMWhenTheOrchestratorDies(t *testing.T) {
	h := &fakeHypervisor{}
	w := startWorker(t, cloneFixture(t, false), h)
	require.True(t, w.call(t, OpStart).OK)
	w.parent.Close()
	require.NoError(t, w.wait(t))
	assert.Equal(t, []string{"start", "stop"}, h.lastVM().Ops())
}

func TestWorkerSavesState(t *testing.T) {
	dir := cloneFixture(t, false)
	h := &fakeHypervisor{}
	w := startWorker(t, dir, h)
	resp := w.call(t, OpSave)
	assert.False(t, resp.OK)
	assert.Contains(t, resp.Error, "not started")

	require.True(t, w.call(t, OpStart).OK)
	resp = w.call(t, OpSave)
	require.True(t, resp.OK, resp.Error)
	assert.Equal(t, StatePaused, resp.State)
	_, err := os.Stat(filepath.Join(dir, StateFile))
	assert.NoError(t, err)
}

func TestWorkerRejectsNonsense(t *testing.T) {
	w := startWorker(t, cloneFixture(t, false), &fakeHypervisor{})
	resp := w.call(t, "reboot")
	assert.False(t, resp.OK)
	assert.Contains(t, resp.Error, `unknown operation "reboot"`)

	c, err := net.Dial("unix", w.sock)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("not json\n"))
	require.NoError(t, err)
	line := make([]byte, 512)
	n, err := c.Read(line)
	require.NoError(t, err)
	assert.Contains(t, string(line[:n]), "request is not JSON")
}

func TestWorkerRefusesABrokenBundle(t *testing.T) {
	dir := cloneFixture(t, false)
	require.NoError(t, os.Remove(filepath.Join(dir, NVRAMFile)))
	err := RunWorker(context.Background(), WorkerOptions{Bundle: dir, Hypervisor: &fakeHypervisor{}})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "nvram.bin: missing"), err.Error())
}
