package macos

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// Mac is the simulated macOS behind the shell: sysextd's extension
// database and approval prompts, launchd's Network Extension jobs and
// their Mach endpoints, NE VPN configurations, installed packages, the
// apps, and a unified log that records what each of them would log. The
// named faults of MacConfig.Faults bend it the way the field reports say
// real Macs bend.
//
// Every command takes mu for its reads and changes and releases it
// before it sleeps (host.Sleep) or writes output, so a slow SSH client
// or a long sysdiagnose never stalls the rest of the machine.
type Mac struct {
	cfg      Config
	commands map[string]shell.Command // by name; see Commands
	host     Host
	fs       *shell.FS
	dur      durations
	faults   faultSet
	// faultRand makes fault draws only; detailRand everything cosmetic
	// (pids, ports, addresses, UUIDs, log timing). Split so that printing
	// one more log line never changes whether a fault strikes.
	faultRand  *rand.Rand
	detailRand *rand.Rand

	golden Golden
	// golden0 is when the golden was made: the install date of its
	// profiles.
	golden0 time.Time

	mu       sync.Mutex
	booted   bool
	bootGen  int // incremented by every Boot; operations that slept check it
	bootTime time.Time
	bootUUID string
	nextPID  int
	daemons  daemons
	receipts map[string]*receipt      // by package ID
	mounts   map[string]*mount        // attached disk images, by mount point
	apps     map[string]*installedApp // by app bundle ID
	running  map[string]*appProcess   // by app bundle ID
	exts     []*extRow                // sysextd's database, oldest first
	staged   map[string]bool          // extension versions ever staged here (see FaultEndpointLost)
	policies []sysextPolicy
	prompt   *extRow // the extension the on-screen approval prompt is for
	// settingsPane is the pane System Settings shows ("" when it is not
	// open); settingsSheet the extension its password sheet would approve.
	settingsPane  string
	settingsSheet *extRow
	vpnAlert      *vpnAlert // the VPN-configuration alert on screen (vpnalert.go)
	vpns          []*vpnConfig
	logs          []logEntry
	lastStamp     time.Time
	persist       map[string]bool // subsystems whose info/debug messages survive reboot
}

// daemons are the system processes that log; pids change at every boot.
type daemons struct {
	launchd, sysextd, nesm, installd, mdm process
}

// durations are the simulated times operations take. host.Sleep scales
// them (time_scale), so tests with scale 0 run instantly.
type durations struct {
	boot        time.Duration // reboot until sshd answers
	install     time.Duration // installer -pkg
	launch      time.Duration // open -a until the app runs
	quit        time.Duration // quit app
	activation  time.Duration // staging and validating an extension
	approval    time.Duration // a click in an alert until it takes effect
	mdm         time.Duration // installing a system extension policy
	vpnConnect  time.Duration // Connecting until Connected
	xpc         time.Duration // one XPC round trip of --check-xpc
	sysdiagnose time.Duration
	settings    time.Duration // a change in System Settings
}

func defaultDurations() durations {
	return durations{
		boot:        30 * time.Second,
		install:     20 * time.Second,
		launch:      2 * time.Second,
		quit:        500 * time.Millisecond,
		activation:  3 * time.Second,
		approval:    time.Second,
		mdm:         5 * time.Second,
		vpnConnect:  2 * time.Second,
		xpc:         200 * time.Millisecond,
		sysdiagnose: 3 * time.Minute,
		settings:    2 * time.Second,
	}
}

// Exit statuses shared by the commands.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 64
	exitInterrupted = 130 // the command was cancelled (signal, dropped connection, reboot)
)

// NewMac makes a simulated Mac. Faults that ValidateFaults rejects are
// ignored and noted in the unified log at first boot.
func New(cfg Config, host Host, fs *shell.FS) *Mac {
	if cfg.User == "" {
		cfg.User = "admin"
	}
	if cfg.ProductVersion == "" {
		cfg.ProductVersion = "15.6"
	}
	if cfg.Build == "" {
		cfg.Build = "24G84"
	}
	if cfg.Password == "" {
		cfg.Password = "admin" // tart's public images use admin/admin
	}
	golden := DefaultGolden()
	if cfg.Golden != nil {
		golden = *cfg.Golden
	}
	mac := &Mac{
		cfg:        cfg,
		golden:     golden,
		golden0:    host.Now().Add(-72 * time.Hour).Truncate(time.Second),
		host:       host,
		fs:         fs,
		dur:        defaultDurations(),
		faults:     newFaultSet(cfg.Faults),
		faultRand:  newRand(cfg.Seed, cfg.Name, "faults"),
		detailRand: newRand(cfg.Seed, cfg.Name, "details"),
		receipts:   map[string]*receipt{},
		mounts:     map[string]*mount{},
		apps:       map[string]*installedApp{},
		running:    map[string]*appProcess{},
		staged:     map[string]bool{},
		persist:    map[string]bool{},
	}
	mac.commands = mac.commandTable()
	mac.installGolden()
	return mac
}

// installGolden lays down what the golden came with: the enrolment's
// policies and VPN configurations, NE debug logging, and the console
// device whose owner says who is logged in.
func (m *Mac) installGolden() {
	if m.golden.MDMEnrolled {
		for _, p := range m.golden.Policies {
			m.policies = append(m.policies, sysextPolicy{TeamID: p.Team, BundleIDs: slices.Clone(p.BundleIDs)})
		}
		for _, v := range m.golden.VPNs {
			m.vpns = append(m.vpns, &vpnConfig{id: hashUUID("vpn " + v.Name), name: v.Name, provider: v.Provider})
		}
	}
	if m.golden.NEDebugLogging {
		m.persist["com.apple.networkextension"] = true
	}
	_ = m.writeFile("/dev/console", "")
}

// Commands returns the programs of the simulated Mac by name. The map is
// the Mac's own, made once: callers only read it.
func (m *Mac) Commands() map[string]shell.Command { return m.commands }

// commandTable is Commands' map. Made per lookup, its 20 method values
// were 20 allocations for every command a machine ran.
func (m *Mac) commandTable() map[string]shell.Command {
	return map[string]shell.Command{
		"sw_vers":             m.cmdSwVers,
		"systemextensionsctl": m.cmdSystemExtensionsCtl,
		"installer":           m.cmdInstaller,
		"pkgutil":             m.cmdPkgutil,
		"ditto":               m.cmdDitto,
		"hdiutil":             m.cmdHdiutil,
		"open":                m.cmdOpen,
		"launchctl":           m.cmdLaunchctl,
		"osascript":           m.cmdOsascript,
		"scutil":              m.cmdScutil,
		"log":                 m.cmdLog,
		"sysdiagnose":         m.cmdSysdiagnose,
		"shutdown":            m.cmdShutdown,
		"reboot":              m.cmdReboot,
		"spctl":               m.cmdSpctl,
		"profiles":            m.cmdProfiles,
		"csrutil":             m.cmdCsrutil,
		"fdesetup":            m.cmdFdesetup,
		"sqlite3":             m.cmdSqlite3,
		"defaults":            m.cmdDefaults,
	}
}

// systemPaths are where the commands live on a real Mac, so scripts that
// call them by absolute path work too.
var systemPaths = map[string]string{
	"/usr/bin/sw_vers":             "sw_vers",
	"/usr/bin/systemextensionsctl": "systemextensionsctl",
	"/usr/sbin/installer":          "installer",
	"/usr/sbin/pkgutil":            "pkgutil",
	"/usr/bin/ditto":               "ditto",
	"/usr/bin/hdiutil":             "hdiutil",
	"/usr/bin/open":                "open",
	"/bin/launchctl":               "launchctl",
	"/usr/bin/osascript":           "osascript",
	"/usr/sbin/scutil":             "scutil",
	"/usr/bin/log":                 "log",
	"/usr/bin/sysdiagnose":         "sysdiagnose",
	"/sbin/shutdown":               "shutdown",
	"/sbin/reboot":                 "reboot",
	"/usr/sbin/spctl":              "spctl",
	"/usr/bin/profiles":            "profiles",
	"/usr/bin/csrutil":             "csrutil",
	"/usr/bin/fdesetup":            "fdesetup",
	"/usr/bin/sqlite3":             "sqlite3",
	"/usr/bin/defaults":            "defaults",
}

// Program returns an installed app's executable, or a command at its
// real absolute path. An app whose bundle was deleted (rm -rf) is gone.
func (m *Mac) Program(guestPath string) (shell.Command, bool) {
	clean := shell.Clean("/", guestPath)
	if name, ok := systemPaths[clean]; ok {
		cmd, ok := m.Commands()[name]
		return cmd, ok
	}
	m.mu.Lock()
	var bundleID string
	for id, app := range m.apps {
		if app.exec == clean {
			bundleID = id
		}
	}
	m.mu.Unlock()
	if bundleID == "" {
		return m.uploadedProgram(clean)
	}
	if !m.exists(clean) {
		return nil, false
	}
	return func(ctx context.Context, p *shell.Proc) int { return m.runAppBinary(ctx, p, bundleID) }, true
}

// BootDelay is the simulated time from a reboot until sshd answers.
func (m *Mac) BootDelay() time.Duration { return m.dur.boot }

// Boot starts the Mac, at first start and after every reboot: processes
// are gone, VPNs disconnected, approval prompts closed, extension copies
// waiting to uninstall on reboot are removed, and per-boot damage
// (endpoint-registration-race) is repaired. What is on disk survives:
// packages, apps, sysextd's database, VPN configurations, policies and
// the log (but info and debug messages live in memory only, unless `log
// config` persisted them).
func (m *Mac) Boot() {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := !m.booted
	m.booted = true
	m.bootGen++
	m.bootTime = m.host.Now()
	m.bootUUID = m.newUUID()
	if !first {
		kept := m.logs[:0]
		for _, e := range m.logs {
			if e.Type == typeDefault || e.Type == typeError || e.Type == typeFault || m.persist[e.Subsystem] {
				kept = append(kept, e)
			}
		}
		m.logs = kept
	}
	m.nextPID = 90 + m.detailRand.IntN(40)
	m.daemons = daemons{
		launchd:  process{path: imageLaunchd, pid: 1, thread: m.threadID(), uuid: m.imageUUID(imageLaunchd)},
		sysextd:  m.spawnDaemon(imageSysextd),
		nesm:     m.spawnDaemon(imageNESM),
		installd: m.spawnDaemon(imageInstalld),
		mdm:      m.spawnDaemon(imageMDM),
	}
	m.running = map[string]*appProcess{}
	m.prompt = nil
	m.settingsPane, m.settingsSheet = "", nil
	m.vpnAlert = nil
	for _, v := range m.vpns {
		v.status, v.polls = vpnDisconnected, 0
	}
	m.routeHostTraffic()
	kept := m.exts[:0]
	for _, row := range m.exts {
		if row.state == stateTerminated {
			m.removeStaged(row)
			continue
		}
		row.provider = nil
		row.inProgressBoot = 0
		row.promptLost = false
		if row.lost == lossUntilReboot {
			row.lost = lossNone
		}
		row.port = m.newPort()
		kept = append(kept, row)
	}
	m.exts = kept
	m.logf(m.daemons.launchd, "", typeDefault, "", "", "boot session UUID %{public}@, macOS %{public}@ (%{public}@)", m.bootUUID, m.cfg.ProductVersion, m.cfg.Build)
	if first {
		for _, bad := range m.faults.ignored {
			m.logf(process{path: imageSimNotes, pid: 0, uuid: m.imageUUID(imageSimNotes)}, "", typeFault, "com.sxlab.sim", "faults",
				"simulated Mac: ignoring fault %{public}@ (unknown name or probability outside 0..1)", bad)
		}
	}
}

// now is the guest clock; also applies what time alone changes (a VPN
// that finished connecting). Callers hold mu.
func (m *Mac) now() time.Time {
	now := m.host.Now()
	for _, v := range m.vpns {
		if v.status == vpnConnecting && !now.Before(v.connectAt) {
			m.vpnConnected(v)
		}
	}
	return now
}

// sleep waits d of simulated time without holding mu.
func (m *Mac) sleep(ctx context.Context, d time.Duration) error {
	if err := m.host.Sleep(ctx, d); err != nil {
		return fmt.Errorf("simulated wait of %s: %w", d, err)
	}
	return nil
}

// lockedAfter sleeps d, then takes mu; ok is false (mu not held) when
// the wait was cancelled or the Mac rebooted meanwhile, since the work
// the caller started belongs to a boot that is gone.
func (m *Mac) lockedAfter(ctx context.Context, d time.Duration, gen int) bool {
	if err := m.sleep(ctx, d); err != nil {
		return false
	}
	m.mu.Lock()
	if m.bootGen != gen {
		m.mu.Unlock()
		return false
	}
	m.now()
	return true
}

// begin takes mu for a command and brings time-driven state up to date.
func (m *Mac) begin() {
	m.mu.Lock()
	m.now()
}

// --- processes, identifiers -------------------------------------------

func (m *Mac) newPID() int {
	m.nextPID += 1 + m.detailRand.IntN(37)
	if m.nextPID > 99000 {
		m.nextPID = 300
	}
	return m.nextPID
}

func (m *Mac) threadID() uint64 { return uint64(0x1000 + m.detailRand.IntN(0x7f000)) }

func (m *Mac) spawnDaemon(image string) process {
	return process{path: image, pid: m.newPID(), thread: m.threadID(), uuid: m.imageUUID(image)}
}

// newUUID is a random (version 4) UUID in Apple's upper-case spelling.
func (m *Mac) newUUID() string {
	r := m.detailRand
	return fmt.Sprintf("%08X-%04X-4%03X-%04X-%012X", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, 0x8000|r.Uint32()&0x3fff, r.Uint64()&0xffffffffffff)
}

// newPtr is an object address as Swift prints it on Apple silicon.
func (m *Mac) newPtr() uint64 { return 0xa00000000 + uint64(m.detailRand.IntN(0x0fffffff))<<4 }

func (m *Mac) newPort() uint64 { return 0x1000 + uint64(m.detailRand.IntN(0x3f000)) }

// imageUUID is a stable LC_UUID for a system image of this macOS build.
func (m *Mac) imageUUID(image string) string { return hashUUID(m.cfg.Build + "\x00" + image) }

func hashUUID(s string) string {
	h := fnv.New128a()
	h.Write([]byte(s))
	b := h.Sum(nil)
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// pcFor is a stable program counter per format string, so the same log
// call site always reports the same sender offset.
func pcFor(format string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(format))
	return uint64(0x4000 + h.Sum32()%0x200000)
}

// --- logging ------------------------------------------------------------

// stamp is the timestamp of the next log entry: the guest clock, kept
// strictly increasing with a few hundred microseconds between lines of
// one burst, as real lines are.
func (m *Mac) stamp() time.Time {
	t := m.host.Now()
	if !t.After(m.lastStamp) {
		t = m.lastStamp
	}
	t = t.Add(time.Duration(20+m.detailRand.IntN(280)) * time.Microsecond)
	m.lastStamp = t
	return t
}

// logf appends a unified-log event. sender is the image that logged
// ("" for the process's own executable). Callers hold mu.
func (m *Mac) logf(p process, sender string, typ msgType, subsystem, category, format string, args ...any) {
	t := m.stamp()
	if sender == "" {
		sender = p.path
	}
	senderUUID := p.uuid
	if sender != p.path {
		senderUUID = m.imageUUID(sender)
	}
	var mach uint64
	if d := t.Sub(m.bootTime); d > 0 {
		mach = uint64(d.Nanoseconds()) * 3 / 125 // 24 MHz ticks, as on Apple silicon
	}
	e := logEntry{
		Time: t, Boot: m.bootGen, BootUUID: m.bootUUID, MachTime: mach,
		ProcessPath: p.path, ProcessUUID: p.uuid, PID: p.pid, ThreadID: p.thread,
		SenderPath: sender, SenderUUID: senderUUID,
		Subsystem: subsystem, Category: category, Type: typ,
		Format: format, Message: renderFormat(format, args),
		TraceID: m.detailRand.Uint64() >> 12, PC: pcFor(format),
	}
	if len(m.logs) >= maxLogEntries {
		m.logs = append(m.logs[:0], m.logs[maxLogEntries/10:]...)
	}
	m.logs = append(m.logs, e)
}

// --- files --------------------------------------------------------------

func (m *Mac) exists(guestPath string) bool {
	_, err := m.fs.Stat(guestPath)
	return err == nil
}

func (m *Mac) writeFile(guestPath, content string) error {
	if err := m.fs.MkdirAll(path.Dir(shell.Clean("/", guestPath)), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path.Dir(guestPath), err)
	}
	if err := m.fs.WriteFile(guestPath, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", guestPath, err)
	}
	return nil
}

func (m *Mac) appendFile(guestPath, content string) error {
	if err := m.fs.MkdirAll(path.Dir(shell.Clean("/", guestPath)), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path.Dir(guestPath), err)
	}
	f, err := m.fs.OpenFile(guestPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", guestPath, err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", guestPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", guestPath, err)
	}
	return nil
}

func (m *Mac) removeAll(guestPath string) error {
	if shell.Clean("/", guestPath) == "/" {
		return fmt.Errorf("refusing to remove the root of the simulated Mac")
	}
	if err := m.fs.RemoveAll(guestPath); err != nil {
		return fmt.Errorf("remove %s: %w", guestPath, err)
	}
	return nil
}

// --- small helpers shared by the commands ---------------------------------

func stdout(p *shell.Proc) io.Writer {
	if p == nil || p.Stdout == nil {
		return io.Discard
	}
	return p.Stdout
}

func stderr(p *shell.Proc) io.Writer {
	if p == nil || p.Stderr == nil {
		return io.Discard
	}
	return p.Stderr
}

// guestPath resolves a path argument against the command's directory.
func guestPath(p *shell.Proc, arg string) string {
	dir := "/"
	if p != nil && p.Dir != "" {
		dir = p.Dir
	}
	return shell.Clean(dir, arg)
}

// hostname is the guest's name as installer and the log show it.
func (m *Mac) hostname() string {
	if m.cfg.Name == "" {
		return "Admins-Virtual-Machine"
	}
	return m.cfg.Name
}

// majorVersion is the macOS major release, 0 when unparsable.
func (m *Mac) majorVersion() int {
	major, _, _ := strings.Cut(m.cfg.ProductVersion, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0
	}
	return n
}

// userUID maps the login user to the first admin's uid, as on a fresh Mac.
func (m *Mac) userUID() int { return 501 }
