package guest

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const netCategory = "com.apple.system_extension.network_extension"

// referenceExtensions is what GUEST-REFERENCE's example must parse to.
var referenceExtensions = []Extension{
	{Category: netCategory, Enabled: true, Active: true, TeamID: "ABCDE12345", BundleID: "com.example.vpn.tunnel", ShortVersion: "3.0", Build: "300", Name: "Example VPN", State: "activated enabled"},
	{Category: netCategory, TeamID: "ABCDE12345", BundleID: "com.example.vpn.tunnel", ShortVersion: "2.0", Build: "200", Name: "Example VPN", State: "terminated waiting to uninstall on reboot"},
	{Category: netCategory, Active: true, TeamID: "ABCDE12345", BundleID: "com.example.filter", ShortVersion: "1.1", Build: "11", Name: "Example Filter", State: "activated waiting for user"},
}

func TestParseExtensionsReferenceVariants(t *testing.T) {
	ref := sample(t, "extensions_reference.txt")
	tests := []struct {
		name  string
		input string
	}{
		{"tabs as printed", ref},
		{"each tab one space", tabsTo(ref, 1)},
		{"each tab four spaces", tabsTo(ref, 4)},
		{"terminal tab stops", expandTabStops(ref)},
		{"runs of tabs squeezed to one space", squeezeTabs(ref)},
		{"four spaces per tab, indent lost", stripIndent(tabsTo(ref, 4))},
		{"CRLF", crlf(ref)},
		{"CRLF and spaces", crlf(tabsTo(ref, 2))},
		{"indented as a whole", "    " + strings.ReplaceAll(tabsTo(ref, 1), "\n", "\n    ")},
		{"trailing garbage", ref + "\nlogout\n[Process completed]\n* not a row\n"},
		{"leading byte-order mark", "\uFEFF" + ref},
		{"old macOS header", strings.Replace(ref, netCategory+" (Go to 'System Settings > General > Login Items & Extensions > Network Extensions' to modify these system extension(s))", netCategory, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExtensions(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, referenceExtensions, got)
		})
	}
}

func TestParseExtensionsUpgradeAndCategories(t *testing.T) {
	got, err := ParseExtensions(strings.NewReader(sample(t, "extensions_upgrade.txt")))
	require.NoError(t, err)
	require.Len(t, got, 5, "the shell noise after the rows is ignored")

	es := "com.apple.system_extension.endpoint_security"
	assert.Equal(t, Extension{Category: es, Enabled: true, Active: true, TeamID: "ZYXWV98765", BundleID: "com.example.santa.daemon", ShortVersion: "2024.10", Build: "2024.10.49", Name: "santad", State: "activated enabled"}, got[0])
	assert.Equal(t, es, got[1].Category)
	assert.Equal(t, "terminated waiting to uninstall on reboot", got[1].State)
	assert.False(t, got[1].Transitional)

	// The same bundle ID twice mid-upgrade: both rows kept, in order, with
	// unknown states verbatim and transitional. The name holds brackets.
	assert.Equal(t, Extension{Category: netCategory, Enabled: true, Active: true, TeamID: "ABCDE12345", BundleID: "com.example.vpn.tunnel", ShortVersion: "3.1", Build: "310", Name: "Example VPN [beta]", State: "activated_enabling", Transitional: true}, got[2])
	assert.Equal(t, "com.example.vpn.tunnel", got[3].BundleID)
	assert.Equal(t, "terminating_for_upgrade_via_delegate", got[3].State)
	assert.True(t, got[3].Transitional)

	// An unsigned developer build shows "-" as its team.
	assert.Equal(t, Extension{Category: netCategory, Enabled: true, TeamID: "-", BundleID: "com.example.dev.filter", ShortVersion: "0.1", Build: "1", Name: "Dev Filter", State: "activated disabled"}, got[4])
}

// TestParseExtensionsStarAmbiguity pins the rule documented on
// ParseExtensions for a single "*" once tabs became spaces.
func TestParseExtensionsStarAmbiguity(t *testing.T) {
	const tail = "ABCDE12345 com.example.vpn.tunnel (3.0/300) Example VPN [activated enabled]"
	tests := []struct {
		name            string
		row             string
		enabled, active bool
	}{
		{"tab per space, enabled only", "*  " + tail, true, false},
		{"tab per space, active only", " * " + tail, false, true},
		{"tab per space, both", "* * " + tail, true, true},
		{"tab per space, neither", "  " + tail, false, false},
		{"squeezed runs, enabled only", "* " + tail, true, false},
		{"squeezed runs keep indent, active only", " * " + tail, false, true},
		{"four spaces per tab, enabled only", "*        " + strings.Replace(tail, " ", "    ", 1), true, false},
		{"four spaces per tab, active only", "    *    " + strings.Replace(tail, " ", "    ", 1), false, true},
		// Indent lost but separators are 4 wide: one separator after the
		// star means it stood in the active column.
		{"four spaces per tab, indent lost, active only", "*    " + strings.Replace(tail, " ", "    ", 1), false, true},
		// Indent lost and every separator one space: squeezed runs and a
		// lost indent look the same; the left-most column wins.
		{"ambiguous: single spaces, no indent", "* " + tail, true, false},
		{"terminal tab stops, enabled only", expandTabStops("*\t\t" + strings.Replace(tail, " ", "\t", 1)), true, false},
		{"terminal tab stops, active only", expandTabStops("\t*\t" + strings.Replace(tail, " ", "\t", 1)), false, true},
		{"tabs, enabled only", "*\t\t" + tail, true, false},
		{"tabs, active only", "\t*\t" + tail, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExtensions(strings.NewReader(tt.row + "\n"))
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, tt.enabled, got[0].Enabled, "enabled")
			assert.Equal(t, tt.active, got[0].Active, "active")
			assert.Equal(t, "ABCDE12345", got[0].TeamID)
			assert.Equal(t, "Example VPN", got[0].Name)
		})
	}
}

func TestParseExtensionsRowForms(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Extension
	}{
		{
			name:  "header with trailing dashes, version without build",
			input: "--- com.apple.system_extension.driver_extension ---\n*\t*\tTEAMID1234\tcom.example.driver (1.0)\tExample Driver\t[activated enabled]\n",
			want:  []Extension{{Category: "com.apple.system_extension.driver_extension", Enabled: true, Active: true, TeamID: "TEAMID1234", BundleID: "com.example.driver", ShortVersion: "1.0", Name: "Example Driver", State: "activated enabled"}},
		},
		{
			name:  "no name column, no header",
			input: "*\t*\tG43BCU2T37\torg.example.VirtualHIDDevice (1.8.0/1.8.0)\t[activated enabled]\n",
			want:  []Extension{{Enabled: true, Active: true, TeamID: "G43BCU2T37", BundleID: "org.example.VirtualHIDDevice", ShortVersion: "1.8.0", Build: "1.8.0", State: "activated enabled"}},
		},
		{
			name:  "state validating is transitional",
			input: "1 extension(s)\n\t\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[validating]\n",
			want:  []Extension{{TeamID: "ABCDE12345", BundleID: "com.example.vpn.tunnel", ShortVersion: "3.0", Build: "300", Name: "Example VPN", State: "validating", Transitional: true}},
		},
		{
			name:  "state never seen is kept verbatim",
			input: "*\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[  Some Future State ]\n",
			want:  []Extension{{Enabled: true, Active: true, TeamID: "ABCDE12345", BundleID: "com.example.vpn.tunnel", ShortVersion: "3.0", Build: "300", Name: "Example VPN", State: "Some Future State", Transitional: true}},
		},
		{
			name:  "missing state bracket",
			input: "*\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\n",
			want:  []Extension{{Enabled: true, Active: true, TeamID: "ABCDE12345", BundleID: "com.example.vpn.tunnel", ShortVersion: "3.0", Build: "300", Name: "Example VPN", Transitional: true}},
		},
		{
			name:  "no extensions",
			input: "0 extension(s)\n",
			want:  []Extension{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExtensions(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseExtensionsErrors(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		line     int
		empty    bool
		contains string
	}{
		{name: "empty", input: "", empty: true},
		{name: "whitespace", input: " \n\r\n\t", empty: true},
		{name: "not the command's output", input: "\nzsh: command not found: systemextensionsctl\n", line: 2, contains: "extension(s)"},
		{name: "rows promised, none readable", input: "2 extension(s)\n--- " + netCategory + "\ngarbage\n", line: 1, contains: "2 extension rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseExtensions(strings.NewReader(tt.input))
			require.Error(t, err)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "extensions", pe.Kind)
			assert.Equal(t, tt.line, pe.Line)
			assert.Equal(t, tt.empty, errors.Is(err, ErrEmptyInput))
			if tt.line > 0 {
				assert.Contains(t, err.Error(), "line ")
			}
			assert.Contains(t, err.Error(), tt.contains)
		})
	}
}

func TestExtensionStateTransitional(t *testing.T) {
	stable := []string{"activated enabled", "activated disabled", "activated waiting for user", "terminated waiting to uninstall on reboot", "activated_waiting_for_user", " Activated  Enabled "}
	for _, s := range stable {
		assert.False(t, ExtensionStateTransitional(s), s)
	}
	moving := []string{"", "validating", "activated_enabling", "activated_waiting_to_upgrade", "terminating_for_uninstall", "terminating_for_upgrade_via_delegate", "uninstalling", "uninstalled", "something new"}
	for _, s := range moving {
		assert.True(t, ExtensionStateTransitional(s), s)
	}
}

func FuzzExtensions(f *testing.F) {
	ref := sample(f, "extensions_reference.txt")
	for _, seed := range []string{
		ref, tabsTo(ref, 1), squeezeTabs(ref), stripIndent(tabsTo(ref, 4)), expandTabStops(ref), crlf(ref),
		sample(f, "extensions_upgrade.txt"), "0 extension(s)\n", "* ", "*\t*\t-\tx (", "--- \n", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		exts, err := ParseExtensions(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotNil(t, exts)
		for _, e := range exts {
			require.NotEmpty(t, e.BundleID)
			if e.TeamID == "" {
				require.Contains(t, e.Unread, "team_id", "an empty team ID is marked unread")
			} else {
				require.Regexp(t, teamIDPattern, e.TeamID)
			}
			require.Equal(t, ExtensionStateTransitional(e.State), e.Transitional)
		}
	})
}

// A row pasted with its team ID redacted and its flag columns blank is
// still a row: what can be read is kept, the team ID is marked unread.
func TestExtensionsRedactedPaste(t *testing.T) {
	input := "2 extension(s)\n" +
		"--- com.apple.system_extension.network_extension\n" +
		"enabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n" +
		"\t\t<redacted>\tcom.example.vpn.tunnel (2.0/200)\tExample VPN\t[terminated waiting to uninstall on reboot]\n" +
		"*\t*\tXXXX-XXXX\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n"
	for name, in := range map[string]string{"tabs": input, "tabs as 4 spaces": tabsTo(input, 4), "squeezed": squeezeTabs(input)} {
		t.Run(name, func(t *testing.T) {
			exts, err := ParseExtensions(strings.NewReader(in))
			require.NoError(t, err)
			require.Len(t, exts, 2, "no row is dropped")
			old, cur := exts[0], exts[1]
			assert.Equal(t, "com.example.vpn.tunnel", old.BundleID)
			assert.Equal(t, "2.0", old.ShortVersion)
			assert.Equal(t, "200", old.Build)
			assert.Equal(t, "Example VPN", old.Name)
			assert.Equal(t, "terminated waiting to uninstall on reboot", old.State)
			assert.False(t, old.Enabled || old.Active, "blank flag columns")
			assert.Empty(t, old.TeamID)
			assert.Equal(t, []string{"team_id"}, old.Unread)
			assert.Equal(t, "<redacted>", old.TeamIDAsPrinted)
			assert.Equal(t, "com.apple.system_extension.network_extension", old.Category)

			assert.True(t, cur.Enabled && cur.Active)
			assert.Equal(t, "3.0", cur.ShortVersion)
			assert.Equal(t, []string{"team_id"}, cur.Unread)
			assert.Equal(t, "XXXX-XXXX", cur.TeamIDAsPrinted)
		})
	}

	// The team column gone altogether.
	exts, err := ParseExtensions(strings.NewReader("com.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n"))
	require.NoError(t, err)
	require.Len(t, exts, 1)
	assert.Equal(t, "activated enabled", exts[0].State)
	assert.Equal(t, "Example VPN", exts[0].Name)
	assert.Equal(t, []string{"team_id"}, exts[0].Unread)
	assert.Empty(t, exts[0].TeamIDAsPrinted)

	// A team column that is not a team ID was an error; the row is kept now.
	exts, err = ParseExtensions(strings.NewReader("*\t*\tabc\tcom.example (1/1)\tX\t[activated enabled]\n"))
	require.NoError(t, err)
	require.Len(t, exts, 1)
	assert.Equal(t, "abc", exts[0].TeamIDAsPrinted)
	assert.Equal(t, "com.example", exts[0].BundleID)

	// A placeholder that looks like a team ID is a team ID: nothing to mark.
	exts, err = ParseExtensions(strings.NewReader("*\t*\tXXXXXXXXXX\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n"))
	require.NoError(t, err)
	require.Len(t, exts, 1)
	assert.Equal(t, "XXXXXXXXXX", exts[0].TeamID)
	assert.Empty(t, exts[0].Unread)
}
