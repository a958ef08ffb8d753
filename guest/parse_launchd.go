package guest

import (
	"io"
	"strconv"
	"strings"
)

// LaunchdJob is `launchctl print DOMAIN/LABEL`.
type LaunchdJob struct {
	Label string `json:"label"` // without the domain prefix (system/, gui/501/, …)
	State string `json:"state"` // top-level state, e.g. running, not running
	PID   int    `json:"pid"`   // 0 when the job has no process
	// Endpoints are the Mach services under the top-level "endpoints"
	// block. Empty, never nil, when the block is absent: for an NE provider
	// that absence means its Mach service never registered
	// (xpc-broken-20-percent). HasEndpointsBlock tells an absent block from
	// a present but empty one.
	Endpoints []LaunchdEndpoint `json:"endpoints"`
	// Fields holds the job block: "key = value" and "key => value" lines
	// as strings, nested "key = {" blocks as map[string]any, and blocks of
	// bare lines (arguments) as []string. Keys lose their quotes.
	Fields map[string]any `json:"fields"`
}

// LaunchdEndpoint is one Mach service of a job.
type LaunchdEndpoint struct {
	Name   string `json:"name"`   // without the quotes launchctl prints
	Port   string `json:"port"`   // as printed, e.g. 0x2ed07
	Active bool   `json:"active"` // "active = 1"
}

// HasEndpointsBlock reports whether the output had an "endpoints" block at
// all, even an empty one.
func (j LaunchdJob) HasEndpointsBlock() bool {
	_, ok := j.Fields["endpoints"]
	return ok
}

const launchdExpected = `"DOMAIN/LABEL = {" followed by "key = value" lines`

// ParseLaunchdJob parses `launchctl print system/LABEL`. Only the first job
// block counts; nested blocks are tracked by their braces, so "state" or
// "pid" inside endpoints or coalitions never override the job's own. A
// truncated block keeps what was read. Output without the header line is
// accepted when it has top-level "key = value" lines.
func ParseLaunchdJob(r io.Reader) (LaunchdJob, error) {
	const kind = "launchd"
	lines, err := readLines(kind, launchdExpected, r)
	if err != nil {
		return LaunchdJob{}, err
	}
	p := launchdParser{}
	for _, l := range lines {
		if p.feed(l.text) {
			break
		}
	}
	p.finish()
	if p.root == nil || (p.label == "" && len(p.root.keys) == 0) {
		return LaunchdJob{}, unrecognised(kind, launchdExpected, lines)
	}
	job := LaunchdJob{
		Label:     p.label,
		Endpoints: []LaunchdEndpoint{},
		Fields:    p.root.toMap(),
	}
	job.State, _ = job.Fields["state"].(string)
	if pid, ok := job.Fields["pid"].(string); ok {
		if n, convErr := strconv.Atoi(pid); convErr == nil && n > 0 {
			job.PID = n
		}
	}
	if block, ok := p.root.vals["endpoints"].(*launchdNode); ok {
		for _, name := range block.keys {
			ep, ok := block.vals[name].(*launchdNode)
			if !ok || ep.isList() {
				continue
			}
			port, _ := ep.vals["port"].(string)
			active, _ := ep.vals["active"].(string)
			job.Endpoints = append(job.Endpoints, LaunchdEndpoint{Name: name, Port: port, Active: active == "1"})
		}
	}
	return job, nil
}

// launchdNode is one "{ … }" block: a map of key lines, or a list of bare
// lines such as the job's arguments. keys keeps print order so endpoints
// come out in the order launchctl printed them.
type launchdNode struct {
	key    string
	indent int // leading whitespace of the line that opened the block
	keys   []string
	vals   map[string]any // string or *launchdNode
	items  []string       // bare lines
	// raw: every line is an item. Arguments are printed raw, one per
	// line, and a shell script argument may contain "x = y", "{" or "}".
	raw bool
}

func newLaunchdNode(key string, indent int) *launchdNode {
	return &launchdNode{key: key, indent: indent, vals: map[string]any{}, raw: key == "arguments"}
}

// isList: a block is a list when it is raw or holds only bare lines. A
// block with any key line is a map and its bare lines were noise (the
// "..." of a trimmed paste, say).
func (n *launchdNode) isList() bool {
	return n.raw || (len(n.keys) == 0 && len(n.items) > 0)
}

func (n *launchdNode) set(key string, v any) {
	if _, seen := n.vals[key]; !seen {
		n.keys = append(n.keys, key)
	}
	n.vals[key] = v
}

func (n *launchdNode) toValue() any {
	if n.isList() {
		return append([]string{}, n.items...)
	}
	return n.toMap()
}

func (n *launchdNode) toMap() map[string]any {
	m := make(map[string]any, len(n.vals))
	for k, v := range n.vals {
		if child, ok := v.(*launchdNode); ok {
			m[k] = child.toValue()
		} else {
			m[k] = v
		}
	}
	return m
}

type launchdParser struct {
	label string
	root  *launchdNode
	stack []*launchdNode
	done  bool
}

// feed consumes one line and reports whether the job block has closed.
func (p *launchdParser) feed(text string) bool {
	trimmed := strings.TrimSpace(text)
	indent := leadingSpace(text)
	if trimmed == "" {
		return false
	}
	if p.root == nil {
		if key, ok := strings.CutSuffix(trimmed, " = {"); ok && !strings.ContainsAny(key, " \t") {
			p.label = key[strings.LastIndex(key, "/")+1:]
			p.root = newLaunchdNode("", indent)
			p.stack = []*launchdNode{p.root}
			return false
		}
		if _, _, ok := launchdKeyValue(trimmed); !ok {
			return false // noise before the job, e.g. a shell prompt
		}
		// Headerless paste: the lines belong to an implicit job block.
		p.root = newLaunchdNode("", 0)
		p.stack = []*launchdNode{p.root}
	}
	top := p.stack[len(p.stack)-1]
	if trimmed == "}" {
		if top.raw && indent == 0 && top.indent > 0 {
			// A raw argument line "}" at column 0 inside an indented
			// arguments block is content, not the block's end.
			top.items = append(top.items, trimmed)
			return false
		}
		p.stack = p.stack[:len(p.stack)-1]
		if len(p.stack) == 0 {
			return true
		}
		p.stack[len(p.stack)-1].set(top.key, top)
		return false
	}
	key, value, isKV := launchdKeyValue(trimmed)
	if top.raw || !isKV {
		top.items = append(top.items, trimmed)
		return false
	}
	switch value {
	case "{":
		p.stack = append(p.stack, newLaunchdNode(key, indent))
	case "{}":
		top.set(key, newLaunchdNode(key, indent))
	default:
		top.set(key, value)
	}
	return false
}

// finish folds blocks a truncated capture left open into their parents,
// so an endpoints block cut off before its "}" still counts.
func (p *launchdParser) finish() {
	for len(p.stack) > 1 {
		top := p.stack[len(p.stack)-1]
		p.stack = p.stack[:len(p.stack)-1]
		p.stack[len(p.stack)-1].set(top.key, top)
	}
}

// launchdKeyValue splits "key = value" or "key => value" at whichever
// separator comes first (values may contain either) and drops the key's
// quotes. A trailing "key =" has an empty value.
func launchdKeyValue(trimmed string) (key, value string, ok bool) {
	cut := -1
	width := 0
	for _, sep := range []string{" = ", " => "} {
		if i := strings.Index(trimmed, sep); i >= 0 && (cut < 0 || i < cut) {
			cut, width = i, len(sep)
		}
	}
	if cut < 0 {
		for _, sep := range []string{" =", " =>"} {
			if k, found := strings.CutSuffix(trimmed, sep); found {
				return unquote(strings.TrimSpace(k)), "", k != ""
			}
		}
		return "", "", false
	}
	key = unquote(strings.TrimSpace(trimmed[:cut]))
	if key == "" {
		return "", "", false
	}
	return key, strings.TrimSpace(trimmed[cut+width:]), true
}
