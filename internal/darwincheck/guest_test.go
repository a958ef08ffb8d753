package darwincheck

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// guestPrograms run inside a macOS guest and are built with
// CGO_ENABLED=0; darwinOnly names a file of each that only a darwin
// build selects.
var guestPrograms = map[string]string{
	"cmd/sxlab-probe": "system_darwin.go",
	"cmd/sxlab-agent": "vsock_darwin.go",
}

// TestGuestProgramsTypeCheckWithoutCgo checks the guest programs the way
// they are built: darwin/arm64 with cgo off.
func TestGuestProgramsTypeCheckWithoutCgo(t *testing.T) {
	requireGo(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	var patterns []string
	for dir := range guestPrograms {
		patterns = append(patterns, "./"+dir+"/...")
	}
	slices.Sort(patterns)
	problems, err := CheckPureGo(t.Context(), root, patterns...)
	require.NoError(t, err)
	var b strings.Builder
	for _, p := range problems {
		b.WriteString(p.String() + "\n")
	}
	assert.Empty(t, problems, "the guest programs do not type-check for darwin/arm64 CGO_ENABLED=0:\n%s", b.String())
}

// TestChecksSeeTheGuestProgramsDarwinFiles guards against a check that
// passes because it never saw the code: both file selections (cgo on, for
// the module check, and off) include each program's darwin-only file.
func TestChecksSeeTheGuestProgramsDarwinFiles(t *testing.T) {
	requireGo(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	for _, cgo := range []bool{true, false} {
		var patterns []string
		for dir := range guestPrograms {
			patterns = append(patterns, "./"+dir)
		}
		pkgs, err := goList(t.Context(), root, cgo, patterns)
		require.NoError(t, err)
		seen := map[string][]string{}
		for _, p := range pkgs {
			if p.inMainModule() && p.ForTest == "" {
				rel, err := filepath.Rel(root, p.Dir)
				require.NoError(t, err)
				seen[filepath.ToSlash(rel)] = p.GoFiles
			}
		}
		for dir, file := range guestPrograms {
			assert.Contains(t, seen[dir], file, "cgo=%v: %s is not type-checked", cgo, filepath.Join(dir, file))
		}
	}
}
