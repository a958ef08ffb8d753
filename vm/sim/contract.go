// Package sim is the simulated macOS guest: an in-process SSH server on
// 127.0.0.1 whose shell answers the lab's macOS commands in the real
// output formats (see ../shared/GUEST-REFERENCE.md), backed by a model of
// sysextd, launchd, Network Extension configurations and unified logging
// that reproduces the field reports as named faults.
//
// This package is the provider: it puts the parts, each a package of its
// own, together into machines.
//
//   - shell: the command interpreter (a POSIX subset and its builtins),
//     which knows nothing of macOS; other programs come from its Programs.
//   - sshd: the SSH and SFTP server, running command lines through a
//     Shell and serving the machine's tree.
//   - macos: the model of macOS (sysextd, launchd, NE, the unified log,
//     installer, sysdiagnose, the faults), which provides the Programs.
//
// What the rest of the project uses of them is re-exported here, so only
// this package is imported from outside.
package sim

import (
	"time"

	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/macos"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

// FS is a machine's file tree, in memory; see shell.FS.
type FS = shell.FS

// Host is what the Mac model needs from the machine it runs in; Machine
// is one.
type Host = macos.Host

// MacConfig is what a simulated Mac is made from.
type MacConfig = macos.Config

// Model is the simulated Mac behind the shell: the programs the shell
// does not provide itself, and what a boot does.
type Model interface {
	shell.Programs
	// Boot resets per-boot state; the machine calls it at first start and
	// at every reboot, before sshd answers.
	Boot()
	// BootDelay is the simulated time from a reboot until sshd answers.
	BootDelay() time.Duration
}

var _ Model = (*macos.Mac)(nil)

// NewMac makes the simulated macOS model; see macos.New.
func NewMac(cfg MacConfig, host Host, fs *FS) Model { return macos.New(cfg, host, fs) }

// The simulated package manifest (*.simpkg.json), a test helper for app
// behaviours a real package cannot express; see macos.SimPkg.
type (
	SimPkg       = macos.SimPkg
	SimApp       = macos.SimApp
	SimExtension = macos.SimExtension
)

// SimPkgFormat is the format tag every simulated package carries.
const SimPkgFormat = macos.SimPkgFormat

// ParseSimPkg reads and checks a *.simpkg.json manifest.
func ParseSimPkg(data []byte) (SimPkg, error) { return macos.ParseSimPkg(data) }

// Fault names an image can switch on; see macos.
const (
	FaultEndpointLost      = macos.FaultEndpointLost
	FaultRegistrationRace  = macos.FaultRegistrationRace
	FaultApprovalCoalesced = macos.FaultApprovalCoalesced
	// FaultVPNCapturesHostTraffic: a connected VPN takes the guest's
	// route to the host; the machine's TCP to sshd stalls, its agent
	// channel does not.
	FaultVPNCapturesHostTraffic = macos.FaultVPNCapturesHostTraffic
)

// FaultNames lists the faults the simulated Mac knows, in a stable order.
func FaultNames() []string { return macos.FaultNames() }

// ValidateFaults checks fault names and probabilities.
func ValidateFaults(faults []vm.Fault) error { return macos.ValidateFaults(faults) }
