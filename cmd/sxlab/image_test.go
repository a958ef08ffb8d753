package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vzFixture is a bundle shaped like a public tart macOS image's.
const vzFixture = "../../vm/vz/testdata/golden"

// copyVZFixture copies the fixture bundle to dir/name.
func copyVZFixture(t *testing.T, dir, name string) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(dst, 0o755))
	for _, f := range []string{"config.json", "disk.img", "nvram.bin"} {
		data, err := os.ReadFile(filepath.Join(vzFixture, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, f), data, 0o644))
	}
	return dst
}

func TestImageInspectPrintsTheBundle(t *testing.T) {
	code, out, errs := sxlab(t, "image", "inspect", vzFixture)
	require.Equal(t, exitOK, code, errs)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Equal(t, "darwin", got["os"])
	assert.Equal(t, "arm64", got["arch"])
	assert.EqualValues(t, 4, got["cpu_count"])
	assert.EqualValues(t, 8<<30, got["memory_size"])
	assert.Equal(t, "5e:1c:0a:3f:77:d2", got["mac_address"])
	assert.Equal(t, map[string]any{"width": 1920.0, "height": 1200.0}, got["display"])
	assert.Equal(t, true, got["has_hardware_model"])
	assert.Equal(t, true, got["has_machine_identifier"])
	assert.Equal(t, false, got["has_saved_state"])
	assert.EqualValues(t, 51, got["disk_bytes"])
}

func TestImageInspectByNameInTheStore(t *testing.T) {
	store := t.TempDir()
	copyVZFixture(t, store, "sonoma")
	code, out, errs := sxlab(t, "image", "inspect", "--store", store, "sonoma")
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, `"path": "`+filepath.Join(store, "sonoma")+`"`)
}

func TestImageInspectBrokenBundles(t *testing.T) {
	cases := map[string]struct {
		breakIt func(dir string)
		want    string
	}{
		"missing nvram.bin": {func(dir string) { require.NoError(t, os.Remove(filepath.Join(dir, "nvram.bin"))) }, "nvram.bin: missing"},
		"truncated config.json": {func(dir string) {
			require.NoError(t, os.Truncate(filepath.Join(dir, "config.json"), 120))
		}, "config.json: truncated after 120 bytes"},
		"bad base64": {func(dir string) {
			p := filepath.Join(dir, "config.json")
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, []byte(strings.Replace(string(data), `"ecid" : "YnBs`, `"ecid" : "Y!Bs`, 1)), 0o644))
		}, "config.json: field ecid: not base64"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := copyVZFixture(t, t.TempDir(), "b")
			c.breakIt(dir)
			code, out, errs := sxlab(t, "image", "inspect", dir)
			assert.Equal(t, exitUsage, code)
			assert.Empty(t, out)
			assert.Contains(t, errs, "sxlab: bundle "+dir+": "+c.want)
		})
	}
}

func TestImageList(t *testing.T) {
	store := t.TempDir()
	copyVZFixture(t, store, "sonoma")
	broken := copyVZFixture(t, store, "broken")
	require.NoError(t, os.Remove(filepath.Join(broken, "disk.img")))

	code, out, errs := sxlab(t, "image", "list", "--store", store)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "store "+store)
	assert.Regexp(t, `sonoma\s+4\s+8\.0 GiB\s+51 B\s+no\s+ok`, out)
	assert.Regexp(t, `broken\s+-.*broken: bundle .*disk.img: missing`, out)

	code, out, errs = sxlab(t, "image", "list", "--store", store, "--json")
	require.Equal(t, exitOK, code, errs)
	var got struct {
		Images []listEntry `json:"images"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Len(t, got.Images, 2)
	assert.NotEmpty(t, got.Images[0].Error)
	require.NotNil(t, got.Images[1].Inspect)
	assert.Equal(t, 4, got.Images[1].Inspect.CPUCount)

	code, out, _ = sxlab(t, "image", "list", "--store", filepath.Join(store, "empty"))
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "no images in")
}

func TestImageImportTart(t *testing.T) {
	home := t.TempDir()
	copyVZFixture(t, filepath.Join(home, "vms"), "sequoia")
	store := filepath.Join(t.TempDir(), "store")
	code, out, errs := sxlab(t, "image", "import-tart", "--tart-home", home, "--store", store, "--as", "seq", "sequoia")
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "imported tart VM sequoia as "+filepath.Join(store, "seq"))

	code, _, errs = sxlab(t, "image", "import-tart", "--tart-home", home, "--store", store, "--as", "seq", "sequoia")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "exists already")

	t.Setenv("TART_HOME", home)
	code, _, errs = sxlab(t, "image", "import-tart", "--store", store, "sequoia")
	require.Equal(t, exitOK, code, errs)
	_, err := os.Stat(filepath.Join(store, "sequoia", "nvram.bin"))
	assert.NoError(t, err)
}

func TestVZWorkerNeedsAnAppleSiliconMac(t *testing.T) {
	if runtime.GOOS == "darwin" && runtime.GOARCH == "arm64" {
		t.Skip("on an Apple Silicon Mac the worker would try to run the VM")
	}
	code, _, errs := sxlab(t, "vz-worker", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "vz needs macOS on Apple Silicon")

	_, out, _ := sxlab(t, "--help")
	assert.NotContains(t, out, "vz-worker", "the worker command is hidden")
	assert.Contains(t, out, "image")
}

// The entitlements file scripts/sign.sh signs with must be a plist that
// grants com.apple.security.virtualization.
func TestEntitlementsFileGrantsVirtualization(t *testing.T) {
	data, err := os.ReadFile("../../sxlab.entitlements")
	require.NoError(t, err)
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	var keys []string
	granted := map[string]bool{}
	var lastKey string
	var inKey bool
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch e := tok.(type) {
		case xml.StartElement:
			inKey = e.Name.Local == "key"
			if e.Name.Local == "true" && lastKey != "" {
				granted[lastKey] = true
			}
		case xml.CharData:
			if inKey {
				lastKey = strings.TrimSpace(string(e))
				keys = append(keys, lastKey)
			}
		case xml.EndElement:
			inKey = false
		}
	}
	assert.Equal(t, []string{"com.apple.security.virtualization"}, keys)
	assert.True(t, granted["com.apple.security.virtualization"])
}
