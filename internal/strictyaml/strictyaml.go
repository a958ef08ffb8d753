// Package strictyaml decodes a YAML node tree into Go structs strictly and
// keeps every problem it finds, each with the node's line and column.
//
// yaml.v3's own decoder stops reporting columns, offers no suggestions for
// misspelt keys and cannot tell us where a value was written; the config
// loader needs all three to print FILE:LINE:COL for every problem at once.
package strictyaml

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with the input, located at a node.
type Problem struct {
	Path string     // "hosts[0].slots"
	Node *yaml.Node // where it is; never nil
	Msg  string
}

// ScalarDecoder is implemented by types that parse themselves from a YAML
// scalar (durations, byte sizes). The error text is shown to the user.
type ScalarDecoder interface {
	DecodeScalar(s string) error
}

// NodeDecoder is implemented by types that need the node itself, such as
// a mapping whose key order matters. They report problems through d.
type NodeDecoder interface {
	DecodeYAMLNode(d *Decoder, path string, n *yaml.Node)
}

// Shorthand marks a struct that may also be written as a scalar or a
// sequence: the struct field tagged `short:"true"` receives that value.
// Steps use it so that `vpn: start` means `vpn: {action: start}`.
const shortTag = "short"

// Decoder walks nodes into values. Paths maps every decoded path to the node
// of its value (and "path#key" to the node of a mapping key), so validation
// later can point at the right line.
type Decoder struct {
	Problems []Problem
	Paths    map[string]*yaml.Node

	visits   int                 // nodes decoded so far, against maxVisits
	inAlias  map[*yaml.Node]bool // aliases being expanded: a cycle guard
	overflow bool
}

// maxVisits bounds the work on documents whose aliases multiply (the
// "billion laughs" shape); no real configuration comes near it.
const maxVisits = 1 << 20

// NewDecoder returns an empty decoder.
func NewDecoder() *Decoder {
	return &Decoder{Paths: map[string]*yaml.Node{}, inAlias: map[*yaml.Node]bool{}}
}

// Decode decodes n into out, which must be a non-nil pointer. It never
// panics on bad input and keeps going after a problem, so one call reports
// everything wrong with the document.
func (d *Decoder) Decode(n *yaml.Node, out any) {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		d.add("", n, "internal: decode target is not a pointer")
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	d.decode("", n, v.Elem())
}

func (d *Decoder) add(path string, n *yaml.Node, format string, args ...any) {
	d.Problems = append(d.Problems, Problem{Path: path, Node: n, Msg: fmt.Sprintf(format, args...)})
}

// DecodeAt decodes n into out (a non-nil pointer) as the value at path; for
// NodeDecoder implementations.
func (d *Decoder) DecodeAt(path string, n *yaml.Node, out any) {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		d.add(path, n, "internal: decode target is not a pointer")
		return
	}
	d.decode(path, n, v.Elem())
}

// Problem records a problem at n; for NodeDecoder implementations.
func (d *Decoder) Problem(path string, n *yaml.Node, format string, args ...any) {
	d.add(path, n, format, args...)
}

// Pairs returns the key/value pairs of mapping n, merge keys expanded.
func Pairs(n *yaml.Node) [][2]*yaml.Node { return pairs(n) }

var (
	nodeDecoderType     = reflect.TypeFor[NodeDecoder]()
	scalarDecoderType   = reflect.TypeFor[ScalarDecoder]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *Decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	if d.visits++; d.visits > maxVisits {
		if !d.overflow {
			d.overflow = true
			d.add(path, n, "%s: document too large (aliases expand to over %d values)", label(path), maxVisits)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || d.inAlias[n] {
			d.add(path, n, "%s: alias refers to itself", label(path))
			return
		}
		d.inAlias[n] = true
		defer delete(d.inAlias, n)
		d.decode(path, n.Alias, v)
		return
	}
	d.Paths[path] = n
	if isNull(n) {
		// An empty value leaves the default in place, except that an empty
		// block still says the block is there (`- launch:` is a step).
		if v.Kind() == reflect.Pointer && v.IsNil() && v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return
	}
	if v.CanAddr() {
		if pv := v.Addr(); pv.Type().Implements(nodeDecoderType) {
			pv.Interface().(NodeDecoder).DecodeYAMLNode(d, path, n)
			return
		}
		if pv := v.Addr(); pv.Type().Implements(scalarDecoderType) {
			if n.Kind != yaml.ScalarNode {
				d.add(path, n, "%s: expected %s, got %s", label(path), kindName(v.Type()), nodeKind(n))
				return
			}
			if err := pv.Interface().(ScalarDecoder).DecodeScalar(n.Value); err != nil {
				d.add(path, n, "%s: %v", label(path), err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(path, n, v.Elem())
	case reflect.Struct:
		d.decodeStruct(path, n, v)
	case reflect.Map:
		d.decodeMap(path, n, v)
	case reflect.Slice:
		d.decodeSlice(path, n, v)
	case reflect.Interface:
		// Free-form values (include/exclude entries hold plain scalars).
		var x any
		if err := n.Decode(&x); err != nil {
			d.add(path, n, "%s: %v", label(path), err)
			return
		}
		v.Set(reflect.ValueOf(&x).Elem())
	default:
		d.decodeScalar(path, n, v)
	}
}

func (d *Decoder) decodeScalar(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.add(path, n, "%s: expected %s, got %s", label(path), kindName(v.Type()), nodeKind(n))
		return
	}
	s := n.Value
	switch v.Kind() {
	case reflect.String:
		// Numbers are accepted as text: `product_version: 15.3` means "15.3".
		v.SetString(s)
	case reflect.Bool:
		b, ok := parseBool(s)
		if !ok {
			d.add(path, n, "%s: expected true or false, got %q", label(path), s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.add(path, n, "%s: expected a whole number, got %q", label(path), s)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.add(path, n, "%s: expected a non-negative whole number, got %q", label(path), s)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			d.add(path, n, "%s: expected a number, got %q", label(path), s)
			return
		}
		v.SetFloat(f)
	default:
		if v.CanAddr() && v.Addr().Type().Implements(textUnmarshalerType) {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				d.add(path, n, "%s: %v", label(path), err)
			}
			return
		}
		d.add(path, n, "internal: cannot decode into %s", v.Type())
	}
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

// fieldInfo is what the decoder needs of a struct field.
type fieldInfo struct {
	name  string
	index []int
	short bool
}

func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, fieldInfo{name: name, index: f.Index, short: f.Tag.Get(shortTag) == "true"})
	}
	return out
}

// FieldNames lists the YAML keys a struct type accepts, in declaration order.
func FieldNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for _, f := range structFields(t) {
		names = append(names, f.name)
	}
	return names
}

func (d *Decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	fields := structFields(v.Type())
	if n.Kind != yaml.MappingNode {
		for _, f := range fields {
			if f.short {
				d.decode(path, n, v.FieldByIndex(f.index))
				return
			}
		}
		d.add(path, n, "%s: expected a mapping (key: value lines), got %s", label(path), nodeKind(n))
		return
	}
	byName := map[string]fieldInfo{}
	var names []string
	for _, f := range fields {
		byName[f.name] = f
		names = append(names, f.name)
	}
	seen := map[string]*yaml.Node{}
	for _, kv := range pairs(n) {
		k, val := kv[0], kv[1]
		key := k.Value
		child := join(path, key)
		if first, dup := seen[key]; dup {
			d.add(child, k, "%s: repeated key (first at line %d)", label(child), first.Line)
			continue
		}
		seen[key] = k
		f, ok := byName[key]
		if !ok {
			msg := fmt.Sprintf("unknown key %q in %s", key, where(path))
			if s := Suggest(key, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += fmt.Sprintf(" (known keys: %s)", strings.Join(names, ", "))
			}
			d.add(child, k, "%s", msg)
			continue
		}
		d.Paths[child+"#key"] = k
		d.decode(child, val, v.FieldByIndex(f.index))
	}
}

func (d *Decoder) decodeMap(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.add(path, n, "%s: expected a mapping (name: value lines), got %s", label(path), nodeKind(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.add(path, n, "internal: map key type %s", v.Type().Key())
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]*yaml.Node{}
	for _, kv := range pairs(n) {
		k, val := kv[0], kv[1]
		if k.Kind != yaml.ScalarNode {
			d.add(path, k, "%s: a key must be a plain name, got %s", label(path), nodeKind(k))
			continue
		}
		child := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.add(child, k, "%s: repeated key (first at line %d)", label(child), first.Line)
			continue
		}
		seen[k.Value] = k
		d.Paths[child+"#key"] = k
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(child, val, elem)
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
}

func (d *Decoder) decodeSlice(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		// A single scalar where a list of scalars is expected is a list of
		// one: `when: {vpn: running}` reads better than `[running]`.
		if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
			s := reflect.MakeSlice(v.Type(), 1, 1)
			d.decode(path+"[0]", n, s.Index(0))
			v.Set(s)
			return
		}
		d.add(path, n, "%s: expected a list (- item lines), got %s", label(path), nodeKind(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i))
	}
	v.Set(s)
}

// pairs returns the key/value node pairs of a mapping, with merge keys
// (`<<: *anchor`) expanded so anchors work as YAML users expect.
func pairs(n *yaml.Node) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	var merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			for _, src := range mergeSources(val) {
				merged = append(merged, pairs(src)...)
			}
			continue
		}
		out = append(out, [2]*yaml.Node{k, val})
	}
	// Explicit keys win over merged ones.
	have := map[string]bool{}
	for _, kv := range out {
		have[kv[0].Value] = true
	}
	for _, kv := range merged {
		if !have[kv[0].Value] {
			have[kv[0].Value] = true
			out = append(out, kv)
		}
	}
	return out
}

func mergeSources(n *yaml.Node) []*yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{n}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, c := range n.Content {
			out = append(out, mergeSources(c)...)
		}
		return out
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// Join appends a key to a path: "hosts[0]" + "slots" = "hosts[0].slots".
func Join(path, key string) string { return join(path, key) }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func label(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "an empty document"
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return "a single value"
}

// Suggest returns the candidate closest to s when it is close enough to be
// a likely typo (edit distance at most a third of the length, at least 1),
// or "" when nothing is.
func Suggest(s string, candidates []string) string {
	best, bestD := "", -1
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted) // ties resolve the same way every time
	for _, c := range sorted {
		d := distance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(1, len(s)/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// distance is the Damerau-Levenshtein (optimal string alignment) distance,
// so a swapped pair of letters counts as one typo.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
