package macos

import (
	"os"
	"testing"
)

// FuzzParsePredicate: a predicate arrives over the network; parsing and
// matching must never panic, whatever it is.
func FuzzParsePredicate(f *testing.F) {
	for _, seed := range []string{
		`subsystem == "com.apple.sx" OR process IN {"a","b"}`,
		`(messageType == error AND NOT eventMessage CONTAINS[c] "x")`,
		`eventMessage LIKE "*[?]*"`, `processID IN {1, 2}`, `((((`, `"`, `a ==`, `!`, `process == 'x\'`,
	} {
		f.Add(seed)
	}
	e := &logEntry{ProcessPath: "/usr/libexec/sysextd", PID: 1, Subsystem: "com.apple.sx", Message: "m"}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePredicate(s)
		if err == nil {
			p.match(e)
		}
	})
}

func FuzzParseSimPkg(f *testing.F) {
	data, err := os.ReadFile("testdata/simpkg/example-vpn-4.simpkg.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"format":"sxlab-simpkg/1"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkg, err := ParseSimPkg(b)
		if err == nil && (pkg.App.Name == "" || pkg.Extension.TeamID == "") {
			t.Fatalf("accepted a manifest without required fields: %+v", pkg)
		}
	})
}
