package macos

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"howett.net/plist"

	examplepkg "github.com/sxlab/sxlab/examples/pkg"
)

// demoAppFiles is "Example VPN.app" at version v (as "4.0", build "400"),
// with an arm64 Mach-O for the app and the extension made by the demo's
// generator, by path below the app's parent folder.
func demoAppFiles(t *testing.T, short, build string, extUUID [16]byte) map[string][]byte {
	t.Helper()
	info := func(id, exe, typ string, ne map[string]any) []byte {
		d := map[string]any{"CFBundleIdentifier": id, "CFBundleExecutable": exe, "CFBundlePackageType": typ,
			"CFBundleShortVersionString": short, "CFBundleVersion": build, "LSMinimumSystemVersion": "13.0"}
		if ne != nil {
			d["NetworkExtension"] = ne
		}
		b, err := plist.Marshal(d, plist.XMLFormat)
		require.NoError(t, err)
		return b
	}
	appInfo := info("com.example.vpn", "Example VPN", "APPL", nil)
	extInfo := info(extBundle, extBundle, "SYSX", map[string]any{
		"NEMachServiceName": "ABCDE12345.com.example.vpn.tunnel.4.0",
		"NEProviderClasses": map[string]string{"com.apple.networkextension.packet-tunnel": "Tunnel.Provider"},
	})
	appExe, err := examplepkg.MachO(examplepkg.ARM64, [16]byte{1, 2, 3}, 13<<16, "app", examplepkg.Signing{Identifier: "com.example.vpn", TeamID: "ABCDE12345", InfoPlist: appInfo})
	require.NoError(t, err)
	extExe, err := examplepkg.MachO(examplepkg.ARM64, extUUID, 13<<16, "ext", examplepkg.Signing{Identifier: extBundle, TeamID: "ABCDE12345", InfoPlist: extInfo})
	require.NoError(t, err)
	const ext = "Example VPN.app/Contents/Library/SystemExtensions/com.example.vpn.tunnel.systemextension/Contents/"
	return map[string][]byte{
		"Example VPN.app/Contents/Info.plist":        appInfo,
		"Example VPN.app/Contents/MacOS/Example VPN": appExe,
		ext + "Info.plist":                           extInfo,
		ext + "MacOS/" + extBundle:                   extExe,
	}
}

var zipUUID = [16]byte{0x6b, 0x16, 0xdb, 0x12, 0xdd, 0xbb, 0x5f, 0xb8, 0xa5, 0x02, 0x46, 0x8d, 0x3a, 0xbd, 0x9f, 0x18}

const zipUUIDText = "6B16DB12-DDBB-5FB8-A502-468D3ABD9F18"

// TestDittoInstallsAZipOfTheApp: `ditto -x -k X.zip /Applications`, the
// line the install step sends for kind zip, lays the app down and the
// model knows it: the extension activates at the zip's version with its
// Mach service.
func TestDittoInstallsAZipOfTheApp(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range demoAppFiles(t, "4.0", "400", zipUUID) {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())

	s := newSimMac(t)
	s.put("/tmp/sxlab/example-vpn-4.zip", buf.Bytes())
	r := s.sudo("ditto -x -k /tmp/sxlab/example-vpn-4.zip /Applications")
	require.Equal(t, 0, r.code, r.err)
	assert.True(t, s.m.exists(appPath+"/Contents/Info.plist"))
	s.launch()
	s.approve()
	assert.Equal(t, []string{"4.0/400 activated enabled"}, s.extStates())
	assert.Equal(t, "xpc: connected to ABCDE12345.com.example.vpn.tunnel.4.0 (extension 4.0/400)\n", s.checkXPC().out)

	// A file that is not a zip is refused in ditto's words.
	s.put("/tmp/sxlab/bad.zip", []byte("not a zip"))
	r = s.sudo("ditto -x -k /tmp/sxlab/bad.zip /Applications")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "ditto: Couldn't read PKZip signature\n", r.err)
}

// TestHdiutilAndDittoInstallADiskImage: the three lines the install step
// sends for kind dmg (attach read-only at a mount point, ditto the app
// out, detach) install the image's app. The image is an ISO 9660 + HFS
// hybrid from genisoimage, read through 7z as the packages reader does
// off macOS.
func TestHdiutilAndDittoInstallADiskImage(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("on macOS the reader attaches images with the real hdiutil, which needs a UDIF image")
	}
	gi, err := exec.LookPath("genisoimage")
	if err != nil {
		t.Skip("genisoimage not installed (apt-get install genisoimage)")
	}
	if _, err := exec.LookPath("7z"); err != nil {
		t.Skip("7z not installed (apt-get install p7zip-full)")
	}
	root := t.TempDir()
	for name, data := range demoAppFiles(t, "4.0", "400", zipUUID) {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o755))
	}
	img := filepath.Join(t.TempDir(), "Example VPN.dmg")
	out, err := exec.Command(gi, "-quiet", "-V", "Example VPN", "-hfs", "-r", "-J", "-o", img, root).CombinedOutput()
	require.NoError(t, err, string(out))
	data, err := os.ReadFile(img)
	require.NoError(t, err)

	s := newSimMac(t)
	s.put("/tmp/sxlab/example-vpn-4.dmg", data)
	r := s.run("hdiutil attach -nobrowse -readonly -mountpoint /tmp/sxlab/mnt-4 /tmp/sxlab/example-vpn-4.dmg")
	require.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "\t/tmp/sxlab/mnt-4\n")
	assert.True(t, s.m.exists("/tmp/sxlab/mnt-4/Example VPN.app/Contents/Info.plist"))
	s.ok(true, `ditto "/tmp/sxlab/mnt-4/Example VPN.app" "`+appPath+`"`)
	r = s.run("hdiutil detach /tmp/sxlab/mnt-4")
	require.Equal(t, 0, r.code, r.err)
	assert.Regexp(t, `^"disk\d+" ejected\.\n$`, r.out)
	assert.False(t, s.m.exists("/tmp/sxlab/mnt-4/Example VPN.app"))

	s.launch()
	s.approve()
	assert.Equal(t, []string{"4.0/400 activated enabled"}, s.extStates())
	staged, err := fs.Glob(s.fs.IOFS(), "Library/SystemExtensions/*/com.example.vpn.tunnel.systemextension/Contents/MacOS/com.example.vpn.tunnel")
	require.NoError(t, err)
	require.Len(t, staged, 1)
	exe, err := s.fs.ReadFile(staged[0])
	require.NoError(t, err)
	assert.Contains(t, string(exe), fmt.Sprintf("LC_UUID arm64 %s\n", zipUUIDText), "the LC_UUID of the image's Mach-O")

	r = s.run("hdiutil detach /tmp/sxlab/mnt-4")
	assert.Equal(t, 1, r.code, "detached already")
	s.put("/tmp/sxlab/bad.dmg", []byte("not a disk image"))
	r = s.run("hdiutil attach -nobrowse -readonly -mountpoint /tmp/sxlab/mnt-5 /tmp/sxlab/bad.dmg")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "hdiutil: attach failed - image not recognized\n", r.err)
}
