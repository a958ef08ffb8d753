package matrices

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Limits that keep a typo (one more axis, a repeat of 1000) from trying to
// allocate gigabytes. They are far above what a lab of macOS VMs can run.
const (
	MaxCells    = 1_000_000
	MaxAttempts = 4_000_000
)

// idHexLen is the length of a cell ID: 12 hex chars = 48 bits, so the
// birthday bound for 100k cells is ~2e-5; collisions are detected anyway.
const idHexLen = 12

// Axis is one matrix dimension, values in the order the config lists them.
type Axis struct {
	Name   string
	Values []string
}

// Matrix is the config's matrix section, already decoded (values are strings).
//
// Include entries are Go maps, so the order of keys inside one entry is
// unknown; wherever order matters (label order of include-added keys), the
// keys of one entry are taken in sorted order.
type Matrix struct {
	Axes    []Axis // order = YAML order
	Include []map[string]string
	Exclude []map[string]string
	Repeat  int // <1 means 1
}

// WithRepeat returns a copy of m that repeats every cell r times (r<1 means 1).
func WithRepeat(m Matrix, r int) Matrix {
	m.Repeat = r
	return m
}

// Cell is one combination.
//
// Values and Keys are shared with the Attempts of the same cell; treat them
// as read-only.
type Cell struct {
	ID     string            // 12 hex chars of sha256 over the sorted "key=value\n" pairs
	Label  string            // "macos=15.3 path=1->3 vpn=running approval=approved"
	Values map[string]string // every key of the combination (axes + include-added keys)
	Keys   []string          // the keys in label order
}

// Attempt is one execution of a cell. Repeat is 1-based.
type Attempt struct {
	Cell   Cell
	Repeat int
}

// ID returns "<cellID>-r<repeat>", e.g. "3f2a9c0d11be-r2".
func (a Attempt) ID() string {
	return a.Cell.ID + "-r" + strconv.Itoa(a.Repeat)
}

// Plan is what a run executes: the cells, and the attempts in execution order.
type Plan struct {
	Cells    []Cell
	Attempts []Attempt
}

// Expand computes the cells of m and its attempts. Attempts are repeat-major:
// every cell once (in cell order), then every cell a second time, and so on,
// so an interrupted run has covered every cell once before repeating any.
func Expand(m Matrix) (Plan, error) {
	cells, err := Cells(m)
	if err != nil {
		return Plan{}, err
	}
	return ExpandCells(cells, m.Repeat)
}

// ExpandCells is Expand over the cells Cells already computed for a
// matrix, repeated r times (r<1 means 1).
func ExpandCells(cells []Cell, r int) (Plan, error) {
	if r < 1 {
		r = 1
	}
	if len(cells) > 0 && r > MaxAttempts/len(cells) {
		return Plan{}, fmt.Errorf("%d cells × repeat %d exceeds %d attempts", len(cells), r, MaxAttempts)
	}
	attempts := make([]Attempt, 0, len(cells)*r)
	for rep := 1; rep <= r; rep++ {
		for _, c := range cells {
			attempts = append(attempts, Attempt{Cell: c, Repeat: rep})
		}
	}
	return Plan{Cells: cells, Attempts: attempts}, nil
}

// Cells computes the combinations of m, GitHub Actions style:
//
//  1. the cartesian product of the axes, first axis outermost;
//  2. exclude: an entry removes every combination matching all the keys it
//     names (keys must be axes);
//  3. include, entry by entry in order: the entry's pairs are added to every
//     original (post-exclude) combination where none of them would overwrite
//     an axis value; values added by earlier includes may be overwritten. An
//     entry that fits no original combination becomes a new combination,
//     appended after the product in include order. New combinations are not
//     themselves extended by later includes (as on GitHub).
//
// Labels and Keys list the axes in axis order, then include-added keys in
// first-seen order (include entries in order, keys of one entry sorted).
//
// Unlike GitHub, identical combinations are deduplicated (the first is kept):
// running the same VM scenario twice under one ID would make results and
// resume ambiguous; use Repeat for deliberate repetition.
func Cells(m Matrix) ([]Cell, error) {
	c, err := compile(m)
	if err != nil {
		return nil, err
	}
	return c.expand()
}

// kv is one key (index into compiled.keys) with its value.
type kv struct {
	key int
	val string
}

// axisRef is an axis pair resolved to value indexes; val -1 means the value
// is not one of the axis values, so the pair matches no product combination.
type axisRef struct {
	axis int
	val  int32
}

type include struct {
	axisRefs []axisRef // pairs naming axes: must equal the combination's values
	extras   []kv      // pairs naming non-axis keys: added, may overwrite
	pairs    []kv      // all pairs, for a new combination
	fits     bool      // false if some axis pair names a value outside the axis
}

type compiled struct {
	keys     []string // axes in order, then include-added keys in first-seen order
	nAxes    int
	axisVals [][]string
	exclude  [][]axisRef
	include  []include
}

func compile(m Matrix) (*compiled, error) {
	c := &compiled{nAxes: len(m.Axes)}
	keyIdx := make(map[string]int, len(m.Axes))
	for _, ax := range m.Axes {
		if err := checkKey(ax.Name); err != nil {
			return nil, fmt.Errorf("axis %q: %w", ax.Name, err)
		}
		if _, dup := keyIdx[ax.Name]; dup {
			return nil, fmt.Errorf("axis %q: defined twice", ax.Name)
		}
		if len(ax.Values) == 0 {
			return nil, fmt.Errorf("axis %q: no values", ax.Name)
		}
		seen := make(map[string]struct{}, len(ax.Values))
		for _, v := range ax.Values {
			if err := checkValue(v); err != nil {
				return nil, fmt.Errorf("axis %q: %w", ax.Name, err)
			}
			if _, dup := seen[v]; dup {
				return nil, fmt.Errorf("axis %q: duplicate value %q", ax.Name, v)
			}
			seen[v] = struct{}{}
		}
		keyIdx[ax.Name] = len(c.keys)
		c.keys = append(c.keys, ax.Name)
		c.axisVals = append(c.axisVals, ax.Values)
	}

	valIdx := func(axis int, v string) int32 {
		for i, av := range c.axisVals[axis] {
			if av == v {
				return int32(i)
			}
		}
		return -1
	}

	for i, ex := range m.Exclude {
		if len(ex) == 0 {
			// GitHub would exclude everything; in a config that is a mistake.
			return nil, fmt.Errorf("exclude[%d]: empty entry", i)
		}
		refs := make([]axisRef, 0, len(ex))
		for _, k := range sortedKeys(ex) {
			a, ok := keyIdx[k]
			if !ok || a >= c.nAxes {
				return nil, fmt.Errorf("exclude[%d]: key %q is not an axis (axes: %s)", i, k, strings.Join(c.keys[:c.nAxes], ", "))
			}
			// A value outside the axis matches nothing, as on GitHub.
			refs = append(refs, axisRef{axis: a, val: valIdx(a, ex[k])})
		}
		c.exclude = append(c.exclude, refs)
	}

	for i, in := range m.Include {
		if len(in) == 0 {
			return nil, fmt.Errorf("include[%d]: empty entry", i)
		}
		e := include{fits: true}
		for _, k := range sortedKeys(in) {
			v := in[k]
			if err := checkKey(k); err != nil {
				return nil, fmt.Errorf("include[%d]: key %q: %w", i, k, err)
			}
			if err := checkValue(v); err != nil {
				return nil, fmt.Errorf("include[%d]: key %q: %w", i, k, err)
			}
			ki, ok := keyIdx[k]
			if !ok {
				ki = len(c.keys)
				keyIdx[k] = ki
				c.keys = append(c.keys, k)
			}
			e.pairs = append(e.pairs, kv{key: ki, val: v})
			if ki < c.nAxes {
				vi := valIdx(ki, v)
				if vi < 0 {
					e.fits = false
				}
				e.axisRefs = append(e.axisRefs, axisRef{axis: ki, val: vi})
			} else {
				e.extras = append(e.extras, kv{key: ki, val: v})
			}
		}
		c.include = append(c.include, e)
	}
	return c, nil
}

// checkKey keeps keys usable in labels ("k=v k2=v2") and in --only
// expressions ("k=v,k2=v2"), and keeps the hash input unambiguous.
func checkKey(k string) error {
	if k == "" {
		return errors.New("empty key")
	}
	if i := strings.IndexFunc(k, func(r rune) bool {
		return r == '=' || r == ',' || r <= ' ' || r == 0x7f
	}); i >= 0 {
		return errors.New("must not contain '=', ',', spaces or control characters")
	}
	return nil
}

// checkValue rejects newlines, which would make the "key=value\n" hash input
// ambiguous.
func checkValue(v string) error {
	if strings.ContainsAny(v, "\n\x00") {
		return fmt.Errorf("value %q must not contain newlines or NUL", v)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (c *compiled) expand() ([]Cell, error) {
	nAxes := c.nAxes
	nKeys := len(c.keys)
	nExtra := nKeys - nAxes

	// 1. Product size, guarded before allocating anything proportional to it.
	n := 0
	if nAxes > 0 {
		n = 1
		for a, vals := range c.axisVals {
			if len(vals) > MaxCells/n {
				return nil, fmt.Errorf("axis %q: matrix exceeds %d cells", c.keys[a], MaxCells)
			}
			n *= len(vals)
		}
	}

	// 2. Product minus excludes, as value indexes (flat, nAxes per combination).
	orig := make([]int32, 0, n*nAxes)
	if n > 0 {
		odo := make([]int32, nAxes)
		for range n {
			if !c.excluded(odo) {
				orig = append(orig, odo...)
			}
			// Last axis varies fastest: first axis outermost.
			for a := nAxes - 1; a >= 0; a-- {
				odo[a]++
				if int(odo[a]) < len(c.axisVals[a]) {
					break
				}
				odo[a] = 0
			}
		}
	}
	nOrig := 0
	if nAxes > 0 {
		nOrig = len(orig) / nAxes
	}

	// 3. Includes. Added values live in a flat table (nExtra per combination).
	var extra []string
	var extraSet []bool
	if nExtra > 0 {
		extra = make([]string, nOrig*nExtra)
		extraSet = make([]bool, nOrig*nExtra)
	}
	var newCombos []int // include indexes that became new combinations
	for i, in := range c.include {
		matched := false
		if in.fits {
			for ci := range nOrig {
				combo := orig[ci*nAxes : ci*nAxes+nAxes]
				if !matchRefs(combo, in.axisRefs) {
					continue
				}
				matched = true
				for _, p := range in.extras {
					j := ci*nExtra + p.key - nAxes
					extra[j] = p.val
					extraSet[j] = true
				}
			}
		}
		if !matched {
			newCombos = append(newCombos, i)
		}
	}

	// 4. Materialise cells.
	b := newBuilder(c, nOrig+len(newCombos))
	vals := make([]string, nKeys)
	set := make([]bool, nKeys)
	for ci := range nOrig {
		combo := orig[ci*nAxes : ci*nAxes+nAxes]
		for a, vi := range combo {
			vals[a] = c.axisVals[a][vi]
			set[a] = true
		}
		for e := range nExtra {
			vals[nAxes+e] = extra[ci*nExtra+e]
			set[nAxes+e] = extraSet[ci*nExtra+e]
		}
		if err := b.add(vals, set); err != nil {
			return nil, err
		}
	}
	for _, i := range newCombos {
		clear(set)
		for _, p := range c.include[i].pairs {
			vals[p.key] = p.val
			set[p.key] = true
		}
		if err := b.add(vals, set); err != nil {
			return nil, fmt.Errorf("include[%d]: %w", i, err)
		}
	}
	return b.finish(), nil
}

func (c *compiled) excluded(combo []int32) bool {
	for _, ex := range c.exclude {
		if matchRefs(combo, ex) {
			return true
		}
	}
	return false
}

func matchRefs(combo []int32, refs []axisRef) bool {
	for _, r := range refs {
		if combo[r.axis] != r.val {
			return false
		}
	}
	return true
}

// builder accumulates cells while keeping allocations to roughly one map per
// cell: labels, IDs and key lists are written into shared buffers and sliced
// at the end.
type builder struct {
	c          *compiled
	sortedKeys []int // key indexes in name order, for the hash input
	hashBuf    []byte
	seen       map[[idHexLen / 2]byte]int

	cells    []Cell
	labelBuf []byte
	labelEnd []int
	idBuf    []byte
	keyBuf   []string
	keyEnd   []int
}

func newBuilder(c *compiled, capacity int) *builder {
	sk := make([]int, len(c.keys))
	for i := range sk {
		sk[i] = i
	}
	sort.Slice(sk, func(i, j int) bool { return c.keys[sk[i]] < c.keys[sk[j]] })
	return &builder{
		c:          c,
		sortedKeys: sk,
		seen:       make(map[[idHexLen / 2]byte]int, capacity),
		cells:      make([]Cell, 0, capacity),
		labelEnd:   make([]int, 0, capacity),
		idBuf:      make([]byte, 0, capacity*idHexLen),
		keyBuf:     make([]string, 0, capacity*c.nAxes),
		keyEnd:     make([]int, 0, capacity),
	}
}

func (b *builder) add(vals []string, set []bool) error {
	keys := b.c.keys

	// ID: sha256 over "key=value\n" in key-name order, so it does not depend
	// on the order of axes or values in the config.
	b.hashBuf = b.hashBuf[:0]
	count := 0
	for _, k := range b.sortedKeys {
		if !set[k] {
			continue
		}
		count++
		b.hashBuf = append(b.hashBuf, keys[k]...)
		b.hashBuf = append(b.hashBuf, '=')
		b.hashBuf = append(b.hashBuf, vals[k]...)
		b.hashBuf = append(b.hashBuf, '\n')
	}
	sum := sha256.Sum256(b.hashBuf)
	var short [idHexLen / 2]byte
	copy(short[:], sum[:])
	if j, ok := b.seen[short]; ok {
		if sameValues(b.cells[j].Values, keys, vals, set, count) {
			return nil // identical combination: keep the first
		}
		return fmt.Errorf("cell ID collision %x between %q and %q", short, b.label(j), b.labelOf(vals, set))
	}
	b.seen[short] = len(b.cells)

	values := make(map[string]string, count)
	for k, ok := range set {
		if !ok {
			continue
		}
		values[keys[k]] = vals[k]
		b.keyBuf = append(b.keyBuf, keys[k])
	}
	b.keyEnd = append(b.keyEnd, len(b.keyBuf))
	b.labelBuf = b.appendLabel(b.labelBuf, vals, set)
	b.labelEnd = append(b.labelEnd, len(b.labelBuf))
	b.idBuf = hex.AppendEncode(b.idBuf, short[:])
	b.cells = append(b.cells, Cell{Values: values})
	return nil
}

// appendLabel writes "k=v k2=v2" in key order (axes, then include-added keys).
func (b *builder) appendLabel(dst []byte, vals []string, set []bool) []byte {
	first := true
	for k, ok := range set {
		if !ok {
			continue
		}
		if !first {
			dst = append(dst, ' ')
		}
		first = false
		dst = append(dst, b.c.keys[k]...)
		dst = append(dst, '=')
		dst = append(dst, vals[k]...)
	}
	return dst
}

func (b *builder) labelOf(vals []string, set []bool) string {
	return string(b.appendLabel(nil, vals, set))
}

func (b *builder) label(i int) string {
	start := 0
	if i > 0 {
		start = b.labelEnd[i-1]
	}
	return string(b.labelBuf[start:b.labelEnd[i]])
}

func sameValues(m map[string]string, keys, vals []string, set []bool, count int) bool {
	if len(m) != count {
		return false
	}
	for k, ok := range set {
		if !ok {
			continue
		}
		if v, found := m[keys[k]]; !found || v != vals[k] {
			return false
		}
	}
	return true
}

func (b *builder) finish() []Cell {
	labels := string(b.labelBuf)
	ids := string(b.idBuf)
	keys := b.keyBuf[:len(b.keyBuf):len(b.keyBuf)]
	lStart, kStart := 0, 0
	for i := range b.cells {
		c := &b.cells[i]
		c.ID = ids[i*idHexLen : (i+1)*idHexLen]
		c.Label = labels[lStart:b.labelEnd[i]]
		// Full slice expression: appending to one cell's Keys must not
		// overwrite the next cell's.
		c.Keys = keys[kStart:b.keyEnd[i]:b.keyEnd[i]]
		lStart, kStart = b.labelEnd[i], b.keyEnd[i]
	}
	return b.cells
}
