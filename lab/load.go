package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/spf13/viper"
	"github.com/sxlab/sxlab/matrices"
	"go.yaml.in/yaml/v3"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/internal/strictyaml"
)

// EnvPrefix starts every environment override: SXLAB_MATRIX_REPEAT=5 sets
// matrix.repeat.
const EnvPrefix = "SXLAB"

// LoadOptions says where to find the configuration and what overrides it.
type LoadOptions struct {
	// File is --config; empty means search ./config.yaml, then
	// $XDG_CONFIG_HOME/sxlab/config.yaml.
	File string
	// Dir is the directory searched for config.yaml (default ".").
	Dir string
	// LookupEnv reads the environment (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
	// Flags maps configuration keys ("matrix.repeat") to command-line flags;
	// a flag the user set beats the environment, the file and the default.
	Flags map[string]*pflag.Flag
	// Environ lists the environment as KEY=VALUE, to find SXLAB_*
	// variables that name no key (Loaded.Warnings). nil: os.Environ when
	// LookupEnv is nil too, else no such check.
	Environ func() []string
}

// Loaded is a configuration with where each of its values came from.
type Loaded struct {
	Config Config
	// File is the configuration file read; Dir the directory its relative
	// package paths are resolved against.
	File string
	Dir  string
	// Overrides lists the keys set by the environment or flags, for the
	// summary ("matrix.repeat from SXLAB_MATRIX_REPEAT").
	Overrides []Override
	// Warnings are things to tell the user that do not stop the load: an
	// SXLAB_* variable that names no key is ignored, like a typo would be.
	Warnings []string

	paths   map[string]*yaml.Node
	origins map[*yaml.Node]string

	// cells are the matrix's cells as validation expanded them, from
	// the matrix cellsOf; Plan reuses them while Config.Matrix is still
	// that matrix.
	cells   []matrices.Cell
	cellsOf matrices.Matrix
}

// Override is one value that did not come from the file.
type Override struct {
	Key    string
	Source string // "SXLAB_MATRIX_REPEAT" or "--repeat"
}

// Problem is one thing wrong with the configuration, where it is.
type Problem struct {
	File   string // set when the value came from the file
	Line   int
	Col    int
	Source string // "environment SXLAB_X" or "flag --x" when not from the file
	Msg    string
}

func (p Problem) String() string {
	switch {
	case p.Source != "":
		return fmt.Sprintf("%s (%s): %s", p.File, p.Source, p.Msg)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
	default:
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
}

// Problems is every problem found in one load; it is the error Load
// returns when the configuration is unusable.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// ErrNotFound is returned when no configuration file exists where looked.
var ErrNotFound = errors.New("no configuration file")

// Defaults of the scalar keys. Keys inside lists and maps (hosts[].slots,
// images.*.user) get theirs in applyDefaults.
func defaults() map[string]any {
	return map[string]any{
		"lab.name":               "sxlab",
		"lab.runs_dir":           "./runs",
		"lab.seed":               1,
		"lab.timeouts.boot":      "10m",
		"lab.timeouts.command":   "30m",
		"matrix.repeat":          1,
		"matrix.image_axis":      "macos",
		"matrix.path_axis":       "path",
		"collect.on":             "failure",
		"collect.sysdiagnose":    true,
		"collect.timeout":        "15m",
		"collect.min_free":       "5GiB",
		"collect.logs.predicate": DefaultLogPredicate,
		"retry.max":              2,
		"retry.backoff":          "10s",
	}
}

// DefaultLogPredicate is GUEST-REFERENCE's predicate for the logs of
// sysextd, NetworkExtension and XPC; the lab adds the app's own subsystem.
const DefaultLogPredicate = artifacts.DefaultLogPredicate

// Load finds, reads, layers and validates the configuration. On a bad
// configuration it returns the Loaded it could make and a Problems error
// listing everything found, not only the first.
func Load(opts LoadOptions) (*Loaded, error) {
	lookup, environ := opts.LookupEnv, opts.Environ
	if lookup == nil {
		lookup = os.LookupEnv
		if environ == nil {
			environ = os.Environ
		}
	}
	file, err := findFile(opts.File, opts.Dir, lookup)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	// Dir is absolute: messages name it ("the configuration's folder ."
	// says nothing), and packages resolve the same from any folder.
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		dir = filepath.Dir(file)
	}
	l := &Loaded{File: file, Dir: dir, origins: map[*yaml.Node]string{}}
	doc, perr := parseYAML(file, data)
	if perr != nil {
		return l, Problems{*perr}
	}
	if err := l.overlay(doc, lookup, opts.Flags); err != nil {
		return l, err
	}
	if environ != nil {
		l.Warnings = append(l.Warnings, unknownEnv(environ(), doc)...)
	}
	dec := strictyaml.NewDecoder()
	dec.Decode(doc, &l.Config)
	l.paths = dec.Paths
	var problems Problems
	for _, p := range dec.Problems {
		problems = append(problems, l.problemAt(p.Node, p.Msg))
	}
	applyDefaults(&l.Config)
	problems = append(problems, l.validate()...)
	if len(problems) > 0 {
		sortProblems(problems)
		return l, dedupe(problems)
	}
	return l, nil
}

func findFile(explicit, dir string, lookup func(string) (string, bool)) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("configuration %s: %w (check --config)", explicit, ErrNotFound)
			}
			return "", fmt.Errorf("configuration %s: %w", explicit, err)
		}
		return explicit, nil
	}
	if dir == "" {
		dir = "."
	}
	candidates := []string{filepath.Join(dir, "config.yaml")}
	if xdg, ok := lookup("XDG_CONFIG_HOME"); ok && xdg != "" {
		candidates = append(candidates, filepath.Join(xdg, "sxlab", "config.yaml"))
	} else if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".config", "sxlab", "config.yaml"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: looked for %s; pass --config FILE", ErrNotFound, strings.Join(candidates, " and "))
}

var yamlLineRe = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlParserProblem tells the YAML parser's errors from the scanner's:
// go.yaml.in/yaml/v3 (decode.go, parser.fail) prints the parser's 0-based
// mark as the line, one before the line with the unclosed "[" (the
// scanner's it prints 1-based). These are parserc.go's messages.
func yamlParserProblem(msg string) bool {
	for _, m := range []string{
		"did not find expected ',' or ']'", "did not find expected ',' or '}'",
		"did not find expected '-' indicator", "did not find expected <document start>",
		"did not find expected <stream-start>", "did not find expected key",
		"did not find expected node content", "found duplicate %TAG directive",
		"found duplicate %YAML directive", "found incompatible YAML document",
		"found undefined tag handle",
	} {
		if strings.HasPrefix(msg, m) {
			return true
		}
	}
	return false
}

func parseYAML(file string, data []byte) (*yaml.Node, *Problem) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		p := Problem{File: file, Line: 1, Col: 1, Msg: "empty configuration"}
		if errors.Is(err, io.EOF) {
			return nil, &p
		}
		p.Msg = err.Error()
		if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
			if m[1] != "" {
				p.Line, _ = strconv.Atoi(m[1])
				if yamlParserProblem(m[2]) {
					p.Line++
				}
			}
			p.Msg = "YAML syntax: " + m[2]
		}
		return nil, &p
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &Problem{File: file, Line: max(doc.Line, 1), Col: max(doc.Column, 1), Msg: "the configuration must be a mapping of sections (lab:, hosts:, images:, ...)"}
	}
	return &doc, nil
}

// leafKeys lists the scalar keys reachable from Config through structs
// only: those are the keys the environment and flags can set.
func leafKeys() []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case reflect.PointerTo(ft).Implements(reflect.TypeFor[strictyaml.ScalarDecoder]()):
				out = append(out, key)
			case ft.Kind() == reflect.Struct:
				walk(key, ft)
			case ft.Kind() == reflect.Map || ft.Kind() == reflect.Slice:
			default:
				out = append(out, key)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return out
}

// toolEnv are SXLAB_* variables that are not configuration keys: the
// benchmarks' and tests' own settings.
var toolEnv = []string{"SXLAB_OPENSSH_", "SXLAB_TART_TEST_", "SXLAB_VZ_FAKE_", "SXLAB_TEST_"}

// unknownEnv warns about every SXLAB_* variable that names no key and is
// not a secret the file points at (password_env: SXLAB_GUEST_PASSWORD):
// a misspelt variable is otherwise silently ignored while a misspelt file
// key is an error.
func unknownEnv(environ []string, doc *yaml.Node) []string {
	known := map[string]bool{}
	var names []string
	for _, key := range leafKeys() {
		known[EnvName(key)] = true
		names = append(names, EnvName(key))
	}
	referenced := map[string]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k, v := n.Content[i], n.Content[i+1]; strings.HasSuffix(k.Value, "_env") && v.Kind == yaml.ScalarNode {
					referenced[v.Value] = true
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	var warnings []string
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || known[name] || referenced[name] || seen[name] {
			continue
		}
		seen[name] = true
		tool := false
		for _, p := range toolEnv {
			tool = tool || strings.HasPrefix(name, p)
		}
		if tool {
			continue
		}
		w := fmt.Sprintf("environment %s names no configuration key and is ignored", name)
		if s := strictyaml.Suggest(name, names); s != "" {
			w += fmt.Sprintf("; did you mean %s?", s)
		}
		warnings = append(warnings, w)
	}
	sort.Strings(warnings)
	return warnings
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// overlay writes the values of the environment, flags and defaults into
// the document tree, so that one strict decode handles every source and
// each value keeps its origin for error messages. Viper does the layering:
// flag > environment > file > default.
func (l *Loaded) overlay(doc *yaml.Node, lookup func(string) (string, bool), flags map[string]*pflag.Flag) error {
	root := doc.Content[0]
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	defs := defaults()
	for k, d := range defs {
		v.SetDefault(k, d)
	}
	fileValues := map[string]any{}
	for _, key := range leafKeys() {
		if n := lookupNode(root, key); n != nil && n.Kind == yaml.ScalarNode {
			setNested(fileValues, key, n.Value)
		}
	}
	if err := v.MergeConfigMap(fileValues); err != nil {
		return fmt.Errorf("layer configuration: %w", err)
	}
	for key, f := range flags {
		if err := v.BindPFlag(key, f); err != nil {
			return fmt.Errorf("bind flag --%s: %w", f.Name, err)
		}
	}
	for _, key := range leafKeys() {
		var source string
		if f := flags[key]; f != nil && f.Changed {
			source = "flag --" + f.Name
		} else if val, ok := lookup(EnvName(key)); ok && val != "" {
			source = "environment " + EnvName(key)
			// viper reads os.Getenv; tests pass their own environment.
			v.Set(key, val)
		} else if lookupNode(root, key) != nil {
			continue // the file's value stands
		} else if _, ok := defs[key]; ok {
			source = "default"
		} else {
			continue
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v.Get(key))}
		if !setNode(root, key, n) {
			continue // the path is not a mapping in the file; the decoder says so
		}
		l.origins[n] = source
		if source != "default" {
			l.Overrides = append(l.Overrides, Override{Key: key, Source: strings.TrimPrefix(strings.TrimPrefix(source, "environment "), "flag ")})
		}
	}
	sort.Slice(l.Overrides, func(i, j int) bool { return l.Overrides[i].Key < l.Overrides[j].Key })
	return nil
}

func setNested(m map[string]any, key string, val any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = val
}

func lookupNode(n *yaml.Node, key string) *yaml.Node {
	for _, part := range strings.Split(key, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for _, kv := range strictyaml.Pairs(n) {
			if kv[0].Value == part {
				next = kv[1]
			}
		}
		n = next
	}
	if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	return n
}

// setNode puts val at key, creating mappings on the way. It reports false
// when a value on the way is not a mapping.
func setNode(n *yaml.Node, key string, val *yaml.Node) bool {
	parts := strings.Split(key, ".")
	for i, part := range parts {
		if n.Kind != yaml.MappingNode {
			return false
		}
		idx := -1
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == part {
				idx = j + 1
			}
		}
		last := i == len(parts)-1
		if idx < 0 {
			child := val
			if !last {
				child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part}, child)
			idx = len(n.Content) - 1
		} else if last {
			n.Content[idx] = val
		} else if c := n.Content[idx]; c.Kind == yaml.ScalarNode && c.Tag == "!!null" {
			n.Content[idx] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: c.Line, Column: c.Column}
		}
		n = n.Content[idx]
	}
	return true
}

// problemAt locates a message at a node: file position, or the
// environment variable or flag the value came from.
func (l *Loaded) problemAt(n *yaml.Node, msg string) Problem {
	p := Problem{File: l.File, Msg: msg}
	if src, ok := l.origins[n]; ok {
		p.Source = src
		return p
	}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	return p
}

// at locates path, falling back to its nearest ancestor that is in the
// file (a missing key is reported at the mapping that should hold it).
func (l *Loaded) at(path string, format string, args ...any) Problem {
	msg := fmt.Sprintf(format, args...)
	// Map keys may hold dots (image "macos-15.3"), so try every cut from
	// the right rather than parsing the path.
	for i := len(path); i > 0; i-- {
		if i < len(path) && path[i] != '.' && path[i] != '[' {
			continue
		}
		if n, ok := l.paths[path[:i]]; ok && (n.Line > 0 || l.origins[n] != "") {
			return l.problemAt(n, msg)
		}
	}
	return Problem{File: l.File, Line: 1, Col: 1, Msg: msg}
}

// atKey locates the key of path (for unknown names: the key is the wrong
// part, not the value).
func (l *Loaded) atKey(path string, format string, args ...any) Problem {
	if n, ok := l.paths[path+"#key"]; ok && n.Line > 0 {
		return l.problemAt(n, fmt.Sprintf(format, args...))
	}
	return l.at(path, format, args...)
}

func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Source == "") != (b.Source == "") {
			return a.Source != "" // overrides first: they are not in the file
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// dedupe keeps the first problem at each place: a value that failed to
// decode need not also be reported as out of range.
func dedupe(ps Problems) Problems {
	type place struct {
		line, col int
		source    string
	}
	seen := map[place]bool{}
	out := ps[:0]
	for _, p := range ps {
		k := place{p.Line, p.Col, p.Source + p.File}
		if p.Line > 0 || p.Source != "" {
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		out = append(out, p)
	}
	return out
}
