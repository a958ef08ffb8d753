package guest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const referenceLease = "{\n\tname=admins-Virtual-Machine\n\tip_address=192.168.64.5\n\thw_address=1,6:e8:a3:b0:23:b4\n\tidentifier=1,6:e8:a3:b0:23:b4\n\tlease=0x66f1a2b3\n}\n"

var referenceLeaseParsed = Lease{
	Name: "admins-Virtual-Machine", IPAddress: "192.168.64.5",
	HWAddress: "06:e8:a3:b0:23:b4", Identifier: "06:e8:a3:b0:23:b4",
	Lease: "0x66f1a2b3", Expires: 0x66f1a2b3,
}

func TestParseLeases(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Lease
	}{
		{"reference", referenceLease, []Lease{referenceLeaseParsed}},
		{"CRLF and spaces", crlf(tabsTo(referenceLease, 4)), []Lease{referenceLeaseParsed}},
		{"braces lost", strings.NewReplacer("{\n", "", "}\n", "").Replace(referenceLease), []Lease{referenceLeaseParsed}},
		{"trailing garbage", referenceLease + "}\nnot=a lease key\n{\n", []Lease{referenceLeaseParsed}},
		{"empty file is an error", "\n", nil},
		{"several, unpadded octets, other identifiers", sample(t, "leases.txt"), []Lease{
			referenceLeaseParsed,
			{Name: "admins-Virtual-Machine", IPAddress: "192.168.64.9", HWAddress: "06:e8:a3:b0:23:b4", Identifier: "06:e8:a3:b0:23:b4", Lease: "0x66f2f433", Expires: 0x66f2f433},
			{Name: "runner-2", IPAddress: "192.168.64.12", HWAddress: "0a:00:27:00:00:0f", Identifier: "ff,a8:6b:5a:2c:0:2:0:0:ab:11:9d:7e:1f:3e:52:6b:c1:2a", Lease: "0x66f30011", Expires: 0x66f30011},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLeases(strings.NewReader(tt.input))
			if tt.want == nil {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLeaseTimeAndNewest(t *testing.T) {
	leases, err := ParseLeases(strings.NewReader(sample(t, "leases.txt")))
	require.NoError(t, err)

	when, err := leases[0].LeaseTime()
	require.NoError(t, err)
	assert.Equal(t, time.Date(2024, 9, 23, 17, 17, 39, 0, time.UTC), when)

	newest, ok := NewestLease(leases, "6:E8:A3:B0:23:B4")
	require.True(t, ok)
	assert.Equal(t, "192.168.64.9", newest.IPAddress, "the later expiry wins")
	_, ok = NewestLease(leases, "00:00:00:00:00:01")
	assert.False(t, ok)

	_, err = Lease{Lease: "soon"}.LeaseTime()
	assert.Error(t, err)
	decimal, err := Lease{Lease: "1727111859"}.LeaseTime()
	require.NoError(t, err)
	assert.Equal(t, int64(1727111859), decimal.Unix())
}

func TestNormaliseMAC(t *testing.T) {
	for in, want := range map[string]string{
		"1,6:e8:a3:b0:23:b4":  "06:e8:a3:b0:23:b4",
		"6:E8:A3:B0:23:B4":    "06:e8:a3:b0:23:b4",
		"1,0:0:0:0:0:0":       "00:00:00:00:00:00",
		"1,6:e8:a3:b0:23":     "1,6:e8:a3:b0:23",
		"1,6:e8:a3:b0:23:zz":  "1,6:e8:a3:b0:23:zz",
		"1,6:e8:a3:b0:23:123": "1,6:e8:a3:b0:23:123",
		"x,6:e8:a3:b0:23:b4":  "x,6:e8:a3:b0:23:b4",
		"":                    "",
	} {
		assert.Equal(t, want, NormaliseMAC(in), in)
	}
}

func TestParseLeasesErrors(t *testing.T) {
	_, err := ParseLeases(strings.NewReader(" \n"))
	assert.True(t, errors.Is(err, ErrEmptyInput))

	_, err = ParseLeases(strings.NewReader("cat: /var/db/dhcpd_leases: No such file or directory\n"))
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 1, pe.Line)
}

func FuzzLeases(f *testing.F) {
	for _, seed := range []string{referenceLease, sample(f, "leases.txt"), "hw_address=1,", "{\nlease=0x\n}", "identifier=,:::::"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		leases, err := ParseLeases(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotNil(t, leases)
		for _, l := range leases {
			require.False(t, l.IPAddress == "" && l.HWAddress == "")
			require.Equal(t, l.HWAddress, NormaliseMAC(l.HWAddress), "normalising is idempotent")
		}
	})
}
