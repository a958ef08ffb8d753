package macos

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/packages"
)

// TestInstallerInstallsRealPackage installs the demo's real .pkg and
// checks that what the guest then shows comes from the package: the
// receipt from PackageInfo, versions and Mach service from the
// Info.plists, the staged copy's LC_UUID from the Mach-O.
func TestInstallerInstallsRealPackage(t *testing.T) {
	want, err := packages.Open(filepath.Join("..", "..", "..", "examples", "pkg", "example-vpn-3.pkg"), packages.Limits{})
	require.NoError(t, err)
	id, err := packages.IdentityOf(want, "com.example.vpn", extBundle)
	require.NoError(t, err)

	s := newSimMac(t)
	out := s.installPkg(3)
	assert.Equal(t, "installer: Package name is Example VPN\ninstaller: Installing at base path /\ninstaller: The install was successful.\n", out)

	info := s.ok(false, "pkgutil --pkg-info "+want.Components[0].ID)
	assert.Contains(t, info, "package-id: com.example.vpn.pkg\nversion: 3.0\nvolume: /\nlocation: Applications\ninstall-time: ")
	files := s.ok(false, "pkgutil --files com.example.vpn.pkg")
	assert.Contains(t, files, "Example VPN.app/Contents/Library/SystemExtensions/com.example.vpn.tunnel.systemextension/Contents/MacOS/com.example.vpn.tunnel\n")

	plist, err := s.fs.ReadFile(appPath + "/Contents/Library/SystemExtensions/com.example.vpn.tunnel.systemextension/Contents/Info.plist")
	require.NoError(t, err)
	assert.Contains(t, string(plist), "<string>"+id.Extension.MachService+"</string>")

	s.launch()
	s.approve()
	exts := s.extensions()
	require.Len(t, exts, 1)
	assert.Equal(t, "3.0", exts[0].ShortVersion)
	assert.Equal(t, "300", exts[0].Build)
	assert.Equal(t, "ABCDE12345", exts[0].TeamID)
	assert.Equal(t, "activated enabled", exts[0].State)
	assert.Equal(t, 0, s.checkXPC().code, "the app reaches the Mach service its package names")

	// The staged copy's executable carries the LC_UUIDs read from the
	// package's Mach-O.
	staged, err := fs.Glob(s.fs.IOFS(), "Library/SystemExtensions/*/com.example.vpn.tunnel.systemextension/Contents/MacOS/com.example.vpn.tunnel")
	require.NoError(t, err)
	require.Len(t, staged, 1)
	exe, err := s.fs.ReadFile(staged[0])
	require.NoError(t, err)
	assert.Contains(t, string(exe), "LC_UUID arm64 "+id.Extension.UUIDs["arm64"]+"\n")
	assert.Contains(t, string(exe), "LC_UUID x86_64 "+id.Extension.UUIDs["x86_64"]+"\n")
}

// TestInstallerUpgradesToPackageFive: package 5 keeps package 3's
// extension executable under version 5.0/500; the guest shows the new
// version, and preflight's TN3178 hazard is what the LC_UUIDs say.
func TestInstallerUpgradesToPackageFive(t *testing.T) {
	s := newSimMac(t)
	s.installPkg(3)
	s.launch()
	s.approve()
	s.quitApp()
	out := s.installPkg(5)
	assert.Contains(t, out, "installer: Upgrading at base path /\ninstaller: The upgrade was successful.\n")
	s.launch()
	assert.Equal(t, []string{"5.0/500 activated enabled"}, s.extStates()[:1])
	assert.Contains(t, s.ok(false, "pkgutil --pkg-info com.example.vpn.pkg"), "version: 5.0\n")
}

// TestInstallerRefusesWhatTheReaderRejects: a truncated package, a file
// that is not a xar archive, and a .zip passed to installer fail as
// macOS's installer does (one "Error -" line, exit 1), with the reader's
// reason in install.log; nothing is installed.
func TestInstallerRefusesWhatTheReaderRejects(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "pkg", "example-vpn-3.pkg"))
	require.NoError(t, err)
	s := newSimMac(t)
	cases := map[string][]byte{
		"/Users/admin/truncated.pkg": good[:len(good)/2],
		"/Users/admin/not-xar.pkg":   []byte("ustar\x00 this is a tar, not a flat package"),
		"/Users/admin/empty.pkg":     nil,
	}
	for gp, data := range cases {
		s.put(gp, data)
		r := s.sudo("installer -pkg " + gp + " -target /")
		assert.Equal(t, 1, r.code, gp)
		assert.Equal(t, "installer: Error - the package path specified was invalid: '"+gp+"'.\n", r.err, gp)
		assert.Empty(t, r.out, gp)
	}
	log, err := s.fs.ReadFile("/var/log/install.log")
	require.NoError(t, err)
	assert.Contains(t, string(log), "/Users/admin/truncated.pkg could not be read: /Users/admin/truncated.pkg: ")
	assert.NotContains(t, string(log), os.TempDir(), "host paths stay out of the guest")
	assert.False(t, s.m.exists(appPath), "nothing was installed")
	r := s.run("pkgutil --pkg-info com.example.vpn.pkg")
	assert.Equal(t, 1, r.code)
}

// Macs sharing a package cache install what their own package holds: a
// second Mac installing the same bytes gets the same result, and one
// given other bytes at the same path (package 5 where package 3 was)
// installs those, not what the cache kept.
func TestPackageCacheInstallsWhatEachMacWasGiven(t *testing.T) {
	cache := NewPackageCache()
	shared := func(c *Config) { c.Packages = cache }
	const gp = "/Users/admin/upgrade.pkg"
	install := func(n int) *simMac {
		s := newSimMac(t, shared)
		data, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "pkg", "example-vpn-"+string(rune('0'+n))+".pkg"))
		require.NoError(t, err)
		require.NoError(t, s.fs.WriteFile(gp, data, 0o644))
		assert.Contains(t, s.installPath(gp), "installer: The install was successful.\n")
		return s
	}
	for _, n := range []int{3, 3, 5, 3} {
		s := install(n)
		assert.Contains(t, s.ok(false, "pkgutil --pkg-info com.example.vpn.pkg"), "version: "+string(rune('0'+n))+".0\n", "package %d", n)
		s.launch()
		s.approve()
		assert.Equal(t, []string{string(rune('0'+n)) + ".0/" + string(rune('0'+n)) + "00 activated enabled"}, s.extStates(), "package %d", n)
	}
	assert.Len(t, cache.m, 2, "one entry per package read")
}
