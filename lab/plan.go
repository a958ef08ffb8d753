package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sxlab/sxlab/matrices"
)

// PlanOptions narrows a plan the way `plan` and `run` flags do.
type PlanOptions struct {
	Only  []string       // --only expressions, OR-ed
	Shard matrices.Shard // zero: the whole plan
	// ShardBy keeps every shard inside one value of this axis (see
	// matrices.Plan.ShardBy); empty deals attempts over all shards.
	ShardBy string
}

// ShardName is how run.json and the summary name the shard.
func (o PlanOptions) ShardName() string {
	if o.Shard == (matrices.Shard{}) {
		return ""
	}
	if o.ShardBy != "" {
		return o.Shard.String() + " by " + o.ShardBy
	}
	return o.Shard.String()
}

// Matrix converts the matrix section for the planner.
func (c *Config) MatrixSpec() matrices.Matrix {
	m := matrices.Matrix{Include: c.Matrix.Include, Exclude: c.Matrix.Exclude, Repeat: c.Matrix.Repeat}
	for _, ax := range c.Matrix.Axes {
		m.Axes = append(m.Axes, matrices.Axis{Name: ax.Name, Values: ax.Values})
	}
	return m
}

// Plan expands the matrix, keeps the --only cells, then the shard's
// attempts. It also returns the plan before sharding, whose figures every
// shard of one run shares.
func (c *Config) Plan(opts PlanOptions) (shard, whole matrices.Plan, err error) {
	return c.plan(nil, opts)
}

// Plan is Config.Plan without expanding the matrix again when validation
// already did (at 100,000 cells each expansion is a tenth of a second).
func (l *Loaded) Plan(opts PlanOptions) (shard, whole matrices.Plan, err error) {
	spec := l.Config.MatrixSpec()
	spec.Repeat = l.cellsOf.Repeat
	if l.cells == nil || !reflect.DeepEqual(spec, l.cellsOf) {
		return l.Config.Plan(opts)
	}
	// A copy, so that a caller reordering its plan's cells cannot
	// reorder the next plan's.
	return l.Config.plan(slices.Clone(l.cells), opts)
}

// plan builds the plan over cells, or over a fresh expansion when nil.
func (c *Config) plan(cells []matrices.Cell, opts PlanOptions) (shard, whole matrices.Plan, err error) {
	spec := c.MatrixSpec()
	if cells == nil {
		cells, err = matrices.Cells(spec)
	}
	if err == nil {
		whole, err = matrices.ExpandCells(cells, spec.Repeat)
	}
	if err != nil {
		return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("expand matrix: %w", err)
	}
	if len(opts.Only) > 0 {
		f, err := matrices.ParseOnly(opts.Only, whole.Cells)
		if err != nil {
			return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--only: %w", err)
		}
		whole = whole.Only(f)
		if len(whole.Attempts) == 0 {
			return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--only %s: %w", strings.Join(opts.Only, " --only "), c.whyNone(f))
		}
	}
	if opts.Shard == (matrices.Shard{}) {
		return whole, whole, nil
	}
	if err := opts.Shard.Validate(); err != nil {
		return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard: %w", err)
	}
	if opts.ShardBy == "" {
		shard = whole.Shard(opts.Shard)
		if len(shard.Attempts) == 0 {
			return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard %s: %w: the plan has %d attempt(s), fewer than the %d shards, so shard %d gets none; use at most %d shards",
				opts.Shard, ErrEmptySelection, len(whole.Attempts), opts.Shard.Count, opts.Shard.Index, len(whole.Attempts))
		}
		return shard, whole, nil
	}
	if !c.hasAxis(opts.ShardBy) {
		return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard-by %s: no such axis (axes: %s)", opts.ShardBy, c.axisNames())
	}
	shard, value, err := whole.ShardBy(opts.ShardBy, opts.Shard)
	if err != nil {
		return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard-by: %w", err)
	}
	if len(shard.Attempts) == 0 {
		return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard %s --shard-by %s: %w: the shards of %s=%s outnumber its attempts, so this one gets none; use fewer shards",
			opts.Shard, opts.ShardBy, ErrEmptySelection, opts.ShardBy, value)
	}
	return shard, whole, nil
}

// ErrEmptySelection is the error of a plan option that leaves nothing to
// run: running nothing and reporting success would hide the mistake.
var ErrEmptySelection = errors.New("selects no attempt")

// whyNone words why an --only filter selected nothing.
func (c *Config) whyNone(f matrices.Filter) error {
	m := c.MatrixSpec()
	idx := matrices.WhyNone(m, f)
	if len(idx) == 0 {
		return fmt.Errorf("%w: no cell has all of these values together", ErrEmptySelection)
	}
	var names []string
	for _, i := range idx {
		names = append(names, fmt.Sprintf("matrix.exclude[%d] %s", i, pairsOf(m.Exclude[i])))
	}
	return fmt.Errorf("%w: every cell it names is removed by %s", ErrEmptySelection, strings.Join(names, " and "))
}

// pairsOf prints an exclude entry the way the configuration writes it.
func pairsOf(m map[string]string) string {
	var kv []string
	for _, k := range sortedKeys(m) {
		kv = append(kv, k+": "+m[k])
	}
	return "{" + strings.Join(kv, ", ") + "}"
}

func (c *Config) hasAxis(name string) bool {
	for _, ax := range c.Matrix.Axes {
		if ax.Name == name {
			return true
		}
	}
	return false
}

func (c *Config) axisNames() string {
	names := make([]string, 0, len(c.Matrix.Axes))
	for _, ax := range c.Matrix.Axes {
		names = append(names, ax.Name)
	}
	return strings.Join(names, ", ")
}

// PlanInputs are what decides an attempt's result besides the attempt
// itself, each as a value a person can compare (the seed) or a digest:
// the seed, each image (its macOS and simulated faults, which golden; not
// its credentials), the app (its identifiers), the scenario, the probes,
// and each version's package by the sha256 of its file. The plan digest
// covers them, so a resume with any of them changed is refused by name,
// and shards of one plan must agree on them to merge.
func (l *Loaded) PlanInputs() (map[string]string, error) {
	c := &l.Config
	in := map[string]string{"seed": strconv.FormatInt(c.Lab.Seed, 10)}
	for name, img := range c.Images {
		img.Auth = Auth{} // a rotated password does not change results
		in["images."+name] = digestJSON(img)
	}
	app := c.App
	app.Versions = nil
	in["app"] = digestJSON(app)
	in["scenario"] = digestJSON(c.Scenario)
	in["probes"] = digestJSON(c.Probes)
	for id, v := range c.App.Versions {
		sum, err := fileSHA256(l.Resolve(v.Package))
		if err != nil {
			return nil, fmt.Errorf("app.versions.%s.package: %w", id, err)
		}
		in["packages."+id] = sum
	}
	return in, nil
}

// digestJSON is a short digest of v's JSON (maps sort their keys).
func digestJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "unencodable: " + err.Error()
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:8])
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ChangedInputs names, for a resume, what differs between the plan a run
// was made with (prev) and the one it would be resumed with (whole plan
// and its inputs), most telling first; empty when they are the same plan.
func ChangedInputs(prev PlanInfo, whole matrices.Plan, inputs map[string]string) []string {
	attempts := "the attempts (configuration, --only or --repeat)"
	if prev.Inputs == nil {
		// A folder of an sxlab before plan inputs: its digest covers the
		// attempts alone.
		if prev.Digest != PlanDigest(whole, nil) {
			return []string{attempts}
		}
		return nil
	}
	if prev.Digest == PlanDigest(whole, inputs) {
		return nil
	}
	cur := PlanInfo{Inputs: inputs}
	var out []string
	keys := map[string]bool{}
	for k := range prev.Inputs {
		keys[k] = true
	}
	for k := range cur.Inputs {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "seed") != (names[j] == "seed") {
			return names[i] == "seed"
		}
		return names[i] < names[j]
	})
	for _, k := range names {
		a, b := prev.Inputs[k], cur.Inputs[k]
		switch {
		case a == b:
		case k == "seed":
			out = append(out, fmt.Sprintf("seed (the run has seed %s; now %s)", a, b))
		case a == "":
			out = append(out, k+" (new)")
		case b == "":
			out = append(out, k+" (gone)")
		case strings.HasPrefix(k, "packages."):
			out = append(out, fmt.Sprintf("%s (the package file's %s is now %s)", k, short(a), short(b)))
		default:
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		out = append(out, attempts)
	}
	return out
}

func short(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12] + "…"
	}
	return d
}
