package macos

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// windowNameQuery is the landmark approve: ui reads when every click found
// nothing: the title of System Settings' front window.
const windowNameQuery = `tell application "System Events" to get name of window 1 of process "System Settings"`

// TestSystemSettingsWindowIsNamedAfterThePane: after `open` of a pane URL
// the front window carries the pane's title, so the lab can tell "no
// control on the right pane" from "our script opened the wrong pane".
func TestSystemSettingsWindowIsNamedAfterThePane(t *testing.T) {
	query := "osascript -e '" + windowNameQuery + "'"

	s := newSimMac(t) // 15.3
	closed := s.run(query)
	assert.Equal(t, result{"", "0:" + strconv.Itoa(len(windowNameQuery)) + ": execution error: System Events got an error: Can’t get process \"System Settings\". (-1728)\n", 1}, closed,
		"no System Settings, no window")

	s.ok(false, `open "`+loginItemsURL+`"`)
	assert.Equal(t, "Login Items & Extensions\n", s.ok(false, query))
	s.ok(false, `open "`+securityURL+`"`)
	assert.Equal(t, "Privacy & Security\n", s.ok(false, query), "the window follows the pane opened last")
	s.ok(false, `open "x-apple.systempreferences:com.apple.no-such-pane"`)
	assert.Equal(t, "General\n", s.ok(false, query), "an unknown URL opens System Settings on General")
	s.ok(false, `open -a "System Settings"`)
	assert.Equal(t, "General\n", s.ok(false, query), "bringing it to the front keeps its pane")

	old := newSimMac(t, withVersion("14.7", "23H124"))
	old.ok(false, `open "`+loginItemsURL+`"`)
	assert.Equal(t, "Login Items\n", old.ok(false, query), "the pane got its \"& Extensions\" in macOS 15")
	old.ok(false, `open "`+securityURL+`"`)
	assert.Equal(t, "Privacy & Security\n", old.ok(false, query))

	r := s.run("osascript -e '" + windowNameQuery + "' -e '" + clickSwitch + "'")
	assert.Equal(t, 127, r.code, "a query mixed with clicks is beyond the sim, not a silent answer")
}

func TestSystemSettingsWindowNameNeedsTheGrants(t *testing.T) {
	query := "osascript -e '" + windowNameQuery + "'"
	at := "0:" + strconv.Itoa(len(windowNameQuery))

	noAX := newSimMac(t, withGolden(func(g *Golden) { g.Accessibility = []string{"/usr/bin/osascript"} }))
	noAX.ok(false, `open "`+loginItemsURL+`"`)
	assert.Equal(t, result{"", at + ": execution error: System Events got an error: osascript is not allowed assistive access. (-1719)\n", 1}, noAX.run(query))

	noAE := newSimMac(t, withGolden(func(g *Golden) { g.AppleEvents = nil }))
	noAE.ok(false, `open "`+loginItemsURL+`"`)
	assert.Equal(t, result{"", at + ": execution error: Not authorized to send Apple events to System Events. (-1743)\n", 1}, noAE.run(query))

	s := newSimMac(t)
	s.ok(false, `open "`+loginItemsURL+`"`)
	r := s.sudo(query)
	assert.Equal(t, 1, r.code, "root's System Events is not the user's session")
	assert.Contains(t, r.err, "(-1743)")
}

// TestCoalescedCopyOnTheRightPane: under approval-coalesced the switch is
// missing while the window shows Login Items & Extensions, the landmark
// that makes the miss macOS's and not the lab's.
func TestCoalescedCopyOnTheRightPane(t *testing.T) {
	s := newSimMac(t, faultCoalesced)
	s.pendingUpgrade(2, 3)
	s.ok(false, `open "`+loginItemsURL+`"`)
	r := s.run("osascript -e '" + clickSwitch + "'")
	require.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "(-1728)")
	assert.Equal(t, "Login Items & Extensions\n", s.ok(false, "osascript -e '"+windowNameQuery+"'"))
	assert.Equal(t, []string{"3.0/300 activated waiting for user"}, s.extStates())
}

// contentsWalk lists System Settings' window one element a line (class,
// name, description, value), as approve: ui does when every click missed.
const contentsWalk = `on t(x)
if x is missing value then return ""
return x as text
end t
tell application "System Events" to tell process "System Settings"
set out to {}
set els to entire contents of window 1
repeat with i from 1 to count of els
set el to item i of els
set end of out to my t(class of el) & tab & my t(name of el) & tab & my t(description of el) & tab & my t(value of el)
end repeat
set AppleScript's text item delimiters to linefeed
return out as text
end tell`

// TestSystemSettingsListsTheApprovalControl: the walk of the window's
// elements finds the switch (15+) or the Allow button and its message
// (13/14) only while the pane offers them; for a coalesced copy it finds
// nothing that names the app, which is what makes "no approval control".
func TestSystemSettingsListsTheApprovalControl(t *testing.T) {
	walk := func(s *simMac) string {
		t.Helper()
		r := s.execArgs(false, "osascript", "-e", contentsWalk)
		require.Equal(t, 0, r.code, r.err)
		return r.out
	}

	s := newSimMac(t) // 15.3
	s.install(1)
	s.launch()
	s.ok(false, `open "`+loginItemsURL+`"`)
	assert.Equal(t, "static text\t\t\tLogin Items & Extensions\ncheckbox\tExample VPN\t\t0\n", walk(s))
	s.ok(false, `open "`+securityURL+`"`)
	assert.Equal(t, "static text\t\t\tPrivacy & Security\n", walk(s), "15 has no Allow button in Privacy & Security")

	old := newSimMac(t, withVersion("14.7", "23H124"))
	old.install(1)
	old.launch()
	old.ok(false, `open "`+securityURL+`"`)
	assert.Equal(t, "static text\t\t\tPrivacy & Security\nstatic text\t\t\tSystem software from application “Example VPN” was blocked from loading.\nbutton\tAllow\t\t\n", walk(old))

	c := newSimMac(t, faultCoalesced)
	c.pendingUpgrade(2, 3)
	c.ok(false, `open "`+loginItemsURL+`"`)
	assert.Equal(t, "static text\t\t\tLogin Items & Extensions\n", walk(c), "the copy whose request was never presented has no switch")

	bare := s.run(`osascript -e 'tell application "System Events" to tell process "System Settings" to get entire contents of window 1'`)
	assert.Equal(t, 127, bare.code, "a Mac prints references there, which the sim does not model: beyond the sim, not a made-up answer")

	noAX := newSimMac(t, withGolden(func(g *Golden) { g.Accessibility = []string{"/usr/bin/osascript"} }))
	noAX.ok(false, `open "`+loginItemsURL+`"`)
	r := noAX.execArgs(false, "osascript", "-e", contentsWalk)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "(-1719)", "the walk is UI scripting: it needs the Accessibility grant")
}
