package lab

import (
	"fmt"

	"github.com/sxlab/sxlab/matrices"
)

// PlanOptions narrows a plan the way `plan` and `run` flags do.
type PlanOptions struct {
	Only  []string       // --only expressions, OR-ed
	Shard matrices.Shard // zero: the whole plan
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
	if opts.Shard != (matrices.Shard{}) {
		if err := opts.Shard.Validate(); err != nil {
			return matrices.Plan{}, matrices.Plan{}, fmt.Errorf("--shard: %w", err)
		}
	}
	return whole.Shard(opts.Shard), whole, nil
}
