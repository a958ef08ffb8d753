package vz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sxlab/sxlab/vm"
)

// fakeHypervisor stands in for Virtualization.framework.
type fakeHypervisor struct {
	canRestore bool
	newErr     error // from New
	startErr   error // from VM.Start
	restoreErr error // from VM.Restore
	// crashAfterStart makes the VM fail (state error) right after it ran.
	crashAfterStart bool
	// agentAddr, when set, is where the guest's agent forwards vsock
	// connections to AgentPort (a TCP stand-in for the guest's sshd).
	agentAddr string

	mu         sync.Mutex
	forRestore []bool
	vms        []*fakeVM
}

func (h *fakeHypervisor) CanRestore() bool { return h.canRestore }

func (h *fakeHypervisor) New(b *Bundle, forRestore bool) (VM, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forRestore = append(h.forRestore, forRestore)
	if h.newErr != nil {
		return nil, h.newErr
	}
	v := &fakeVM{h: h, state: StateStopped, ch: make(chan State, 64)}
	h.vms = append(h.vms, v)
	return v, nil
}

func (h *fakeHypervisor) lastVM() *fakeVM {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.vms) == 0 {
		return nil
	}
	return h.vms[len(h.vms)-1]
}

type fakeVM struct {
	h *fakeHypervisor

	mu    sync.Mutex
	state State
	ops   []string
	ch    chan State
}

func (v *fakeVM) set(s State) {
	v.mu.Lock()
	v.state = s
	v.mu.Unlock()
	v.ch <- s
}

func (v *fakeVM) record(op string) {
	v.mu.Lock()
	v.ops = append(v.ops, op)
	v.mu.Unlock()
}

func (v *fakeVM) Ops() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.ops...)
}

func (v *fakeVM) Start(context.Context) error {
	v.record("start")
	if v.h.startErr != nil {
		v.set(StateError)
		return v.h.startErr
	}
	v.set(StateStarting)
	v.set(StateRunning)
	if v.h.crashAfterStart {
		go func() {
			time.Sleep(10 * time.Millisecond)
			v.set(StateError)
		}()
	}
	return nil
}

func (v *fakeVM) Restore(_ context.Context, path string) error {
	v.record("restore " + path)
	v.set(StateRestoring)
	if v.h.restoreErr != nil {
		v.set(StateStopped)
		return v.h.restoreErr
	}
	v.set(StatePaused)
	v.set(StateResuming)
	v.set(StateRunning)
	return nil
}

func (v *fakeVM) Stop(context.Context) error {
	v.record("stop")
	v.set(StateStopped)
	return nil
}

func (v *fakeVM) RequestStop(context.Context) error {
	v.record("request-stop")
	return nil
}

func (v *fakeVM) Save(_ context.Context, path string) error {
	v.record("save " + path)
	v.set(StatePausing)
	v.set(StatePaused)
	v.set(StateSaving)
	if err := os.WriteFile(path, []byte("fake saved state"), 0o644); err != nil {
		return err
	}
	v.set(StatePaused)
	return nil
}

func (v *fakeVM) State() State {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.state
}

func (v *fakeVM) StateChanges() <-chan State { return v.ch }

// Connect is the guest agent's vsock port: forwarded to agentAddr; any
// other port is refused as the framework refuses one nobody listens on.
func (v *fakeVM) Connect(ctx context.Context, port uint32) (net.Conn, error) {
	v.record(fmt.Sprintf("connect %d", port))
	if port != vm.AgentPort || v.h.agentAddr == "" {
		return nil, NewFrameworkError("connect", NSErrorInfo{Domain: "NSPOSIXErrorDomain", Code: 54, Description: "Connection reset by peer"})
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", v.h.agentAddr)
}

// The test binary doubles as a fake `sxlab vz-worker`: the provider tests
// run it with SXLAB_VZ_FAKE_WORKER set to a behaviour.
const fakeWorkerEnv = "SXLAB_VZ_FAKE_WORKER"

// fakeAgentEnv is the address the fake guest agent forwards to.
const fakeAgentEnv = "SXLAB_VZ_FAKE_AGENT"

func TestMain(m *testing.M) {
	if behaviour, ok := os.LookupEnv(fakeWorkerEnv); ok {
		os.Exit(fakeWorkerMain(behaviour, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeWorkerMain is `sxlab vz-worker [--watch-stdin] CLONE` over a fake VM.
func fakeWorkerMain(behaviour string, args []string) int {
	h := &fakeHypervisor{canRestore: true, agentAddr: os.Getenv(fakeAgentEnv)}
	switch behaviour {
	case "ok":
	case "no-restore":
		h.canRestore = false
	case "limit":
		h.startErr = &VMError{Kind: KindVMLimit, Code: codeVMLimit, Msg: "start: The number of virtual machines exceeds the limit."}
	case "entitlement":
		h.newErr = &VMError{Kind: KindEntitlement, Code: 2, Msg: "the VM configuration is invalid: The process doesn't have the com.apple.security.virtualization entitlement."}
	case "crash":
		h.crashAfterStart = true
	case "exit-at-once":
		fmt.Fprintln(os.Stderr, "fake worker: exiting before listening, as a broken bundle makes a worker do")
		return 1
	default:
		fmt.Fprintf(os.Stderr, "fake worker: unknown behaviour %q\n", behaviour)
		return 3
	}
	o := WorkerOptions{Hypervisor: h, Log: os.Stderr}
	for _, a := range args {
		switch {
		case a == "--watch-stdin":
			o.Parent = os.Stdin
		case len(a) > 0 && a[0] != '-':
			o.Bundle = a
		}
	}
	if err := RunWorker(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "fake worker:", err)
		var ve *VMError
		if errors.As(err, &ve) {
			return 2
		}
		return 1
	}
	return 0
}
