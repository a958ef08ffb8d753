package lab

import (
	"errors"
	"fmt"
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
	whole, err = matrices.Expand(c.MatrixSpec())
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
