package guest

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const referenceVPNList = "Available network connection services in the current set (*=enabled):\n" +
	`* (Disconnected)   3F1C2A7E-1B2C-4D5E-8F90-A1B2C3D4E5F6 VPN (com.example.vpn) "Example"          [VPN:com.example.vpn]` + "\n"

func TestParseVPNList(t *testing.T) {
	example := VPNService{Enabled: true, Status: "Disconnected", ID: "3F1C2A7E-1B2C-4D5E-8F90-A1B2C3D4E5F6", Provider: "com.example.vpn", Name: "Example", Kind: "VPN:com.example.vpn"}
	tests := []struct {
		name  string
		input string
		want  []VPNService
	}{
		{"reference", referenceVPNList, []VPNService{example}},
		{"CRLF", crlf(referenceVPNList), []VPNService{example}},
		{"tabs for spaces", strings.ReplaceAll(referenceVPNList, "   ", "\t"), []VPNService{example}},
		{"no header", strings.SplitN(referenceVPNList, "\n", 2)[1], []VPNService{example}},
		{"trailing garbage", referenceVPNList + "scutil: something odd\n(x)\n", []VPNService{example}},
		{"header only", "Available network connection services in the current set (*=enabled):\n", []VPNService{}},
		{"several, spaces and quotes in names", sample(t, "vpn_list.txt"), []VPNService{
			example,
			{Enabled: true, Status: "Connected", ID: "11111111-2222-4333-8444-555555555555", Provider: "com.example.other.vpn", Name: "Work VPN (Berlin)", Kind: "VPN:com.example.other.vpn"},
			{Enabled: false, Status: "Disconnected", ID: "A0B1C2D3-E4F5-4A6B-8C7D-8E9F0A1B2C3D", Name: `Old "legacy" L2TP`, Kind: "PPP:L2TP"},
			{Enabled: true, Status: "Connecting", ID: "0F0E0D0C-0B0A-4909-8807-060504030201", Name: "Office IKE", Kind: "IPSec"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVPNList(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseVPNListErrors(t *testing.T) {
	_, err := ParseVPNList(strings.NewReader(""))
	require.ErrorIs(t, err, ErrEmptyInput)

	_, err = ParseVPNList(strings.NewReader("\nsome other tool's output\n"))
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 2, pe.Line)
	assert.Contains(t, err.Error(), "Available network connection services")
}

func TestParseVPNStatus(t *testing.T) {
	got, err := ParseVPNStatus(strings.NewReader(sample(t, "vpn_status_connected.txt")))
	require.NoError(t, err)
	assert.Equal(t, "Connected", got.Status)
	want := map[string]any{
		"IPv4": map[string]any{
			"Addresses":     []any{"100.64.0.7"},
			"DestAddresses": []any{"100.64.0.1"},
			"InterfaceName": "utun4",
			"Router":        "100.64.0.1",
			"ServerAddress": "203.0.113.10",
		},
		"IPv6": map[string]any{
			"Addresses":     []any{"fd7a:115c:a1e0::7", "fd7a:115c:a1e0::8"},
			"InterfaceName": "utun4",
		},
		"DNS": map[string]any{
			"SearchDomains":   []any{"corp.example.com"},
			"ServerAddresses": []any{"100.100.100.100"},
		},
		"Routes":               []any{map[string]any{"Destination": "10.0.0.0", "SubnetMask": "255.0.0.0"}},
		"LastStatusChangeTime": "07/27/2025 15:41:33",
		"ConnectTime":          "93",
		"Status":               "2",
		"VPN":                  map[string]any{"ConnectTime": "93", "Status": "2"},
	}
	assert.Equal(t, want, got.Extended)

	// The same output through CRLF and tab indentation parses the same.
	again, err := ParseVPNStatus(strings.NewReader(crlf(strings.ReplaceAll(sample(t, "vpn_status_connected.txt"), "  ", "\t"))))
	require.NoError(t, err)
	assert.Equal(t, got, again)
}

func TestParseVPNStatusForms(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  VPNStatus
	}{
		{"reference shape", "Disconnected\nExtended Status <dictionary> {\n  Status : 0\n}\n", VPNStatus{Status: "Disconnected", Extended: map[string]any{"Status": "0"}}},
		{"no service", "No service\n", VPNStatus{Status: "No service", Extended: map[string]any{}}},
		{"unknown status verbatim", "Reasserting\n", VPNStatus{Status: "Reasserting", Extended: map[string]any{}}},
		{"empty dictionary inline", "Connecting\nExtended Status <dictionary> {}\n", VPNStatus{Status: "Connecting", Extended: map[string]any{}}},
		{"empty nested blocks and a key without value", "Disconnecting\nExtended Status <dictionary> {\n  PPP : <dictionary> {}\n  Routes : <array> {}\n  Note :\n}\n",
			VPNStatus{Status: "Disconnecting", Extended: map[string]any{"PPP": map[string]any{}, "Routes": []any{}, "Note": ""}}},
		{"value with colons", "Connected\nExtended Status <dictionary> {\n  Server : fe80::1 : 443\n}\n", VPNStatus{Status: "Connected", Extended: map[string]any{"Server": "fe80::1 : 443"}}},
		{"truncated block keeps what was read", "Connected\nExtended Status <dictionary> {\n  IPv4 : <dictionary> {\n    InterfaceName : utun4\n", VPNStatus{Status: "Connected", Extended: map[string]any{"IPv4": map[string]any{"InterfaceName": "utun4"}}}},
		{"trailing garbage", "Connected\nExtended Status <dictionary> {\n  Status : 2\n}\n}\nmore : stuff\n", VPNStatus{Status: "Connected", Extended: map[string]any{"Status": "2"}}},
		{"leading blank lines", "\n\n  Connected  \n", VPNStatus{Status: "Connected", Extended: map[string]any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVPNStatus(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseVPNStatusEmpty(t *testing.T) {
	for _, input := range []string{"", "\n \r\n", "\uFEFF"} {
		_, err := ParseVPNStatus(strings.NewReader(input))
		require.Error(t, err)
		assert.True(t, errors.Is(err, ErrEmptyInput), "%q", input)
	}
}

func FuzzVPNList(f *testing.F) {
	for _, seed := range []string{referenceVPNList, sample(f, "vpn_list.txt"), "* () x \"", "(a) b [", "* (Connected) id \"\" []"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		services, err := ParseVPNList(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotNil(t, services)
		for _, s := range services {
			require.NotEmpty(t, s.ID)
			require.False(t, s.Name == "" && s.Kind == "")
		}
	})
}

func FuzzVPNStatus(f *testing.F) {
	for _, seed := range []string{sample(f, "vpn_status_connected.txt"), "No service\n", "Extended Status <dictionary> {\n}\n}\n", "x\nExtended Status <dictionary> {\n a : <array> {\n 0 : <dictionary> {\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		status, err := ParseVPNStatus(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotNil(t, status.Extended)
	})
}
