package macos

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// vpnStatus is SCNetworkConnectionStatus.
type vpnStatus int

const (
	vpnDisconnected vpnStatus = iota
	vpnConnecting
	vpnConnected
)

func (s vpnStatus) String() string {
	return [...]string{"Disconnected", "Connecting", "Connected"}[s]
}

// vpnConfig is a Network Extension VPN configuration (what
// NETunnelProviderManager saves), as scutil --nc sees it.
type vpnConfig struct {
	id        string // service ID
	name      string
	appBundle string // the app that created it
	provider  string // providerBundleIdentifier: the extension
	status    vpnStatus
	since     time.Time // last status change
	connectAt time.Time // when Connecting turns Connected
	// polls counts status queries while Connecting. The second one sees
	// Connected even if the guest clock has not moved, so a machine whose
	// clock stands still (time_scale 0) cannot hang a poller.
	polls   int
	address string
	utun    int
}

func (v *vpnConfig) active() bool { return v.status == vpnConnecting || v.status == vpnConnected }

func (v *vpnConfig) session() string {
	return "NESMVPNSession[Primary Tunnel:" + v.name + ":" + v.id + ":(null)]"
}

func (m *Mac) nesm(typ msgType, format string, args ...any) {
	m.logf(m.daemons.nesm, "", typ, "com.apple.networkextension", "", format, args...)
}

func (m *Mac) vpnByName(name string) *vpnConfig {
	for _, v := range m.vpns {
		if v.name == name || v.id == name {
			return v
		}
	}
	return nil
}

func (m *Mac) vpnActive(provider string) bool {
	for _, v := range m.vpns {
		if v.provider == provider && v.active() {
			return true
		}
	}
	return false
}

// vpnStart is SCNetworkConnectionStart: it returns at once; the session
// connects after the simulated delay when the provider can run.
func (m *Mac) vpnStart(v *vpnConfig, pid int) {
	if v.active() {
		return
	}
	m.nesm(typeDefault, "%{public}@ in state NESMVPNSessionStateIdle: received start command from pid %d", v.session(), pid)
	if m.enabledRow(v.provider) == nil {
		m.nesm(typeError, "%{public}@: failed to start: provider %{public}@ is not an enabled system extension", v.session(), v.provider)
		return
	}
	now := m.host.Now()
	v.status, v.since, v.connectAt, v.polls = vpnConnecting, now, now.Add(m.dur.vpnConnect), 0
	v.utun = 4 + m.detailRand.IntN(4)
	v.address = fmt.Sprintf("100.64.%d.%d", m.detailRand.IntN(200), 2+m.detailRand.IntN(250))
	m.nesm(typeDefault, "%{public}@ status changed to connecting", v.session())
	m.reconcile()
}

func (m *Mac) vpnConnected(v *vpnConfig) {
	v.status, v.since = vpnConnected, m.host.Now()
	m.nesm(typeDefault, "%{public}@ status changed to connected", v.session())
	m.routeHostTraffic()
}

// routeHostTraffic tells the machine whether a connected VPN takes the
// guest's route to the host (vpn-captures-host-traffic): from the moment
// a session is connected until none is. Callers hold mu.
func (m *Mac) routeHostTraffic() {
	nw, ok := m.host.(Network)
	if !ok || !m.faults.on(FaultVPNCapturesHostTraffic) {
		return
	}
	captured := false
	for _, v := range m.vpns {
		captured = captured || v.status == vpnConnected
	}
	nw.CaptureHostRoute(captured)
}

func (m *Mac) vpnDisconnect(v *vpnConfig, reason string) {
	if !v.active() {
		return
	}
	v.status, v.since, v.polls = vpnDisconnected, m.host.Now(), 0
	m.nesm(typeDefault, "%{public}@ status changed to disconnected, last stop reason %{public}@", v.session(), reason)
	m.routeHostTraffic()
}

// cmdScutil implements the --nc family and --get of the names.
func (m *Mac) cmdScutil(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) >= 2 && args[0] == "--get" {
		return m.scutilGet(p, args[1])
	}
	if len(args) < 2 || args[0] != "--nc" {
		fmt.Fprintln(stderr(p), "usage: scutil --nc list|status|start|stop|show <service>  (the simulated Mac knows --nc and --get only)")
		return exitFailure
	}
	sub, rest := args[1], args[2:]
	m.begin()
	defer m.mu.Unlock()
	if sub == "list" {
		fmt.Fprint(stdout(p), m.renderVPNList())
		return exitOK
	}
	switch sub {
	case "status", "start", "stop", "show":
	default:
		fmt.Fprintf(stderr(p), "scutil --nc: unknown command %q\n", sub)
		return exitFailure
	}
	if len(rest) == 0 {
		fmt.Fprintln(stderr(p), "No service ID specified")
		fmt.Fprintln(stderr(p), "No service")
		return exitFailure
	}
	v := m.vpnByName(rest[0])
	if v == nil {
		fmt.Fprintln(stderr(p), "No service")
		return exitFailure
	}
	switch sub {
	case "status":
		if v.status == vpnConnecting {
			v.polls++
			if v.polls >= 2 {
				m.vpnConnected(v)
			}
		}
		fmt.Fprint(stdout(p), m.renderVPNStatus(v))
	case "start":
		m.vpnStart(v, m.newPID())
	case "stop":
		m.vpnDisconnect(v, "stop command from scutil")
		m.reconcile()
	case "show":
		fmt.Fprint(stdout(p), vpnListRow(v))
	}
	return exitOK
}

func (m *Mac) scutilGet(p *shell.Proc, pref string) int {
	switch pref {
	case "ComputerName", "LocalHostName":
		fmt.Fprintln(stdout(p), m.hostname())
		return exitOK
	case "HostName":
		fmt.Fprintln(stderr(p), "HostName: not set")
		return exitFailure
	}
	fmt.Fprintf(stderr(p), "%s: not set\n", pref)
	return exitFailure
}

// renderVPNList is `scutil --nc list`, padded the way scutil pads (status
// to 16 columns with its parentheses, type to 18, quoted name to 32).
func (m *Mac) renderVPNList() string {
	var b strings.Builder
	b.WriteString("Available network connection services in the current set (*=enabled):\n")
	for _, v := range m.vpns {
		b.WriteString(vpnListRow(v))
	}
	return b.String()
}

func vpnListRow(v *vpnConfig) string {
	status := padTo("("+v.status.String()+")", max(len(v.status.String()), 16))
	display := padTo("VPN ("+v.appBundle+")", 18)
	name := padTo(`"`+v.name+`"`, max(len(v.name), 32))
	return fmt.Sprintf("* %s %s %s %s [VPN:%s]\n", status, v.id, display, name, v.appBundle)
}

func padTo(s string, width int) string {
	if n := len([]rune(s)); n < width {
		return s + strings.Repeat(" ", width-n)
	}
	return s
}

// renderVPNStatus is `scutil --nc status NAME`: the status, then the
// extended status dictionary as CFCopyDescription prints it.
func (m *Mac) renderVPNStatus(v *vpnConfig) string {
	var b strings.Builder
	b.WriteString(v.status.String() + "\nExtended Status <dictionary> {\n")
	switch v.status {
	case vpnConnected:
		fmt.Fprintf(&b, "  IPv4 : <dictionary> {\n    Addresses : <array> {\n      0 : %s\n    }\n    InterfaceName : utun%d\n    Router : %s\n    ServerAddress : vpn.simulated.invalid\n  }\n", v.address, v.utun, v.address)
		fmt.Fprintf(&b, "  LastStatusChangeTime : %s\n", v.since.Format("01/02/2006 15:04:05"))
		b.WriteString("  Status : 2\n")
		fmt.Fprintf(&b, "  VPN : <dictionary> {\n    ConnectTime : %d\n    Status : 2\n  }\n", v.since.Sub(m.bootTime).Milliseconds())
	case vpnConnecting:
		fmt.Fprintf(&b, "  LastStatusChangeTime : %s\n", v.since.Format("01/02/2006 15:04:05"))
		b.WriteString("  Status : 1\n  VPN : <dictionary> {\n    Status : 1\n  }\n")
	default:
		b.WriteString("  Status : 0\n")
	}
	b.WriteString("}\n")
	return b.String()
}
