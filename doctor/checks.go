package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
)

// Facts and thresholds the checks use.
const (
	entitlement = "com.apple.security.virtualization"
	// vmProcess is the XPC service that runs each Virtualization.framework
	// guest, macOS or Linux, whichever app started it.
	vmProcess = "com.apple.Virtualization.VirtualMachine"
	// bootpdPlist holds the NAT DHCP server's settings; DHCPLeaseTimeSecs
	// in its bootpd dictionary overrides the one-day default.
	bootpdPlist      = "/Library/Preferences/SystemConfiguration/com.apple.InternetSharing.default.plist"
	leasesFile       = "/var/db/dhcpd_leases"
	defaultLeaseSecs = 86400
	// maxLeaseSecs: above this, many short-lived VMs a day exhaust the
	// ~253 addresses of the NAT subnet.
	maxLeaseSecs = 3600
	leasePool    = 253
	// storeWarn: below this, a day of clones (each grows by what its
	// attempt writes: installers, logs, sysdiagnose) may fill the disk.
	storeWarn = 50 << 30
	signFix   = "build and sign it: `scripts/sign.sh` (or `codesign --entitlements sxlab.entitlements -s - <sxlab>`); a binary from `go run` is never signed"
)

// platform states what this OS and architecture can run.
func (d *doctor) platform() {
	s := d.sys
	switch {
	case d.appleSilicon():
		d.r.Summary = append(d.r.Summary, "This is a Mac with Apple Silicon: every provider (sim, vz, tart, ssh) can run here.")
	case s.GOOS == "darwin":
		d.r.Summary = append(d.r.Summary, fmt.Sprintf("This is an Intel Mac (%s/%s): the sim and ssh providers run here; vz and tart need a Mac with Apple Silicon (darwin/arm64), as macOS guests run only there.", s.GOOS, s.GOARCH))
	default:
		d.r.Summary = append(d.r.Summary, fmt.Sprintf("This is %s/%s: the sim and ssh providers run here; vz and tart need macOS on Apple Silicon (darwin/arm64).", s.GOOS, s.GOARCH))
	}
	if !d.appleSilicon() {
		d.r.Needs = []string{
			"a Mac with Apple Silicon on macOS 14 or later (13 works but boots every attempt cold: saved state needs 14)",
			"vz: sxlab signed with the " + entitlement + " entitlement (`scripts/sign.sh`), and golden bundles in hosts[].vz.store (`sxlab image import-tart`)",
			"tart: `brew install cirruslabs/cli/tart` and a golden VM (`tart clone ghcr.io/cirruslabs/macos-sequoia-base:latest NAME`)",
			"on a headless Mac: the user logged in graphically (automatic login) or an unlocked login keychain, for guests of macOS 15.2+; sxlab started over SSH, from Terminal or as a LaunchDaemon (a LaunchAgent needs Local Network access, TN3179)",
			"at most 2 slots per host: Virtualization.framework runs two macOS guests at once",
		}
	}
}

// macHost checks a vz or tart host; it returns false when the platform
// cannot run it at all.
func (d *doctor) macHost(ctx context.Context, h Host) bool {
	subj := h.subject()
	if !d.appleSilicon() {
		d.add(subj, "platform", Failure,
			fmt.Sprintf("%s needs macOS on Apple Silicon (darwin/arm64); this is %s", h.Provider, d.r.Platform),
			"run sxlab on an Apple Silicon Mac, or reach a Mac from here with an ssh host (provider: ssh)")
		return false
	}
	d.add(subj, "platform", OK, "macOS on Apple Silicon", "")
	switch h.Provider {
	case lab.ProviderVZ:
		d.entitlement(ctx, subj)
		store, what := h.Store, "the store "+h.Store
		if store == "" {
			home, err := d.sys.UserHome()
			if err != nil {
				d.add(subj, "disk", Warning, "hosts[].vz.store is not set and the home folder is unknown: free space not checked", "set hosts[].vz.store")
				break
			}
			store, what = home, "your home folder (hosts[].vz.store is not set)"
		}
		d.storeDisk(subj, store, what)
	case lab.ProviderTart:
		d.tartInstalled(ctx, subj)
		if home := d.tartHome(h); home != "" {
			d.storeDisk(subj, home, "tart's home "+home)
		}
	}
	if h.Slots > lab.MaxMacOSGuests {
		d.add(subj, "slots", Failure, fmt.Sprintf("%d slots, but Virtualization.framework runs at most %d macOS guests per host", h.Slots, lab.MaxMacOSGuests),
			fmt.Sprintf("set hosts[].slots to %d or less and shard the plan across Macs", lab.MaxMacOSGuests))
	}
	return true
}

// tartHome is the tart home of h: hosts[].tart.home, $TART_HOME, ~/.tart.
func (d *doctor) tartHome(h Host) string {
	home := h.TartHome
	if home == "" {
		home = d.sys.Getenv("TART_HOME")
	}
	if home == "" {
		if userHome, err := d.sys.UserHome(); err == nil {
			home = filepath.Join(userHome, ".tart")
		}
	}
	return home
}

// entitlement checks that this binary may use Virtualization.framework.
func (d *doctor) entitlement(ctx context.Context, subj string) {
	exe, err := d.sys.Executable()
	if err != nil {
		d.add(subj, "entitlement", Warning, fmt.Sprintf("cannot find this binary to check its signature: %v", err), "")
		return
	}
	out, err := d.sys.Run(ctx, "codesign", "-d", "--entitlements", "-", exe)
	if err != nil {
		d.add(subj, "entitlement", Warning, fmt.Sprintf("cannot run codesign: %v", err), "install the Xcode command line tools: xcode-select --install")
		return
	}
	text := out.Stdout + out.Stderr
	switch {
	case strings.Contains(text, entitlement):
		d.add(subj, "entitlement", OK, fmt.Sprintf("%s is signed with %s", exe, entitlement), "")
	case strings.Contains(text, "not signed"):
		d.add(subj, "entitlement", Failure, fmt.Sprintf("%s is not signed, so Virtualization.framework refuses it", exe), signFix)
	default:
		d.add(subj, "entitlement", Failure, fmt.Sprintf("%s is signed without %s, so Virtualization.framework refuses it", exe, entitlement), signFix)
	}
}

func (d *doctor) tartInstalled(ctx context.Context, subj string) {
	path, err := d.sys.LookPath("tart")
	if err != nil {
		d.add(subj, "tart", Failure, "tart is not on PATH", "brew install cirruslabs/cli/tart (https://tart.run), then open a new shell")
		return
	}
	version := "version unknown"
	if out, err := d.sys.Run(ctx, path, "--version"); err == nil && out.Exit == 0 {
		version = strings.TrimSpace(out.Stdout)
	}
	d.add(subj, "tart", OK, fmt.Sprintf("tart %s at %s", version, path), "")
}

// storeDisk checks the space for clones.
func (d *doctor) storeDisk(subj, path, what string) {
	free, at, err := d.free(path)
	if err != nil {
		d.add(subj, "disk", Warning, fmt.Sprintf("cannot measure free space under %s: %v", what, err), "")
		return
	}
	msg := fmt.Sprintf("%s free under %s", size(free), what)
	if abs, _ := filepath.Abs(path); at != abs {
		msg += " (measured at " + at + ", as it does not exist yet)"
	}
	switch {
	case int64(free) < d.cfg.MinFree:
		d.add(subj, "disk", Failure, msg+fmt.Sprintf(", less than collect.min_free (%s)", size(uint64(d.cfg.MinFree))),
			"free some space: delete old clones or images, or move the store to a larger volume")
	case free < storeWarn:
		d.add(subj, "disk", Warning, msg+fmt.Sprintf(": a clone grows by what its attempt writes (installers, logs, sysdiagnose), and less than %s may not last a day of attempts", size(storeWarn)),
			"free some space, or move the store to a larger volume")
	default:
		d.add(subj, "disk", OK, msg, "")
	}
}

// free measures the volume of path, or of its nearest existing parent
// (runs_dir is made by the first run).
func (d *doctor) free(path string) (uint64, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, "", err
	}
	at := abs
	for {
		if _, err := d.sys.Stat(at); err == nil {
			break
		}
		parent := filepath.Dir(at)
		if parent == at {
			return 0, abs, fmt.Errorf("no existing folder above %s", abs)
		}
		at = parent
	}
	n, err := d.sys.FreeSpace(at)
	return n, at, err
}

func (d *doctor) runsDir() {
	subj := "runs_dir " + d.cfg.RunsDir
	real := false
	for _, h := range d.cfg.Hosts {
		real = real || h.Provider != lab.ProviderSim
	}
	free, at, err := d.free(d.cfg.RunsDir)
	if err != nil {
		d.add(subj, "disk", Warning, fmt.Sprintf("cannot measure free space: %v", err), "")
		return
	}
	msg := fmt.Sprintf("%s free at %s (collect.min_free: %s)", size(free), at, size(uint64(d.cfg.MinFree)))
	if int64(free) >= d.cfg.MinFree {
		d.add(subj, "disk", OK, msg, "")
		return
	}
	if real {
		d.add(subj, "disk", Failure, msg+": attempts on real Macs are refused below it (evidence such as a sysdiagnose takes hundreds of MB)",
			"free some space, or point lab.runs_dir at a larger volume")
		return
	}
	d.add(subj, "disk", Warning, msg, "free some space, or point lab.runs_dir at a larger volume")
}

// sshHost checks an existing Mac: reachable, reset configured, one slot.
func (d *doctor) sshHost(ctx context.Context, h Host) {
	subj := h.subject()
	addr := h.SSH
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "22")
	}
	if err := d.sys.Dial(ctx, addr); err != nil {
		fix := "check that the Mac is on and reachable from here, that Remote Login is on (System Settings > General > Sharing), and hosts[].ssh.address"
		if hint := d.localNetworkFix(err); hint != "" {
			fix = hint
		}
		d.add(subj, "reach", Failure, fmt.Sprintf("cannot reach sshd at %s: %v", addr, err), fix)
	} else {
		d.add(subj, "reach", OK, fmt.Sprintf("sshd answers at %s (the login is tried by the first attempt)", addr), "")
	}
	if strings.TrimSpace(h.Reset) == "" {
		d.add(subj, "reset", Warning, "no reset command: each attempt finds the Mac as the previous one left it, so verdicts depend on order",
			"set hosts[].ssh.reset to a command that uninstalls the app and its extension")
	} else {
		d.add(subj, "reset", OK, "reset before each attempt: "+h.Reset, "")
	}
	if h.Slots > 1 {
		d.add(subj, "slots", Failure, fmt.Sprintf("%d slots, but an existing Mac runs one attempt at a time", h.Slots), "set hosts[].slots to 1 (or leave it out)")
	}
}

// localNetworkFix explains EHOSTUNREACH on macOS 15+, where Local
// Network privacy blocks a process from the LAN and the guests' NAT.
func (d *doctor) localNetworkFix(err error) string {
	if d.sys.GOOS != "darwin" || !errors.Is(err, syscall.EHOSTUNREACH) {
		return ""
	}
	return "on macOS this usually means Local Network privacy blocks the process: " + localNetworkWho
}

// localNetworkWho says what Local Network privacy applies to (TN3179):
// command-line tools run from Terminal or over SSH, launchd daemons and
// root are exempt; LaunchAgents and other apps' terminals are not.
const localNetworkWho = "sxlab run from Terminal or over SSH is exempt (Apple TN3179), as are launchd daemons and processes running as root; run from a LaunchAgent (a CI runner installed as one) or another app's terminal it is not: run it over SSH or from a LaunchDaemon, or allow the app responsible for it in System Settings > Privacy & Security > Local Network"

// thisMac runs the checks of the Mac itself, once for all vz and tart hosts.
func (d *doctor) thisMac(ctx context.Context, hosts []Host) {
	names := make([]string, len(hosts))
	slots := 0
	tart := false
	for i, h := range hosts {
		names[i] = h.Name
		slots += h.Slots
		tart = tart || h.Provider == lab.ProviderTart
	}
	subj := "this Mac (for " + strings.Join(names, ", ") + ")"
	d.macOSVersion(ctx, subj)
	d.keychain(ctx, subj)
	d.consoleUser(ctx, subj)
	d.localNetwork(ctx, subj)
	d.runningVMs(ctx, subj, slots, tart)
	d.leaseTime(ctx, subj)
	for _, h := range hosts {
		switch h.Provider {
		case lab.ProviderVZ:
			d.leakedSlot(ctx, h.subject(), h.Store)
		case lab.ProviderTart:
			if home := d.tartHome(h); home != "" {
				d.leakedSlot(ctx, h.subject(), filepath.Join(home, "sxlab-locks")) // vm/tart's lock folder
			}
		}
	}
}

func (d *doctor) macOSVersion(ctx context.Context, subj string) {
	out, err := d.sys.Run(ctx, "sw_vers", "-productVersion")
	if err != nil || out.Exit != 0 {
		d.add(subj, "macos", Warning, fmt.Sprintf("cannot read the macOS version (sw_vers: %v %s)", err, strings.TrimSpace(out.Stderr)), "")
		return
	}
	d.macOS = strings.TrimSpace(out.Stdout)
	major, _, _ := strings.Cut(d.macOS, ".")
	d.macOSMajor, err = strconv.Atoi(major)
	switch {
	case err != nil:
		d.add(subj, "macos", Warning, fmt.Sprintf("unexpected macOS version %q", d.macOS), "")
	case d.macOSMajor < 13:
		d.add(subj, "macos", Failure, fmt.Sprintf("macOS %s: too old to run macOS guests for sxlab", d.macOS), "update the host to macOS 14 or later")
	case d.macOSMajor < 14:
		d.add(subj, "macos", Warning, fmt.Sprintf("macOS %s: no saved state, so every attempt boots cold (minutes instead of seconds)", d.macOS), "update the host to macOS 14 or later")
	default:
		d.add(subj, "macos", OK, fmt.Sprintf("macOS %s: saved state can be restored", d.macOS), "")
	}
}

func (d *doctor) keychain(ctx context.Context, subj string) {
	out, err := d.sys.Run(ctx, "security", "show-keychain-info")
	switch {
	case err != nil:
		d.add(subj, "keychain", Warning, fmt.Sprintf("cannot run security: %v", err), "")
	case out.Exit == 0:
		d.keychainUnlocked = true
		d.add(subj, "keychain", OK, "the login keychain is unlocked", "")
	default:
		why := strings.TrimSpace(out.Stderr + " " + out.Stdout)
		d.add(subj, "keychain", Warning,
			"the login keychain is locked ("+why+"); Virtualization.framework on a headless macOS 15+ host wants it unlocked",
			"run `security unlock-keychain ~/Library/Keychains/login.keychain-db` in the session that runs sxlab (a CI job: before sxlab run; -p takes the password)")
	}
}

// localNetwork tries port 22 of the guests bootpd leased an address to:
// macOS 15's Local Network privacy makes such connections fail with
// EHOSTUNREACH for a process that is not allowed.
func (d *doctor) localNetwork(ctx context.Context, subj string) {
	if d.macOSMajor != 0 && d.macOSMajor < 15 {
		d.add(subj, "local-network", OK, "Local Network privacy does not apply before macOS 15", "")
		return
	}
	allow := localNetworkWho
	leases := d.leases()
	now := d.sys.Now().Unix()
	var live []guest.Lease
	for _, l := range leases {
		if l.Expires > now && net.ParseIP(l.IPAddress) != nil {
			live = append(live, l)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Expires > live[j].Expires })
	if len(live) == 0 {
		d.add(subj, "local-network", Note, "no guest holds a lease, so there is nothing to try; if connections to guests fail with \"no route to host\", "+allow, "")
		return
	}
	var tried []string
	for _, l := range live[:min(3, len(live))] {
		addr := net.JoinHostPort(l.IPAddress, "22")
		err := d.sys.Dial(ctx, addr)
		if err == nil {
			d.add(subj, "local-network", OK, "reached a guest at "+addr, "")
			return
		}
		if errors.Is(err, syscall.EHOSTUNREACH) {
			d.add(subj, "local-network", Failure, fmt.Sprintf("%s: %v: this process may not reach guests (Local Network privacy)", addr, err), allow)
			return
		}
		tried = append(tried, l.IPAddress)
	}
	d.add(subj, "local-network", Note, fmt.Sprintf("no guest answered on port 22 (%s); they may be stopped, so this tells nothing", strings.Join(tried, ", ")), "")
}

func (d *doctor) leases() []guest.Lease {
	b, err := d.sys.ReadFile(leasesFile)
	if err != nil {
		return nil
	}
	leases, err := guest.ParseLeases(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return leases
}

// runningVMs counts the Virtualization.framework guests running now.
func (d *doctor) runningVMs(ctx context.Context, subj string, slots int, tart bool) {
	out, err := d.sys.Run(ctx, "ps", "-A", "-o", "comm=")
	if err != nil || out.Exit != 0 {
		d.add(subj, "running-vms", Warning, fmt.Sprintf("cannot list processes: %v %s", err, strings.TrimSpace(out.Stderr)), "")
		return
	}
	n := 0
	for line := range strings.Lines(out.Stdout) {
		if strings.HasSuffix(strings.TrimSpace(line), vmProcess) {
			n++
		}
	}
	d.vmProcs = n
	var names []string
	if tart {
		names = d.runningTartVMs(ctx)
	}
	which := ""
	if len(names) > 0 {
		which = " (tart: " + strings.Join(names, ", ") + ")"
	}
	msg := fmt.Sprintf("%d Virtualization.framework VM(s) running%s; the configured hosts use up to %d at once; the limit is %d macOS guests", n, which, slots, lab.MaxMacOSGuests)
	if n+slots > lab.MaxMacOSGuests {
		d.add(subj, "running-vms", Warning, msg+": attempts may fail with VZErrorVirtualMachineLimitExceeded (Linux guests, such as Docker Desktop's, may not count)",
			"stop the other VMs (`tart list`, `tart stop NAME`; Activity Monitor shows each as "+vmProcess+"), or lower hosts[].slots")
		return
	}
	d.add(subj, "running-vms", OK, msg, "")
}

func (d *doctor) runningTartVMs(ctx context.Context) []string {
	out, err := d.sys.Run(ctx, "tart", "list", "--format", "json")
	if err != nil || out.Exit != 0 {
		return nil
	}
	var vms []struct {
		Name    string
		Running bool
		State   string
	}
	if json.Unmarshal([]byte(out.Stdout), &vms) != nil {
		return nil
	}
	var names []string
	for _, v := range vms {
		if v.Running || v.State == "running" {
			names = append(names, v.Name)
		}
	}
	return names
}

var leaseSecsRE = regexp.MustCompile(`DHCPLeaseTimeSecs\s*=\s*"?(\d+)"?`)

// leaseTime checks bootpd's lease length and how full the pool is.
func (d *doctor) leaseTime(ctx context.Context, subj string) {
	secs := defaultLeaseSecs
	source := "the default"
	out, err := d.sys.Run(ctx, "defaults", "read", bootpdPlist, "bootpd")
	if err == nil && out.Exit == 0 {
		if m := leaseSecsRE.FindStringSubmatch(out.Stdout); m != nil {
			secs, _ = strconv.Atoi(m[1])
			source = bootpdPlist
		}
	}
	active := 0
	now := d.sys.Now().Unix()
	for _, l := range d.leases() {
		if l.Expires > now {
			active++
		}
	}
	msg := fmt.Sprintf("bootpd leases last %s (%s); %d of about %d addresses are leased now", leaseLength(secs), source, active, leasePool)
	fix := "sudo defaults write " + bootpdPlist + " bootpd -dict DHCPLeaseTimeSecs -int 600"
	switch {
	case active > leasePool*8/10:
		d.add(subj, "dhcp-leases", Warning, msg+": the pool is nearly exhausted, and new guests will get no address",
			fix+"; then `sudo rm "+leasesFile+"` once no VM runs")
	case secs > maxLeaseSecs:
		d.add(subj, "dhcp-leases", Warning, msg+fmt.Sprintf(": every guest holds its address that long, so more than about %d VMs a day exhaust the pool", leasePool*86400/secs), fix)
	default:
		d.add(subj, "dhcp-leases", OK, msg, "")
	}
}

func leaseLength(secs int) string {
	if secs%3600 == 0 {
		return fmt.Sprintf("%d h", secs/3600)
	}
	if secs%60 == 0 {
		return fmt.Sprintf("%d min", secs/60)
	}
	return fmt.Sprintf("%d s", secs)
}

// size prints bytes in binary units, as collect.min_free is written.
func size(n uint64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}
