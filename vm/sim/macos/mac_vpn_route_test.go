package macos

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sxlab/sxlab/vm"
)

// networkHost is a fakeHost whose network the model can capture.
type networkHost struct {
	*fakeHost
	mu       sync.Mutex
	captured bool
	calls    int
}

func (h *networkHost) CaptureHostRoute(c bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.captured = c
	h.calls++
}

func (h *networkHost) state() (bool, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.captured, h.calls
}

// onNetwork moves s onto a host with a network, keeping its tree.
func onNetwork(t *testing.T, faults ...vm.Fault) (*simMac, *networkHost) {
	t.Helper()
	s := newSimMac(t)
	h := &networkHost{fakeHost: &fakeHost{now: testStart}}
	cfg := Config{Name: "sim-test-1", User: "admin", ProductVersion: "15.4", Build: "24E248", Seed: 1, Faults: faults}
	s.m = New(cfg, h, s.fs)
	h.mac, s.host = s.m, h.fakeHost
	s.m.Boot()
	return s, h
}

func TestCapturingVPNTakesTheHostRouteWhileConnected(t *testing.T) {
	s, h := onNetwork(t, vm.Fault{Name: FaultVPNCapturesHostTraffic})
	s.install(2)
	s.launch()
	s.approve()
	captured, _ := h.state()
	assert.False(t, captured, "no VPN, no capture")

	s.vpnStart()
	captured, _ = h.state()
	assert.True(t, captured, "a connected VPN takes the guest's route to the host")
	assert.Equal(t, "Connected", s.vpnStatus(), "the model itself goes on answering")

	s.vpnStop()
	captured, _ = h.state()
	assert.False(t, captured, "a stopped VPN gives the route back")

	s.vpnStart()
	s.host.Reboot()
	captured, _ = h.state()
	assert.False(t, captured, "a reboot disconnects the VPN")
}

func TestVPNWithoutTheFaultLeavesTheRouteAlone(t *testing.T) {
	s, h := onNetwork(t)
	s.install(2)
	s.launch()
	s.approve()
	s.vpnStart()
	captured, calls := h.state()
	assert.False(t, captured)
	assert.Zero(t, calls, "without the fault the model never touches the network")
}
