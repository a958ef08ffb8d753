package matrices

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Shard is one of Count parts of a plan. Index is 1-based: 1 <= Index <= Count.
// The zero Shard means "not sharded".
type Shard struct {
	Index, Count int
}

// String renders s as "i/n".
func (s Shard) String() string {
	return strconv.Itoa(s.Index) + "/" + strconv.Itoa(s.Count)
}

// Validate reports whether s is a usable shard (the zero Shard is not).
func (s Shard) Validate() error {
	if s.Count < 1 {
		return fmt.Errorf("shard %s: count must be at least 1", s)
	}
	if s.Index < 1 || s.Index > s.Count {
		return fmt.Errorf("shard %s: index must be between 1 and %d", s, s.Count)
	}
	return nil
}

// ParseShard parses "i/n", e.g. "2/3" (1-based).
func ParseShard(s string) (Shard, error) {
	is, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want i/n, e.g. 2/3", s)
	}
	i, err := strconv.Atoi(strings.TrimSpace(is))
	if err != nil {
		return Shard{}, fmt.Errorf("shard %q: index %q is not a number", s, is)
	}
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if err != nil {
		return Shard{}, fmt.Errorf("shard %q: count %q is not a number", s, ns)
	}
	sh := Shard{Index: i, Count: n}
	if err := sh.Validate(); err != nil {
		return Shard{}, err
	}
	return sh, nil
}

// CI variables for parallel jobs, in the order ShardFromEnv consults them.
const (
	envBuildkiteJob   = "BUILDKITE_PARALLEL_JOB" // 0-based
	envBuildkiteCount = "BUILDKITE_PARALLEL_JOB_COUNT"
	envGitLabIndex    = "CI_NODE_INDEX" // 1-based
	envGitLabTotal    = "CI_NODE_TOTAL"
)

// ShardFromEnv reads the shard from CI variables through lookup
// (os.LookupEnv in production): BUILDKITE_PARALLEL_JOB (0-based) /
// BUILDKITE_PARALLEL_JOB_COUNT first, then CI_NODE_INDEX (1-based, GitLab) /
// CI_NODE_TOTAL. ok is false when neither pair is set; source names the
// variables used, e.g. "BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT".
// Variables set to "" count as unset (CI templates often export empties).
// Half a pair, a non-number or an out-of-range value is an error naming the
// variable and its value.
func ShardFromEnv(lookup func(string) (string, bool)) (s Shard, source string, ok bool, err error) {
	if lookup == nil {
		return Shard{}, "", false, errors.New("shard from env: nil lookup")
	}
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	for _, src := range []struct {
		idx, count string
		base       int
	}{
		{envBuildkiteJob, envBuildkiteCount, 0},
		{envGitLabIndex, envGitLabTotal, 1},
	} {
		iv, iok := get(src.idx)
		nv, nok := get(src.count)
		if !iok && !nok {
			continue
		}
		source = src.idx + "/" + src.count
		if !iok {
			return Shard{}, source, false, fmt.Errorf("%s=%q is set but %s is not", src.count, nv, src.idx)
		}
		if !nok {
			return Shard{}, source, false, fmt.Errorf("%s=%q is set but %s is not", src.idx, iv, src.count)
		}
		n, err := strconv.Atoi(nv)
		if err != nil || n < 1 {
			return Shard{}, source, false, fmt.Errorf("%s=%q: want a whole number >= 1", src.count, nv)
		}
		i, err := strconv.Atoi(iv)
		if err != nil {
			return Shard{}, source, false, fmt.Errorf("%s=%q: want a whole number", src.idx, iv)
		}
		if i < src.base || i > n-1+src.base {
			return Shard{}, source, false, fmt.Errorf("%s=%q: out of range for %s=%q (want %d..%d)", src.idx, iv, src.count, nv, src.base, n-1+src.base)
		}
		return Shard{Index: i - src.base + 1, Count: n}, source, true, nil
	}
	return Shard{}, "", false, nil
}

// Shard keeps the attempts at 1-based positions Index, Index+Count, ... of
// p.Attempts, and the cells that still have attempts (in cell order). Dealing
// attempts round-robin keeps shard sizes within one of each other and, with
// repeat-major attempts, spreads each repeat round across all shards.
//
// The zero Shard returns p unchanged. Any other invalid shard (see Validate)
// returns an empty plan: parse shards with ParseShard or ShardFromEnv.
func (p Plan) Shard(s Shard) Plan {
	if s == (Shard{}) {
		return p
	}
	if s.Validate() != nil {
		return Plan{}
	}
	if s.Count == 1 {
		return p
	}
	var out Plan
	has := make(map[string]struct{})
	for i := s.Index - 1; i < len(p.Attempts); i += s.Count {
		a := p.Attempts[i]
		out.Attempts = append(out.Attempts, a)
		has[a.Cell.ID] = struct{}{}
	}
	for _, c := range p.Cells {
		if _, ok := has[c.ID]; ok {
			out.Cells = append(out.Cells, c)
		}
	}
	return out
}

// GroupValues lists the values the plan's cells take on axis, in the
// order the cells come.
func (p Plan) GroupValues(axis string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range p.Cells {
		v := c.Values[axis]
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// ShardBy is Shard with every shard inside one value of axis: the plan's
// values of axis each get Count/len(values) shards, in order, and each
// deals its own attempts round-robin. CI jobs then map one to one onto
// runners labelled by that value (a Mac mini per macOS version).
func (p Plan) ShardBy(axis string, s Shard) (Plan, string, error) {
	if err := s.Validate(); err != nil {
		return Plan{}, "", err
	}
	values := p.GroupValues(axis)
	if len(values) == 0 {
		return Plan{}, "", fmt.Errorf("shard by %s: the plan has no cells", axis)
	}
	if s.Count%len(values) != 0 {
		return Plan{}, "", fmt.Errorf("shard %s by %s: %d shards cannot be split evenly over the %d values of %s (%s); use a multiple of %d",
			s, axis, s.Count, len(values), axis, strings.Join(values, ", "), len(values))
	}
	per := s.Count / len(values)
	value := values[(s.Index-1)/per]
	var group Plan
	for _, c := range p.Cells {
		if c.Values[axis] == value {
			group.Cells = append(group.Cells, c)
		}
	}
	for _, a := range p.Attempts {
		if a.Cell.Values[axis] == value {
			group.Attempts = append(group.Attempts, a)
		}
	}
	return group.Shard(Shard{Index: (s.Index-1)%per + 1, Count: per}), value, nil
}
