package lab

import (
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
	}
	if opts.Shard == (matrices.Shard{}) {
		return whole, whole, nil
	}
	if err := opts.Shard.Validate(); err != nil {
		return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard: %w", err)
	}
	if opts.ShardBy == "" {
		return whole.Shard(opts.Shard), whole, nil
	}
	if !c.hasAxis(opts.ShardBy) {
		return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard-by %s: no such axis (axes: %s)", opts.ShardBy, c.axisNames())
	}
	shard, _, err = whole.ShardBy(opts.ShardBy, opts.Shard)
	if err != nil {
		return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard-by: %w", err)
	}
	return shard, whole, nil
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
