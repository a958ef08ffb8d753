package guest

import (
	"io"
	"regexp"
	"strings"
)

// VPNService is one row of `scutil --nc list`.
type VPNService struct {
	Enabled bool   `json:"enabled"`
	Status  string `json:"status"` // verbatim: Connected, Disconnected, …
	ID      string `json:"id"`     // service UUID
	// Provider is the bundle ID in parentheses after the type, e.g.
	// com.example.vpn for `VPN (com.example.vpn)`; empty for built-in
	// types such as `PPP --> L2TP` or `IPSec`.
	Provider string `json:"provider"`
	Name     string `json:"name"`
	Kind     string `json:"kind"` // what the final [...] holds, e.g. VPN:com.example.vpn
}

// vpnRowPattern: optional "*", "(status)", the service ID, then the rest.
var vpnRowPattern = regexp.MustCompile(`^\s*(\*)?\s*\(([^()]*)\)\s+(\S+)\s+(.*)$`)

const vpnListExpected = `"Available network connection services …" or a service row like "* (Disconnected) ID VPN (bundle) \"Name\" [VPN:bundle]"`

// ParseVPNList parses `scutil --nc list`. The header line is optional; a
// header and no rows is an empty list. Rows that do not fit are ignored.
func ParseVPNList(r io.Reader) ([]VPNService, error) {
	const kind = "vpn-list"
	lines, err := readLines(kind, vpnListExpected, r)
	if err != nil {
		return nil, err
	}
	services := []VPNService{}
	recognised := false
	for _, l := range lines {
		trimmed := strings.TrimSpace(l.text)
		if strings.HasPrefix(trimmed, "Available network connection services") {
			recognised = true
			continue
		}
		if svc, ok := parseVPNRow(l.text); ok {
			services = append(services, svc)
			recognised = true
		}
	}
	if !recognised {
		return nil, unrecognised(kind, vpnListExpected, lines)
	}
	return services, nil
}

func parseVPNRow(text string) (VPNService, bool) {
	m := vpnRowPattern.FindStringSubmatch(text)
	if m == nil {
		return VPNService{}, false
	}
	svc := VPNService{Enabled: m[1] == "*", Status: strings.TrimSpace(m[2]), ID: m[3]}
	rest := strings.TrimSpace(m[4])
	if strings.HasSuffix(rest, "]") {
		if open := strings.LastIndex(rest, "["); open >= 0 {
			svc.Kind = strings.TrimSpace(rest[open+1 : len(rest)-1])
			rest = strings.TrimSpace(rest[:open])
		}
	}
	// The name is everything between the first and the last double quote:
	// scutil does not escape quotes inside names.
	typ := rest
	if first := strings.Index(rest, `"`); first >= 0 {
		typ = rest[:first]
		if last := strings.LastIndex(rest, `"`); last > first {
			svc.Name = rest[first+1 : last]
		} else {
			svc.Name = rest[first+1:]
		}
	}
	typ = strings.TrimSpace(typ)
	if open := strings.Index(typ, "("); open >= 0 {
		if closing := strings.LastIndex(typ, ")"); closing > open {
			svc.Provider = strings.TrimSpace(typ[open+1 : closing])
		}
	}
	if svc.Name == "" && svc.Kind == "" {
		return VPNService{}, false // "(something) word" alone is not a service row
	}
	return svc, true
}

// VPNStatus is `scutil --nc status NAME`.
type VPNStatus struct {
	// Status is the first line: Connected, Connecting, Disconnected,
	// Disconnecting, "No service", or whatever else scutil printed.
	Status string `json:"status"`
	// Extended is the "Extended Status <dictionary> {" block: values are
	// strings, nested <dictionary> blocks are map[string]any and <array>
	// blocks are []any. Empty, never nil, when the block is absent.
	Extended map[string]any `json:"extended"`
}

const vpnStatusExpected = `a status line (Connected, Disconnected, No service, …) then "Extended Status <dictionary> {"`

// ParseVPNStatus parses `scutil --nc status NAME`. The status is the first
// non-blank line verbatim; the extended block is parsed leniently (a
// truncated block keeps what was read).
func ParseVPNStatus(r io.Reader) (VPNStatus, error) {
	const kind = "vpn-status"
	lines, err := readLines(kind, vpnStatusExpected, r)
	if err != nil {
		return VPNStatus{}, err
	}
	status := VPNStatus{Extended: map[string]any{}}
	i := 0
	for i < len(lines) && strings.TrimSpace(lines[i].text) == "" {
		i++
	}
	if i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i].text), "Extended Status") {
		status.Status = strings.TrimSpace(lines[i].text)
		i++
	}
	for ; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i].text)
		if strings.HasPrefix(trimmed, "Extended Status") && strings.HasSuffix(trimmed, "{") {
			status.Extended = parseSCDictionary(lines[i+1:])
			break
		}
		if strings.HasPrefix(trimmed, "Extended Status") && strings.HasSuffix(trimmed, "{}") {
			break
		}
	}
	return status, nil
}

// scNode is an open <dictionary> or <array> block of scutil's description
// format, with the key it will be stored under in its parent.
type scNode struct {
	key   string
	dict  map[string]any
	items []any
	array bool
}

func newSCNode(typ, key string) *scNode {
	if typ == "<array>" {
		return &scNode{key: key, array: true, items: []any{}}
	}
	return &scNode{key: key, dict: map[string]any{}}
}

func (n *scNode) value() any {
	if n.array {
		return n.items
	}
	return n.dict
}

// add stores v; arrays ignore the "0", "1", … keys and keep print order.
func (n *scNode) add(key string, v any) {
	if n.array {
		n.items = append(n.items, v)
		return
	}
	n.dict[key] = v
}

// parseSCDictionary reads "Key : value" lines until the "}" closing the
// dictionary whose opening line came just before lines. Nested
// "Key : <dictionary> {" and "Key : <array> {" open blocks. A truncated
// block keeps what was read.
func parseSCDictionary(lines []line) map[string]any {
	root := newSCNode("<dictionary>", "")
	stack := []*scNode{root}
	closeTop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		stack[len(stack)-1].add(top.key, top.value())
	}
	for _, l := range lines {
		trimmed := strings.TrimSpace(l.text)
		if trimmed == "" {
			continue
		}
		if trimmed == "}" {
			if len(stack) == 1 {
				return root.dict
			}
			closeTop()
			continue
		}
		key, value, ok := strings.Cut(trimmed, " : ")
		if !ok {
			key, ok = strings.CutSuffix(trimmed, " :")
		}
		if !ok {
			continue // not a description line
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		top := stack[len(stack)-1]
		typ, opens, empty := blockOpener(value)
		switch {
		case opens && empty:
			top.add(key, newSCNode(typ, key).value())
		case opens:
			stack = append(stack, newSCNode(typ, key))
		default:
			top.add(key, value)
		}
	}
	for len(stack) > 1 {
		closeTop()
	}
	return root.dict
}

// blockOpener recognises "<dictionary> {", "<array> {" and their empty
// "{}" forms.
func blockOpener(value string) (typ string, opens, empty bool) {
	for _, typ := range []string{"<dictionary>", "<array>"} {
		if rest, ok := strings.CutPrefix(value, typ); ok {
			switch strings.TrimSpace(rest) {
			case "{":
				return typ, true, false
			case "{}":
				return typ, true, true
			}
		}
	}
	return "", false, false
}
