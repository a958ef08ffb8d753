package strictyaml

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type dur struct{ time.Duration }

func (d *dur) DecodeScalar(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration: %q (use 30s, 5m, 1h)", s)
	}
	d.Duration = v
	return nil
}

type vpnStep struct {
	Action string `yaml:"action" short:"true"`
	Wait   dur    `yaml:"wait"`
}

type host struct {
	Name  string `yaml:"name"`
	Slots int    `yaml:"slots"`
}

type doc struct {
	Hosts   []host              `yaml:"hosts"`
	Images  map[string]host     `yaml:"images"`
	Timeout dur                 `yaml:"timeout"`
	Enabled bool                `yaml:"enabled"`
	Ratio   float64             `yaml:"ratio"`
	Version string              `yaml:"version"`
	VPN     *vpnStep            `yaml:"vpn"`
	When    map[string][]string `yaml:"when"`
	Extra   []map[string]any    `yaml:"extra"`
}

func decode(t *testing.T, src string) (doc, *Decoder) {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &n))
	var out doc
	d := NewDecoder()
	d.Decode(&n, &out)
	return out, d
}

func msgs(d *Decoder) []string {
	var out []string
	for _, p := range d.Problems {
		out = append(out, fmt.Sprintf("%d:%d: %s", p.Node.Line, p.Node.Column, p.Msg))
	}
	return out
}

func TestDecodesValidDocument(t *testing.T) {
	out, d := decode(t, `
hosts:
  - name: mini-1
    slots: 2
images:
  macos-15.3: {name: x}
timeout: 90s
enabled: yes
ratio: 0.25
version: 15.10
vpn: start
when:
  vpn: running
  macos: [a, b]
`)
	require.Empty(t, msgs(d))
	assert.Equal(t, []host{{Name: "mini-1", Slots: 2}}, out.Hosts)
	assert.Equal(t, "x", out.Images["macos-15.3"].Name)
	assert.Equal(t, 90*time.Second, out.Timeout.Duration)
	assert.True(t, out.Enabled)
	assert.InDelta(t, 0.25, out.Ratio, 1e-9)
	assert.Equal(t, "15.10", out.Version, "numbers keep their text when a string is wanted")
	require.NotNil(t, out.VPN)
	assert.Equal(t, "start", out.VPN.Action, "a scalar fills the shorthand field")
	assert.Equal(t, []string{"running"}, out.When["vpn"], "a scalar is a list of one")
	assert.Equal(t, []string{"a", "b"}, out.When["macos"])
	assert.Equal(t, 4, d.Paths["hosts[0].slots"].Line)
	assert.Equal(t, 6, d.Paths["images.macos-15.3#key"].Line)
}

func TestReportsEveryProblemWithPosition(t *testing.T) {
	_, d := decode(t, `hosts:
  - name: mini-1
    slost: 2
  - name: mini-2
    slots: many
timeout: forever
enabeld: true
colour: red
vpn: [a, b]
`)
	assert.Equal(t, []string{
		`3:5: unknown key "slost" in hosts[0]; did you mean "slots"?`,
		`5:12: hosts[1].slots: expected a whole number, got "many"`,
		`6:10: timeout: not a duration: "forever" (use 30s, 5m, 1h)`,
		`7:1: unknown key "enabeld" in the top level; did you mean "enabled"?`,
		`8:1: unknown key "colour" in the top level (known keys: hosts, images, timeout, enabled, ratio, version, vpn, when, extra)`,
		`9:6: vpn: expected a single value, got a list`,
	}, msgs(d))
}

func TestRepeatedKeyIsAProblem(t *testing.T) {
	_, d := decode(t, "ratio: 1\nratio: 2\n")
	assert.Equal(t, []string{`2:1: ratio: repeated key (first at line 1)`}, msgs(d))
}

func TestMergeKeysAndAliases(t *testing.T) {
	out, d := decode(t, `
base: &b {name: shared, slots: 2}
hosts:
  - <<: *b
    name: own
  - *b
`)
	// "base" is unknown to doc: that is reported, the rest still decodes.
	assert.Len(t, d.Problems, 1)
	assert.Equal(t, []host{{Name: "own", Slots: 2}, {Name: "shared", Slots: 2}}, out.Hosts)
}

func TestWrongShapes(t *testing.T) {
	_, d := decode(t, "hosts: {name: x}\nimages: [a]\nwhen: {vpn: {a: b}}\n")
	assert.Equal(t, []string{
		`1:8: hosts: expected a list (- item lines), got a mapping`,
		`2:9: images: expected a mapping (name: value lines), got a list`,
		`3:13: when.vpn: expected a list (- item lines), got a mapping`,
	}, msgs(d))
}

func TestNeverPanicsOnOddInput(t *testing.T) {
	for _, src := range []string{"", "~", "- 1\n- 2", "hosts: [[1]]", "vpn: {action: [x]}", "extra: [{a: [1, {b: c}]}]", "? [a]\n: b"} {
		var n yaml.Node
		if yaml.Unmarshal([]byte(src), &n) != nil {
			continue
		}
		var out doc
		assert.NotPanics(t, func() { NewDecoder().Decode(&n, &out) }, src)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"runs_dir", "name", "seed"}
	assert.Equal(t, "runs_dir", Suggest("run_dir", names))
	assert.Equal(t, "runs_dir", Suggest("runsdir", names))
	assert.Equal(t, "seed", Suggest("sede", names), "a swap is one typo")
	assert.Equal(t, "", Suggest("colour", names))
}

func FuzzDecode(f *testing.F) {
	f.Add("hosts:\n  - name: a\n    slots: 2\n")
	f.Add("vpn: start\nwhen: {a: b}\n")
	f.Add("a: &x [*x]")
	f.Add("hosts: &x [{name: a}, *x]")
	f.Fuzz(func(t *testing.T, src string) {
		var n yaml.Node
		if yaml.Unmarshal([]byte(src), &n) != nil {
			return
		}
		var out doc
		d := NewDecoder()
		d.Decode(&n, &out)
		for _, p := range d.Problems {
			if p.Node == nil {
				t.Fatalf("problem without a node: %s", p.Msg)
			}
		}
	})
}

func TestAliasCycleAndExplosionAreProblemsNotHangs(t *testing.T) {
	_, d := decode(t, "extra: &x [{a: *x}]\n")
	assert.NotEmpty(t, d.Problems)

	laughs := "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\nextra: [{g: *f}]\n"
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(laughs), &n))
	var out doc
	d = NewDecoder()
	d.Decode(&n, &out)
	assert.NotEmpty(t, d.Problems)
}

func TestEmptyBlockIsPresent(t *testing.T) {
	out, d := decode(t, "vpn:\nratio:\n")
	require.Empty(t, d.Problems)
	assert.NotNil(t, out.VPN, "an empty block is still there")
	assert.Zero(t, out.Ratio)
}
