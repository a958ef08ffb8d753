package guest

import (
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Extension is one row of `systemextensionsctl list`.
type Extension struct {
	// Category is the header's id, e.g.
	// com.apple.system_extension.network_extension, without the
	// "(Go to 'System Settings …')" suffix macOS 13+ adds. Empty when rows
	// came without a header.
	Category     string `json:"category"`
	Enabled      bool   `json:"enabled"`
	Active       bool   `json:"active"`
	TeamID       string `json:"team_id"`
	BundleID     string `json:"bundle_id"`
	ShortVersion string `json:"short_version"` // CFBundleShortVersionString
	Build        string `json:"build"`         // CFBundleVersion; empty when the row had no "/"
	Name         string `json:"name"`
	State        string `json:"state"` // verbatim, without the brackets
	// Transitional is true unless State is one of the states an extension
	// sits in until something outside sysextd acts (see
	// ExtensionStateTransitional).
	Transitional bool `json:"transitional"`
	// Unread names the fields the row did not let us read, as in a pasted
	// row whose team ID was redacted ("team_id"); such fields are left
	// empty, and TeamIDAsPrinted keeps what stood in the team column.
	Unread          []string `json:"unread,omitempty"`
	TeamIDAsPrinted string   `json:"team_id_as_printed,omitempty"`
}

// stableExtensionStates are the states in which an extension stays until a
// person, a profile or a reboot moves it on. Anything else is sysextd in the
// middle of an operation, or a state this code has not seen.
var stableExtensionStates = map[string]bool{
	"activated enabled":                         true,
	"activated disabled":                        true,
	"activated waiting for user":                true,
	"terminated waiting to uninstall on reboot": true,
}

// ExtensionStateTransitional reports whether state is one sysextd is
// expected to leave on its own (validating, activated_enabling,
// terminating_for_upgrade_via_delegate, …) or one this code does not know.
// Unknown and empty states count as transitional: a poller should keep
// waiting, not conclude. sysextd's log spelling of a stable state
// (activated_waiting_for_user) is the same state, so underscores and case
// are ignored.
func ExtensionStateTransitional(state string) bool {
	normal := strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(state, "_", " ")), " "))
	return !stableExtensionStates[normal]
}

var (
	// teamIDPattern: Apple team IDs are 10 uppercase alphanumerics; "-"
	// stands for an unsigned (developer mode) extension.
	teamIDPattern         = regexp.MustCompile(`^(?:[A-Z0-9]{10}|-)$`)
	extensionCountPattern = regexp.MustCompile(`^\s*(\d+)\s+extension\(s\)\s*$`)
)

const extensionsExpected = `"N extension(s)", a "--- category" header or an extension row`

// ParseExtensions parses `systemextensionsctl list`.
//
// Rows are tab-separated, but output pasted by people often has tabs turned
// into spaces, and the enabled/active columns are "*" or empty, so
// "* ABCDE12345 …" could be either column. The rule (see enabledActive):
//   - tabs present: the first two tab-separated fields are the columns;
//   - spaces only, two stars or none: no ambiguity;
//   - spaces only, one star: whitespace before the star (beyond the column
//     header's own indent) means it is the active column; otherwise it is
//     the enabled column when the gap after it spans two separators, the
//     active column when it spans one separator and separators are visibly
//     wider than one space (leading whitespace was lost), and — when every
//     separator is a single space, so squeezed runs and lost indent look the
//     same — the enabled column, the one that is left-most as printed.
//
// Lines that are not a count line, a category header, the column header or
// an extension row are ignored. It is an error only when nothing was
// recognised, or when the count line promises rows and none parsed.
func ParseExtensions(r io.Reader) ([]Extension, error) {
	const kind = "extensions"
	lines, err := readLines(kind, extensionsExpected, r)
	if err != nil {
		return nil, err
	}
	var (
		exts       = []Extension{}
		category   string
		baseIndent int // leading whitespace of the column header: a pasted block may be indented as a whole
		count      = -1
		countLine  line
		recognised bool
	)
	for _, l := range lines {
		text := l.text
		trimmed := strings.TrimSpace(text)
		switch {
		case trimmed == "":
			continue
		case extensionCountPattern.MatchString(text):
			n, convErr := strconv.Atoi(extensionCountPattern.FindStringSubmatch(text)[1])
			if convErr == nil {
				count, countLine = n, l
			}
			recognised = true
		case strings.HasPrefix(trimmed, "---"):
			category = extensionCategory(trimmed)
			recognised = true
		case isExtensionColumnHeader(trimmed):
			baseIndent = leadingSpace(text)
			recognised = true
		default:
			if ext, ok := parseExtensionRow(text, baseIndent); ok {
				ext.Category = category
				exts = append(exts, ext)
				recognised = true
			}
		}
	}
	if !recognised {
		return nil, unrecognised(kind, extensionsExpected, lines)
	}
	if count > 0 && len(exts) == 0 {
		return nil, &ParseError{Kind: kind, Line: countLine.num, Expected: strconv.Itoa(count) + " extension rows after the count line, found none", Got: strings.TrimSpace(countLine.text)}
	}
	return exts, nil
}

// extensionCategory takes the id from "--- ID (Go to …)", "--- ID ---" or
// "--- ID".
func extensionCategory(header string) string {
	rest := strings.TrimSpace(strings.TrimLeft(header, "-"))
	if i := strings.Index(rest, "(Go to"); i >= 0 {
		rest = rest[:i]
	}
	fields := strings.Fields(strings.TrimRight(strings.TrimSpace(rest), "-"))
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

func isExtensionColumnHeader(trimmed string) bool {
	return strings.HasPrefix(trimmed, "enabled") && strings.Contains(trimmed, "active") && strings.Contains(trimmed, "teamID")
}

// looseRow finds "bundleID (version[/build]) … [state]" anywhere in a
// line: what makes a line a row, whatever stands before it.
var looseRow = regexp.MustCompile(`(^|\s)[^\s()]+\s*\([^()\s]+\)[^\[\]]*\[[^\[\]]*\]\s*$`)

// parseExtensionRow parses one row; ok is false for lines that are not rows.
func parseExtensionRow(text string, baseIndent int) (Extension, bool) {
	if ext, ok := parseStrictRow(text, baseIndent); ok {
		return ext, true
	}
	// People redact the team ID when they paste ("<redacted>", "TEAMID",
	// "xxxxxxxxxx") or lose it with the flag columns: any line with a
	// bundle ID, a version in parentheses and a [state] is still a row.
	// The team column is read as unsigned ("-") to place the other columns,
	// then reported as unread.
	loc := looseRow.FindStringIndex(text)
	if loc == nil {
		return Extension{}, false
	}
	bundleStart := loc[0] + len(text[loc[0]:]) - len(strings.TrimLeft(text[loc[0]:], " \t"))
	prefix := text[:bundleStart]
	trimmed := strings.TrimRight(prefix, " \t")
	tokenStart := strings.LastIndexAny(trimmed, " \t") + 1
	placeholder := trimmed[tokenStart:]
	var line string
	switch {
	case placeholder == "" || placeholder == "*":
		// no team column at all: one stands in front of the bundle ID
		line = prefix + "-\t" + text[bundleStart:]
		placeholder = ""
	default:
		line = trimmed[:tokenStart] + "-" + prefix[len(trimmed):] + text[bundleStart:]
	}
	ext, ok := parseStrictRow(line, baseIndent)
	if !ok {
		return Extension{}, false
	}
	ext.TeamID, ext.TeamIDAsPrinted = "", placeholder
	ext.Unread = append(ext.Unread, "team_id")
	return ext, true
}

func parseStrictRow(text string, baseIndent int) (Extension, bool) {
	enabled, active, rest, ok := enabledActive(text, baseIndent)
	if !ok {
		return Extension{}, false
	}
	ext, ok := parseExtensionColumns(rest)
	if !ok {
		return Extension{}, false
	}
	ext.Enabled, ext.Active = enabled, active
	return ext, true
}

// enabledActive reads the two star columns and returns the rest of the row,
// starting at the team ID. See ParseExtensions for the ambiguity rule.
func enabledActive(text string, baseIndent int) (enabled, active bool, rest string, ok bool) {
	if fields := strings.Split(text, "\t"); len(fields) >= 3 {
		first, second := strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1])
		if isStarColumn(first) && isStarColumn(second) {
			return first == "*", second == "*", strings.Join(fields[2:], "\t"), true
		}
	}

	// Spaces (or a mix the tab split could not read): walk the star tokens.
	pos := leadingSpace(text)
	lead := pos - baseIndent
	var starGaps []int // whitespace after each star
	for len(starGaps) < 2 && pos < len(text) && text[pos] == '*' {
		after := pos + 1
		gap := leadingSpace(text[after:])
		if gap == 0 && after < len(text) {
			return false, false, "", false // "*foo" is not a star column
		}
		starGaps = append(starGaps, gap)
		pos = after + gap
	}
	rest = text[pos:]
	if words := strings.Fields(rest); len(words) == 0 || !teamIDPattern.MatchString(words[0]) {
		return false, false, "", false
	}
	switch len(starGaps) {
	case 0:
		return false, false, rest, true
	case 2:
		return true, true, rest, true
	}
	if lead > 0 {
		return false, true, rest, true
	}
	sep := separatorAfterTeam(rest)
	gap := starGaps[0]
	switch {
	case gap >= 2*sep:
		return true, false, rest, true
	case sep >= 2:
		return false, true, rest, true
	default:
		return true, false, rest, true
	}
}

func isStarColumn(s string) bool { return s == "" || s == "*" }

// separatorAfterTeam is the width of the whitespace after the team ID: what
// one tab became in this row.
func separatorAfterTeam(rest string) int {
	trimmed := strings.TrimLeft(rest, " \t")
	end := strings.IndexAny(trimmed, " \t")
	if end < 0 {
		return 1
	}
	if n := leadingSpace(trimmed[end:]); n > 0 {
		return n
	}
	return 1
}

// parseExtensionColumns parses "TEAM BUNDLE (SHORT/BUILD) NAME [STATE]".
// The name may hold spaces; the state is the final bracketed text.
func parseExtensionColumns(rest string) (Extension, bool) {
	rest = strings.TrimSpace(rest)
	var ext Extension
	if strings.HasSuffix(rest, "]") {
		if open := strings.LastIndex(rest, "["); open >= 0 {
			ext.State = strings.TrimSpace(rest[open+1 : len(rest)-1])
			rest = strings.TrimSpace(rest[:open])
		}
	}
	open := strings.Index(rest, "(")
	if open < 0 {
		return Extension{}, false
	}
	closing := strings.Index(rest[open:], ")")
	if closing < 0 {
		return Extension{}, false
	}
	closing += open
	head := strings.Fields(rest[:open])
	if len(head) < 2 || !teamIDPattern.MatchString(head[0]) {
		return Extension{}, false
	}
	ext.TeamID, ext.BundleID = head[0], head[len(head)-1]
	version := strings.TrimSpace(rest[open+1 : closing])
	ext.ShortVersion, ext.Build, _ = strings.Cut(version, "/")
	ext.ShortVersion, ext.Build = strings.TrimSpace(ext.ShortVersion), strings.TrimSpace(ext.Build)
	ext.Name = strings.TrimSpace(rest[closing+1:])
	ext.Transitional = ExtensionStateTransitional(ext.State)
	return ext, true
}
