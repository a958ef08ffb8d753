package golden

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// Paths and names the checks rely on.
const (
	// sshClient is the process TCC holds responsible for a command run
	// over SSH (macOS 13+): the client the grants must name (tart's base
	// images grant it; jacobsalmela/tccutil issue 6).
	sshClient   = "/usr/libexec/sshd-keygen-wrapper"
	systemTCCDB = "/Library/Application Support/com.apple.TCC/TCC.db"
	neSubsystem = "com.apple.networkextension"
)

func checkRemoteLogin(ctx context.Context, s *session) Check {
	// The connection exists, so sshd let us in; sw_vers says to what.
	e := s.run(ctx, "sw_vers")
	where := ""
	if s.t.Address != "" {
		where = " (" + s.t.Address + ")"
	}
	c := Check{Status: OK, Detail: fmt.Sprintf("logged in over SSH as %s%s", s.t.User, where)}
	if e.finished && e.Exit == 0 {
		if sv, err := guest.ParseSwVers(strings.NewReader(e.Stdout)); err == nil {
			c.Detail += fmt.Sprintf("; macOS %s (%s)", sv.ProductVersion, sv.BuildVersion)
		}
	}
	return c
}

func checkSudo(ctx context.Context, s *session) Check {
	e := s.run(ctx, "sudo -n true")
	if c, ok := notRun(e); ok && !e.finished {
		return c
	}
	if e.Exit == 0 {
		return Check{Status: OK, Detail: s.t.User + " runs sudo without a password"}
	}
	return Check{Status: Failure,
		Detail: fmt.Sprintf("sudo -n true: exit %d: %s; every lab step that installs, approves or collects needs root", e.Exit, output(e)),
		Fix:    fmt.Sprintf("echo '%s ALL=(ALL) NOPASSWD: ALL' | sudo tee /etc/sudoers.d/%s", s.t.User, s.t.User)}
}

// autoLoginFix is how a golden gets automatic login: in System Settings
// (FileVault must be off, or macOS dims the setting), or as tart's and
// chef/bento's templates do it (/etc/kcpassword + loginwindow's
// autoLoginUser, bento macos/scripts/autologin.sh).
func autoLoginFix(user string) string {
	return fmt.Sprintf("turn on automatic login for %s in the golden: System Settings > Users & Groups > Automatically log in as %s "+
		"(needs FileVault off), or `sudo sysadminctl -autologin set -userName %s -password PASSWORD`; reboot, then save the golden", user, user, user)
}

func checkConsoleUser(ctx context.Context, s *session) Check {
	e := s.run(ctx, "stat -f %Su /dev/console")
	if c, ok := notRun(e); ok {
		return c
	}
	owner := strings.TrimSpace(e.Stdout)
	switch {
	case e.Exit != 0:
		return Check{Status: Unknown, Detail: fmt.Sprintf("stat /dev/console: exit %d: %s", e.Exit, output(e))}
	case owner == s.t.User:
		return Check{Status: OK, Detail: fmt.Sprintf("%s is logged in on the console (automatic login)", owner)}
	case owner == "root" || owner == "":
		return Check{Status: Failure,
			Detail: "nobody is logged in on the console (/dev/console belongs to root): automatic login is off, so launch, quit and UI approval have no GUI session to run in",
			Fix:    autoLoginFix(s.t.User)}
	default:
		return Check{Status: Failure,
			Detail: fmt.Sprintf("%s, not the image user %s, is logged in on the console: the lab's GUI commands run as %s", owner, s.t.User, s.t.User),
			Fix:    autoLoginFix(s.t.User) + fmt.Sprintf(", or set images.%s.user to %s", s.t.Image, owner)}
	}
}

func checkFileVault(ctx context.Context, s *session) Check {
	e := s.run(ctx, "fdesetup status")
	if c, ok := notRun(e); ok {
		return c
	}
	out := strings.TrimSpace(e.Stdout)
	switch {
	case strings.Contains(out, "FileVault is Off"):
		return Check{Status: OK, Detail: "FileVault is off"}
	case strings.Contains(out, "FileVault is On"), strings.Contains(out, "Encryption in progress"):
		return Check{Status: Failure,
			Detail: "FileVault is on: macOS turns automatic login off, and a FileVault guest without a display waits at the unlock screen and never reaches SSH after a reboot (cirruslabs/tart issue 831)",
			Fix:    "in the golden: `sudo fdesetup disable` (asks for the user's password; decryption takes a while, watch `fdesetup status`), then turn on automatic login and save the golden"}
	case strings.Contains(out, "Decryption in progress"):
		return Check{Status: Warning, Detail: "FileVault is being turned off (" + oneLine(out) + ")",
			Fix: "wait until `fdesetup status` says FileVault is Off, then save the golden"}
	}
	return Check{Status: Unknown, Detail: fmt.Sprintf("fdesetup status: exit %d: %s", e.Exit, output(e))}
}

func checkSIP(ctx context.Context, s *session) Check {
	e := s.run(ctx, "csrutil status")
	if c, ok := notRun(e); ok {
		return c
	}
	out := strings.TrimSpace(e.Stdout)
	switch {
	case strings.Contains(out, "status: enabled"):
		return Check{Status: OK, Detail: "SIP is enabled, as on users' Macs (TCC.db can only be written with SIP off: the TCC grants must be in the golden already)"}
	case strings.Contains(out, "status: disabled"):
		return Check{Status: Warning,
			Detail: "SIP is disabled: fine for preparing a golden (tart's images write TCC.db that way), but system extensions load on users' Macs with SIP on",
			Fix:    "once the golden's TCC grants are written, turn SIP back on in recoveryOS (`csrutil enable`) unless the lab needs it off"}
	}
	return Check{Status: Unknown, Detail: fmt.Sprintf("csrutil status: exit %d: %s", e.Exit, output(e))}
}

// tccFix is how a golden gets the grants: tart's base images write them
// into TCC.db with SIP disabled (cirruslabs/macos-image-templates,
// scripts/update-tcc-database.sh; actions/runner-images,
// configure-tccdb-macos.sh).
func tccFix(missing string) string {
	return fmt.Sprintf("grant %s to %s in the golden: start from tart's base images (ghcr.io/cirruslabs/macos-*-base), which have them, "+
		"or boot the golden with SIP disabled and write them into %s (and the user's ~/Library/Application Support/com.apple.TCC/TCC.db for Apple Events) "+
		"as cirruslabs/macos-image-templates scripts/update-tcc-database.sh does, with Full Disk Access for %s too; then re-enable SIP if you want it on",
		missing, sshClient, systemTCCDB, sshClient)
}

// settingsPane is the pane UI approval opens first (Privacy & Security,
// docs/macos-behaviour.md rule 13); the scripting test opens it too.
const settingsPane = "x-apple.systempreferences:com.apple.preference.security?Security"

// settingsWaits bounds the wait for System Settings to come up after
// open: a process System Events cannot get yet answers -1728.
const settingsWaits = 10

func checkTCC(ctx context.Context, s *session) Check {
	// What UI approval really does: open System Settings as the user in
	// their session and script it through System Events. Its windows
	// need Accessibility, System Events needs Apple Events, both need a
	// GUI session. The check's clone is thrown away, so leaving System
	// Settings open is harmless.
	open := s.run(ctx, s.asUser("open", settingsPane))
	var probe Exec
	for i := 0; i < settingsWaits; i++ {
		probe = s.run(ctx, s.asUser("osascript", "-e", `tell application "System Events" to tell process "System Settings" to count windows`))
		if !probe.finished || !strings.Contains(probe.Stderr, "(-1728)") || !sleep(ctx, s.poll()) {
			break
		}
	}
	// The grants themselves, read from TCC.db (needs Full Disk Access,
	// which tart's images give sshd-keygen-wrapper).
	query := fmt.Sprintf("SELECT client,service,auth_value FROM access WHERE client='%s'", sshClient)
	sysDB := s.run(ctx, "sudo -n sqlite3 "+guest.Quote(systemTCCDB)+" "+guest.Quote(query))
	userDB := s.run(ctx, "sudo -n sqlite3 "+guest.Quote("/Users/"+s.t.User+"/Library/Application Support/com.apple.TCC/TCC.db")+" "+guest.Quote(query))

	c := tccVerdict(open, probe, sysDB, userDB)
	if c.Status == Failure && !s.t.Needs.UI {
		c.Status = Warning
		c.Detail += " (no step of this scenario approves through System Settings on this image; quitting the app through Apple events still needs Apple Events)"
	}
	return c
}

func (s *session) poll() time.Duration {
	if s.t.Poll > 0 {
		return s.t.Poll
	}
	return time.Second
}

// sleep waits d unless ctx ends first; it says whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// tccVerdict reads the scripting probe first (it is what approval does),
// then the grants in TCC.db.
func tccVerdict(open, probe, sysDB, userDB Exec) Check {
	msg := probe.Stderr
	switch {
	case probe.finished && probe.Exit == 0:
		return Check{Status: OK, Detail: "System Settings opens and System Events scripts it over SSH as the user (Accessibility and Apple Events granted, GUI session present)"}
	case strings.Contains(msg, "(-1743)"):
		return Check{Status: Failure, Detail: "Apple events to System Events are refused (-1743): " + sshClient + " has no Apple Events (Automation) grant",
			Fix: tccFix("Apple Events (kTCCServiceAppleEvents, target com.apple.systemevents) and Accessibility (kTCCServiceAccessibility)")}
	case strings.Contains(msg, "(-1719)"), strings.Contains(msg, "(-25211)"):
		return Check{Status: Failure, Detail: "UI scripting is refused (-1719, not allowed assistive access): " + sshClient + " has no Accessibility grant",
			Fix: tccFix("Accessibility (kTCCServiceAccessibility)")}
	case open.finished && open.Exit != 0 && strings.Contains(open.Stderr, "error -600"):
		return Check{Status: Failure, Detail: "open cannot reach a GUI session (" + oneLine(open.Stderr) + "): nobody is logged in, so System Settings cannot be opened or scripted",
			Fix: "turn on automatic login (see the console-user check)"}
	case strings.Contains(msg, "(-609)"), strings.Contains(msg, "error -600"):
		return Check{Status: Failure, Detail: "System Events cannot reach a GUI session (" + oneLine(msg) + "): nobody is logged in, so nothing can be scripted",
			Fix: "turn on automatic login (see the console-user check)"}
	}
	grants, err := parseTCCRows(sysDB.Stdout + "\n" + userDB.Stdout)
	read := sysDB.finished && sysDB.Exit == 0 && err == nil
	if read {
		var missing []string
		if !grants.allowed("kTCCServiceAccessibility") {
			missing = append(missing, "Accessibility (kTCCServiceAccessibility)")
		}
		if !grants.allowed("kTCCServiceAppleEvents") {
			missing = append(missing, "Apple Events (kTCCServiceAppleEvents)")
		}
		if len(missing) == 0 {
			return Check{Status: OK, Detail: "TCC.db grants Accessibility and Apple Events to " + sshClient + "; the scripting test was inconclusive: " + oneLine(msg)}
		}
		return Check{Status: Failure, Detail: "TCC.db has no " + strings.Join(missing, " or ") + " grant for " + sshClient,
			Fix: tccFix(strings.Join(missing, " and "))}
	}
	why := firstNonEmpty(oneLine(sysDB.Stderr), sysDB.Error)
	if sysDB.finished && sysDB.Exit == 0 && err != nil {
		why = err.Error()
	}
	if strings.Contains(why, "authorization denied") || strings.Contains(why, "unable to open") {
		why += " (reading TCC.db needs Full Disk Access for " + sshClient + ")"
	}
	return Check{Status: Unknown, Detail: fmt.Sprintf("could not tell: the scripting test answered %q and TCC.db could not be read: %s", firstNonEmpty(oneLine(msg), probe.Error), why)}
}

// tccGrants is what TCC.db rows grant: service → auth_value seen.
type tccGrants map[string][]int

// allowed: auth_value 2 is "allowed" (macOS 11+ schema).
func (g tccGrants) allowed(service string) bool {
	for _, v := range g[service] {
		if v == 2 {
			return true
		}
	}
	return false
}

// parseTCCRows reads sqlite3's default list output, client|service|auth_value.
func parseTCCRows(out string) (tccGrants, error) {
	g := tccGrants{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 3 {
			return nil, fmt.Errorf("TCC row %q: want client|service|auth_value", line)
		}
		v, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("TCC row %q: auth_value: %w", line, err)
		}
		g[f[1]] = append(g[f[1]], v)
	}
	return g, nil
}

// mdmFix is how a golden gets a system extension policy: only a
// user-approved MDM enrolment installs one (Apple DeviceManagement,
// SystemExtensions payload), and a person approves the enrolment once.
func mdmFix(team string) string {
	return fmt.Sprintf("enrol the golden in your MDM once, by a person (install the enrolment profile and approve it in System Settings), "+
		"scope a System Extensions payload (com.apple.system-extension-policy) allowing team %s (AllowedTeamIdentifiers, or AllowedSystemExtensions for the extension's bundle ID) to it, "+
		"check `sudo profiles show -output stdout-xml` lists it, then save the golden", team)
}

func checkMDM(ctx context.Context, s *session) Check {
	st := s.run(ctx, "profiles status -type enrollment")
	if c, ok := notRun(st); ok {
		return c
	}
	enrolled, approved := parseEnrollment(st.Stdout)
	var allows bool
	var policies int
	if enrolled {
		show := s.run(ctx, "sudo -n profiles show -output stdout-xml")
		if c, ok := notRun(show); ok {
			return c
		}
		// The same reader as approve: mdm's (guest.ParseProfiles), so the
		// check and the step cannot disagree on what allows the extension.
		var ps guest.Profiles
		var err error
		if strings.TrimSpace(show.Stdout) != "" {
			ps, err = guest.ParseProfiles(strings.NewReader(show.Stdout))
		}
		if err != nil || show.Exit != 0 {
			return Check{Status: Unknown, Detail: fmt.Sprintf("profiles show: exit %d: %s", show.Exit, firstErr(err, output(show)))}
		}
		policies = ps.Policies()
		allows = ps.Allows(s.t.Team, s.t.Extension) != ""
	}
	team := s.t.Team
	switch {
	case s.t.Needs.MDM && !enrolled:
		return Check{Status: Failure, Detail: "approve: mdm needs a user-approved MDM enrolment; this golden is not enrolled (" + oneLine(st.Stdout+"\n"+st.Stderr) + ")", Fix: mdmFix(team)}
	case s.t.Needs.MDM && !approved:
		return Check{Status: Failure, Detail: "the MDM enrolment is not user approved: macOS installs system extension policies only from a user-approved enrolment", Fix: mdmFix(team)}
	case s.t.Needs.MDM && !allows:
		return Check{Status: Failure, Detail: fmt.Sprintf("approve: mdm needs a system extension policy allowing team %s (%s); the golden has %d system extension polic%s, none for it", team, s.t.Extension, policies, plural(policies, "y", "ies")), Fix: mdmFix(team)}
	case s.t.Needs.MDM:
		return Check{Status: OK, Detail: fmt.Sprintf("user-approved MDM enrolment with a system extension policy allowing team %s", team)}
	case allows && s.t.Needs.UI:
		// Issue 11: a policy approves pending activations at once, so a
		// cell meant to leave the extension pending cannot mean anything.
		return Check{Status: Failure, Detail: fmt.Sprintf("a system extension policy allows team %s, so macOS approves the extension at once: cells that approve through System Settings (or stay pending) cannot happen on this golden", team),
			Fix: "run those cells on a golden without the policy (a plain one, like tart's base images), and keep this one for approve: mdm"}
	case allows:
		return Check{Status: OK, Detail: fmt.Sprintf("a system extension policy allows team %s (no step uses approve: mdm on this image)", team)}
	case enrolled:
		return Check{Status: OK, Detail: "MDM-enrolled, no system extension policy for the team (only approve: mdm needs one)"}
	}
	return Check{Status: OK, Detail: "not MDM-enrolled (only approve: mdm needs an enrolment)"}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func firstErr(err error, alt string) string {
	if err != nil {
		return err.Error()
	}
	return alt
}

func checkNELogging(ctx context.Context, s *session) Check {
	e := s.run(ctx, "sudo -n log config --status --subsystem "+neSubsystem)
	if c, ok := notRun(e); ok {
		return c
	}
	out := e.Stdout
	fix := "in the golden: sudo log config --mode \"level:debug,persist:debug\" --subsystem " + neSubsystem + ", then save the golden"
	switch {
	case e.Exit != 0:
		return Check{Status: Unknown, Detail: fmt.Sprintf("log config --status: exit %d: %s", e.Exit, output(e))}
	case strings.Contains(out, "PERSIST_DEBUG"):
		return Check{Status: OK, Detail: "debug messages of " + neSubsystem + " are persisted (" + oneLine(out) + ")"}
	case strings.Contains(out, "DEBUG") || strings.Contains(out, "INFO"):
		return Check{Status: Warning, Detail: neSubsystem + " logs more than the default but does not persist it (" + oneLine(out) + "): a reboot step loses it", Fix: fix}
	}
	return Check{Status: Warning, Detail: neSubsystem + " logs at the default level (" + oneLine(out) + "): the evidence of a failure lacks the extension's debug messages", Fix: fix}
}

func checkSleep(ctx context.Context, s *session) Check {
	pm := s.run(ctx, "pmset -g")
	lock := s.run(ctx, "sysadminctl -screenLock status")
	fix := "in the golden: sudo pmset -a sleep 0 displaysleep 0 disksleep 0, and System Settings > Lock Screen > require password after screen saver or display off: Never"
	if c, ok := notRun(pm); ok {
		return c
	}
	set := parsePmset(pm.Stdout)
	var bad []string
	for _, k := range []string{"sleep", "displaysleep"} {
		if v, ok := set[k]; ok && v != "0" {
			bad = append(bad, fmt.Sprintf("%s %s min", k, v))
		}
	}
	if _, ok := set["sleep"]; !ok {
		return Check{Status: Unknown, Detail: "pmset -g shows no sleep setting: " + output(pm)}
	}
	// sysadminctl writes its status to stderr.
	lockOut := strings.TrimSpace(lock.Stdout + " " + lock.Stderr)
	locked := lock.finished && lock.Exit == 0 && strings.Contains(lockOut, "screenLock delay is") && !strings.Contains(lockOut, "off")
	if locked {
		bad = append(bad, "the screen locks ("+oneLine(lockOut)+")")
	}
	if len(bad) > 0 {
		return Check{Status: Warning, Detail: "the guest sleeps or locks: " + strings.Join(bad, ", ") + "; a sleeping guest drops SSH and a locked screen stops UI approval", Fix: fix}
	}
	return Check{Status: OK, Detail: "system and display sleep are off (screen lock: " + firstNonEmpty(oneLine(lockOut), "not read") + ")"}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// parsePmset reads `pmset -g`'s " key value" lines.
func parsePmset(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasSuffix(f[0], ":") {
			m[f[0]] = f[1]
		}
	}
	return m
}

// Free space a guest needs: a sysdiagnose and the logs of an attempt
// take a few GiB; below minFree the evidence of a failure is lost.
const (
	minFreeKiB  = 5 << 20  // 5 GiB
	warnFreeKiB = 15 << 20 // 15 GiB
)

func checkDisk(ctx context.Context, s *session) Check {
	e := s.run(ctx, "df -k /")
	if c, ok := notRun(e); ok {
		return c
	}
	free, err := parseDfAvail(e.Stdout)
	if err != nil || e.Exit != 0 {
		return Check{Status: Unknown, Detail: fmt.Sprintf("df -k /: exit %d: %s", e.Exit, firstErr(err, output(e)))}
	}
	gib := float64(free) / (1 << 20)
	fix := "give the golden a bigger disk (tart set NAME --disk-size GB, then grow the APFS container in the guest) or delete what it does not need"
	switch {
	case free < minFreeKiB:
		return Check{Status: Failure, Detail: fmt.Sprintf("%.1f GiB free on /: installs, a sysdiagnose and the logs need at least 5 GiB", gib), Fix: fix}
	case free < warnFreeKiB:
		return Check{Status: Warning, Detail: fmt.Sprintf("%.1f GiB free on /: enough for a few attempts, tight for sysdiagnose", gib), Fix: fix}
	}
	return Check{Status: OK, Detail: fmt.Sprintf("%.1f GiB free on /", gib)}
}

// parseDfAvail reads the Available column (1 KiB blocks) of `df -k /`.
func parseDfAvail(out string) (int64, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 {
		return 0, fmt.Errorf("df: no filesystem line in %q", out)
	}
	head := strings.Fields(lines[0])
	col := -1
	for i, h := range head {
		if h == "Available" || h == "Avail" {
			col = i
		}
	}
	f := strings.Fields(lines[len(lines)-1])
	if col < 0 || col >= len(f) {
		return 0, fmt.Errorf("df: no Available column in %q", out)
	}
	return strconv.ParseInt(f[col], 10, 64)
}

func checkSysdiagnose(ctx context.Context, s *session) Check {
	e := s.run(ctx, "sysdiagnose -h")
	if c, ok := notRun(e); ok {
		return c
	}
	// Its usage text is recorded for the first Mac run to read; any
	// usage that names the tool means it is there.
	if strings.Contains(strings.ToLower(e.Stdout+e.Stderr), "usage") {
		return Check{Status: OK, Detail: "sysdiagnose is there (its usage is recorded in --json)"}
	}
	return Check{Status: Warning, Detail: fmt.Sprintf("sysdiagnose -h: exit %d: %s", e.Exit, output(e)),
		Fix: "collect.sysdiagnose needs /usr/bin/sysdiagnose; without it failures keep only state snapshots and logs"}
}

// Clock offsets: the log window of an attempt is read in the guest's
// clock, but a person compares it with the host's timestamps.
const clockWarn = 5 * time.Minute

func checkClock(ctx context.Context, s *session) Check {
	before := s.t.Now()
	e := s.run(ctx, "date -u +%s")
	after := s.t.Now()
	if c, ok := notRun(e); ok {
		return c
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(e.Stdout), 10, 64)
	if err != nil || e.Exit != 0 {
		return Check{Status: Unknown, Detail: fmt.Sprintf("date -u +%%s: exit %d: %s", e.Exit, firstErr(err, output(e)))}
	}
	mid := before.Add(after.Sub(before) / 2)
	off := time.Unix(sec, 0).Sub(mid)
	// One-second resolution plus the round trip.
	slack := time.Second + after.Sub(before)/2
	d := fmt.Sprintf("guest clock %+.0f s from the host's (±%.1f s)", math.Round(off.Seconds()), slack.Seconds())
	if off > clockWarn || off < -clockWarn {
		return Check{Status: Warning, Detail: d + ": the guest's log times will not line up with the host's",
			Fix: "turn on Set time automatically in the golden (System Settings > General > Date & Time), or sudo sntp -sS time.apple.com"}
	}
	return Check{Status: OK, Detail: d}
}
