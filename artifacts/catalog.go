package artifacts

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sxlab/sxlab/internal/strictyaml"
)

//go:embed signatures.yaml
var builtinSignatures []byte

// Signature is one known failure, as signatures.yaml and the configuration
// write it. Every condition given must hold for it to match; see the head
// of signatures.yaml for the meaning of each key.
type Signature struct {
	ID      string `yaml:"id" json:"id"`
	Meaning string `yaml:"meaning" json:"meaning"`
	Report  string `yaml:"report,omitempty" json:"report,omitempty"`
	// Context marks a path the system took rather than a failure: kept as
	// evidence, never the finding.
	Context bool `yaml:"context,omitempty" json:"context,omitempty"`
	// Process and Message are the one-line form of Lines.
	Process string        `yaml:"process,omitempty" json:"process,omitempty"`
	Message string        `yaml:"message,omitempty" json:"message,omitempty"`
	Lines   []LinePattern `yaml:"lines,omitempty" json:"lines,omitempty"`
	// After and Within chain this signature behind another one's lines.
	After       string        `yaml:"after,omitempty" json:"after,omitempty"`
	Within      Duration      `yaml:"within,omitempty" json:"within,omitempty"`
	SilentAfter bool          `yaml:"silent_after,omitempty" json:"silent_after,omitempty"`
	State       string        `yaml:"state,omitempty" json:"state,omitempty"`
	Probe       *ProbePattern `yaml:"probe,omitempty" json:"probe,omitempty"`
	// Explains names the signatures that are evidence of this one when
	// they match too.
	Explains []string `yaml:"explains,omitempty" json:"explains,omitempty"`
}

// LinePattern is one log line of a signature.
type LinePattern struct {
	Process string `yaml:"process,omitempty" json:"process,omitempty"` // base name; "" = any
	Message string `yaml:"message" json:"message"`                     // regular expression
}

// ProbePattern matches a probe that did not hold.
type ProbePattern struct {
	Kind    string `yaml:"kind" json:"kind"`                           // probe kind (or name when the kind is unknown)
	Message string `yaml:"message,omitempty" json:"message,omitempty"` // regular expression
}

// Duration is a time.Duration written as "1s" or "500ms".
type Duration time.Duration

// DecodeScalar parses a duration (for the configuration's strict decoder).
func (d *Duration) DecodeScalar(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration (write it like 1s or 500ms)", s)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML lets plain yaml.v3 decode it too.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error { return d.DecodeScalar(n.Value) }

// MarshalYAML prints it as text.
func (d Duration) MarshalYAML() (any, error) {
	if d == 0 {
		return nil, nil
	}
	return time.Duration(d).String(), nil
}

// IsZero lets omitempty drop it.
func (d Duration) IsZero() bool { return d == 0 }

// State checks a signature may name, over the after-state snapshot.
var stateChecks = map[string]func(st *State) []Evidence{
	"launchd-no-endpoints":       checkNoEndpoints,
	"old-copy-terminated":        checkOldCopyTerminated,
	"extension-waiting-for-user": checkWaitingForUser,
}

// StateChecks lists the names a signature's state may take.
func StateChecks() []string {
	out := make([]string, 0, len(stateChecks))
	for k := range stateChecks {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Catalog is a validated, compiled set of signatures.
type Catalog struct {
	sigs []*compiled // in catalog order
	byID map[string]*compiled
}

type compiled struct {
	Signature
	lines    []compiledLine
	probe    *regexp.Regexp
	explains map[string]bool
}

type compiledLine struct {
	process string
	re      *regexp.Regexp
}

// LoadCatalog returns the built-in signatures (signatures.yaml) plus
// extra ones from the configuration. An extra signature with the id of a
// built-in one replaces it, so a pattern that drifted on a new macOS can
// be fixed without a release. The error lists every problem found.
func LoadCatalog(extra ...Signature) (*Catalog, error) {
	builtin, err := decodeSignatures(builtinSignatures)
	if err != nil {
		return nil, fmt.Errorf("built-in signatures.yaml: %w", err)
	}
	sigs := slices.Clone(builtin)
	where := make([]string, len(sigs))
	for i, s := range sigs {
		where[i] = fmt.Sprintf("signatures.yaml: signature %q", s.ID)
	}
	seenExtra := map[string]int{}
	var errs []error
	for i, s := range extra {
		if j, dup := seenExtra[s.ID]; dup && s.ID != "" {
			errs = append(errs, fmt.Errorf("signature %d: id %q repeats signature %d", i, s.ID, j))
			continue
		}
		seenExtra[s.ID] = i
		label := fmt.Sprintf("signature %d (%q)", i, s.ID)
		if k := slices.IndexFunc(sigs, func(b Signature) bool { return b.ID == s.ID }); k >= 0 && s.ID != "" {
			sigs[k], where[k] = s, label
			continue
		}
		sigs = append(sigs, s)
		where = append(where, label)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return compileCatalog(sigs, where)
}

// decodeSignatures reads a signatures file strictly: an unknown key is an
// error, with its line.
func decodeSignatures(data []byte) ([]Signature, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	var file struct {
		Signatures []Signature `yaml:"signatures"`
	}
	d := strictyaml.NewDecoder()
	d.Decode(&root, &file)
	var errs []error
	for _, p := range d.Problems {
		errs = append(errs, fmt.Errorf("line %d: %s", p.Node.Line, p.Msg))
	}
	return file.Signatures, errors.Join(errs...)
}

func compileCatalog(sigs []Signature, where []string) (*Catalog, error) {
	c := &Catalog{byID: map[string]*compiled{}}
	var errs []error
	for i, s := range sigs {
		cs, err := compileSignature(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where[i], err))
			continue
		}
		if _, dup := c.byID[s.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: id %q is used twice", where[i], s.ID))
			continue
		}
		c.sigs = append(c.sigs, cs)
		c.byID[s.ID] = cs
	}
	for i, cs := range c.sigs {
		if cs.After != "" && c.byID[cs.After] == nil {
			errs = append(errs, fmt.Errorf("%s: after names unknown signature %q", where[i], cs.After))
		}
		for _, e := range cs.Explains {
			if c.byID[e] == nil {
				errs = append(errs, fmt.Errorf("%s: explains names unknown signature %q", where[i], e))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cycle := c.findCycle(func(cs *compiled) []string { return cs.Explains }); cycle != "" {
		return nil, fmt.Errorf("signatures explain each other in a cycle: %s", cycle)
	}
	if cycle := c.findCycle(func(cs *compiled) []string {
		if cs.After == "" {
			return nil
		}
		return []string{cs.After}
	}); cycle != "" {
		return nil, fmt.Errorf("signatures come after each other in a cycle: %s", cycle)
	}
	return c, nil
}

func compileSignature(s Signature) (*compiled, error) {
	if strings.TrimSpace(s.ID) == "" {
		return nil, errors.New("id is required")
	}
	if s.ID == Unclassified {
		return nil, fmt.Errorf("id %q is reserved for failures that match no signature", Unclassified)
	}
	if strings.TrimSpace(s.Meaning) == "" {
		return nil, errors.New("meaning is required")
	}
	cs := &compiled{Signature: s, explains: map[string]bool{}}
	lines := s.Lines
	if s.Message != "" || s.Process != "" {
		if len(lines) > 0 {
			return nil, errors.New("give either process/message or lines, not both")
		}
		lines = []LinePattern{{Process: s.Process, Message: s.Message}}
	}
	for i, l := range lines {
		if l.Message == "" {
			return nil, fmt.Errorf("line %d: message is required", i+1)
		}
		re, err := regexp.Compile(l.Message)
		if err != nil {
			return nil, fmt.Errorf("line %d: message: %w", i+1, err)
		}
		cs.lines = append(cs.lines, compiledLine{process: l.Process, re: re})
	}
	if s.State != "" && stateChecks[s.State] == nil {
		return nil, fmt.Errorf("unknown state check %q (known: %s)", s.State, strings.Join(StateChecks(), ", "))
	}
	if s.Probe != nil {
		if s.Probe.Kind == "" {
			return nil, errors.New("probe: kind is required")
		}
		if s.Probe.Message != "" {
			re, err := regexp.Compile(s.Probe.Message)
			if err != nil {
				return nil, fmt.Errorf("probe: message: %w", err)
			}
			cs.probe = re
		}
	}
	if len(cs.lines) == 0 && s.State == "" && s.Probe == nil {
		return nil, errors.New("no condition: give message, lines, state or probe")
	}
	if len(cs.lines) == 0 && (s.After != "" || s.Within != 0 || s.SilentAfter) {
		return nil, errors.New("after, within and silent_after need log lines")
	}
	if s.Within != 0 && s.After == "" {
		return nil, errors.New("within needs after")
	}
	if s.After == s.ID {
		return nil, errors.New("after names the signature itself")
	}
	for _, e := range s.Explains {
		if e == s.ID {
			return nil, errors.New("explains names the signature itself")
		}
		cs.explains[e] = true
	}
	return cs, nil
}

// findCycle reports a cycle of the links next gives (after, explains),
// which would leave the order of matching or the finding undefined.
func (c *Catalog) findCycle(next func(*compiled) []string) string {
	const (
		unseen = iota
		active
		done
	)
	mark := map[string]int{}
	var path []string
	var visit func(id string) string
	visit = func(id string) string {
		switch mark[id] {
		case active:
			return strings.Join(append(path, id), " -> ")
		case done:
			return ""
		}
		mark[id] = active
		path = append(path, id)
		for _, n := range next(c.byID[id]) {
			if cyc := visit(n); cyc != "" {
				return cyc
			}
		}
		path = path[:len(path)-1]
		mark[id] = done
		return ""
	}
	for _, cs := range c.sigs {
		if cyc := visit(cs.ID); cyc != "" {
			return cyc
		}
	}
	return ""
}

// Signatures returns the catalog's signatures in order.
func (c *Catalog) Signatures() []Signature {
	out := make([]Signature, len(c.sigs))
	for i, cs := range c.sigs {
		out[i] = cs.Signature
	}
	return out
}
