package guest

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const referenceSwVers = "ProductName:\t\tmacOS\nProductVersion:\t\t15.6\nBuildVersion:\t\t24G84\n"

func TestParseSwVers(t *testing.T) {
	want := SwVers{ProductName: "macOS", ProductVersion: "15.6", BuildVersion: "24G84"}
	tests := []struct {
		name  string
		input string
		want  SwVers
	}{
		{"reference, two tabs", referenceSwVers, want},
		{"old release, one tab", "ProductName:\tMac OS X\nProductVersion:\t10.15.7\nBuildVersion:\t19H2026\n", SwVers{ProductName: "Mac OS X", ProductVersion: "10.15.7", BuildVersion: "19H2026"}},
		{"spaces", tabsTo(referenceSwVers, 4), want},
		{"no space at all", "ProductName:macOS\nProductVersion:15.6\nBuildVersion:24G84", want},
		{"CRLF", crlf(referenceSwVers), want},
		{"rapid security response", "ProductName:\t\tmacOS\nProductVersion:\t\t13.4.1\nProductVersionExtra:\t(c)\nBuildVersion:\t\t22F770820d\n", SwVers{ProductName: "macOS", ProductVersion: "13.4.1", BuildVersion: "22F770820d", ProductVersionExtra: "(c)"}},
		{"noise and unknown keys", "Last login: Sun Jul 27 15:41:33 on ttys000\n" + referenceSwVers + "SomethingNew:\tx\nlogout\n", want},
		{"partial", "ProductVersion:\t\t15.6\n", SwVers{ProductVersion: "15.6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSwVers(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseSwVersErrors(t *testing.T) {
	_, err := ParseSwVers(strings.NewReader(""))
	assert.True(t, errors.Is(err, ErrEmptyInput))

	_, err = ParseSwVers(strings.NewReader("zsh: command not found: sw_vers\n"))
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 1, pe.Line)
	assert.Contains(t, err.Error(), "ProductVersion:")
}

func FuzzSwVers(f *testing.F) {
	for _, seed := range []string{referenceSwVers, crlf(referenceSwVers), "ProductVersionExtra:", ":\n:"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		v, err := ParseSwVers(strings.NewReader(input))
		if err != nil {
			return
		}
		require.Equal(t, strings.TrimSpace(v.ProductVersion), v.ProductVersion)
	})
}
