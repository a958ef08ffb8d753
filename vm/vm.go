// Package vm defines what the lab needs of a machine provider: clone a
// golden image, boot it, say where its sshd is, stop it and delete it.
// Providers live in sub-packages (sim, vz, tart, ssh) and keep their
// specifics to themselves.
package vm

import (
	"context"
	"net"

	"github.com/sxlab/sxlab/guest"
)

// Provider makes machines from images.
type Provider interface {
	// Name is the provider's config name ("sim", "vz", ...); reports show it.
	Name() string
	// Simulated is true when machines are not real Macs; every result from
	// such a machine is labelled simulated.
	Simulated() bool
	// Clone makes a new machine from img, named name (unique per attempt).
	Clone(ctx context.Context, img Image, name string) (Machine, error)
	// Reap deletes what dead runs left behind; live runs' machines are kept.
	Reap(ctx context.Context) error
}

// Limiter is a provider that can run only so many machines of an image at
// once on its host: vz restores a golden's saved state into one clone at a
// time, as the state is tied to the golden's MAC. The scheduler keeps to it.
type Limiter interface {
	// MaxMachines is the limit for img, 0 meaning none; why says what sets
	// it and how to raise it, for the run's notes.
	MaxMachines(img Image) (n int, why string)
}

// Machine is one throwaway guest.
type Machine interface {
	Name() string
	// Start boots the machine (cold boot or restore of a saved state).
	Start(ctx context.Context) error
	// Endpoint waits until the guest has an address and returns how to
	// reach its sshd.
	Endpoint(ctx context.Context) (guest.Endpoint, error)
	// Stop shuts the machine down; Delete removes it. Both are safe to call
	// more than once and after a failed Start.
	Stop(ctx context.Context) error
	Delete(ctx context.Context) error
}

// AgentPort is the vsock port the guest agent (cmd/sxlab-agent) listens on
// and forwards to the guest's sshd at 127.0.0.1:22. 7022 is free of the
// well-known ports and reads as "ssh, elsewhere"; the agent, the vz worker
// and the sim all take it from here.
const AgentPort uint32 = 7022

// StreamDialer is a machine that reaches a port of its guest without the
// guest's network: vz over the VM's virtio-socket device. A VPN under test
// that takes the guest's routes cuts the lab's TCP to the guest's sshd,
// not this channel (tart PR 364 made its agent talk vsock for the same
// reason). Optional; the lab falls back to TCP without it.
type StreamDialer interface {
	// DialGuest connects to port on the guest's side of the channel.
	DialGuest(ctx context.Context, port uint32) (net.Conn, error)
}

// StartReporter is a machine that says how its last Start started it.
// Optional: the journal leaves the start empty without it.
type StartReporter interface {
	StartInfo() StartInfo
}

// StartInfo is how a machine started.
type StartInfo struct {
	// Restored: from a saved state; false: a cold boot.
	Restored bool
	// Fallback, when set, says why a restore that was tried failed and the
	// machine booted cold instead (a device set or MAC that no longer
	// matches the saved state fails without a word otherwise).
	Fallback string
}

// HostFault is an error saying the host, not the attempt, is broken until
// something outside the lab fixes it (a reboot): the lab gives the host
// no more attempts this run, and counts nothing of it against the product.
type HostFault struct {
	// Reason says what is wrong with the host and what fixes it.
	Reason string
	Err    error
}

func (e *HostFault) Error() string { return e.Err.Error() }
func (e *HostFault) Unwrap() error { return e.Err }

// Image is a golden guest as the lab resolved it from the configuration:
// credentials are final (environment variables already read).
type Image struct {
	Name     string
	User     string
	Password string
	KeyFile  string
	// Agent: the golden runs sxlab-agent (a LaunchDaemon listening on
	// AgentPort), so the lab reaches sshd over a StreamDialer's channel.
	Agent bool
	Sim   *SimImage
	VZ    *VZImage
	Tart  *TartImage
}

// SimImage describes a simulated Mac.
type SimImage struct {
	ProductVersion string
	Build          string
	Faults         []Fault
	Golden         SimGolden
}

// SimGolden says how the simulated Mac's golden was prepared, as macOS
// would have it. A nil field takes the default of a well-prepared golden
// (like tart's base images): automatic login on, SIP on, FileVault off,
// Accessibility and Apple Events granted to sshd-keygen-wrapper and
// osascript, no MDM, NE debug logging off.
type SimGolden struct {
	AutoLogin      *bool     // the console user is logged in by automatic login
	SIP            *bool     // System Integrity Protection enabled
	FileVault      *bool     // FileVault on (macOS then turns automatic login off)
	Accessibility  *[]string // TCC clients allowed Accessibility (paths or bundle IDs)
	AppleEvents    *[]string // TCC clients allowed to send Apple events
	MDM            *SimMDM   // nil: not enrolled
	NEDebugLogging *bool     // com.apple.networkextension debug logging persisted
}

// SimMDM is a user-approved MDM enrolment and the payloads it installed.
type SimMDM struct {
	SystemExtensionPolicies []SimSysextPolicy // com.apple.system-extension-policy
	VPNs                    []SimVPNPayload   // com.apple.vpn.managed
}

// SimSysextPolicy allows a team's system extensions (all, or the bundle
// IDs listed: AllowedSystemExtensions).
type SimSysextPolicy struct {
	Team      string
	BundleIDs []string
}

// SimVPNPayload is a VPN configuration an MDM installed for a provider.
type SimVPNPayload struct {
	Name     string // UserDefinedName
	Provider string // VPNSubType / ProviderBundleIdentifier: the extension
}

// Fault is a named misbehaviour of the simulated Mac. Probability 0 means
// the field report's own figure.
type Fault struct {
	Name        string
	Probability float64
}

// VZImage is the golden bundles of one image for the vz provider: one,
// or a pool of warm goldens (each restores into one clone at a time).
type VZImage struct{ Bundles []string }

// TartImage is a tart VM to clone.
type TartImage struct{ VM string }
