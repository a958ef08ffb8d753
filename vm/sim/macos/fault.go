package macos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sxlab/sxlab/vm"
)

// Fault names an image can switch on, each traced to a field report in
// ../shared/field-reports/.
const (
	// FaultEndpointLost (xpc-invalidated-on-upgrade): replacing an
	// extension while its VPN is connected leaves the new provider's
	// launchd job without its Mach endpoint, for good, on the first
	// upgrade to that version on the machine. A versioned Mach service
	// name is immune. Only removing the extension (System Settings) and
	// approving it again cures it.
	FaultEndpointLost = "endpoint-lost-on-replace-while-running"
	// FaultRegistrationRace (xpc-broken-20-percent): after a replacement
	// of an enabled extension the endpoint is missing with probability p
	// (0.2 by default) until the next reboot.
	FaultRegistrationRace = "endpoint-registration-race"
	// FaultApprovalCoalesced (approval-dialog-missing): sysextd believes
	// it presented an approval prompt that never appeared; requests for
	// the waiting version are coalesced and no prompt shows until reboot.
	FaultApprovalCoalesced = "approval-coalesced"
	// FaultVPNCapturesHostTraffic: while the VPN is connected it takes
	// every route of the guest (a full tunnel; NEVPNProtocol's
	// includeAllNetworks), so the guest's TCP to the host side of its NAT
	// network goes into the tunnel: the host's new connections to the
	// guest's sshd get no answer, established ones stall. The loopback,
	// and a vsock channel that is no network at all, are untouched. Not
	// a field report: the lab-side symptom Mullvad describes in tart PR
	// 364 (a host-guest channel that works "no matter what the state of
	// the network is in the guest"). The host side is the machine's
	// (Network); a Host without it sees no effect.
	FaultVPNCapturesHostTraffic = "vpn-captures-host-traffic"
)

// faultDefaults maps each fault to its field report and the report's
// figure, used when an image gives probability 0.
var faultDefaults = map[string]struct {
	report      string
	probability float64
}{
	FaultEndpointLost:      {"xpc-invalidated-on-upgrade", 1},
	FaultRegistrationRace:  {"xpc-broken-20-percent", 0.2},
	FaultApprovalCoalesced: {"approval-dialog-missing", 1},
	// no field report: tart PR 364 (see the constant)
	FaultVPNCapturesHostTraffic: {"", 1},
}

// FaultNames lists the faults the simulated Mac knows, in a stable order.
func FaultNames() []string {
	return []string{FaultEndpointLost, FaultRegistrationRace, FaultApprovalCoalesced, FaultVPNCapturesHostTraffic}
}

// ValidateFaults checks names and probabilities. NewMac cannot fail, so
// configuration layers call this first; NewMac ignores (and logs) what
// this rejects.
func ValidateFaults(faults []vm.Fault) error {
	var errs []error
	for i, f := range faults {
		if _, ok := faultDefaults[f.Name]; !ok {
			errs = append(errs, fmt.Errorf("fault %d: unknown fault %q (known: %s)", i, f.Name, strings.Join(FaultNames(), ", ")))
			continue
		}
		if math.IsNaN(f.Probability) || f.Probability < 0 || f.Probability > 1 {
			errs = append(errs, fmt.Errorf("fault %d (%s): probability %v is not between 0 and 1 (0 means the report's figure)", i, f.Name, f.Probability))
		}
	}
	return errors.Join(errs...)
}

// faultSet holds the probabilities of the switched-on faults.
type faultSet struct {
	p       map[string]float64
	ignored []string // rejected entries, logged at boot
}

func newFaultSet(faults []vm.Fault) faultSet {
	fs := faultSet{p: map[string]float64{}}
	for _, f := range faults {
		def, ok := faultDefaults[f.Name]
		if !ok || math.IsNaN(f.Probability) || f.Probability < 0 || f.Probability > 1 {
			fs.ignored = append(fs.ignored, fmt.Sprintf("%q (probability %v)", f.Name, f.Probability))
			continue
		}
		p := f.Probability
		if p == 0 {
			p = def.probability
		}
		fs.p[f.Name] = p
	}
	return fs
}

func (fs faultSet) on(name string) bool {
	_, ok := fs.p[name]
	return ok
}

// strikes draws once from r when the fault is on, so the sequence of
// draws depends only on what happened on the machine, never on p.
func (fs faultSet) strikes(name string, r *rand.Rand) bool {
	p, ok := fs.p[name]
	if !ok {
		return false
	}
	return r.Float64() < p
}

// newRand derives a reproducible generator from the seed, the machine's
// name and a purpose, so fault draws and cosmetic draws (pids, ports,
// UUIDs) never shift each other.
func newRand(seed int64, name, purpose string) *rand.Rand {
	h := fnv.New64a()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(seed))
	h.Write(buf[:])
	h.Write([]byte{0})
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(purpose))
	s1 := h.Sum64()
	h.Write([]byte("/2"))
	return rand.New(rand.NewPCG(s1, h.Sum64()))
}
