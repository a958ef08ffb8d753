package guest

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const referencePkgInfo = "package-id: com.example.vpn.pkg\nversion: 3.0.300\nvolume: /\nlocation: \ninstall-time: 1753645293\n"

func TestParsePkgInfo(t *testing.T) {
	want := PkgInfo{PackageID: "com.example.vpn.pkg", Version: "3.0.300", Volume: "/", InstallTime: 1753645293}
	tests := []struct {
		name  string
		input string
		want  PkgInfo
	}{
		{"reference", referencePkgInfo, want},
		{"CRLF", crlf(referencePkgInfo), want},
		{"tabs and a location", strings.ReplaceAll(strings.Replace(referencePkgInfo, "location: ", "location: Applications", 1), ": ", ":\t"), PkgInfo{PackageID: want.PackageID, Version: want.Version, Volume: want.Volume, Location: "Applications", InstallTime: want.InstallTime}},
		{"garbage time and trailing noise", strings.Replace(referencePkgInfo, "1753645293", "soon", 1) + "logout\n", PkgInfo{PackageID: want.PackageID, Version: want.Version, Volume: want.Volume}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePkgInfo(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParsePkgInfoErrors(t *testing.T) {
	_, err := ParsePkgInfo(strings.NewReader(""))
	assert.True(t, errors.Is(err, ErrEmptyInput))

	_, err = ParsePkgInfo(strings.NewReader("No receipt for 'com.example.vpn.pkg' found at '/'.\n"))
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 1, pe.Line)
	assert.Contains(t, err.Error(), "package-id:")
}

const referenceInstaller = "installer: Package name is Example VPN\ninstaller: Installing at base path /\ninstaller: The install was successful.\n"

func TestParseInstaller(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  InstallerResult
	}{
		{"reference", referenceInstaller, InstallerResult{PackageName: "Example VPN", BasePath: "/", Success: true, Errors: []string{}}},
		{"CRLF", crlf(referenceInstaller), InstallerResult{PackageName: "Example VPN", BasePath: "/", Success: true, Errors: []string{}}},
		{"upgrade", "installer: Package name is Example VPN\ninstaller: Upgrading at base path /\ninstaller: The upgrade was successful.\n", InstallerResult{PackageName: "Example VPN", BasePath: "/", Success: true, Errors: []string{}}},
		{"failure", "installer: Package name is Example VPN\ninstaller: Installing at base path /\ninstaller: Error - The Installer encountered an error that caused the installation to fail. Contact the software manufacturer for assistance.\ninstaller: The install failed. (The Installer encountered an error that caused the installation to fail. Contact the software manufacturer for assistance. An error occurred while running scripts from the package “example.pkg”.)\n",
			InstallerResult{PackageName: "Example VPN", BasePath: "/", Errors: []string{
				"The Installer encountered an error that caused the installation to fail. Contact the software manufacturer for assistance.",
				"The install failed. (The Installer encountered an error that caused the installation to fail. Contact the software manufacturer for assistance. An error occurred while running scripts from the package “example.pkg”.)",
			}}},
		{"bad path", "installer: Error - the package path specified was invalid: '/tmp/missing.pkg'.\n", InstallerResult{Errors: []string{"the package path specified was invalid: '/tmp/missing.pkg'."}}},
		{"script output and progress between lines", "preinstall: stopping VPN\ninstaller: Package name is Example VPN\ninstaller:PHASE:Preparing for installation…\ninstaller:%12.5\ninstaller: Installing at base path /\npostinstall: spctl -avvv ok\ninstaller: The install was successful.\n", InstallerResult{PackageName: "Example VPN", BasePath: "/", Success: true, Errors: []string{}}},
		{"no verdict", "installer: Package name is Example VPN\n", InstallerResult{PackageName: "Example VPN", Errors: []string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInstaller(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseInstallerErrors(t *testing.T) {
	_, err := ParseInstaller(strings.NewReader("\n"))
	assert.True(t, errors.Is(err, ErrEmptyInput))

	_, err = ParseInstaller(strings.NewReader("sudo: a password is required\n"))
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 1, pe.Line)
	assert.Contains(t, err.Error(), "installer:")
}

func FuzzPkgInfo(f *testing.F) {
	for _, seed := range []string{referencePkgInfo, "package-id:", "install-time: -1\npackage-id: x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		info, err := ParsePkgInfo(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotEmpty(t, info.PackageID)
	})
}

func FuzzInstaller(f *testing.F) {
	for _, seed := range []string{referenceInstaller, "installer: Error -", "installer:installer: The install was successful.\ninstaller: Error:"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		res, err := ParseInstaller(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotNil(t, res.Errors)
		if res.Success {
			require.Empty(t, res.Errors)
		}
	})
}
