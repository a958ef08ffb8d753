// Package matrices turns the matrix section of an sxlab config into a plan:
// the cells (combinations of axis values) and the attempts (cell × repeat)
// a run has to execute, with stable cell IDs, `--only` filters and
// `--shard i/n` partitioning.
//
// The package is pure planning: no I/O, no global state, deterministic output
// for a given input. Expansion follows GitHub Actions' matrix semantics
// (cartesian product, then exclude, then include) so that people who know
// `strategy.matrix` can predict what a config does.
package matrices
