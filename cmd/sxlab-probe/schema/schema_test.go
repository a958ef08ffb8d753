package schema

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeRefusesWhatIsNotAReport(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "printed nothing",
		"zsh: exec format error: ./probe\n": "not its JSON report",
		`{"schema":2,"probe":"mach-lookup","outcome":"found"}`: "schema 2",
		`{"schema":1}`: "no probe or outcome",
		`{"schema":1,"probe":"mach-lookup","outcome":"found","extra":1}`: "unknown field",
	} {
		_, err := Decode(strings.NewReader(in))
		assert.ErrorContains(t, err, want, "input %q", in)
	}
}

func TestDecodeReadsAReport(t *testing.T) {
	rep, err := Decode(strings.NewReader(`{"schema":1,"probe":"xpc-connect","service":"S","outcome":"rejected","meaning":"m","uid":501,
		"lookup":{"code":0,"name":"KERN_SUCCESS","meaning":"x","found":true,"duration_ms":0.2},
		"xpc":{"event":"connection-invalid","description":"Connection invalid","privileged":false,"timeout_ms":5000,"duration_ms":3},
		"caveat":"unverified on macOS"}`))
	require.NoError(t, err)
	assert.Equal(t, Rejected, rep.Outcome)
	assert.Equal(t, EventInvalid, rep.XPC.Event)
	assert.Equal(t, "xpc-connect S: m [bootstrap_look_up KERN_SUCCESS (0)] [xpc connection-invalid: Connection invalid]", rep.Summary())
}

func TestDescribeLookupNamesUnknownCodes(t *testing.T) {
	name, meaning := DescribeLookup(12345)
	assert.Equal(t, "code 12345", name)
	assert.Contains(t, meaning, "does not know")
	o, _ := ClassifyLookup(*NewLookup(12345, "", 0))
	assert.Equal(t, LookupFailed, o, "an unknown refusal is still no send right")
}

func TestConnectWithoutLookupResultIsNeverReachable(t *testing.T) {
	// An invalid connection means "rejected" only when launchd knew the
	// name; otherwise it is the failed lookup of the field reports.
	o, m := ClassifyConnect(*NewLookup(BootstrapUnknownService, "", 0), XPC{Event: EventInvalid})
	assert.Equal(t, LookupFailed, o)
	assert.Contains(t, m, "connection-invalid")
	o, _ = ClassifyConnect(*NewLookup(0, "", 0), XPC{Event: EventTermination})
	assert.Equal(t, Error, o)
	o, _ = ClassifyConnect(*NewLookup(0, "", 0), XPC{Event: EventTimeout, TimeoutMS: 5000})
	assert.Equal(t, Timeout, o)
	assert.Equal(t, 1, ExitCode(Timeout))
	assert.Equal(t, 2, ExitCode(Error))
}
