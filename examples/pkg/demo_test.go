package examplepkg_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	examplepkg "github.com/sxlab/sxlab/examples/pkg"
	"github.com/sxlab/sxlab/packages"
)

func TestCommittedPackagesEqualAFreshGeneration(t *testing.T) {
	all, err := examplepkg.All()
	require.NoError(t, err)
	require.Len(t, all, 5)
	for name, want := range all {
		got, err := os.ReadFile(name)
		require.NoError(t, err, "run `go generate ./examples/...`")
		assert.True(t, bytes.Equal(want, got), "%s differs from a fresh generation: run `go generate ./examples/...` (if only the Go toolchain changed, its deflate output may have)", name)
		assert.Less(t, len(got), 64<<10, "%s should stay small", name)
	}
	again, err := examplepkg.All()
	require.NoError(t, err)
	assert.Equal(t, all, again, "generation is deterministic")
}

func TestPackagesMirrorTheSimulatedManifests(t *testing.T) {
	for _, b := range examplepkg.Builds {
		p, err := packages.Open(examplepkg.FileName(b.N), packages.Limits{})
		require.NoError(t, err)
		app, err := p.App(examplepkg.AppID)
		require.NoError(t, err)
		require.Len(t, app.Extensions, 1)
		ext := app.Extensions[0]
		assert.Equal(t, b.Short, ext.ShortVersion)
		assert.Equal(t, b.Build, ext.Version)
		assert.Equal(t, b.MachService, ext.NEMachServiceName)
		assert.Equal(t, []string{"arm64", "x86_64"}, ext.Executable.Arches())
		if b.ExtFrom == 0 {
			for arch, u := range b.ExtUUIDs {
				assert.Equal(t, u, ext.Executable.Slice(arch).UUID, "version %d %s", b.N, arch)
			}
			// The simulated manifest of the same version agrees.
			sim, err := os.ReadFile(filepath.Join("..", "..", "vm", "sim", "macos", "testdata", "simpkg", strings.TrimSuffix(examplepkg.FileName(b.N), ".pkg")+".simpkg.json"))
			require.NoError(t, err)
			for _, u := range b.ExtUUIDs {
				assert.Contains(t, string(sim), u)
			}
			assert.Contains(t, string(sim), `"mach_service": "`+b.MachService+`"`)
		}
		sig := ext.Executable.Slice("arm64").Signature
		require.NotNil(t, sig)
		assert.Equal(t, examplepkg.TeamID, sig.TeamID)
		assert.Equal(t, examplepkg.ExtID, sig.Identifier)
	}
	p3, err := packages.Open(examplepkg.FileName(3), packages.Limits{})
	require.NoError(t, err)
	p5, err := packages.Open(examplepkg.FileName(5), packages.Limits{})
	require.NoError(t, err)
	assert.Equal(t, p3.Apps[0].Extensions[0].Executable.Slices, p5.Apps[0].Extensions[0].Executable.Slices,
		"version 5 ships version 3's extension executable")
	assert.NotEqual(t, p3.Apps[0].Executable.Slices[0].UUID, p5.Apps[0].Executable.Slices[0].UUID)
}

// Tools we did not write accept the generated files: libarchive lists
// the xar, GNU cpio the payload.
func TestOtherToolsReadTheGeneratedPackages(t *testing.T) {
	needTools(t, "bsdtar", "cpio")
	dir := t.TempDir()
	pkg, err := filepath.Abs(examplepkg.FileName(1))
	require.NoError(t, err)
	out, err := exec.Command("bsdtar", "-xf", pkg, "-C", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	c := exec.Command("sh", "-c", "gzip -dc example-vpn.pkg/Payload | cpio -it --quiet")
	c.Dir = dir
	out, err = c.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "./Example VPN.app/Contents/Library/SystemExtensions/com.example.vpn.tunnel.systemextension/Contents/MacOS/com.example.vpn.tunnel")
}

// LLVM's Mach-O reader reads the generated executables as meant: both
// slices, each with the LC_UUID of the simulated manifest, minos 13.0
// and a code signature.
func TestLLVMReadsTheGeneratedExecutables(t *testing.T) {
	objdump, err := exec.LookPath("llvm-objdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("llvm-objdump is missing in CI (apt-get install llvm)")
		}
		t.Skip("llvm-objdump is missing (apt-get install llvm); skipped")
	}
	dir := t.TempDir()
	// The executable's bytes come out of the committed package by
	// libarchive and GNU cpio, not by our reader.
	needTools(t, "bsdtar", "cpio")
	pkg, err := filepath.Abs(examplepkg.FileName(4))
	require.NoError(t, err)
	c := exec.Command("sh", "-c", "bsdtar -xf \""+pkg+"\" && gzip -dc example-vpn.pkg/Payload | cpio -id --quiet")
	c.Dir = dir
	out, err := c.CombinedOutput()
	require.NoError(t, err, "%s", out)
	exe := filepath.Join(dir, "Example VPN.app/Contents/Library/SystemExtensions/com.example.vpn.tunnel.systemextension/Contents/MacOS/com.example.vpn.tunnel")
	want := examplepkg.Builds[3].ExtUUIDs // version 4's, as its simulated manifest has them
	for _, arch := range []string{"arm64", "x86_64"} {
		out, err := exec.Command(objdump, "--macho", "--private-headers", "--arch="+arch, exe).CombinedOutput()
		require.NoError(t, err, "%s", out)
		text := string(out)
		assert.Contains(t, text, "uuid "+want[arch], arch)
		assert.Contains(t, text, "minos 13.0", arch)
		assert.Contains(t, text, "cmd LC_CODE_SIGNATURE", arch)
		assert.NotContains(t, text, "truncated or malformed", arch)
	}
}

// needTools skips a test without its outside tools, or fails it in CI
// (CI=true), where .ci/run installs them.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing in CI", tool)
			}
			t.Skipf("%s is missing; skipped", tool)
		}
	}
}
