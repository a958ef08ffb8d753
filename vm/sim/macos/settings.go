package macos

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// System Settings, as far as approving a system extension goes. macOS
// 13 and 14 show "System software from application … was blocked from
// loading" with an Allow button in Privacy & Security; macOS 15 and later
// list the extension under General > Login Items & Extensions with a
// switch. Either asks for an administrator's password in a sheet before
// the change takes effect. The control is there only for an extension
// waiting for the user whose request macOS presented: under
// approval-coalesced the new copy's request never was, so nothing offers
// to approve it.

// Panes of System Settings the model knows, by what open(1) is given.
const (
	panePrivacySecurity = "Privacy & Security"
	paneLoginItems      = "Login Items & Extensions"
	settingsApp         = "System Settings"
	settingsBundleID    = "com.apple.systempreferences"
)

// settingsURLs maps x-apple.systempreferences: URLs to their pane.
var settingsURLs = map[string]string{
	"x-apple.systempreferences:com.apple.preference.security":                      panePrivacySecurity,
	"x-apple.systempreferences:com.apple.preference.security?Security":             panePrivacySecurity,
	"x-apple.systempreferences:com.apple.settings.PrivacySecurity.extension":       panePrivacySecurity,
	"x-apple.systempreferences:com.apple.LoginItems-Settings.extension":            paneLoginItems,
	"x-apple.systempreferences:com.apple.LoginItems-Settings.extension?Extensions": paneLoginItems,
}

// windowName is the title of System Settings' window while it shows
// pane: the pane's name, as scripts that wait for `name of window 1 of
// process "System Settings"` to become the pane find it (adrienm7/ergopti
// tools/diagnostics/hs274_accessibility.py; `window "Privacy & Security"`
// in Ryan-the-hito/Shameplant). Login Items became Login Items &
// Extensions in macOS 15 (Apple macOS User Guide mtusr003/15.0, cited in
// thealpa/SaneSideButtons PR 36), so 13 and 14 title that pane "Login
// Items". Unverified on macOS: the titles of Login Items (& Extensions).
// docs/macos-behaviour.md rule 27. Callers hold mu.
func (m *Mac) windowName() string {
	if m.settingsPane == paneLoginItems && m.majorVersion() < 15 {
		return "Login Items"
	}
	return m.settingsPane
}

// approvalPane is where this macOS version offers the approval control.
func (m *Mac) approvalPane() string {
	if m.majorVersion() >= 15 {
		return paneLoginItems
	}
	return panePrivacySecurity
}

// openSettings is open(1) of System Settings or one of its panes: the
// window comes up on that pane. Callers do not hold mu.
func (m *Mac) openSettings(p *shell.Proc, target, pane string) int {
	if m.consoleUser() == "" {
		return noSessionOpen(p, target)
	}
	m.begin()
	defer m.mu.Unlock()
	if pane == "" && m.settingsPane != "" {
		return exitOK // brought to the front, on the pane it shows
	}
	if pane == "" {
		pane = "General"
	}
	m.settingsPane = pane
	m.settingsSheet = nil
	settings := process{path: imageSettings, pid: m.newPID(), thread: m.threadID(), uuid: m.imageUUID(imageSettings)}
	m.logf(settings, "", typeDefault, "com.apple.systempreferences", "", "showing pane %{public}@", pane)
	return exitOK
}

// approvalRow is the extension the open pane offers to approve, nil when
// it offers none. Callers hold mu.
func (m *Mac) approvalRow() *extRow {
	if m.settingsPane != m.approvalPane() {
		return nil
	}
	for i := len(m.exts) - 1; i >= 0; i-- {
		if row := m.exts[i]; row.state == stateWaiting && !row.promptLost {
			return row
		}
	}
	return nil
}

var (
	clickTarget   = regexp.MustCompile(`(?i)\bclick\s+((?:button|checkbox|switch|toggle)\s+"([^"]*)"[^\n]*?)(?:\s+of\s+(?:process|application)\s+"[^"]*")?\s*(?:\n|$|\bend\b)`)
	anyClick      = regexp.MustCompile(`(?i)\bclick\b`)
	windowQuery   = regexp.MustCompile(`(?i)\bname\s+of\s+(?:window\s+1|front\s+window|first\s+window)\b`)
	contentsQuery = regexp.MustCompile(`(?i)\bentire\s+contents\s+of\s+window\s+1\b`)
	// the walk approve: ui sends (steps.settingsContents) prints each
	// element's class, name, description and value, tab-separated
	contentsColumns = regexp.MustCompile(`(?i)\b(class|name|description|value)\s+of\s+el\b|\btab\b`)
	passwordText    = regexp.MustCompile(`(?i)\b(?:set\s+value\s+of\s+text\s+field\s+[^\n]*?\bto\s+|keystroke\s+)"([^"]*)"`)
)

// settingsScript runs a UI script against System Settings: a click on the
// approval control (Allow, or the extension's switch), then the password
// sheet (a password typed or set, and Modify Settings / OK / Unlock
// clicked), in one script or several; or a query of its window's name,
// which prints the pane's title (windowName). A control that is not there
// fails as System Events does (-1728), and so does any query while System
// Settings is not open. Callers do not hold mu.
func (m *Mac) settingsScript(ctx context.Context, p *shell.Proc, script string) int {
	m.begin()
	gen := m.bootGen
	if m.settingsPane == "" {
		m.mu.Unlock()
		fmt.Fprintf(stderr(p), "%s: execution error: System Events got an error: Can’t get process \"%s\". (-1728)\n", scriptRange(script, ""), settingsApp)
		return exitFailure
	}
	clicks := clickTarget.FindAllStringSubmatch(script, -1)
	if n := len(anyClick.FindAllString(script, -1)); n != len(clicks) {
		m.mu.Unlock()
		fmt.Fprintf(stderr(p), "sim: unsupported: a click in System Settings the sim does not understand (it understands click button|checkbox|switch \"NAME\" [of …])\n")
		return 127
	}
	if contentsQuery.MatchString(script) {
		lines := m.settingsElements()
		m.mu.Unlock()
		if len(clicks) > 0 || !printsColumns(script) {
			fmt.Fprintf(stderr(p), "sim: unsupported: the sim lists the entire contents of System Settings' window only as a script of its own that prints each element's class, name, description and value\n")
			return 127
		}
		for _, l := range lines {
			fmt.Fprintln(stdout(p), l)
		}
		return exitOK
	}
	if windowQuery.MatchString(script) {
		name := m.windowName()
		m.mu.Unlock()
		if len(clicks) > 0 {
			fmt.Fprintf(stderr(p), "sim: unsupported: the sim answers the name of window 1 of System Settings in a script of its own, without clicks\n")
			return 127
		}
		fmt.Fprintln(stdout(p), name)
		return exitOK
	}
	typed := ""
	if t := passwordText.FindStringSubmatch(script); t != nil {
		typed = t[1]
	}
	var missing string
	approved := false
	for _, c := range clicks {
		ref, name := strings.TrimSpace(c[1]), c[2]
		switch row := m.approvalRow(); {
		case m.settingsSheet != nil && isSheetButton(name):
			if typed == m.cfg.Password && m.cfg.Password != "" && m.settingsSheet.state == stateWaiting {
				m.approve(m.settingsSheet)
				approved = true
			}
			// a wrong password shakes the sheet, which stays
			if approved || strings.EqualFold(name, "Cancel") {
				m.settingsSheet = nil
			}
		case row != nil && m.isApprovalControl(row, name):
			m.settingsSheet = row
		default:
			missing = ref
		}
		if missing != "" {
			break
		}
	}
	m.mu.Unlock()
	if missing != "" {
		fmt.Fprintf(stderr(p), "%s: execution error: System Events got an error: Can’t get %s of process \"%s\". (-1728)\n", scriptRange(script, missing), missing, settingsApp)
		return exitFailure
	}
	if len(clicks) > 0 && !m.lockedAfter(ctx, m.dur.settings, gen) {
		return exitInterrupted
	}
	if len(clicks) > 0 {
		m.mu.Unlock()
	}
	return exitOK
}

// printsColumns says whether a walk of the window's entire contents
// prints what settingsElements answers: class, name, description and
// value of each element, with tabs between them.
func printsColumns(script string) bool {
	seen := map[string]bool{}
	for _, m := range contentsColumns.FindAllStringSubmatch(script, -1) {
		seen[strings.ToLower(m[1])] = true // "" for tab
	}
	return len(seen) == 5
}

// settingsElements is what a script that walks the entire contents of
// System Settings' window and prints each element's class, name,
// description and value (tab-separated) reads: the pane's title, and on
// the approval pane the approval control when there is one (on 13 and 14
// with the message that names the app). A real pane holds far more; the
// sim models only what approving reads, and a click finds the control
// whatever path its reference gives, so `click checkbox "App" of window
// 1` reaches it; where a Mac puts it is unverified (docs/macos-behaviour.md
// rules 14 and 29). Callers hold mu.
func (m *Mac) settingsElements() []string {
	lines := []string{"static text\t\t\t" + m.windowName()}
	row := m.approvalRow()
	switch {
	case row == nil:
	case m.approvalPane() == panePrivacySecurity:
		lines = append(lines, "static text\t\t\tSystem software from application “"+m.controlName(row)+"” was blocked from loading.", "button\tAllow\t\t")
	default:
		lines = append(lines, "checkbox\t"+m.controlName(row)+"\t\t0")
	}
	return lines
}

// controlName is what the approval pane calls row's extension: its app's
// name, or its bundle ID when no app of the machine ships it. Callers
// hold mu.
func (m *Mac) controlName(row *extRow) string {
	for _, app := range m.apps {
		if app.pkg.Extension.BundleID == row.ext.BundleID && app.pkg.App.Name != "" {
			return app.pkg.App.Name
		}
	}
	return row.ext.BundleID
}

// isApprovalControl says whether name is the control that approves row
// on this version's pane: Allow (13/14), or the switch named after the
// app or the extension (15+).
func (m *Mac) isApprovalControl(row *extRow, name string) bool {
	if m.approvalPane() == panePrivacySecurity {
		return strings.EqualFold(name, "Allow")
	}
	if strings.EqualFold(name, row.ext.BundleID) {
		return true
	}
	for _, app := range m.apps {
		if app.pkg.Extension.BundleID == row.ext.BundleID && strings.EqualFold(name, app.pkg.App.Name) {
			return true
		}
	}
	return false
}

func isSheetButton(name string) bool {
	switch strings.ToLower(name) {
	case "modify settings", "ok", "unlock", "cancel":
		return true
	}
	return false
}

// scriptRange is the "start:end" osascript prints before an execution
// error: where in the script the failing statement is.
func scriptRange(script, part string) string {
	if part != "" {
		if i := strings.Index(script, part); i >= 0 {
			return fmt.Sprintf("%d:%d", i, i+len(part))
		}
	}
	return fmt.Sprintf("0:%d", len(script))
}
