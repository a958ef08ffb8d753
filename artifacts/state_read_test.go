package artifacts_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/artifacts"
)

func TestReadStateReadsBothLayouts(t *testing.T) {
	write := func(dir, rel, text string) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	// This build's layout: one parsed file per snapshot.
	now := t.TempDir()
	write(now, "state/after.json", `{"taken":"2026-12-02T13:49:49Z","sw_vers":{"product_version":"15.3","build_version":"24D60"},
	  "extensions":[{"bundle_id":"com.example.vpn.tunnel","short_version":"3.0","build":"300","state":"activated enabled"}],
	  "packages":[{"package_id":"com.example.vpn.pkg","version":"3.0"}]}`)
	st, err := artifacts.ReadState(now, artifacts.AfterDir)
	require.NoError(t, err)
	assert.Equal(t, "15.3", st.SwVers.ProductVersion)
	require.Len(t, st.Extensions, 1)
	assert.Equal(t, "3.0", st.Extensions[0].ShortVersion)
	require.Len(t, st.Packages, 1)

	// Earlier builds' layout: a folder with a file per command.
	old := t.TempDir()
	write(old, "state/before/sw_vers.json", `{"product_version":"15.4","build_version":"24E248"}`)
	write(old, "state/before/systemextensionsctl-list.json", `[{"bundle_id":"com.example.vpn.tunnel","short_version":"2.0","build":"200","state":"activated enabled"}]`)
	write(old, "state/before/pkgutil-pkg-info-com.example.vpn.pkg.json", `{"package_id":"com.example.vpn.pkg","version":"2.0"}`)
	st, err = artifacts.ReadState(old, artifacts.BeforeDir)
	require.NoError(t, err)
	assert.Equal(t, "24E248", st.SwVers.BuildVersion)
	require.Len(t, st.Extensions, 1)
	assert.Equal(t, "200", st.Extensions[0].Build)
	require.Len(t, st.Packages, 1)
	assert.Equal(t, "2.0", st.Packages[0].Version)

	// Not taken, and damaged.
	_, err = artifacts.ReadState(old, artifacts.AfterDir)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	write(now, "state/before.json", `{"taken":`)
	_, err = artifacts.ReadState(now, artifacts.BeforeDir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join("state", "before.json"), "names the damaged file")
}
