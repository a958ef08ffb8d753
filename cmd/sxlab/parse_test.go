package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The GUEST-REFERENCE.md example, tabs and all.
const extensionsSample = "3 extension(s)\n" +
	"--- com.apple.system_extension.network_extension (Go to 'System Settings > General > Login Items & Extensions > Network Extensions' to modify these system extension(s))\n" +
	"enabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n" +
	"*\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n" +
	"\t\tABCDE12345\tcom.example.vpn.tunnel (2.0/200)\tExample VPN\t[terminated waiting to uninstall on reboot]\n" +
	"\t*\tABCDE12345\tcom.example.filter (1.1/11)\tExample Filter\t[activated waiting for user]\n"

func TestParseExtensionsFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.txt")
	require.NoError(t, os.WriteFile(path, []byte(extensionsSample), 0o644))
	code, out, errs := sxlab(t, "parse", "extensions", path)
	require.Equal(t, 0, code, errs)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 3)
	assert.Equal(t, "3.0", rows[0]["short_version"])
	assert.Equal(t, "activated enabled", rows[0]["state"])
	assert.Equal(t, true, rows[0]["enabled"])
	assert.Equal(t, "terminated waiting to uninstall on reboot", rows[1]["state"])
	assert.Equal(t, "200", rows[1]["build"])
	assert.Equal(t, false, rows[2]["enabled"])
	assert.Equal(t, true, rows[2]["active"])
	assert.Equal(t, "activated waiting for user", rows[2]["state"])
}

func TestParseFromStdin(t *testing.T) {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetIn(bytes.NewBufferString("ProductName:\t\tmacOS\nProductVersion:\t\t15.6\nBuildVersion:\t\t24G84\n"))
	root.SetArgs([]string{"parse", "sw-vers", "-"})
	require.NoError(t, root.ExecuteContext(context.Background()))
	assert.JSONEq(t, `{"product_name":"macOS","product_version":"15.6","build_version":"24G84"}`, out.String())
}

func TestParseErrors(t *testing.T) {
	code, _, errs := sxlab(t, "parse", "nonsense", "-")
	assert.Equal(t, 3, code)
	assert.Contains(t, errs, "extensions, vpn-list")

	code, _, errs = sxlab(t, "parse", "extensions", filepath.Join(t.TempDir(), "missing.txt"))
	assert.Equal(t, 3, code)
	assert.Contains(t, errs, "missing.txt")
}

// One event copied out of `log show --style json`, without the array.
func TestParseLogOfASinglePrettyPrintedEvent(t *testing.T) {
	event := `{
  "eventMessage" : "client activation request for com.example.vpn.tunnel",
  "processImagePath" : "\/usr\/libexec\/sysextd",
  "processID" : 537,
  "subsystem" : "com.apple.sx",
  "category" : "XPC",
  "messageType" : "Default",
  "timestamp" : "2025-07-27 15:41:33.057177-0400"
}
`
	path := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(path, []byte(event), 0o644))
	code, out, errs := sxlab(t, "parse", "log", path)
	require.Equal(t, 0, code, errs)
	var entries []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &entries))
	require.Len(t, entries, 1)
	assert.Equal(t, "sysextd", entries[0]["process"])
	assert.Equal(t, "client activation request for com.example.vpn.tunnel", entries[0]["message"])

	// ndjson of a window with no events: only log's closing count.
	require.NoError(t, os.WriteFile(path, []byte(`{"count":0,"finished":1}`+"\n"), 0o644))
	code, out, errs = sxlab(t, "parse", "log", path)
	require.Equal(t, 0, code, errs)
	assert.JSONEq(t, "[]", out)
}
