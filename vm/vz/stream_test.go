package vz

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm"
)

// fakeSSHD stands in for the guest's sshd behind the agent: it speaks
// first, as sshd does with its banner, then answers each line in capitals.
func fakeSSHD(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.8\r\n")
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, strings.ToUpper(sc.Text())+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// talk reads the banner, sends a line and reads the answer.
func talk(t *testing.T, c net.Conn) (banner, answer string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	r := bufio.NewReader(c)
	banner, err := r.ReadString('\n')
	require.NoError(t, err)
	_, err = io.WriteString(c, "hello over vsock\n")
	require.NoError(t, err)
	answer, err = r.ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSpace(banner), strings.TrimSpace(answer)
}

func TestWorkerBridgesAGuestVsockPort(t *testing.T) {
	h := &fakeHypervisor{agentAddr: fakeSSHD(t)}
	w := startWorker(t, cloneFixture(t, false), h)
	require.True(t, w.call(t, OpStart).OK)

	c, err := DialStream(t.Context(), w.sock, vm.AgentPort)
	require.NoError(t, err)
	banner, answer := talk(t, c)
	assert.Equal(t, "SSH-2.0-OpenSSH_9.8", banner, "the guest's first bytes are not lost behind the worker's reply")
	assert.Equal(t, "HELLO OVER VSOCK", answer)
	require.NoError(t, c.Close())

	// The control socket still answers while, and after, a stream lived.
	assert.Equal(t, StateRunning, w.call(t, OpState).State)
	assert.Contains(t, h.lastVM().Ops(), "connect 7022")

	_, err = DialStream(t.Context(), w.sock, 7023)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to guest vsock port 7023")
	assert.Contains(t, err.Error(), "Connection reset by peer (NSPOSIXErrorDomain code 54)", "the framework's error arrives whole")
}

func TestWorkerRefusesAStreamBeforeTheVMRuns(t *testing.T) {
	h := &fakeHypervisor{agentAddr: fakeSSHD(t)}
	w := startWorker(t, cloneFixture(t, false), h)
	_, err := DialStream(t.Context(), w.sock, vm.AgentPort)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the VM is not started")
}

// TestWorkerEndsStreamsWhenItExits: a stream must not outlive the VM.
func TestWorkerEndsStreamsWhenItExits(t *testing.T) {
	h := &fakeHypervisor{agentAddr: fakeSSHD(t)}
	w := startWorker(t, cloneFixture(t, false), h)
	require.True(t, w.call(t, OpStart).OK)
	c, err := DialStream(t.Context(), w.sock, vm.AgentPort)
	require.NoError(t, err)
	defer c.Close()
	talk(t, c)
	require.True(t, w.call(t, OpStop).OK)
	require.NoError(t, w.wait(t))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(c)
	assert.NoError(t, err, "the stream ends with EOF, not a hang")
}

func TestMachineDialGuestThroughItsWorker(t *testing.T) {
	l := newTestLab(t, false)
	addr := fakeSSHD(t)
	p := l.provider(t, "run1", "ok", func(o *Options) {
		o.Worker = append([]string{o.Worker[0], fakeAgentEnv + "=" + addr}, o.Worker[1:]...)
	})
	m := clone(t, p, l.img, "sxlab-0123456789ab-r1-t1")
	_, err := m.DialGuest(t.Context(), vm.AgentPort)
	require.Error(t, err, "not started yet")

	require.NoError(t, m.Start(t.Context()))
	var sd vm.StreamDialer = m
	c, err := sd.DialGuest(t.Context(), vm.AgentPort)
	require.NoError(t, err)
	defer c.Close()
	banner, answer := talk(t, c)
	assert.Equal(t, "SSH-2.0-OpenSSH_9.8", banner)
	assert.Equal(t, "HELLO OVER VSOCK", answer)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, m.Stop(ctx))
	_, err = m.DialGuest(t.Context(), vm.AgentPort)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the VM has stopped")
}
