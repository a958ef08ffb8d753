package macos

import (
	"fmt"
	"html"
	"slices"
	"strings"
)

// sysextd's extension states, spelled as its log spells them;
// systemextensionsctl prints them with spaces.
const (
	stateStaging              = "staging"
	stateValidating           = "validating"
	stateValidatingByCategory = "validating_by_category"
	stateWaiting              = "activated_waiting_for_user"
	stateEnabling             = "activated_enabling"
	stateEnabled              = "activated_enabled"
	stateTerminatingUpgrade   = "terminating_for_upgrade_via_delegate"
	stateTerminatingUninstall = "terminating_for_uninstall"
	stateTerminated           = "terminated_waiting_to_uninstall_on_reboot"
	stateUninstalling         = "uninstalling"
	stateUninstalled          = "uninstalled"
)

// sysextd's log categories. Only Staging is attested (approval report);
// the others are the simulation's choice.
const (
	sxSubsystem  = "com.apple.sx"
	sxCatXPC     = "XPC"
	sxCatStaging = "Staging"
	sxCatState   = "Activation"
)

// endpointLoss says why an extension's launchd job lacks its Mach endpoint.
type endpointLoss int

const (
	lossNone        endpointLoss = iota
	lossUntilReboot              // endpoint-registration-race
	lossPersistent               // endpoint-lost-on-replace-while-running
)

func (l endpointLoss) String() string {
	return [...]string{"none", "until-reboot", "persistent"}[l]
}

// extRow is one entry of sysextd's database: one copy of an extension.
type extRow struct {
	ext   SimExtension
	uuid  string // staged at /Library/SystemExtensions/<uuid>
	ptr   uint64 // <sysextd.Extension: 0x…> in decision lines
	state string
	lost  endpointLoss
	// promptLost: sysextd believes it presented the approval prompt, but
	// none is on screen (approval-coalesced); cleared by reboot.
	promptLost bool
	// inProgressBoot is the boot in which an activation of this row is
	// waiting for the user; a same-version request then coalesces.
	inProgressBoot int
	provider       *process // the running provider, nil when not running
	port           uint64   // its Mach port; new at every boot
	runs           int
	exited         bool
}

// label is the launchd job of the provider.
func (r *extRow) label() string {
	return "NetworkExtension." + r.ext.BundleID + "." + r.ext.ShortVersion + "." + r.ext.Build
}

func (r *extRow) stagedDir() string { return "/Library/SystemExtensions/" + r.uuid }

func (r *extRow) bundlePath() string {
	return r.stagedDir() + "/" + r.ext.BundleID + ".systemextension"
}

func (r *extRow) execPath() string { return r.bundlePath() + "/Contents/MacOS/" + r.ext.BundleID }

// describe is how sysextd names a copy: "TEAM bundle (short/build)".
func (r *extRow) describe() string {
	return fmt.Sprintf("%s %s (%s)", r.ext.TeamID, r.ext.BundleID, r.ext.version())
}

func sameVersion(a, b SimExtension) bool {
	return a.ShortVersion == b.ShortVersion && a.Build == b.Build
}

func stagedKey(e SimExtension) string { return e.BundleID + " " + e.version() }

// sysextPolicy is an installed com.apple.system-extension-policy payload
// (AllowedSystemExtensions): a team, and the bundle IDs allowed (all of
// the team's when empty).
type sysextPolicy struct {
	TeamID    string   `json:"team_id"`
	BundleIDs []string `json:"bundle_ids,omitempty"`
}

func (p sysextPolicy) allows(e SimExtension) bool {
	return p.TeamID == e.TeamID && (len(p.BundleIDs) == 0 || slices.Contains(p.BundleIDs, e.BundleID))
}

func (m *Mac) policyAllows(e SimExtension) bool {
	for _, p := range m.policies {
		if p.allows(e) {
			return true
		}
	}
	return false
}

// --- sysextd's log ----------------------------------------------------------

func (m *Mac) sx(category, format string, args ...any) {
	m.logf(m.daemons.sysextd, "", typeDefault, sxSubsystem, category, format, args...)
}

// sxBare logs without a subsystem: the decision lines of the reports
// carry none.
func (m *Mac) sxBare(format string, args ...any) {
	m.logf(m.daemons.sysextd, "", typeDefault, "", "", format, args...)
}

func (m *Mac) advance(row *extRow, to string) {
	m.sx(sxCatState, "extension %{public}@ advancing state from %{public}@ to %{public}@", row.describe(), row.state, to)
	row.state = to
}

// current is the copy of bundleID an activation request is decided
// against: the enabled or waiting one. Copies on their way out do not
// count.
func (m *Mac) current(bundleID string) *extRow {
	for i := len(m.exts) - 1; i >= 0; i-- {
		row := m.exts[i]
		if row.ext.BundleID == bundleID && (row.state == stateEnabled || row.state == stateWaiting) {
			return row
		}
	}
	return nil
}

func (m *Mac) dropRow(row *extRow) {
	m.exts = slices.DeleteFunc(m.exts, func(r *extRow) bool { return r == row })
	if m.prompt == row {
		m.prompt = nil
	}
	m.removeStaged(row)
}

func (m *Mac) removeStaged(row *extRow) {
	// The model's state is the truth; a leftover folder only misleads ls.
	_ = m.removeAll(row.stagedDir())
}

// stage copies the extension out of the app into a new database row and
// validates it.
func (m *Mac) stage(ext SimExtension) *extRow {
	row := &extRow{ext: ext, uuid: m.newUUID(), ptr: m.newPtr(), state: stateStaging, port: m.newPort()}
	m.exts = append(m.exts, row)
	m.staged[stagedKey(ext)] = true
	// Staged files are cosmetic; a write error must not change behaviour.
	_ = m.writeFile(row.bundlePath()+"/Contents/Info.plist", extensionInfoPlist(ext, ext.BundleID))
	_ = m.writeFile(row.execPath(), simulatedExecutable(ext.Name, ext.version(), ext.LCUUIDs))
	m.advance(row, stateValidating)
	m.advance(row, stateValidatingByCategory)
	return row
}

// --- activation requests ---------------------------------------------------

// submitActivation is the first half of an app launch's
// OSSystemExtensionRequest: the app submits, sysextd receives. Callers
// hold mu.
func (m *Mac) submitActivation(app *appProcess) {
	ext := app.pkg.Extension
	m.appLog(app, typeInfo, "activating SystemExtension")
	m.appLog(app, typeInfo, "submitted SystemExtension request with bundleID: %{public}@", ext.BundleID)
	m.sx(sxCatXPC, "client activation request for %{public}@", ext.BundleID)
	m.sx(sxCatXPC, "attempting to realize extension with identifier %{public}@", ext.BundleID)
}

// decideActivation is sysextd's activation decision once the extension
// was read and validated. Callers hold mu.
func (m *Mac) decideActivation(app *appProcess) {
	ext := app.pkg.Extension
	cur := m.current(ext.BundleID)
	switch {
	case cur == nil:
		m.activateNew(app, ext)
	case sameVersion(cur.ext, ext):
		m.activateSameVersion(app, cur)
	default:
		m.activateReplacement(app, cur, ext)
	}
	m.reconcile()
}

func (m *Mac) activateNew(app *appProcess, ext SimExtension) {
	if !app.pkg.App.RetainsDelegate() {
		m.delegateGone(app)
	}
	row := m.stage(ext)
	if m.policyAllows(ext) {
		m.enable(row)
		m.notifyCompleted(app, row)
		return
	}
	m.waitForUser(row, app)
}

// waitForUser puts row in front of the user: state, prompt, callback.
func (m *Mac) waitForUser(row *extRow, app *appProcess) {
	m.advance(row, stateWaiting)
	row.inProgressBoot = m.bootGen
	row.promptLost = false
	m.prompt = row
	m.notifyNeedsApproval(app, row)
}

func (m *Mac) activateSameVersion(app *appProcess, cur *extRow) {
	if !app.pkg.App.RetainsDelegate() {
		m.delegateGone(app)
	}
	m.sxBare("activateDecision found existing entry of same version: state %{public}@, ID %{public}@", cur.state, cur.uuid)
	if cur.state == stateEnabled {
		// Decision name not attested; the simulation's choice.
		m.sxBare("initial activation decision: alreadyActivated(<sysextd.Extension: 0x%llx>)", cur.ptr)
		m.notifyCompleted(app, cur)
		return
	}
	if cur.inProgressBoot == m.bootGen {
		// An activation of this copy is already waiting for the user
		// (approval report): the request joins it. No new prompt; the
		// one presented earlier is the one to answer — unless it never
		// appeared (approval-coalesced), which only a reboot undoes.
		m.sxBare("initial activation decision: coalesceWithActivationInProgress(<sysextd.Extension: 0x%llx>)", cur.ptr)
		return
	}
	// The waiting activation belongs to an earlier boot: start over.
	// Decision name not attested; the simulation's choice.
	m.sxBare("initial activation decision: requestUserApproval(<sysextd.Extension: 0x%llx>)", cur.ptr)
	row := cur
	row.inProgressBoot = m.bootGen
	row.promptLost = false
	m.prompt = row
	m.notifyNeedsApproval(app, row)
}

// activateReplacement: another version is installed or waiting; the
// app's delegate decides (delegate-no-callback report).
func (m *Mac) activateReplacement(app *appProcess, old *extRow, ext SimExtension) {
	m.sx(sxCatState, "activateDecision found entry to replace: %{public}@, BundleVersion(CFBundleShortVersionString: \"%{public}@\", CFBundleVersion: \"%{public}@\")",
		old.ext.BundleID, old.ext.ShortVersion, old.ext.Build)
	m.sxBare("initial activation decision: requestAppReplaceAction(<sysextd.Extension: 0x%llx>)", old.ptr)
	m.sx(sxCatXPC, "notifying client of activation conflict")
	if !app.pkg.App.RetainsDelegate() {
		// The delegate was released before sysextd asked: nobody answers,
		// nothing is replaced, no callback ever comes.
		m.delegateGone(app)
		return
	}
	m.appLog(app, typeInfo, "Replacing %{public}@ v%{public}@ with v%{public}@", ext.BundleID, old.ext.ShortVersion, ext.ShortVersion)
	if old.state == stateWaiting {
		m.replaceWaiting(app, old, ext)
		return
	}
	m.replaceEnabled(app, old, ext)
}

// replaceEnabled upgrades an approved extension: the new copy inherits
// the approval; the old one goes, or waits for a reboot when its
// provider was running.
func (m *Mac) replaceEnabled(app *appProcess, old *extRow, ext SimExtension) {
	firstUpgrade := !m.staged[stagedKey(ext)]
	vpnRunning := m.vpnActive(old.ext.BundleID)
	row := m.stage(ext)
	m.advance(old, stateTerminatingUpgrade)
	if old.provider != nil {
		m.stopProvider(old)
		m.advance(old, stateTerminated)
	} else {
		m.advance(old, stateUninstalling)
		m.advance(old, stateUninstalled)
		m.dropRow(old)
	}
	for _, a := range m.running {
		if a.xpcRow == old {
			a.xpcRow = nil
		}
	}
	m.advance(row, stateEnabling)
	m.advance(row, stateEnabled)

	// Fault draws happen in a fixed order, and only when their trigger
	// holds, so outcomes depend on the seed and the machine's history.
	if vpnRunning && old.ext.MachService == ext.MachService && firstUpgrade &&
		m.faults.strikes(FaultEndpointLost, m.faultRand) {
		row.lost = lossPersistent
	}
	if m.faults.strikes(FaultRegistrationRace, m.faultRand) && row.lost == lossNone {
		row.lost = lossUntilReboot
	}
	if vpnRunning {
		for _, v := range m.vpns {
			if v.provider == ext.BundleID && v.active() {
				m.nesm(typeDefault, "%{public}@ in state NESMVPNSessionStateRunning: provider %{public}@ was replaced by %{public}@, restarting the tunnel",
					v.session(), old.describe(), row.describe())
			}
		}
	}
	m.reconcile()
	if row.lost == lossPersistent && row.provider != nil {
		// The retired copy still holds the unversioned Mach service name.
		m.logf(*row.provider, libNE, typeError, "com.apple.networkextension", "",
			"listener failed to activate: xpc_error=[1: Operation not permitted]")
	}
	m.notifyCompleted(app, row)
}

// replaceWaiting upgrades an extension nobody approved yet. With
// approval-coalesced (approval report): staging the new copy hits the
// "Removing tree … Resetting flags and trying again!" error, the copy
// reaches activated_waiting_for_user without its prompt, and the retried
// request coalesces with it.
func (m *Mac) replaceWaiting(app *appProcess, old *extRow, ext SimExtension) {
	m.advance(old, stateUninstalling)
	m.advance(old, stateUninstalled)
	m.dropRow(old)
	row := m.stage(ext)
	if m.policyAllows(ext) {
		m.enable(row)
		m.notifyCompleted(app, row)
		return
	}
	if !m.faults.strikes(FaultApprovalCoalesced, m.faultRand) {
		m.waitForUser(row, app)
		return
	}
	m.logf(m.daemons.sysextd, "", typeError, sxSubsystem, sxCatStaging,
		"\nRemoving tree at\n  path: %{public}@\nfailed with\n  error: “%{public}@” couldn’t be removed.\nResetting flags and trying again!",
		row.stagedDir(), row.uuid)
	m.advance(row, stateWaiting)
	row.inProgressBoot = m.bootGen
	row.promptLost = true
	m.sx(sxCatXPC, "client activation request for %{public}@", ext.BundleID)
	m.sxBare("activateDecision found existing entry of same version: state %{public}@, ID %{public}@", row.state, row.uuid)
	m.sxBare("initial activation decision: coalesceWithActivationInProgress(<sysextd.Extension: 0x%llx>)", row.ptr)
}

func (m *Mac) enable(row *extRow) {
	m.advance(row, stateEnabling)
	m.advance(row, stateEnabled)
	row.inProgressBoot = 0
	row.promptLost = false
	if m.prompt == row {
		m.prompt = nil
	}
}

// approve completes a waiting activation (prompt, MDM policy, System
// Settings) and tells the apps still waiting for it.
func (m *Mac) approve(row *extRow) {
	m.enable(row)
	for _, app := range m.running {
		if app.awaiting == row {
			m.notifyCompleted(app, row)
		}
	}
	m.reconcile()
}

// delegateGone is the delegate-no-callback report's sequence: the app
// cancels its connection to sysextd, sysextd sees the client go.
func (m *Mac) delegateGone(app *appProcess) {
	m.logf(app.proc, libXPC, typeDefault, "com.apple.xpc", "connection",
		"[0x%llx] invalidated because the current process cancelled the connection by calling xpc_connection_cancel()", app.sysextConn)
	m.logf(m.daemons.sysextd, libXPC, typeDefault, "com.apple.xpc", "connection",
		"[0x%llx] invalidated because the client process (pid %d) either cancelled the connection or exited", m.newPtr(), app.proc.pid)
	m.sx(sxCatXPC, "client connection (pid %d) invalidated", app.proc.pid)
}

func (m *Mac) notifyNeedsApproval(app *appProcess, row *extRow) {
	if !m.isRunning(app) || !app.pkg.App.RetainsDelegate() {
		return
	}
	app.awaiting = row
	m.appLog(app, typeError, "Extension %{public}@ requires user approval", row.ext.BundleID)
}

func (m *Mac) notifyCompleted(app *appProcess, row *extRow) {
	if !m.isRunning(app) || !app.pkg.App.RetainsDelegate() {
		return
	}
	app.awaiting = nil
	m.appLog(app, typeInfo, "SystemExtension activated")
	m.appExtensionReady(app)
}

// removeExtension is deleting the extension in System Settings > Login
// Items & Extensions: every copy goes at once, running or not. No command
// line reaches it (the model's tests use it to start over).
func (m *Mac) removeExtension(bundleID string) int {
	removed := 0
	for _, row := range slices.Clone(m.exts) {
		if row.ext.BundleID != bundleID {
			continue
		}
		if row.provider != nil {
			m.stopProvider(row)
		}
		if row.state != stateTerminated {
			m.advance(row, stateTerminatingUninstall)
		}
		m.advance(row, stateUninstalling)
		m.advance(row, stateUninstalled)
		m.dropRow(row)
		removed++
	}
	for _, a := range m.running {
		if a.xpcRow != nil && a.xpcRow.ext.BundleID == bundleID {
			a.xpcRow = nil
		}
		if a.awaiting != nil && a.awaiting.ext.BundleID == bundleID {
			a.awaiting = nil
		}
	}
	m.reconcile()
	return removed
}

// --- providers and their launchd jobs -----------------------------------

// reconcile starts and stops providers: one runs while its extension is
// enabled and its VPN is up or an app holds an XPC connection to it.
func (m *Mac) reconcile() {
	for _, v := range m.vpns {
		if v.active() && m.enabledRow(v.provider) == nil {
			m.vpnDisconnect(v, "the provider extension is not enabled")
		}
	}
	for _, row := range m.exts {
		want := row.state == stateEnabled && (m.vpnActive(row.ext.BundleID) || m.appHoldsXPC(row))
		switch {
		case want && row.provider == nil:
			m.startProvider(row)
		case !want && row.provider != nil:
			m.stopProvider(row)
		}
	}
}

func (m *Mac) enabledRow(bundleID string) *extRow {
	for _, row := range m.exts {
		if row.ext.BundleID == bundleID && row.state == stateEnabled {
			return row
		}
	}
	return nil
}

func (m *Mac) appHoldsXPC(row *extRow) bool {
	for _, a := range m.running {
		if a.xpcRow == row {
			return true
		}
	}
	return false
}

func (m *Mac) startProvider(row *extRow) {
	p := process{path: row.execPath(), pid: m.newPID(), thread: m.threadID(), uuid: row.ext.arm64UUID()}
	row.provider = &p
	row.runs++
	m.logf(m.daemons.launchd, "", typeDefault, "", "", "[system/%{public}@ [%d]:] Successfully spawned %{public}@[%d] because ipc (mach)",
		row.label(), p.pid, row.ext.BundleID, p.pid)
}

func (m *Mac) stopProvider(row *extRow) {
	m.logf(m.daemons.launchd, "", typeDefault, "", "", "[system/%{public}@ [%d]:] exited due to exit(0)", row.label(), row.provider.pid)
	row.provider = nil
	row.exited = true
}

// lookupService is a bootstrap look-up: the enabled copy whose job
// registered the Mach service, nil when nobody did.
func (m *Mac) lookupService(name string) *extRow {
	for _, row := range m.exts {
		if row.state == stateEnabled && row.ext.MachService == name && row.lost == lossNone {
			return row
		}
	}
	return nil
}

// --- systemextensionsctl ------------------------------------------------

// categorySuffix is the header hint of macOS 13 and later.
func (m *Mac) categorySuffix(category string) string {
	major := m.majorVersion()
	switch {
	case major >= 15:
		pane := map[string]string{
			categoryNetwork:  "Network Extensions",
			categoryEndpoint: "Endpoint Security Extensions",
			categoryDriver:   "Driver Extensions",
		}[category]
		if pane == "" {
			pane = "Extensions"
		}
		return " (Go to 'System Settings > General > Login Items & Extensions > " + pane + "' to modify these system extension(s))"
	case major >= 13:
		return " (Go to 'System Settings > Privacy & Security' to modify these system extension(s))"
	}
	return ""
}

// renderExtensionList is `systemextensionsctl list [category]`: newest
// copy first within each category.
func (m *Mac) renderExtensionList(category string) string {
	var cats []string
	byCat := map[string][]*extRow{}
	for i := len(m.exts) - 1; i >= 0; i-- {
		row := m.exts[i]
		if category != "" && row.ext.Category != category {
			continue
		}
		if _, ok := byCat[row.ext.Category]; !ok {
			cats = append(cats, row.ext.Category)
		}
		byCat[row.ext.Category] = append(byCat[row.ext.Category], row)
	}
	total := 0
	for _, rows := range byCat {
		total += len(rows)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d extension(s)\n", total)
	for _, cat := range cats {
		b.WriteString("--- " + cat + m.categorySuffix(cat) + "\n")
		b.WriteString("enabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n")
		for _, row := range byCat[cat] {
			enabled, active := "", ""
			switch row.state {
			case stateEnabled, stateEnabling:
				enabled, active = "*", "*"
			case stateWaiting:
				active = "*"
			}
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s (%s)\t%s\t[%s]\n", enabled, active, row.ext.TeamID, row.ext.BundleID, row.ext.version(), row.ext.Name, strings.ReplaceAll(row.state, "_", " "))
		}
	}
	return b.String()
}

// sipRefusal is what systemextensionsctl says to developer, uninstall and
// reset while System Integrity Protection is on.
const sipRefusal = "At this time, this tool cannot be used if System Integrity Protection is enabled.\n" +
	"This limitation will be removed in the near future.\n" +
	"Please remember to re-enable System Integrity Protection!\n"

const systemExtensionsUsage = "systemextensionsctl: usage:\n" +
	"\tsystemextensionsctl developer [on|off]\n" +
	"\tsystemextensionsctl list [category]\n" +
	"\tsystemextensionsctl reset  - reset all System Extensions state\n" +
	"\tsystemextensionsctl uninstall <teamId> <bundleId>; can also accept '-' for teamID\n"

// --- bundle files ---------------------------------------------------------

func plistDict(pairs ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "\t<key>%s</key>\n\t<string>%s</string>\n", html.EscapeString(pairs[i]), html.EscapeString(pairs[i+1]))
	}
	b.WriteString("</dict>\n</plist>\n")
	return b.String()
}

func extensionInfoPlist(e SimExtension, executable string) string {
	return plistDict(
		"CFBundleExecutable", executable,
		"CFBundleIdentifier", e.BundleID,
		"CFBundleName", e.Name,
		"CFBundlePackageType", "SYSX",
		"CFBundleShortVersionString", e.ShortVersion,
		"CFBundleVersion", e.Build,
		"NEMachServiceName", e.MachService,
	)
}

func appInfoPlist(a SimApp, executable string) string {
	return plistDict(
		"CFBundleExecutable", executable,
		"CFBundleIdentifier", a.BundleID,
		"CFBundleName", a.Name,
		"CFBundlePackageType", "APPL",
		"CFBundleShortVersionString", a.ShortVersion,
		"CFBundleVersion", a.Build,
	)
}

// simulatedExecutable stands in for a Mach-O: it says what it is.
func simulatedExecutable(name, version string, uuids map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sxlab simulated executable: %s %s\n", name, version)
	for _, arch := range sortedKeys(uuids) {
		fmt.Fprintf(&b, "LC_UUID %s %s\n", arch, strings.ToUpper(uuids[arch]))
	}
	return b.String()
}
