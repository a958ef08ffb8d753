package guest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParserKinds(t *testing.T) {
	assert.Equal(t, []string{"extensions", "vpn-list", "vpn-status", "launchd", "sw-vers", "leases", "log", "pkg-info", "installer"}, ParserKinds())
	kinds := ParserKinds()
	kinds[0] = "changed"
	assert.Equal(t, "extensions", ParserKinds()[0], "callers get their own copy")
}

// TestParseRegistry runs every kind on its reference sample and checks the
// JSON the CLI would print uses the documented snake_case names.
func TestParseRegistry(t *testing.T) {
	inputs := map[string]struct {
		input string
		json  []string
	}{
		"extensions": {sample(t, "extensions_reference.txt"), []string{`"category":"com.apple.system_extension.network_extension"`, `"team_id":"ABCDE12345"`, `"bundle_id":"com.example.filter"`, `"short_version":"1.1"`, `"build":"11"`, `"transitional":false`, `"enabled":false`, `"active":true`, `"state":"activated waiting for user"`}},
		"vpn-list":   {referenceVPNList, []string{`"enabled":true`, `"status":"Disconnected"`, `"id":"3F1C2A7E-1B2C-4D5E-8F90-A1B2C3D4E5F6"`, `"provider":"com.example.vpn"`, `"name":"Example"`, `"kind":"VPN:com.example.vpn"`}},
		"vpn-status": {sample(t, "vpn_status_connected.txt"), []string{`"status":"Connected"`, `"extended":{`, `"Addresses":["100.64.0.7"]`}},
		"launchd":    {referenceLaunchd, []string{`"label":"NetworkExtension.com.example.vpn.tunnel.3.0.300"`, `"state":"running"`, `"pid":0`, `"endpoints":[{"name":"ABCDE12345.com.example.vpn.tunnel","port":"0x2ed07","active":true}]`, `"fields":{`}},
		"sw-vers":    {referenceSwVers, []string{`{"product_name":"macOS","product_version":"15.6","build_version":"24G84"}`}},
		"leases":     {referenceLease, []string{`"name":"admins-Virtual-Machine"`, `"ip_address":"192.168.64.5"`, `"hw_address":"06:e8:a3:b0:23:b4"`, `"identifier":"06:e8:a3:b0:23:b4"`, `"lease":"0x66f1a2b3"`, `"expires":1727111859`}},
		"log":        {sample(t, "log.ndjson"), []string{`"timestamp":"2025-07-27 15:41:33.057177-0400"`, `"process":"sysextd"`, `"pid":537`, `"subsystem":"com.apple.sx"`, `"category":"XPC"`, `"type":"Default"`, `"message":"client activation request for com.example.vpn.tunnel"`}},
		"pkg-info":   {referencePkgInfo, []string{`{"package_id":"com.example.vpn.pkg","version":"3.0.300","volume":"/","location":"","install_time":1753645293}`}},
		"installer":  {referenceInstaller, []string{`{"package_name":"Example VPN","base_path":"/","success":true,"errors":[]}`}},
	}
	require.Len(t, inputs, len(ParserKinds()))
	for _, kind := range ParserKinds() {
		t.Run(kind, func(t *testing.T) {
			in, ok := inputs[kind]
			require.True(t, ok)
			v, err := Parse(kind, strings.NewReader(in.input))
			require.NoError(t, err)
			out, err := json.Marshal(v)
			require.NoError(t, err)
			for _, want := range in.json {
				assert.Contains(t, string(out), want)
			}

			_, err = Parse(kind, strings.NewReader(""))
			assert.ErrorIs(t, err, ErrEmptyInput)
			_, err = Parse(kind, nil)
			assert.Error(t, err, "a nil reader is an error, not a panic")
		})
	}
}

func TestParseUnknownKind(t *testing.T) {
	_, err := Parse("plist", strings.NewReader("x"))
	require.Error(t, err)
	for _, kind := range ParserKinds() {
		assert.Contains(t, err.Error(), kind)
	}
}

func TestParseErrorMessage(t *testing.T) {
	err := &ParseError{Kind: "sw-vers", Line: 3, Expected: `"ProductVersion:"`, Got: "junk"}
	assert.Equal(t, `parse sw-vers: line 3: expected "ProductVersion:", got "junk"`, err.Error())
	empty := &ParseError{Kind: "log", Expected: "events", Err: ErrEmptyInput}
	assert.Equal(t, "parse log: empty input: expected events", empty.Error())
	assert.Equal(t, "abc", shorten("abc"))
	assert.Len(t, []rune(shorten(strings.Repeat("é", 100))), 41, "cut on a rune boundary plus the ellipsis")
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, assert.AnError }

func TestParseReadError(t *testing.T) {
	for _, kind := range ParserKinds() {
		_, err := Parse(kind, failingReader{})
		require.ErrorIs(t, err, assert.AnError, kind)
		assert.Contains(t, err.Error(), "parse "+kind+": read")
	}
}
