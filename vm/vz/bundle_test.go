package vz

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fixture = "testdata/golden"

// copyBundle copies the fixture bundle into a temporary folder the test
// may break, and applies edit to its config.json text.
func copyBundle(t *testing.T, edit func(config string) string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "golden")
	require.NoError(t, os.Mkdir(dir, 0o755))
	for _, f := range []string{ConfigFile, DiskFile, NVRAMFile} {
		data, err := os.ReadFile(filepath.Join(fixture, f))
		require.NoError(t, err)
		if f == ConfigFile && edit != nil {
			data = []byte(edit(string(data)))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	return dir
}

func TestInspectTartBundle(t *testing.T) {
	in, err := Inspect(fixture)
	require.NoError(t, err)
	assert.Equal(t, Inspection{
		Path: fixture, OS: "darwin", Arch: "arm64", CPUCount: 4, MemorySize: 8 << 30,
		MACAddress: "5e:1c:0a:3f:77:d2", Display: Display{Width: 1920, Height: 1200}, DiskFormat: "raw",
		HasHardwareModel: true, HasMachineIdentifier: true, HasSavedState: false, DiskBytes: 51,
	}, in)

	out, err := json.Marshal(in)
	require.NoError(t, err)
	for _, key := range []string{`"os"`, `"arch"`, `"cpu_count"`, `"memory_size"`, `"mac_address"`, `"display":{"width":1920,"height":1200}`,
		`"has_hardware_model":true`, `"has_machine_identifier":true`, `"has_saved_state":false`, `"disk_bytes":51`} {
		assert.Contains(t, string(out), key)
	}
}

func TestLoadBundleDecodesDataRepresentations(t *testing.T) {
	b, err := LoadBundle(fixture)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b.Config.HardwareModel), "bplist00"), "hardwareModel is base64 of a binary plist")
	assert.True(t, strings.HasPrefix(string(b.Config.MachineIdentifier), "bplist00"))
	require.NoError(t, b.CheckBootable())
}

func TestSavedStateIsNoticed(t *testing.T) {
	dir := copyBundle(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(dir, StateFile), []byte("state"), 0o644))
	in, err := Inspect(dir)
	require.NoError(t, err)
	assert.True(t, in.HasSavedState)
}

// Each broken bundle gives its own error, naming the file and the field.
func TestBrokenBundles(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		is     error
		want   []string
	}{
		{"missing nvram.bin", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, NVRAMFile)))
		}, ErrMissingFile, []string{"nvram.bin: missing", "auxiliary storage"}},
		{"missing disk.img", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, DiskFile)))
		}, ErrMissingFile, []string{"disk.img: missing"}},
		{"truncated config.json", func(t *testing.T, dir string) {
			p := filepath.Join(dir, ConfigFile)
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, data[:200], 0o644))
		}, ErrTruncated, []string{"config.json: truncated after 200 bytes"}},
		{"empty config.json", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte("   "), 0o644))
		}, ErrTruncated, []string{"config.json: truncated: the file is empty"}},
		{"config.json not JSON", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte("{\n  \"version\" : 1,\n  cpuCount: 2\n}"), 0o644))
		}, ErrNotJSON, []string{"config.json: not JSON", "line 3"}},
		{"bad base64 hardwareModel", func(t *testing.T, dir string) {
			editConfig(t, dir, func(s string) string {
				return strings.Replace(s, `"hardwareModel" : "YnBsaXN0`, `"hardwareModel" : "Yn*laXN0`, 1)
			})
		}, ErrBadBase64, []string{"config.json: field hardwareModel: not base64"}},
		{"bad base64 ecid", func(t *testing.T, dir string) {
			editConfig(t, dir, func(s string) string { return strings.Replace(s, `ZWNpZA==`, `ZWNpZA=`, 1) })
		}, ErrBadBase64, []string{"field ecid: not base64"}},
		{"missing cpuCount", func(t *testing.T, dir string) {
			editConfig(t, dir, func(s string) string { return strings.Replace(s, `"cpuCount" : 4,`, ``, 1) })
		}, ErrMissingField, []string{"config.json: field cpuCount: missing"}},
		{"memorySize as a string", func(t *testing.T, dir string) {
			editConfig(t, dir, func(s string) string {
				return strings.Replace(s, `"memorySize" : 8589934592`, `"memorySize" : "8 GB"`, 1)
			})
		}, ErrBadValue, []string{"field memorySize", "want a whole number", `"8 GB"`}},
		{"cpuCount below its minimum", func(t *testing.T, dir string) {
			editConfig(t, dir, func(s string) string { return strings.Replace(s, `"cpuCount" : 4`, `"cpuCount" : 2`, 1) })
		}, ErrBadValue, []string{"field cpuCount: bad value: 2 is below cpuCountMin 4"}},
		{"multicast MAC", func(t *testing.T, dir string) {
			editConfig(t, dir, func(s string) string { return strings.Replace(s, `5e:1c`, `5f:1c`, 1) })
		}, ErrBadValue, []string{"field macAddress", "multicast"}},
		{"not a MAC", func(t *testing.T, dir string) {
			editConfig(t, dir, func(s string) string { return strings.Replace(s, `5e:1c:0a:3f:77:d2`, `5e:1c:0a`, 1) })
		}, ErrBadValue, []string{"field macAddress", "not a MAC address"}},
		{"version 2", func(t *testing.T, dir string) {
			editConfig(t, dir, func(s string) string { return strings.Replace(s, `"version" : 1`, `"version" : 2`, 1) })
		}, ErrBadValue, []string{"field version"}},
		{"bundle is a file", func(t *testing.T, dir string) {
			require.NoError(t, os.RemoveAll(dir))
			require.NoError(t, os.WriteFile(dir, []byte("x"), 0o644))
		}, ErrBadValue, []string{"not a folder"}},
	}
	seen := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyBundle(t, nil)
			c.break_(t, dir)
			_, err := Inspect(dir)
			require.Error(t, err)
			assert.ErrorIs(t, err, c.is)
			var be *BundleError
			require.ErrorAs(t, err, &be)
			assert.Equal(t, dir, be.Bundle)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "bundle "+dir+": "), msg)
			for _, w := range c.want {
				assert.Contains(t, msg, w)
			}
			other, dup := seen[strings.TrimPrefix(msg, "bundle "+dir)]
			assert.False(t, dup, "same message as %s", other)
			seen[strings.TrimPrefix(msg, "bundle "+dir)] = c.name
		})
	}
}

func editConfig(t *testing.T, dir string, edit func(string) string) {
	t.Helper()
	p := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	changed := edit(string(data))
	require.NotEqual(t, string(data), changed, "the edit must change config.json")
	require.NoError(t, os.WriteFile(p, []byte(changed), 0o644))
}

// tart treats os, arch, display and diskFormat as optional, and so does
// sxlab; a bundle without hardwareModel loads but cannot boot.
func TestOptionalKeysAndBootability(t *testing.T) {
	dir := copyBundle(t, func(s string) string {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(s), &m))
		for _, k := range []string{"os", "arch", "display", "diskFormat", "hardwareModel"} {
			delete(m, k)
		}
		out, err := json.Marshal(m)
		require.NoError(t, err)
		return string(out)
	})
	in, err := Inspect(dir)
	require.NoError(t, err)
	assert.Equal(t, "darwin", in.OS)
	assert.Equal(t, "arm64", in.Arch)
	assert.Equal(t, Display{Width: 1024, Height: 768}, in.Display)
	assert.Equal(t, "raw", in.DiskFormat)
	assert.False(t, in.HasHardwareModel)
	assert.True(t, in.HasMachineIdentifier)
	assert.Contains(t, in.Unbootable, "field hardwareModel: missing")

	linux := copyBundle(t, func(s string) string { return strings.Replace(s, `"os" : "darwin"`, `"os" : "linux"`, 1) })
	b, err := LoadBundle(linux)
	require.NoError(t, err)
	err = b.CheckBootable()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `field os: bad value: "linux": sxlab runs macOS guests only`)
}

func TestWithMACKeepsEveryOtherKey(t *testing.T) {
	b, err := LoadBundle(fixture)
	require.NoError(t, err)
	out, err := b.Config.WithMAC("6a:00:00:00:00:01")
	require.NoError(t, err)
	c, err := ParseConfig(out)
	require.NoError(t, err)
	assert.Equal(t, "6a:00:00:00:00:01", c.MACAddress)
	assert.Equal(t, b.Config.HardwareModel, c.HardwareModel)
	assert.Equal(t, b.Config.MachineIdentifier, c.MachineIdentifier)
	assert.Equal(t, b.Config.Display, c.Display)
	assert.Contains(t, string(out), `"sync": "full"`, "keys sxlab does not read survive")
}

func TestBundleErrorUnwraps(t *testing.T) {
	err := error(&BundleError{Bundle: "b", File: ConfigFile, Field: "ecid", Err: ErrBadBase64})
	assert.True(t, errors.Is(err, ErrBadBase64))
	assert.Equal(t, "bundle b: config.json: field ecid: not base64", err.Error())
}
