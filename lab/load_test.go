package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validConfig is a small complete configuration; tests edit it by line.
const validConfig = `lab:
  name: t
hosts:
  - name: local
    provider: sim
images:
  macos-15.3:
    sim: {product_version: "15.3", build: 24D60}
app:
  name: Example VPN
  bundle_id: com.example.vpn
  extension:
    bundle_id: com.example.vpn.tunnel
    team_id: ABCDE12345
    mach_service: ABCDE12345.com.example.vpn.tunnel
  vpn_service: Example VPN
  versions:
    "1": {package: v1.pkg}
    "3": {package: v3.pkg}
matrix:
  axes:
    macos: [macos-15.3]
    path: ["1->3"]
    vpn: [running, stopped]
scenario:
  - install: "{{.From}}"
  - vpn: start
    when: {vpn: running}
  - upgrade: "{{.To}}"
  - probe: [mach-endpoint]
probes:
  - name: mach-endpoint
`

// writeConfig writes src as config.yaml in a fresh folder with the
// package files it names, and returns its path.
func writeConfig(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"v1.pkg", "v3.pkg"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte("pkg"), 0o644))
	}
	path := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	return path
}

func noEnv(string) (string, bool) { return "", false }

func envOf(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func problemLines(t *testing.T, err error) []string {
	t.Helper()
	var ps Problems
	require.ErrorAs(t, err, &ps)
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestLoadValidConfigAppliesDefaults(t *testing.T) {
	path := writeConfig(t, validConfig)
	l, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
	require.NoError(t, err)
	c := l.Config
	assert.Equal(t, "./runs", c.Lab.RunsDir)
	assert.Equal(t, 1, c.Hosts[0].Slots)
	assert.Equal(t, "admin", c.Images["macos-15.3"].User)
	assert.Equal(t, "/Applications/Example VPN.app", c.App.Path)
	assert.Equal(t, "pkg", c.App.Versions["1"].Kind)
	assert.Equal(t, 1, c.Matrix.Repeat)
	assert.Equal(t, "failure", c.Collect.On)
	assert.Equal(t, ByteSize(5<<30), c.Collect.MinFree)
	assert.Equal(t, []string{"macos", "path", "vpn"}, axisNames(c.Matrix.Axes), "axes keep file order")
	assert.Equal(t, "start", c.Scenario[1].VPN.Action)
	assert.Equal(t, []string{"mach-endpoint"}, c.Scenario[3].Probe.Probes)
}

func TestUnknownKeyHasPositionAndSuggestion(t *testing.T) {
	src := strings.Replace(validConfig, "  vpn_service: Example VPN\n", "  vpn_servce: Example VPN\n", 1)
	path := writeConfig(t, src)
	_, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
	lines := problemLines(t, err)
	assert.Contains(t, lines, path+`:16:3: unknown key "vpn_servce" in app; did you mean "vpn_service"?`)
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	src := strings.Replace(validConfig, "v3.pkg", "v3-missing.pkg", 1)
	src = strings.Replace(src, "macos: [macos-15.3]", "macos: [macos-15.3, macos-14.0]", 1)
	src = strings.Replace(src, "    provider: sim\n", "    provider: sim\n    slots: lots\n", 1)
	path := writeConfig(t, src)
	_, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
	lines := problemLines(t, err)
	dir := filepath.Dir(path)
	assert.Equal(t, []string{
		path + `:6:12: hosts[0].slots: expected a whole number, got "lots"`,
		path + `:20:20: app.versions.3.package: ` + filepath.Join(dir, "v3-missing.pkg") + ` does not exist (relative paths are taken from the configuration's folder ` + dir + `)`,
		path + `:23:25: matrix.axes.macos[1]: image "macos-14.0" is not defined under images (defined: macos-15.3)`,
	}, lines)
}

func TestSlotLimitNamesTheLicence(t *testing.T) {
	src := strings.Replace(validConfig, "    provider: sim\n", "    provider: vz\n    slots: 3\n", 1)
	src = strings.Replace(src, `sim: {product_version: "15.3", build: 24D60}`, `vz: {bundle: golden-15.3}`, 1)
	_, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	lines := problemLines(t, err)
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], ":6:12: hosts[0].slots: 3 is more than 2: the macOS licence")
}

func TestTwoSlotsOnVZIsFine(t *testing.T) {
	src := strings.Replace(validConfig, "    provider: sim\n", "    provider: vz\n    slots: 2\n", 1)
	src = strings.Replace(src, `sim: {product_version: "15.3", build: 24D60}`, `vz: {bundle: golden-15.3}`, 1)
	_, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.NoError(t, err)
}

func TestCrossChecks(t *testing.T) {
	cases := map[string]struct {
		from, to string
		want     string
	}{
		"path names unknown version": {`path: ["1->3"]`, `path: ["1->7"]`, `:23:12: matrix.axes.path[0]: upgrade path "1->7" names version "7", which is not under app.versions (defined: 1, 3)`},
		"path malformed":             {`path: ["1->3"]`, `path: ["1-3"]`, `is not an upgrade path`},
		"bad duration":               {"lab:\n  name: t\n", "lab:\n  name: t\nretry: {backoff: soon}\n", `retry.backoff: "soon" is not a duration`},
		"when names unknown axis":    {`when: {vpn: running}`, `when: {vnp: running}`, `scenario[1].when: "vnp" is not an axis`},
		"when names unknown value":   {`when: {vpn: running}`, `when: {vpn: up}`, `scenario[1].when.vpn: "up" is not a value of axis vpn (running, stopped)`},
		"two kinds in one step":      {`  - upgrade: "{{.To}}"`, "  - upgrade: \"{{.To}}\"\n    launch: {}", `scenario[2]: one step per list item, found upgrade and launch`},
		"unknown probe reference":    {`probe: [mach-endpoint]`, `probe: [mach-endpont]`, `probe "mach-endpont" is not defined under probes (defined: mach-endpoint)`},
		"template typo":              {`install: "{{.From}}"`, `install: "{{.Form}}"`, `scenario[0].install.version: template: can't evaluate field Form`},
		"literal version unknown":    {`install: "{{.From}}"`, `install: "9"`, `version "9" is not under app.versions`},
		"bad team id":                {"team_id: ABCDE12345", "team_id: abc", `"abc" is not a Team ID`},
		"unknown fault":              {"build: 24D60}", "build: 24D60, faults: [nope]}", `unknown fault "nope"`},
		"exclude names unknown axis": {"    vpn: [running, stopped]\n", "    vpn: [running, stopped]\n  exclude: [{vnp: running}]\n", `matrix.exclude[0]: "vnp" is not an axis (axes: macos, path, vpn)`},
		"everything excluded":        {"    vpn: [running, stopped]\n", "    vpn: [running, stopped]\n  exclude: [{macos: macos-15.3}]\n", `no cells are left after exclude`},
		"provider without source":    {"    provider: sim\n", "    provider: tart\n", `host local (hosts[0]) uses provider tart, but the image has no tart source`},
		"probe field of other kind":  {"  - name: mach-endpoint\n", "  - name: mach-endpoint\n    expect: Connected\n", `probes[0].expect: does not apply to a mach-endpoint probe (it takes service)`},
		"yaml syntax":                {"lab:\n  name: t\n", "lab:\n  name: t\n   bad: [\n", `YAML syntax`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			require.Contains(t, validConfig, tc.from, "test edits a line that exists")
			src := strings.Replace(validConfig, tc.from, tc.to, 1)
			_, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	path := writeConfig(t, strings.Replace(validConfig, "    vpn: [running, stopped]\n", "    vpn: [running, stopped]\n  repeat: 3\n", 1))

	l, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
	require.NoError(t, err)
	assert.Equal(t, 3, l.Config.Matrix.Repeat, "file beats default")

	l, err = Load(LoadOptions{File: path, LookupEnv: envOf("SXLAB_MATRIX_REPEAT", "5", "SXLAB_LAB_RUNS_DIR", "/tmp/r")})
	require.NoError(t, err)
	assert.Equal(t, 5, l.Config.Matrix.Repeat, "environment beats file")
	assert.Equal(t, "/tmp/r", l.Config.Lab.RunsDir, "underscores inside a key survive")
	assert.Equal(t, []Override{{Key: "lab.runs_dir", Source: "SXLAB_LAB_RUNS_DIR"}, {Key: "matrix.repeat", Source: "SXLAB_MATRIX_REPEAT"}}, l.Overrides)

	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.Int("repeat", 0, "")
	require.NoError(t, fs.Parse([]string{"--repeat", "7"}))
	l, err = Load(LoadOptions{File: path, LookupEnv: envOf("SXLAB_MATRIX_REPEAT", "5"), Flags: map[string]*pflag.Flag{"matrix.repeat": fs.Lookup("repeat")}})
	require.NoError(t, err)
	assert.Equal(t, 7, l.Config.Matrix.Repeat, "flag beats environment")

	unset := pflag.NewFlagSet("t", pflag.ContinueOnError)
	unset.Int("repeat", 0, "")
	l, err = Load(LoadOptions{File: path, LookupEnv: noEnv, Flags: map[string]*pflag.Flag{"matrix.repeat": unset.Lookup("repeat")}})
	require.NoError(t, err)
	assert.Equal(t, 3, l.Config.Matrix.Repeat, "a flag not given does not override with its zero default")
}

func TestBadEnvironmentValueNamesTheVariable(t *testing.T) {
	_, err := Load(LoadOptions{File: writeConfig(t, validConfig), LookupEnv: envOf("SXLAB_MATRIX_REPEAT", "many")})
	lines := problemLines(t, err)
	require.Len(t, lines, 1, "a value that failed to decode is not reported twice")
	assert.Contains(t, lines[0], `(environment SXLAB_MATRIX_REPEAT): matrix.repeat: expected a whole number, got "many"`)
}

func TestFindFile(t *testing.T) {
	t.Run("explicit file missing", func(t *testing.T) {
		_, err := Load(LoadOptions{File: filepath.Join(t.TempDir(), "nope.yaml"), LookupEnv: noEnv})
		require.ErrorIs(t, err, ErrNotFound)
		assert.Contains(t, err.Error(), "nope.yaml")
	})
	t.Run("current directory first", func(t *testing.T) {
		path := writeConfig(t, validConfig)
		xdg := t.TempDir()
		l, err := Load(LoadOptions{Dir: filepath.Dir(path), LookupEnv: envOf("XDG_CONFIG_HOME", xdg)})
		require.NoError(t, err)
		assert.Equal(t, path, l.File)
	})
	t.Run("then XDG_CONFIG_HOME", func(t *testing.T) {
		path := writeConfig(t, validConfig)
		xdg := filepath.Dir(filepath.Dir(path))
		require.NoError(t, os.Rename(filepath.Dir(path), filepath.Join(xdg, "sxlab")))
		l, err := Load(LoadOptions{Dir: t.TempDir(), LookupEnv: envOf("XDG_CONFIG_HOME", xdg)})
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(xdg, "sxlab", "config.yaml"), l.File)
	})
	t.Run("nowhere", func(t *testing.T) {
		_, err := Load(LoadOptions{Dir: t.TempDir(), LookupEnv: envOf("XDG_CONFIG_HOME", t.TempDir())})
		require.ErrorIs(t, err, ErrNotFound)
		assert.Contains(t, err.Error(), "pass --config FILE")
	})
}

func TestEffectiveYAMLRedactsSecrets(t *testing.T) {
	src := strings.Replace(validConfig, `sim: {product_version: "15.3", build: 24D60}`, "sim: {product_version: \"15.3\", build: 24D60}\n    auth: {password: hunter2}", 1)
	l, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: envOf("SXLAB_MATRIX_REPEAT", "2")})
	require.NoError(t, err)
	out, err := l.EffectiveYAML()
	require.NoError(t, err)
	s := string(out)
	assert.NotContains(t, s, "hunter2")
	assert.Contains(t, s, "password: <redacted>")
	assert.Contains(t, s, "# matrix.repeat from SXLAB_MATRIX_REPEAT")
	assert.Contains(t, s, "repeat: 2")
	assert.Contains(t, s, "runs_dir: ./runs", "defaults are shown")

	red := l.Config.Redact()
	assert.Equal(t, Redacted, red.Images["macos-15.3"].Auth.Password)
	assert.Equal(t, "hunter2", l.Config.Images["macos-15.3"].Auth.Password, "redacting copies")
}

func TestPasswordEnvIsShown(t *testing.T) {
	src := strings.Replace(validConfig, `sim: {product_version: "15.3", build: 24D60}`, "sim: {product_version: \"15.3\", build: 24D60}\n    auth: {password_env: GUEST_PW}", 1)
	l, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.NoError(t, err)
	out, err := l.EffectiveYAML()
	require.NoError(t, err)
	assert.Contains(t, string(out), "password_env: GUEST_PW", "the name of a variable is not a secret")
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"5GiB": 5 << 30, "500MB": 500e6, "1024": 1024, "1.5 GiB": 3 << 29} {
		var b ByteSize
		require.NoError(t, b.DecodeScalar(in), in)
		assert.Equal(t, want, b, in)
	}
	for _, in := range []string{"lots", "5XB", "-1GiB", ""} {
		var b ByteSize
		assert.Error(t, b.DecodeScalar(in), in)
	}
	assert.Equal(t, "5GiB", ByteSize(5<<30).String())
}

func TestParsePath(t *testing.T) {
	from, to, err := ParsePath("2->3")
	require.NoError(t, err)
	assert.Equal(t, []string{"2", "3"}, []string{from, to})
	for _, bad := range []string{"2-3", "->3", "2->", "3->3", "1->2->3"} {
		_, _, err := ParsePath(bad)
		assert.Error(t, err, bad)
	}
}

func TestRootConfigIsValid(t *testing.T) {
	l, err := Load(LoadOptions{File: "../config.yaml", LookupEnv: noEnv})
	require.NoError(t, err)
	shard, whole, err := l.Config.Plan(PlanOptions{})
	require.NoError(t, err)
	assert.Len(t, whole.Cells, 13, "2 images × 2 paths × 2 vpn × 2 approval, less the 4 running+pending cells, and the tunnel image's included cell")
	assert.Len(t, shard.Attempts, 39)
}

// A YAML syntax error points at the line a person has to fix, whether
// the parser or the scanner of the YAML library found it (the library
// prints the parser's line 0-based).
func TestYAMLSyntaxErrorPointsAtTheLine(t *testing.T) {
	lines := strings.Split(validConfig, "\n")
	vpn := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "    vpn: [running, stopped]") {
			vpn = i
		}
	}
	require.GreaterOrEqual(t, vpn, 0)
	cases := map[string]string{
		"unclosed flow sequence (parser)": "    vpn: [running, stopped",
		"unclosed flow mapping (parser)":  "    vpn: {running: 1",
		"tab indentation (scanner)":       "\tvpn: [running, stopped]",
		"mapping in a value (scanner)":    "    vpn: running: stopped",
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			edited := append([]string(nil), lines...)
			edited[vpn] = bad
			path := writeConfig(t, strings.Join(edited, "\n"))
			_, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
			require.Error(t, err)
			var ps Problems
			require.ErrorAs(t, err, &ps)
			require.Len(t, ps, 1)
			assert.Contains(t, ps[0].Msg, "YAML syntax")
			// The broken line, or for an unclosed bracket the line that
			// opened it; never the line before.
			assert.GreaterOrEqual(t, ps[0].Line, vpn+1, "%s", err)
			if strings.Contains(name, "parser") {
				assert.Equal(t, vpn+1, ps[0].Line, "%s", err)
			}
		})
	}
}

// Loaded from the current folder ("--config config.yaml"), a missing
// package is reported with the folder's real path, not ".".
func TestMissingPackageNamesTheRealFolder(t *testing.T) {
	path := writeConfig(t, validConfig)
	dir := filepath.Dir(path)
	t.Chdir(dir)
	require.NoError(t, os.Remove(filepath.Join(dir, "v3.pkg")))
	l, err := Load(LoadOptions{File: "config.yaml", LookupEnv: noEnv})
	require.Error(t, err)
	real, rerr := filepath.Abs(dir)
	require.NoError(t, rerr)
	assert.Contains(t, err.Error(), "relative paths are taken from the configuration's folder "+real+")")
	assert.NotContains(t, err.Error(), "folder .)")
	assert.Equal(t, real, l.Dir)
}
