package macos

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every string the sim writes into a JSON log reads back as itself, with
// slashes escaped as NSJSONSerialization escapes them, whether or not
// it needed escaping.
func TestJSONStringsReadBackAsWritten(t *testing.T) {
	cases := []string{"", "plain text", "com.apple.sx", "/usr/libexec/sysextd", `say "hi"`, `back\slash`,
		"tab\there", "line\nbreak", "<a & b>", "caf\u00e9", "\u2028", "bad \xff byte", "\x7f"}
	for c := 0; c < 0x80; c++ {
		cases = append(cases, string(rune(c)), "x"+string(rune(c))+"y")
	}
	for _, s := range cases {
		var b bytes.Buffer
		writeJSONString(&b, s)
		var back string
		require.NoError(t, json.Unmarshal(b.Bytes(), &back), "%q wrote %s", s, b.String())
		if s != "bad \xff byte" {
			assert.Equal(t, s, back, "written as %s", b.String())
		}
		assert.Equal(t, strings.Count(b.String(), "/"), strings.Count(b.String(), `\/`), "slashes are escaped: %s", b.String())
		if bytes.ContainsAny(b.Bytes(), "\\") {
			continue
		}
		assert.Equal(t, `"`+s+`"`, b.String(), "a string with nothing to escape is written as it is")
	}
}
