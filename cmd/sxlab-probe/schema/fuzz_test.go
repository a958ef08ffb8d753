package schema

import (
	"strings"
	"testing"
)

// FuzzDecode: whatever a guest prints, Decode returns a report or an
// error, never a panic, and a report it accepts can be summarised.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"", "{}", "null", `{"schema":1,"probe":"x","outcome":"found","lookup":null,"xpc":{}}`,
		`{"schema":1,"probe":"xpc-connect","outcome":"reply","xpc":{"event":"reply","description":"<d>"}}`, "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rep, err := Decode(strings.NewReader(s))
		if err == nil {
			_ = rep.Summary()
		}
	})
}
