package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sxlab/sxlab/internal/plainjson"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/matrices"
)

// planFlags are the flags `plan` and `run` share.
type planFlags struct {
	config  string
	only    []string
	shard   string
	shardBy string
}

func (p *planFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&p.config, "config", "", "configuration file (default ./config.yaml, then $XDG_CONFIG_HOME/sxlab/config.yaml)")
	fs.StringArrayVar(&p.only, "only", nil, "keep cells matching every axis=value of EXPR (e.g. 'vpn=running,macos=macos-15.3'); repeat the flag to OR")
	fs.Int("repeat", 0, "attempts per cell (overrides matrix.repeat and SXLAB_MATRIX_REPEAT)")
	fs.StringVar(&p.shard, "shard", "", "run shard I of N (1-based, e.g. 2/3); default from CI variables when present")
	fs.StringVar(&p.shardBy, "shard-by", "", "keep each shard inside one value of this axis (e.g. macos: one runner label per macOS version); N must be a multiple of its values")
}

// options are the plan options of the flags, for a resolved shard.
func (p *planFlags) options(shard matrices.Shard) lab.PlanOptions {
	return lab.PlanOptions{Only: p.only, Shard: shard, ShardBy: p.shardBy}
}

// resolve loads the configuration and builds the plan the flags ask for.
func (p *planFlags) resolve(fs *pflag.FlagSet, stderr io.Writer) (*lab.Loaded, matrices.Plan, matrices.Plan, error) {
	l, err := loadTo(stderr, p.config, map[string]*pflag.Flag{"matrix.repeat": fs.Lookup("repeat")})
	if err != nil {
		return nil, matrices.Plan{}, matrices.Plan{}, err
	}
	shard, err := p.shardFor(stderr)
	if err != nil {
		return nil, matrices.Plan{}, matrices.Plan{}, err
	}
	sharded, whole, err := l.Plan(p.options(shard))
	if err != nil {
		return nil, matrices.Plan{}, matrices.Plan{}, usageError("%v", err)
	}
	return l, sharded, whole, nil
}

// shardFor is --shard, else the CI's own shard variables (said on
// stderr), else the whole plan.
func (p *planFlags) shardFor(stderr io.Writer) (matrices.Shard, error) {
	if p.shard != "" {
		s, err := matrices.ParseShard(p.shard)
		if err != nil {
			return matrices.Shard{}, usageError("--shard: %v", err)
		}
		return s, nil
	}
	s, source, ok, err := matrices.ShardFromEnv(os.LookupEnv)
	if err != nil {
		return matrices.Shard{}, usageError("shard from CI variables: %v", err)
	}
	if ok {
		fmt.Fprintf(stderr, "sxlab: taking shard %s from %s\n", s, source)
	}
	return s, nil
}

func newPlanCmd() *cobra.Command {
	var (
		pf     planFlags
		format string
		shards int
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the attempts a run would make",
		Args:  cobra.NoArgs,
	}
	pf.register(cmd.Flags())
	cmd.Flags().StringVar(&format, "format", "table", "table | json | github-matrix")
	cmd.Flags().IntVar(&shards, "shards", 0, "with --format github-matrix: how many shards to emit")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		switch format {
		case "table", "json", "github-matrix":
		default:
			return usageError("--format %q: use table, json or github-matrix", format)
		}
		if format == "github-matrix" && shards < 1 {
			return usageError("--format github-matrix needs --shards N (N >= 1)")
		}
		l, plan, whole, err := pf.resolve(c.Flags(), c.ErrOrStderr())
		if err != nil {
			return err
		}
		return writeBuffered(c.OutOrStdout(), func(out io.Writer) error {
			switch format {
			case "json":
				return writePlanJSON(out, plan)
			case "github-matrix":
				return writeGitHubMatrix(out, whole, shards, pf.shardBy)
			}
			return writePlanTable(out, l, plan, whole)
		})
	}
	return cmd
}

// writeAttemptRows writes the table's rows as text/tabwriter (padding 2,
// spaces) lays them out, byte for byte, without holding every row until
// the end: the widths are known from the plan. At 100,000 attempts the
// tabwriter was a third of the command's time.
func writeAttemptRows(w io.Writer, attempts []matrices.Attempt) error {
	const pad = 2
	header := [3]string{"ATTEMPT", "CELL", "REPEAT"}
	width := [3]int{len(header[0]), len(header[1]), len(header[2])}
	width[0] = max(width[0], len(strconv.Itoa(len(attempts))))
	for _, a := range attempts {
		width[1] = max(width[1], utf8.RuneCountInString(a.Cell.ID))
		width[2] = max(width[2], len(strconv.Itoa(a.Repeat)))
	}
	b := make([]byte, 0, 64<<10)
	cell := func(b []byte, s string, i int) []byte {
		b = append(b, s...)
		for n := utf8.RuneCountInString(s); n < width[i]+pad; n++ {
			b = append(b, ' ')
		}
		return b
	}
	b = cell(b, header[0], 0)
	b = cell(b, header[1], 1)
	b = cell(b, header[2], 2)
	b = append(b, "LABEL\n"...)
	var num []byte
	for i, a := range attempts {
		num = strconv.AppendInt(num[:0], int64(i+1), 10)
		b = cell(b, string(num), 0)
		b = cell(b, a.Cell.ID, 1)
		num = strconv.AppendInt(num[:0], int64(a.Repeat), 10)
		b = cell(b, string(num), 2)
		b = append(append(b, a.Cell.Label...), '\n')
		if len(b) >= 60<<10 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	_, err := w.Write(b)
	return err
}

// planJSON is the documented shape of `plan --format json`.
type planJSON struct {
	Cells    int           `json:"cells"`
	Attempts []attemptJSON `json:"attempts"`
}

type attemptJSON struct {
	Cell   string            `json:"cell"`
	Label  string            `json:"label"`
	Repeat int               `json:"repeat"`
	Axes   map[string]string `json:"axes"`
}

// writePlanJSON writes planJSON as json.Encoder with a two-space indent
// would, byte for byte, without reflection: at 100,000 cells the encoder
// and its indent pass were most of the command's time.
func writePlanJSON(w io.Writer, p matrices.Plan) error {
	b := make([]byte, 0, 64<<10)
	b = fmt.Appendf(b, "{\n  \"cells\": %d,\n  \"attempts\": [", len(p.Cells))
	var keys []string
	for i, a := range p.Attempts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    {\n      \"cell\": "...)
		b = appendJSONString(b, a.Cell.ID)
		b = append(b, ",\n      \"label\": "...)
		b = appendJSONString(b, a.Cell.Label)
		b = append(b, ",\n      \"repeat\": "...)
		b = strconv.AppendInt(b, int64(a.Repeat), 10)
		b = append(b, ",\n      \"axes\": "...)
		if a.Cell.Values == nil {
			b = append(b, "null"...)
		} else if len(a.Cell.Values) == 0 {
			b = append(b, "{}"...)
		} else {
			keys = keys[:0]
			for k := range a.Cell.Values {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b = append(b, '{')
			for j, k := range keys {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, "\n        "...)
				b = appendJSONString(b, k)
				b = append(b, ": "...)
				b = appendJSONString(b, a.Cell.Values[k])
			}
			b = append(b, "\n      }"...)
		}
		b = append(b, "\n    }"...)
		if len(b) >= 60<<10 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	if len(p.Attempts) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, "]\n}\n"...)
	_, err := w.Write(b)
	return err
}

// appendJSONString appends s as encoding/json writes it with HTML escaping
// off; plain ASCII without quotes, backslashes or control characters (all
// of a plan, in practice) is copied, anything else goes to the encoder.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			q, _ := plainjson.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// writeGitHubMatrix prints a dynamic matrix for GitHub Actions: one job
// per shard, each running `sxlab run --shard ${{ matrix.shard }}`. With
// --shard-by AXIS each entry also carries the shard's value of AXIS, for
// the job's runs-on label.
func writeGitHubMatrix(w io.Writer, whole matrices.Plan, n int, by string) error {
	var out struct {
		Include []map[string]string `json:"include"`
	}
	for i := 1; i <= n; i++ {
		sh := matrices.Shard{Index: i, Count: n}
		entry := map[string]string{"shard": sh.String()}
		if by != "" {
			_, value, err := whole.ShardBy(by, sh)
			if err != nil {
				return usageError("--shard-by: %v", err)
			}
			entry[by] = value
		}
		out.Include = append(out.Include, entry)
	}
	return plainjson.NewEncoder(w).Encode(out)
}

func writePlanTable(w io.Writer, l *lab.Loaded, p, whole matrices.Plan) error {
	if err := writeAttemptRows(w, p.Attempts); err != nil {
		return err
	}
	var parts []string
	parts = append(parts, fmt.Sprintf("%d attempt(s) of %d cell(s)", len(p.Attempts), len(p.Cells)))
	if len(p.Attempts) != len(whole.Attempts) {
		parts = append(parts, fmt.Sprintf("of a plan of %d attempts", len(whole.Attempts)))
	}
	parts = append(parts, fmt.Sprintf("repeat %d", l.Config.Matrix.Repeat), "from "+l.File)
	_, err := fmt.Fprintln(w, strings.Join(parts, ", "))
	return err
}
