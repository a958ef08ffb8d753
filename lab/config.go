package lab

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/internal/strictyaml"
	"github.com/sxlab/sxlab/steps"
	"github.com/sxlab/sxlab/vm"
)

// Config is the whole configuration of a lab, as written in config.yaml.
// Every key is documented in README.md ("Configuration reference") and in
// the comments of the root config.yaml; keep the three in step.
type Config struct {
	Lab      LabSection       `yaml:"lab"`
	Hosts    []Host           `yaml:"hosts"`
	Images   map[string]Image `yaml:"images"`
	App      App              `yaml:"app"`
	Matrix   Matrix           `yaml:"matrix"`
	Scenario []Step           `yaml:"scenario"`
	Probes   []Probe          `yaml:"probes"`
	Collect  Collect          `yaml:"collect"`
	Retry    Retry            `yaml:"retry"`
}

// LabSection names the lab and where runs are kept.
type LabSection struct {
	Name     string   `yaml:"name"`
	RunsDir  string   `yaml:"runs_dir"`
	Seed     int64    `yaml:"seed"`
	Timeouts Timeouts `yaml:"timeouts"`
}

// Timeouts bound the waits of an attempt that would otherwise have no
// end: a guest that never boots, a command that hangs. Passing one is an
// infrastructure error (retried), not a product failure.
type Timeouts struct {
	// Boot bounds a machine's start until its sshd answers (also after a
	// reboot step). Real Macs take one to a few minutes.
	Boot Duration `yaml:"boot"`
	// Command bounds one guest command or file transfer of a step that
	// sets no timeout of its own.
	Command Duration `yaml:"command"`
}

// Providers a host can use.
const (
	ProviderSim  = "sim"
	ProviderVZ   = "vz"
	ProviderTart = "tart"
	ProviderSSH  = "ssh"
)

// Providers lists the provider names in documentation order.
func Providers() []string { return []string{ProviderSim, ProviderVZ, ProviderTart, ProviderSSH} }

// MaxMacOSGuests is the number of macOS guests Virtualization.framework runs
// at once on one host: the macOS licence allows two, and the framework
// enforces it (VZErrorVirtualMachineLimitExceeded).
const MaxMacOSGuests = 2

// Host is one machine that runs attempts, with Slots attempts at a time.
type Host struct {
	Name     string    `yaml:"name"`
	Provider string    `yaml:"provider"`
	Slots    int       `yaml:"slots"`
	Sim      *SimHost  `yaml:"sim,omitempty"`
	VZ       *VZHost   `yaml:"vz,omitempty"`
	Tart     *TartHost `yaml:"tart,omitempty"`
	SSH      *SSHHost  `yaml:"ssh,omitempty"`
}

// SimHost tunes the simulated Macs of a sim host.
type SimHost struct {
	// TimeScale multiplies every simulated duration (boot, install, ...);
	// 0 makes the sim instant, 1 is real time.
	TimeScale *float64 `yaml:"time_scale,omitempty"`
}

// VZHost says where a vz host keeps its golden images and clones.
type VZHost struct {
	Store string `yaml:"store,omitempty"`
}

// TartHost says where tart keeps its VMs (TART_HOME).
type TartHost struct {
	Home string `yaml:"home,omitempty"`
}

// SSHHost is an existing Mac reached over SSH.
type SSHHost struct {
	Address string `yaml:"address"`
	User    string `yaml:"user,omitempty"`
	Auth    Auth   `yaml:"auth,omitempty"`
	// Reset runs before each attempt to return the Mac to its baseline.
	Reset string `yaml:"reset,omitempty"`
}

// Image is a golden macOS guest, described per provider.
type Image struct {
	Sim  *SimImage  `yaml:"sim,omitempty"`
	VZ   *VZImage   `yaml:"vz,omitempty"`
	Tart *TartImage `yaml:"tart,omitempty"`
	User string     `yaml:"user,omitempty"`
	Auth Auth       `yaml:"auth,omitempty"`
	// Prepare runs in the golden, in order, when `sxlab image warm` has
	// booted it and before its state is saved (e.g. wait for Spotlight,
	// turn off software update checks).
	Prepare []string `yaml:"prepare,omitempty"`
	// Agent: the golden runs sxlab-agent, so the lab reaches its sshd over
	// the provider's guest channel (vz: vsock) when the provider has one,
	// and over TCP otherwise.
	Agent bool `yaml:"agent,omitempty"`
}

// SimImage is what a simulated Mac reports and which field-report faults
// it reproduces.
type SimImage struct {
	ProductVersion string  `yaml:"product_version"`
	Build          string  `yaml:"build"`
	Faults         []Fault `yaml:"faults,omitempty"`
	// Golden says how the golden was prepared; unset keys describe a
	// well-prepared one (see vm.SimGolden).
	Golden *SimGolden `yaml:"golden,omitempty"`
}

// SimGolden is how a sim image's golden was prepared, as macOS keeps it.
type SimGolden struct {
	AutoLogin      *bool   `yaml:"auto_login,omitempty"`
	SIP            *bool   `yaml:"sip,omitempty"`
	FileVault      *bool   `yaml:"filevault,omitempty"`
	TCC            *SimTCC `yaml:"tcc,omitempty"`
	MDM            *SimMDM `yaml:"mdm,omitempty"`
	NEDebugLogging *bool   `yaml:"ne_debug_logging,omitempty"`
	// VPNConfigurationAllowed false: the app's first VPN save waits for
	// the "Would Like to Add VPN Configurations" alert (approve: {strategy:
	// ui, what: vpn-configuration} answers it); default true.
	VPNConfigurationAllowed *bool `yaml:"vpn_configuration_allowed,omitempty"`
}

// SimTCC lists the clients (paths or bundle IDs) granted each privacy
// service; an unset list keeps the default grants.
type SimTCC struct {
	Accessibility *[]string `yaml:"accessibility,omitempty"`
	AppleEvents   *[]string `yaml:"apple_events,omitempty"`
}

// SimMDM is a user-approved MDM enrolment and what it installed.
type SimMDM struct {
	SystemExtensionPolicies []SimSysextPolicy `yaml:"system_extension_policies,omitempty"`
	VPN                     []SimVPNPayload   `yaml:"vpn,omitempty"`
}

// SimSysextPolicy allows a team's system extensions: all of them, or
// the bundle IDs listed.
type SimSysextPolicy struct {
	Team      string   `yaml:"team"`
	BundleIDs []string `yaml:"bundle_ids,omitempty"`
}

// SimVPNPayload is an MDM-installed VPN configuration.
type SimVPNPayload struct {
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"`
}

// vm is the golden as the provider takes it.
func (g *SimGolden) vm() vm.SimGolden {
	if g == nil {
		return vm.SimGolden{}
	}
	out := vm.SimGolden{AutoLogin: g.AutoLogin, SIP: g.SIP, FileVault: g.FileVault, NEDebugLogging: g.NEDebugLogging,
		VPNConfigurationAllowed: g.VPNConfigurationAllowed}
	if g.TCC != nil {
		out.Accessibility, out.AppleEvents = g.TCC.Accessibility, g.TCC.AppleEvents
	}
	if g.MDM != nil {
		out.MDM = &vm.SimMDM{}
		for _, p := range g.MDM.SystemExtensionPolicies {
			out.MDM.SystemExtensionPolicies = append(out.MDM.SystemExtensionPolicies, vm.SimSysextPolicy{Team: p.Team, BundleIDs: p.BundleIDs})
		}
		for _, v := range g.MDM.VPN {
			out.MDM.VPNs = append(out.MDM.VPNs, vm.SimVPNPayload{Name: v.Name, Provider: v.Provider})
		}
	}
	return out
}

// Fault switches on one misbehaviour of the simulated Mac.
type Fault struct {
	Name string `yaml:"name" short:"true"`
	// Probability that the fault strikes where it can (0 < p <= 1);
	// unset means the field report's own figure.
	Probability *float64 `yaml:"probability,omitempty"`
}

// Faults the simulated Mac knows, each traced to a field report.
var simFaults = map[string]string{
	"endpoint-lost-on-replace-while-running": "xpc-invalidated-on-upgrade",
	"endpoint-registration-race":             "xpc-broken-20-percent",
	"approval-coalesced":                     "approval-dialog-missing",
	// no field report: the lab-side symptom of tart PR 364
	"vpn-captures-host-traffic": "",
}

// SimFaults lists the fault names a sim image may switch on.
func SimFaults() []string {
	return []string{"endpoint-lost-on-replace-while-running", "endpoint-registration-race", "approval-coalesced", "vpn-captures-host-traffic"}
}

// VZImage is a golden bundle in the vz store, or a pool of them. A warm
// golden (one with a saved state) restores into one clone at a time, as
// the state is tied to its MAC; a host with two slots needs two warm
// goldens of the image to restore two at once.
type VZImage struct {
	Bundle  string   `yaml:"bundle,omitempty"`
	Bundles []string `yaml:"bundles,omitempty"`
}

// Goldens lists the image's bundles, whichever key named them.
func (v VZImage) Goldens() []string {
	if v.Bundle != "" {
		return append([]string{v.Bundle}, v.Bundles...)
	}
	return v.Bundles
}

// TartImage is a tart VM to clone.
type TartImage struct {
	VM string `yaml:"vm"`
}

// Auth says how to log in to a guest. Password is accepted inline for
// throwaway images (tart's admin/admin) and is redacted when printed.
type Auth struct {
	Password    string `yaml:"password,omitempty" secret:"true"`
	PasswordEnv string `yaml:"password_env,omitempty"`
	Key         string `yaml:"key,omitempty"`
}

// IsZero reports whether no auth was configured.
func (a Auth) IsZero() bool { return a == Auth{} }

// App is the product under test.
type App struct {
	Name       string             `yaml:"name"`
	BundleID   string             `yaml:"bundle_id"`
	Path       string             `yaml:"path"`
	Extension  Extension          `yaml:"extension"`
	VPNService string             `yaml:"vpn_service"`
	Versions   map[string]Version `yaml:"versions"`
}

// Extension is the app's system extension.
type Extension struct {
	BundleID string `yaml:"bundle_id"`
	TeamID   string `yaml:"team_id"`
	// MachService may contain {{.Version}} and {{.Build}}: a versioned
	// service name is the known cure for xpc-invalidated-on-upgrade.
	MachService string `yaml:"mach_service"`
}

// Version is one build of the app, shipped as a package.
type Version struct {
	Package string `yaml:"package"`
	Kind    string `yaml:"kind,omitempty"`
}

// Package kinds.
var packageKinds = []string{"pkg", "dmg", "zip"}

// Matrix is the matrix section; see package matrices for the semantics.
type Matrix struct {
	Axes    OrderedAxes         `yaml:"axes"`
	Include []map[string]string `yaml:"include,omitempty"`
	Exclude []map[string]string `yaml:"exclude,omitempty"`
	Repeat  int                 `yaml:"repeat"`
	// ImageAxis names the axis whose values are image names; PathAxis the
	// axis whose values are upgrade paths "FROM->TO".
	ImageAxis string `yaml:"image_axis"`
	PathAxis  string `yaml:"path_axis"`
	// Image, when set, names each cell's image instead of the image
	// axis: a template over the cell's axes ({{.Axis.macos}}), so an
	// image may depend on several axes (approved cells on an MDM-enrolled
	// golden, pending ones on a plain one).
	Image string `yaml:"image,omitempty"`
}

// Step is one step of the scenario: exactly one kind key is set.
type Step struct {
	Name    string              `yaml:"name,omitempty"`
	When    map[string][]string `yaml:"when,omitempty"`
	Timeout Duration            `yaml:"timeout,omitempty"`

	Install       *InstallStep       `yaml:"install,omitempty"`
	Upgrade       *UpgradeStep       `yaml:"upgrade,omitempty"`
	Launch        *LaunchStep        `yaml:"launch,omitempty"`
	Quit          *QuitStep          `yaml:"quit,omitempty"`
	WaitExtension *WaitExtensionStep `yaml:"wait-extension,omitempty"`
	Approve       *ApproveStep       `yaml:"approve,omitempty"`
	VPN           *VPNStep           `yaml:"vpn,omitempty"`
	Reboot        *RebootStep        `yaml:"reboot,omitempty"`
	Shell         *ShellStep         `yaml:"shell,omitempty"`
	Sleep         *SleepStep         `yaml:"sleep,omitempty"`
	Probe         *ProbeStep         `yaml:"probe,omitempty"`
}

// Kinds returns the kind keys set on the step, in catalogue order.
func (s Step) Kinds() []string {
	var out []string
	for _, k := range []struct {
		name string
		set  bool
	}{
		{"install", s.Install != nil}, {"upgrade", s.Upgrade != nil}, {"launch", s.Launch != nil},
		{"quit", s.Quit != nil}, {"wait-extension", s.WaitExtension != nil}, {"approve", s.Approve != nil},
		{"vpn", s.VPN != nil}, {"reboot", s.Reboot != nil}, {"shell", s.Shell != nil},
		{"sleep", s.Sleep != nil}, {"probe", s.Probe != nil},
	} {
		if k.set {
			out = append(out, k.name)
		}
	}
	return out
}

// StepKinds lists every step kind.
func StepKinds() []string {
	return []string{"install", "upgrade", "launch", "quit", "wait-extension", "approve", "vpn", "reboot", "shell", "sleep", "probe"}
}

// InstallStep installs a version: `install: "{{.From}}"`.
type InstallStep struct {
	Version string `yaml:"version" short:"true"`
}

// UpgradeStep installs a newer version over the old one, optionally doing
// what real installers do first (stop the VPN, quit the app).
type UpgradeStep struct {
	Version string   `yaml:"version" short:"true"`
	Before  []string `yaml:"before,omitempty"`
}

// Things an upgrade may do first, as Coder Desktop's preinstall does.
var upgradeBefore = []string{"stop-vpn", "quit-app"}

// LaunchStep opens the app as the console user.
type LaunchStep struct {
	Wait Duration `yaml:"wait,omitempty" short:"true"`
}

// QuitStep quits the app.
type QuitStep struct {
	Wait Duration `yaml:"wait,omitempty" short:"true"`
}

// WaitExtensionStep polls systemextensionsctl until a state holds.
type WaitExtensionStep struct {
	State   string `yaml:"state" short:"true"`
	Version string `yaml:"version,omitempty"`
}

// ApproveStep approves the extension by a strategy.
type ApproveStep struct {
	Strategy string `yaml:"strategy" short:"true"`
	// What the ui strategy answers: the extension's approval in System
	// Settings (extension, the default) or the VPN-configuration alert.
	What string `yaml:"what,omitempty"`
	// Run is the command line of the command strategy. (prompt, the
	// deprecated alias of ui, ignores it.)
	Run string `yaml:"run,omitempty"`
}

// prompt is the deprecated alias of ui.
var approveStrategies = []string{"mdm", "ui", "command", "none", "prompt"}

var approveWhat = []string{"extension", "vpn-configuration"}

// VPNStep starts or stops the app's VPN and waits for the state.
type VPNStep struct {
	Action string `yaml:"action" short:"true"`
}

var vpnActions = []string{"start", "stop"}

// RebootStep reboots the guest and waits for sshd.
type RebootStep struct {
	Wait Duration `yaml:"wait,omitempty" short:"true"`
}

// ShellStep runs a command in the guest.
type ShellStep struct {
	Run          string `yaml:"run" short:"true"`
	ExpectExit   *int   `yaml:"expect_exit,omitempty"`
	ExpectStdout string `yaml:"expect_stdout,omitempty"`
	Sudo         bool   `yaml:"sudo,omitempty"`
}

// SleepStep waits.
type SleepStep struct {
	For Duration `yaml:"for" short:"true"`
}

// ProbeStep runs probes by name (all configured probes when empty).
type ProbeStep struct {
	Probes []string `yaml:"probes,omitempty" short:"true"`
}

// Probe observes the guest and says whether the product behaves.
type Probe struct {
	Name string              `yaml:"name"`
	Kind string              `yaml:"kind,omitempty"`
	When map[string][]string `yaml:"when,omitempty"`
	// extension-state
	State   string `yaml:"state,omitempty"`
	Version string `yaml:"version,omitempty"`
	Old     string `yaml:"old,omitempty"`
	// mach-endpoint (defaults to app.extension.mach_service)
	Service string `yaml:"service,omitempty"`
	// vpn-status
	Expect string `yaml:"expect,omitempty"`
	// xpc, command
	Run          string   `yaml:"run,omitempty"`
	ExpectExit   *int     `yaml:"expect_exit,omitempty"`
	ExpectStdout string   `yaml:"expect_stdout,omitempty"`
	Timeout      Duration `yaml:"timeout,omitempty"`
}

// ProbeKinds lists the probe kinds.
func ProbeKinds() []string {
	return []string{"extension-state", "mach-endpoint", "mach-lookup", "xpc-connect", "vpn-status", "xpc", "command"}
}

// probeFields says which kind-specific keys each probe kind takes.
var probeFields = map[string][]string{
	"extension-state": {"state", "version", "old"},
	"mach-endpoint":   {"service"},
	"mach-lookup":     {"service"},           // sxlab-probe: bootstrap_look_up (docs/probe.md)
	"xpc-connect":     {"service", "expect"}, // sxlab-probe: one XPC message; expect reachable|reply
	"vpn-status":      {"expect"},
	"xpc":             {"run", "expect_exit", "expect_stdout"},
	"command":         {"run", "expect_exit", "expect_stdout"},
}

var oldVersionRules = []string{"gone", "pending-reboot", "gone-or-pending-reboot", "any"}

// Collect is the evidence policy.
type Collect struct {
	On          string      `yaml:"on"`
	Sysdiagnose bool        `yaml:"sysdiagnose"`
	Logs        CollectLogs `yaml:"logs"`
	Timeout     Duration    `yaml:"timeout"`
	MinFree     ByteSize    `yaml:"min_free"`
	// Signatures extend (or, by id, replace) the built-in triage catalog.
	Signatures []artifacts.Signature `yaml:"signatures,omitempty"`
}

// CollectLogs filters the unified log collected per attempt.
type CollectLogs struct {
	Predicate string `yaml:"predicate"`
}

var collectOn = []string{"failure", "always", "never"}

// Retry is the policy for infrastructure errors (never product failures).
type Retry struct {
	Max     int      `yaml:"max"`
	Backoff Duration `yaml:"backoff"`
}

// Bounds of the retry policy: a lab that fails an attempt ten times in a
// row is broken, and more tries only hide that (and keep its slot).
const (
	MaxRetries = 10
	MaxBackoff = 5 * time.Minute
)

// Delay is the wait before try (2 is the first retry): backoff, doubling
// with each further try, at most MaxBackoff.
func (r Retry) Delay(try int) time.Duration {
	d := time.Duration(r.Backoff)
	if d <= 0 || try < 2 {
		return 0
	}
	for i := 2; i < try && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// Duration is a time.Duration written as "30s", "5m", "1h30m".
type Duration time.Duration

// DecodeScalar parses a duration; a bare number is refused because its
// unit would be a guess.
func (d *Duration) DecodeScalar(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like 30s, 5m or 1h30m)", s)
	}
	if v < 0 {
		return fmt.Errorf("%q: a duration cannot be negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML prints the duration as text.
func (d Duration) MarshalYAML() (any, error) {
	if d == 0 {
		return nil, nil
	}
	return time.Duration(d).String(), nil
}

// IsZero lets omitempty drop unset durations.
func (d Duration) IsZero() bool { return d == 0 }

// ByteSize is a size written as "5GiB", "500MB" or a number of bytes.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
}

// DecodeScalar parses a size.
func (b *ByteSize) DecodeScalar(s string) error {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	var n float64
	if _, err := fmt.Sscanf(t, "%g", &n); err != nil || n < 0 || fmt.Sprint(n) == "" {
		return fmt.Errorf("%q is not a size (write it like 5GiB or 500MB)", s)
	}
	if rest := strings.TrimLeft(t, "0123456789.eE+-"); rest != "" {
		return fmt.Errorf("%q is not a size (write it like 5GiB or 500MB)", s)
	}
	if n*float64(mult) >= math.MaxInt64 {
		return fmt.Errorf("%q is too large a size", s)
	}
	*b = ByteSize(n * float64(mult))
	return nil
}

// MarshalYAML prints the size in the largest whole binary unit.
func (b ByteSize) MarshalYAML() (any, error) {
	if b == 0 {
		return nil, nil
	}
	return b.String(), nil
}

// String formats the size for people.
func (b ByteSize) String() string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(b) >= u.m && int64(b)%u.m == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.m, u.s)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// IsZero lets omitempty drop unset sizes.
func (b ByteSize) IsZero() bool { return b == 0 }

// Axis is one matrix axis with its values in file order.
type Axis struct {
	Name   string
	Values []string
}

// OrderedAxes keeps the axes in the order the file lists them: that order
// decides the plan's order and the cells' labels.
type OrderedAxes []Axis

// DecodeYAMLNode decodes `name: [values]` lines in order.
func (a *OrderedAxes) DecodeYAMLNode(d *strictyaml.Decoder, path string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.Problem(path, n, "%s: expected a mapping of axis names to lists of values", path)
		return
	}
	seen := map[string]int{}
	for _, kv := range strictyaml.Pairs(n) {
		name := kv[0].Value
		child := strictyaml.Join(path, name)
		if line, dup := seen[name]; dup {
			d.Problem(child, kv[0], "%s: repeated axis (first at line %d)", child, line)
			continue
		}
		seen[name] = kv[0].Line
		d.Paths[child+"#key"] = kv[0]
		var values []string
		d.DecodeAt(child, kv[1], &values)
		*a = append(*a, Axis{Name: name, Values: values})
	}
}

// MarshalYAML writes the axes back in order.
func (a OrderedAxes) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, ax := range a {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, v := range ax.Values {
			seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ax.Name}, seq)
	}
	return n, nil
}

// Values returns the values of the named axis (nil when absent).
func (a OrderedAxes) Values(name string) []string {
	for _, ax := range a {
		if ax.Name == name {
			return ax.Values
		}
	}
	return nil
}

// Collector is the evidence policy and the app facts collection needs.
// Package ids come from simulated package manifests; for real packages
// the collector finds receipts by the app's bundle id.
func (c *Config) Collector(app steps.App) *artifacts.Collector {
	var pkgs []string
	for _, v := range app.Versions {
		if v.PackageID != "" && !slices.Contains(pkgs, v.PackageID) {
			pkgs = append(pkgs, v.PackageID)
		}
	}
	slices.Sort(pkgs)
	return &artifacts.Collector{
		Policy: artifacts.Policy{
			On: c.Collect.On, Sysdiagnose: c.Collect.Sysdiagnose,
			Predicate: c.Collect.Logs.Predicate, Timeout: time.Duration(c.Collect.Timeout),
		},
		App: artifacts.App{
			BundleID: c.App.BundleID, ExtensionBundleID: c.App.Extension.BundleID, TeamID: c.App.Extension.TeamID,
			VPNService: c.App.VPNService, Packages: pkgs,
		},
	}
}
