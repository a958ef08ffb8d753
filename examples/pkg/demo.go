// Package examplepkg makes the demo's installer packages: real flat
// .pkg files (product archives with one component) holding "Example
// VPN.app" and its packet-tunnel system extension, with Info.plists,
// minimal fat (arm64 + x86_64) Mach-O executables with real load
// commands and ad-hoc code signatures carrying the team ID and
// entitlements.
//
// Versions 1-4 mirror the sim's test manifests
// (vm/sim/macos/testdata/simpkg/example-vpn-N.simpkg.json: same
// versions, Mach service names and extension LC_UUIDs); version 5 ships
// version 3's extension executable unchanged (same LC_UUID) under a
// higher version — the TN3178 hazard preflight must find.
//
// Run `go generate ./examples/...` to rewrite the files; the test checks
// the committed files equal a fresh generation.
package examplepkg

//go:generate go run ./gen

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"

	"howett.net/plist"
)

// Identity of the demo product (config.yaml's app section).
const (
	TeamID      = "ABCDE12345"
	AppID       = "com.example.vpn"
	ExtID       = "com.example.vpn.tunnel"
	AppName     = "Example VPN"
	AppGroup    = TeamID + ".com.example.vpn"
	PackageID   = "com.example.vpn.pkg"
	fixedMachSv = TeamID + "." + ExtID
)

// Build is one version of the demo.
type Build struct {
	N            int
	Short, Build string
	MachService  string
	// ExtUUIDs are the extension's LC_UUIDs per architecture.
	ExtUUIDs map[string]string
	// ExtFrom, when set, ships that version's extension executable
	// unchanged.
	ExtFrom int
}

// Builds are the demo's versions 1-5.
var Builds = []Build{
	{N: 1, Short: "1.0", Build: "100", MachService: fixedMachSv, ExtUUIDs: map[string]string{"arm64": "425D7BAE-01D3-5DD0-8F5E-44E75DC03100", "x86_64": "AED8C32B-B051-5F0B-A5FF-9D77205CFEC9"}},
	{N: 2, Short: "2.0", Build: "200", MachService: fixedMachSv, ExtUUIDs: map[string]string{"arm64": "965B75C3-F0D7-56B0-99A2-050DD8716908", "x86_64": "AFCE92C8-E009-54EB-81D2-DDF27E509338"}},
	{N: 3, Short: "3.0", Build: "300", MachService: fixedMachSv, ExtUUIDs: map[string]string{"arm64": "E7692EDE-C2AA-5AD1-8A56-D951AAF5CD50", "x86_64": "9D904CE3-4456-5B33-953A-CAE39E362D63"}},
	{N: 4, Short: "4.0", Build: "400", MachService: fixedMachSv + ".4.0", ExtUUIDs: map[string]string{"arm64": "6B16DB12-DDBB-5FB8-A502-468D3ABD9F18", "x86_64": "24EA77A2-E687-5D08-BB5E-9D05D78AAA57"}},
	{N: 5, Short: "5.0", Build: "500", MachService: fixedMachSv, ExtFrom: 3},
}

// FileName is the package file of version n.
func FileName(n int) string { return fmt.Sprintf("example-vpn-%d.pkg", n) }

type appInfo struct {
	ID         string `plist:"CFBundleIdentifier"`
	Name       string `plist:"CFBundleName"`
	Executable string `plist:"CFBundleExecutable"`
	Type       string `plist:"CFBundlePackageType"`
	Short      string `plist:"CFBundleShortVersionString"`
	Version    string `plist:"CFBundleVersion"`
	MinOS      string `plist:"LSMinimumSystemVersion"`
}

// extInfo spells appInfo's keys out: the plist encoder does not flatten
// an embedded struct.
type extInfo struct {
	ID         string `plist:"CFBundleIdentifier"`
	Name       string `plist:"CFBundleName"`
	Executable string `plist:"CFBundleExecutable"`
	Type       string `plist:"CFBundlePackageType"`
	Short      string `plist:"CFBundleShortVersionString"`
	Version    string `plist:"CFBundleVersion"`
	MinOS      string `plist:"LSMinimumSystemVersion"`
	NE         struct {
		MachService string            `plist:"NEMachServiceName"`
		Providers   map[string]string `plist:"NEProviderClasses"`
	} `plist:"NetworkExtension"`
}

func entitlements(app bool) []byte {
	ents := map[string]any{
		"com.apple.application-identifier":                TeamID + "." + map[bool]string{true: AppID, false: ExtID}[app],
		"com.apple.developer.team-identifier":             TeamID,
		"com.apple.security.application-groups":           []string{AppGroup},
		"com.apple.developer.networking.networkextension": []string{"packet-tunnel-provider-systemextension"},
	}
	if app {
		ents["com.apple.developer.system-extension.install"] = true
	}
	b, err := plist.MarshalIndent(ents, plist.XMLFormat, "\t")
	if err != nil {
		panic(err) // a fixed value: cannot fail
	}
	return b
}

// uuidFor derives a stable UUID (name-based, like UUIDv5) for an
// executable that the simulated manifests give none.
func uuidFor(name string) [16]byte {
	sum := sha256.Sum256([]byte("sxlab example " + name))
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

func parseUUID(s string) [16]byte {
	var u [16]byte
	var i int
	for j := 0; j < len(s) && i < 16; j++ {
		if s[j] == '-' {
			continue
		}
		fmt.Sscanf(s[j:j+2], "%02X", &u[i])
		i++
		j++
	}
	return u
}

// minOS is macOS 13.0, packed as xxxx.yy.zz.
const minOS = 13 << 16

func executable(name, id string, uuids map[string][16]byte, s Signing) ([]byte, error) {
	arches := []Arch{ARM64, X86_64}
	var slices [][]byte
	for _, a := range arches {
		m, err := MachO(a, uuids[a.Name], minOS, name, s)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", id, a.Name, err)
		}
		slices = append(slices, m)
	}
	return Fat(arches, slices), nil
}

// Package makes version b's .pkg; exts holds the extension executables
// made so far, by version, for a build that reuses one.
func Package(b Build, exts map[int][]byte) ([]byte, error) {
	app := appInfo{ID: AppID, Name: AppName, Executable: AppName, Type: "APPL", Short: b.Short, Version: b.Build, MinOS: "13.0"}
	appPlist, err := plist.MarshalIndent(app, plist.XMLFormat, "\t")
	if err != nil {
		return nil, err
	}
	ext := extInfo{ID: ExtID, Name: AppName + " Tunnel", Executable: ExtID, Type: "SYSX", Short: b.Short, Version: b.Build, MinOS: "13.0"}
	ext.NE.MachService = b.MachService
	ext.NE.Providers = map[string]string{"com.apple.networkextension.packet-tunnel": "ExampleVPNTunnel.PacketTunnelProvider"}
	// The extension's Info.plist in binary form, as Xcode writes it.
	extPlist, err := plist.Marshal(ext, plist.BinaryFormat)
	if err != nil {
		return nil, err
	}
	appUUIDs := map[string][16]byte{"arm64": uuidFor(fmt.Sprintf("app %d arm64", b.N)), "x86_64": uuidFor(fmt.Sprintf("app %d x86_64", b.N))}
	appExe, err := executable(fmt.Sprintf("Example VPN %s (%s)", b.Short, b.Build), AppID, appUUIDs,
		Signing{Identifier: AppID, TeamID: TeamID, Entitlements: entitlements(true), InfoPlist: appPlist, Hardened: true})
	if err != nil {
		return nil, err
	}
	extExe := exts[b.ExtFrom]
	if b.ExtFrom == 0 {
		uuids := map[string][16]byte{}
		for a, u := range b.ExtUUIDs {
			uuids[a] = parseUUID(u)
		}
		extExe, err = executable(fmt.Sprintf("Example VPN Tunnel %s (%s)", b.Short, b.Build), ExtID, uuids,
			Signing{Identifier: ExtID, TeamID: TeamID, Entitlements: entitlements(false), InfoPlist: extPlist, Hardened: true})
		if err != nil {
			return nil, err
		}
	} else if extExe == nil {
		return nil, fmt.Errorf("version %d reuses version %d's extension, which is not built yet", b.N, b.ExtFrom)
	}
	exts[b.N] = extExe
	const appDir = AppName + ".app/Contents"
	const extDir = appDir + "/Library/SystemExtensions/" + ExtID + ".systemextension/Contents"
	payload := Gzip(CPIO([]File{
		{Path: appDir + "/Info.plist", Data: appPlist},
		{Path: appDir + "/PkgInfo", Data: []byte("APPL????")},
		{Path: appDir + "/MacOS/" + AppName, Mode: 0o755, Data: appExe},
		{Path: extDir + "/Info.plist", Data: extPlist},
		{Path: extDir + "/MacOS/" + ExtID, Mode: 0o755, Data: extExe},
	}))
	pkgInfo := fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<pkg-info overwrite-permissions="true" relocatable="false" identifier="%s" postinstall-action="none" version="%s" format-version="2" generator-version="sxlab-examples" install-location="/Applications" auth="root">
    <payload numberOfFiles="%d" installKBytes="%d"/>
    <bundle-version>
        <bundle id="%s" CFBundleIdentifier="%s" path="./%s.app" CFBundleVersion="%s"/>
    </bundle-version>
</pkg-info>
`, PackageID, b.Short, 12, (len(appExe)+len(extExe))/1024+1, AppID, AppID, AppName, b.Build)
	dist := fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
    <title>%s</title>
    <options customize="never" require-scripts="false" hostArchitectures="arm64,x86_64"/>
    <volume-check><allowed-os-versions><os-version min="13.0"/></allowed-os-versions></volume-check>
    <choices-outline><line choice="default"><line choice="%s"/></line></choices-outline>
    <choice id="default"/>
    <choice id="%s" visible="false"><pkg-ref id="%s"/></choice>
    <pkg-ref id="%s" version="%s" onConclusion="none">#example-vpn.pkg</pkg-ref>
</installer-gui-script>
`, AppName, PackageID, PackageID, PackageID, PackageID, b.Short)
	return XAR([]Member{
		{Path: "Distribution", Data: []byte(dist), Zlib: true},
		{Path: "example-vpn.pkg/PackageInfo", Data: []byte(pkgInfo), Zlib: true},
		{Path: "example-vpn.pkg/Payload", Data: payload},
	}), nil
}

// All makes every version's package, by file name.
func All() (map[string][]byte, error) {
	out := map[string][]byte{}
	exts := map[int][]byte{}
	for _, b := range Builds {
		p, err := Package(b, exts)
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", b.N, err)
		}
		out[FileName(b.N)] = p
	}
	return out, nil
}

// Write makes every package into dir.
func Write(dir string) error {
	all, err := All()
	if err != nil {
		return err
	}
	for name, b := range all {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
