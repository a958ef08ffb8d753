package packages

import (
	"debug/macho"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	examplepkg "github.com/sxlab/sxlab/examples/pkg"
)

// These tests read packages made by tools this project did not write:
// bsdtar (libarchive) for xar, GNU cpio for the payload, gzip, Info-ZIP,
// Python's plistlib for a binary Info.plist, and the Go linker for the
// Mach-O files.

const appInfoXML = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleIdentifier</key><string>com.example.vpn</string>
	<key>CFBundleExecutable</key><string>Example VPN</string>
	<key>CFBundleShortVersionString</key><string>%s</string>
	<key>CFBundleVersion</key><string>%s</string>
	<key>LSMinimumSystemVersion</key><string>13.0</string>
</dict>
</plist>
`

// extInfoPython writes the extension's Info.plist in binary form with
// Python's plistlib.
const extInfoPython = `import plistlib, sys
d = {"CFBundleIdentifier": "com.example.vpn.tunnel", "CFBundleExecutable": "com.example.vpn.tunnel",
     "CFBundleShortVersionString": sys.argv[2], "CFBundleVersion": sys.argv[3],
     "NetworkExtension": {"NEMachServiceName": "ABCDE12345.com.example.vpn.tunnel",
                          "NEProviderClasses": {"com.apple.networkextension.packet-tunnel": "Tunnel.Provider"}}}
with open(sys.argv[1], "wb") as f:
    plistlib.dump(d, f, fmt=plistlib.FMT_BINARY)
`

// stageApp lays out "Example VPN.app" with its extension under dir,
// both executables the Go-built Mach-O.
func stageApp(t *testing.T, dir, short, build string) {
	t.Helper()
	py := needTool(t, "python3", "install python3")
	bin := goDarwinBinary(t)
	app := filepath.Join(dir, "Example VPN.app", "Contents")
	ext := filepath.Join(app, "Library", "SystemExtensions", "com.example.vpn.tunnel.systemextension", "Contents")
	for _, d := range []string{filepath.Join(app, "MacOS"), filepath.Join(ext, "MacOS")} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(app, "Info.plist"), fmt.Appendf(nil, appInfoXML, short, build), 0o644))
	script := filepath.Join(t.TempDir(), "plist.py")
	require.NoError(t, os.WriteFile(script, []byte(extInfoPython), 0o644))
	sh(t, dir, fmt.Sprintf("%q %q %q %q %q", py, script, filepath.Join(ext, "Info.plist"), short, build))
	sh(t, dir, fmt.Sprintf("cp %q %q && cp %q %q", bin, filepath.Join(app, "MacOS", "Example VPN"), bin, filepath.Join(ext, "MacOS", "com.example.vpn.tunnel")))
}

// componentDir writes PackageInfo and a gzip'd odc cpio Payload of an
// app staged at root into dir.
func componentDir(t *testing.T, dir, root, version string) {
	t.Helper()
	needTool(t, "cpio", "apt-get install cpio")
	needTool(t, "gzip", "apt-get install gzip")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "PackageInfo"), fmt.Appendf(nil,
		`<?xml version="1.0" encoding="utf-8"?>
<pkg-info format-version="2" identifier="com.example.vpn.pkg" version="%s" install-location="/Applications" auth="root">
<payload numberOfFiles="9" installKBytes="4000"/>
</pkg-info>
`, version), 0o644))
	sh(t, root, fmt.Sprintf("find . | LC_ALL=C sort | cpio -o -H odc --quiet | gzip -9 > %q", filepath.Join(dir, "Payload")))
}

func bsdtarXar(t *testing.T, dir, out string, members ...string) {
	t.Helper()
	needTool(t, "bsdtar", "apt-get install libarchive-tools")
	args := ""
	for _, m := range members {
		args += fmt.Sprintf(" %q", m)
	}
	sh(t, dir, fmt.Sprintf("bsdtar --format xar -cf %q%s", out, args))
}

// goUUID reads the Go-built binary's LC_UUID with the standard library,
// independently of the reader under test.
func goUUID(t *testing.T) string {
	t.Helper()
	f, err := macho.Open(goDarwinBinary(t))
	require.NoError(t, err)
	defer f.Close()
	for _, l := range f.Loads {
		raw := l.Raw()
		if f.ByteOrder.Uint32(raw) == lcUUID {
			return formatUUID(raw[8:24])
		}
	}
	t.Fatal("the Go linker wrote no LC_UUID")
	return ""
}

func checkExampleApp(t *testing.T, p *Package, short, build string) {
	t.Helper()
	app, err := p.App("com.example.vpn")
	require.NoError(t, err)
	assert.Equal(t, "/Applications/Example VPN.app", app.Path)
	assert.Equal(t, short, app.ShortVersion)
	assert.Equal(t, build, app.Version)
	assert.Equal(t, "13.0", app.MinimumSystemVersion)
	assert.Equal(t, "xml", app.InfoFormat)
	require.Len(t, app.Extensions, 1)
	ext := app.Extensions[0]
	assert.Equal(t, "/Applications/Example VPN.app/Contents/Library/SystemExtensions/com.example.vpn.tunnel.systemextension", ext.Path)
	assert.Equal(t, "binary", ext.InfoFormat, "plistlib wrote it in binary form")
	assert.Equal(t, "com.example.vpn.tunnel", ext.BundleID)
	assert.Equal(t, build, ext.Version)
	assert.Equal(t, "ABCDE12345.com.example.vpn.tunnel", ext.NEMachServiceName)
	assert.Equal(t, map[string]string{"com.apple.networkextension.packet-tunnel": "Tunnel.Provider"}, ext.NEProviderClasses)
	for _, b := range []*Bundle{app, ext} {
		require.NotNil(t, b.Executable)
		assert.Equal(t, []string{"arm64"}, b.Executable.Arches())
		s := b.Executable.Slice("arm64")
		assert.Equal(t, goUUID(t), s.UUID)
		assert.NotEmpty(t, s.MinOS, "the Go linker writes LC_BUILD_VERSION")
		require.NotNil(t, s.Signature, "the Go linker signs darwin/arm64 binaries ad hoc")
		assert.True(t, s.Signature.AdHoc)
		assert.False(t, s.Signature.CMS)
		assert.Empty(t, s.Signature.TeamID)
	}
}

func TestReadsAComponentPackageMadeByBsdtarAndCpio(t *testing.T) {
	root, work := t.TempDir(), t.TempDir()
	stageApp(t, root, "2.0", "200")
	componentDir(t, work, root, "2.0")
	out := filepath.Join(t.TempDir(), "component.pkg")
	bsdtarXar(t, work, out, "PackageInfo", "Payload")

	p, err := Open(out, Limits{})
	require.NoError(t, err)
	assert.False(t, p.Product)
	assert.Empty(t, p.Signature)
	require.Len(t, p.Components, 1)
	assert.Equal(t, Component{ID: "com.example.vpn.pkg", Version: "2.0", InstallLocation: "/Applications"}, p.Components[0])
	checkExampleApp(t, p, "2.0", "200")
}

func TestReadsAProductArchiveWithAComponentInside(t *testing.T) {
	root, work := t.TempDir(), t.TempDir()
	stageApp(t, root, "3.0", "300")
	componentDir(t, filepath.Join(work, "example-vpn.pkg"), root, "3.0")
	require.NoError(t, os.WriteFile(filepath.Join(work, "Distribution"), []byte(`<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
    <pkg-ref id="com.example.vpn.pkg"/>
    <choices-outline><line choice="default"><line choice="com.example.vpn.pkg"/></line></choices-outline>
    <choice id="default"/>
    <choice id="com.example.vpn.pkg" visible="false"><pkg-ref id="com.example.vpn.pkg"/></choice>
    <pkg-ref id="com.example.vpn.pkg" version="3.0" onConclusion="none">#example-vpn.pkg</pkg-ref>
</installer-gui-script>
`), 0o644))
	out := filepath.Join(t.TempDir(), "product.pkg")
	bsdtarXar(t, work, out, "Distribution", "example-vpn.pkg")

	p, err := Open(out, Limits{})
	require.NoError(t, err)
	assert.True(t, p.Product)
	require.Len(t, p.Components, 1)
	assert.Equal(t, "example-vpn.pkg", p.Components[0].Name)
	checkExampleApp(t, p, "3.0", "300")
}

func TestReadsAnInfoZipOfTheApp(t *testing.T) {
	zipTool := needTool(t, "zip", "apt-get install zip")
	root := t.TempDir()
	stageApp(t, root, "1.0", "100")
	out := filepath.Join(t.TempDir(), "Example VPN.zip")
	sh(t, root, fmt.Sprintf("%q -qry %q 'Example VPN.app'", zipTool, out))

	p, err := Open(out, Limits{})
	require.NoError(t, err)
	assert.Equal(t, "zip", p.Kind)
	checkExampleApp(t, p, "1.0", "100")
}

// dittoZipPython writes the layout `ditto -c -k --sequesterRsrc
// --keepParent` gives: the bundle folder at the top, AppleDouble files
// under __MACOSX/, and symlinks kept as links.
const dittoZipPython = `import os, stat, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, os.path.dirname(src))
            if os.path.islink(full):
                info = zipfile.ZipInfo(rel)
                info.external_attr = (stat.S_IFLNK | 0o755) << 16
                z.writestr(info, os.readlink(full))
            elif os.path.isdir(full):
                z.writestr(rel + "/", b"")
            else:
                z.write(full, rel)
                head, base = os.path.split(rel)
                z.writestr(os.path.join("__MACOSX", head, "._" + base), b"\x00\x05\x16\x07AppleDouble")
`

func TestReadsADittoLayoutZip(t *testing.T) {
	py := needTool(t, "python3", "install python3")
	root := t.TempDir()
	stageApp(t, root, "4.0", "400")
	// A framework-style symlink, which a zip of a real app carries.
	require.NoError(t, os.Symlink("Example VPN", filepath.Join(root, "Example VPN.app", "Contents", "MacOS", "Current")))
	script := filepath.Join(t.TempDir(), "ditto.py")
	require.NoError(t, os.WriteFile(script, []byte(dittoZipPython), 0o644))
	out := filepath.Join(t.TempDir(), "Example VPN.zip")
	sh(t, root, fmt.Sprintf("%q %q %q %q", py, script, filepath.Join(root, "Example VPN.app"), out))

	p, err := Open(out, Limits{})
	require.NoError(t, err)
	checkExampleApp(t, p, "4.0", "400")
}

// A disk image read through 7-Zip. genisoimage makes an ISO 9660 + HFS
// hybrid, which 7-Zip reads by its content whatever the name: the 7z
// path of the reader (list, size check, unpack, walk), not UDIF itself,
// which only hdiutil writes. Unverified here: hdiutil on macOS.
func TestReadsADiskImageThrough7z(t *testing.T) {
	if _, err := os.Stat("/usr/bin/hdiutil"); err == nil {
		t.Skip("macOS reads disk images with hdiutil")
	}
	needTool(t, "7z", "apt-get install p7zip-full")
	gi := needTool(t, "genisoimage", "apt-get install genisoimage")
	root := t.TempDir()
	stageApp(t, root, "2.0", "200")
	out := filepath.Join(t.TempDir(), "Example VPN.dmg")
	sh(t, root, fmt.Sprintf("%q -quiet -V 'Example VPN' -hfs -r -J -o %q .", gi, out))

	p, err := Open(out, Limits{})
	require.NoError(t, err)
	assert.Equal(t, "dmg", p.Kind)
	checkExampleApp(t, p, "2.0", "200")

	// The listed size is checked before anything is unpacked.
	_, err = Open(out, Limits{Stream: 1024})
	var le *LimitError
	require.ErrorAs(t, err, &le)
}

// A fat file of two Go-built slices (joined by the generator's Fat, the
// layout of mach-o/fat.h): each slice's LC_UUID as the standard library
// reads it from the thin file.
func TestReadsAFatFileOfGoBuiltSlices(t *testing.T) {
	arm, amd := goDarwinBinary(t), goDarwinBinaryFor(t, "amd64")
	var slices [][]byte
	want := map[string]string{}
	for arch, f := range map[string]string{"arm64": arm, "x86_64": amd} {
		mf, err := macho.Open(f)
		require.NoError(t, err)
		for _, l := range mf.Loads {
			if raw := l.Raw(); mf.ByteOrder.Uint32(raw) == lcUUID {
				want[arch] = formatUUID(raw[8:24])
			}
		}
		mf.Close()
	}
	for _, f := range []string{arm, amd} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		slices = append(slices, b)
	}
	fat := examplepkg.Fat([]examplepkg.Arch{examplepkg.ARM64, examplepkg.X86_64}, slices)
	exe, err := parseExecutable(fat, DefaultLimits())
	require.NoError(t, err)
	assert.True(t, exe.Fat)
	assert.Equal(t, []string{"arm64", "x86_64"}, exe.Arches())
	for arch, u := range want {
		assert.Equal(t, u, exe.Slice(arch).UUID, arch)
	}
	// The Go linker signs darwin/arm64 ad hoc, and only that.
	assert.NotNil(t, exe.Slice("arm64").Signature)
	assert.Nil(t, exe.Slice("x86_64").Signature)
	assert.NotEqual(t, want["arm64"], want["x86_64"])
}

// The generator's package, taken apart and put back together by
// libarchive and GNU cpio, reads the same as the generator's own bytes.
func TestABsdtarRepackOfTheGeneratorsPackageReadsTheSame(t *testing.T) {
	needTool(t, "bsdtar", "apt-get install libarchive-tools")
	needTool(t, "cpio", "apt-get install cpio")
	gen, err := filepath.Abs(filepath.Join("..", "examples", "pkg", examplepkg.FileName(3)))
	require.NoError(t, err)
	work, root := t.TempDir(), t.TempDir()
	sh(t, work, fmt.Sprintf("bsdtar -xf %q", gen))
	sh(t, root, fmt.Sprintf("gzip -dc %q | cpio -id --quiet", filepath.Join(work, "example-vpn.pkg", "Payload")))
	sh(t, root, fmt.Sprintf("find . | LC_ALL=C sort | cpio -o -H odc --quiet | gzip -9 > %q", filepath.Join(work, "example-vpn.pkg", "Payload")))
	out := filepath.Join(t.TempDir(), "repacked.pkg")
	bsdtarXar(t, work, out, "Distribution", "example-vpn.pkg")

	want, err := Open(gen, Limits{})
	require.NoError(t, err)
	got, err := Open(out, Limits{})
	require.NoError(t, err)
	assert.Equal(t, want.Components, got.Components)
	assert.Equal(t, want.Apps, got.Apps)
	assert.True(t, got.Product)
}

// xar members in every encoding libarchive writes (its
// xar:compression option), Payload included.
func TestReadsXarMembersInEveryEncodingBsdtarWrites(t *testing.T) {
	root, work := t.TempDir(), t.TempDir()
	stageApp(t, root, "2.0", "200")
	componentDir(t, work, root, "2.0")
	needTool(t, "bsdtar", "apt-get install libarchive-tools")
	for _, c := range []string{"none", "gzip", "bzip2", "lzma", "xz"} {
		out := filepath.Join(t.TempDir(), c+".pkg")
		sh(t, work, fmt.Sprintf("bsdtar --format xar --options xar:compression=%s -cf %q PackageInfo Payload", c, out))
		p, err := Open(out, Limits{})
		require.NoError(t, err, c)
		checkExampleApp(t, p, "2.0", "200")
	}
}
