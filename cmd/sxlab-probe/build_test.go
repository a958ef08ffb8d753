package main

import (
	"debug/macho"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guestbin"
)

// TestCrossBuildIsAnArm64MachO is issue 11's CI requirement: the probe
// builds for darwin/arm64 without cgo, and the result is what a Mac
// would execute. It builds with the flags the lab ships it with
// (guestbin.BuildFlags; guestbin's tests check the signature and the
// pclntab of that build). It reuses the build cache, so it costs a link.
func TestCrossBuildIsAnArm64MachO(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the probe")
	}
	goCmd, err := exec.LookPath("go")
	require.NoError(t, err, "the go command builds the probe")
	out := filepath.Join(t.TempDir(), "sxlab-probe")
	args := append(append([]string{"build"}, guestbin.BuildFlags()...), "-o", out, ".")
	cmd := exec.CommandContext(t.Context(), goCmd, args...)
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)

	f, err := macho.Open(out)
	require.NoError(t, err, "the probe must be a Mach-O file")
	defer f.Close()
	assert.Equal(t, macho.CpuArm64, f.Cpu)
	assert.Equal(t, macho.TypeExec, f.Type)
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Contains(t, libs, "/usr/lib/libSystem.B.dylib", "purego's fakecgo links libSystem")
}
