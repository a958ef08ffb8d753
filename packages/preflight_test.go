package packages

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	examplepkg "github.com/sxlab/sxlab/examples/pkg"
)

var demoExpect = Expect{AppBundleID: "com.example.vpn", ExtBundleID: "com.example.vpn.tunnel", TeamID: "ABCDE12345",
	MachService: "ABCDE12345.com.example.vpn.tunnel", Images: map[string]string{"macos-15.3": "15.3"}}

func readDemo(t *testing.T, n int) *Package {
	b := demoPkg(t, n)
	p, err := ReadPkg(bytes.NewReader(b), int64(len(b)), Limits{})
	require.NoError(t, err)
	return p
}

func statuses(rows []Row) map[string]Row {
	out := map[string]Row{}
	for _, r := range rows {
		out[r.Check] = r
	}
	return out
}

func TestPreflightOfTheDemoUpgrade2To3(t *testing.T) {
	rows := Preflight("2->3", Build{"2", readDemo(t, 2)}, Build{"3", readDemo(t, 3)}, demoExpect)
	st := statuses(rows)
	for _, r := range rows {
		switch r.Check {
		case "mach-service-versioned", "signature", "package-signature":
			assert.Equal(t, Warning, r.Status, r.Check)
		default:
			assert.Equal(t, OK, r.Status, "%s: %s", r.Check, r.Message)
		}
		assert.NotEmpty(t, r.Source, r.Check)
	}
	assert.Equal(t, "200", st["extension-version-increases"].From)
	assert.Equal(t, "300", st["extension-version-increases"].To)
}

func TestPreflightWithATemplateThatVersionsTheService(t *testing.T) {
	e := demoExpect
	e.MachService = "ABCDE12345.com.example.vpn.tunnel.{{.Version}}"
	st := statuses(Preflight("3->4", Build{"3", readDemo(t, 3)}, Build{"4", readDemo(t, 4)}, e))
	// 3 has the fixed name, so the template is wrong for 3 but right for 4.
	assert.Equal(t, Error, st["mach-service-template"].Status)
	assert.Contains(t, st["mach-service-template"].Message, "3: ")
	assert.NotContains(t, st["mach-service-template"].Message, "4: ")
	assert.Equal(t, OK, st["mach-service-versioned"].Status)
}

// Each hazard, made by changing what the reader found in a real package.
func TestPreflightNamesEachHazard(t *testing.T) {
	cases := []struct {
		check  string
		status Status
		mutate func(to *Package, e *Expect)
		says   string
	}{
		{"same-team", Error, func(p *Package, _ *Expect) {
			for _, b := range []*Bundle{p.Apps[0], p.Apps[0].Extensions[0]} {
				for i := range b.Executable.Slices {
					b.Executable.Slices[i].Signature.TeamID = "ZZZZZ99999"
				}
			}
		}, "different team"},
		{"team-id", Error, func(_ *Package, e *Expect) { e.TeamID = "QQQQQ11111" }, "QQQQQ11111"},
		{"app-bundle-id", Error, func(p *Package, e *Expect) { p.Apps[0].BundleID = "com.other.vpn" }, "com.example.vpn"},
		{"extension-bundle-id", Error, func(p *Package, e *Expect) {
			p.Apps[0].Extensions[0].BundleID = "com.other.tunnel"
			e.ExtBundleID = "com.other.tunnel"
		}, "not prefixed by the app's"},
		{"entitlement-system-extension-install", Error, func(p *Package, _ *Expect) {
			for i := range p.Apps[0].Executable.Slices {
				delete(p.Apps[0].Executable.Slices[i].Signature.Entitlements, "com.apple.developer.system-extension.install")
			}
		}, "system-extension.install"},
		{"entitlement-networkextension", Error, func(p *Package, _ *Expect) {
			x := p.Apps[0].Extensions[0]
			for i := range x.Executable.Slices {
				x.Executable.Slices[i].Signature.Entitlements["com.apple.developer.networking.networkextension"] = []any{"packet-tunnel-provider"}
			}
		}, "-systemextension"},
		{"mach-service-app-group", Error, func(p *Package, e *Expect) {
			p.Apps[0].Extensions[0].NEMachServiceName = "com.example.vpn.tunnel"
			e.MachService = "com.example.vpn.tunnel"
		}, "app groups"},
		{"installs-into-applications", Error, func(p *Package, _ *Expect) { p.Apps[0].Path = "/Users/admin/Example VPN.app" }, "/Applications"},
		{"arm64", Error, func(p *Package, _ *Expect) {
			x := p.Apps[0].Extensions[0].Executable
			x.Slices = x.Slices[1:]
		}, "no arm64"},
		{"minimum-os", Error, func(p *Package, _ *Expect) { p.Apps[0].MinimumSystemVersion = "15.4" }, "macos-15.3 (15.3)"},
		{"app-uuid-changes", Error, func(p *Package, _ *Expect) {}, ""}, // filled below
	}
	for _, c := range cases[:len(cases)-1] {
		t.Run(c.check, func(t *testing.T) {
			to, e := readDemo(t, 3), demoExpect
			c.mutate(to, &e)
			r := statuses(Preflight("2->3", Build{"2", readDemo(t, 2)}, Build{"3", to}, e))[c.check]
			assert.Equal(t, c.status, r.Status, r.Message)
			assert.Contains(t, r.Message, c.says)
		})
	}
	t.Run("app-uuid-changes", func(t *testing.T) {
		from, to := readDemo(t, 2), readDemo(t, 3)
		to.Apps[0].Executable = from.Apps[0].Executable
		r := statuses(Preflight("2->3", Build{"2", from}, Build{"3", to}, demoExpect))["app-uuid-changes"]
		assert.Equal(t, Error, r.Status)
		assert.Contains(t, r.Message, from.Apps[0].Executable.Slices[0].UUID)
	})
}

func TestPreflightOfAPackageWithoutTheAppIsAnErrorRow(t *testing.T) {
	empty := &Package{File: "empty.pkg"}
	rows := Preflight("2->3", Build{"2", readDemo(t, 2)}, Build{"3", empty}, demoExpect)
	require.Len(t, rows, 1)
	assert.Equal(t, Error, rows[0].Status)
	assert.Contains(t, rows[0].To, "empty.pkg")
}

func TestCompareVersions(t *testing.T) {
	assert.Equal(t, -1, compareVersions("1.9", "1.10"))
	assert.Equal(t, 0, compareVersions("2", "2.0"))
	assert.Equal(t, 1, compareVersions("300", "200"))
	assert.Equal(t, -1, compareVersions("1.0b1", "1.0b2"))
}

func TestIdentityOfADemoBuild(t *testing.T) {
	p := readDemo(t, 5)
	p.File = "example-vpn-5.pkg"
	id, err := IdentityOf(p, "com.example.vpn", "com.example.vpn.tunnel")
	require.NoError(t, err)
	assert.Equal(t, "500", id.Extension.Version)
	assert.Equal(t, "E7692EDE-C2AA-5AD1-8A56-D951AAF5CD50", id.Extension.UUIDs["arm64"])
	assert.Equal(t, "ABCDE12345", id.Extension.TeamID)
	assert.Equal(t, "adhoc,runtime", id.Extension.Signing)
	_, err = IdentityOf(p, "com.other", "")
	require.Error(t, err)
}

func TestCheckKeepsEachBuildsIdentity(t *testing.T) {
	src := func(n int) Source {
		return Source{File: filepath.Join("..", "examples", "pkg", examplepkg.FileName(n))}
	}
	rep := Check([]Upgrade{{Path: "3->5", From: "3", To: "5"}}, map[string]Source{"3": src(3), "5": src(5)}, demoExpect, Limits{})
	require.Len(t, rep.Identities, 2)
	assert.Equal(t, rep.Identities["3"].Extension.UUIDs, rep.Identities["5"].Extension.UUIDs)
	assert.Equal(t, "500", rep.Identities["5"].Extension.Version)
	assert.Equal(t, 1, rep.Errors)
}
