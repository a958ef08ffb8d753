package lab

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The sxlab-probe kinds validate like the others and reach the steps.
func TestGuestProbeKinds(t *testing.T) {
	const from = "  - name: mach-endpoint\n"
	require.Contains(t, validConfig, from)
	ok := strings.Replace(validConfig, from, from+
		"  - name: lookup\n    kind: mach-lookup\n"+
		"  - name: connect\n    kind: xpc-connect\n    expect: reply\n    timeout: 3s\n", 1)
	l, err := Load(LoadOptions{File: writeConfig(t, ok), LookupEnv: noEnv})
	require.NoError(t, err)
	probes, err := l.Config.StepsProbes()
	require.NoError(t, err)
	assert.Equal(t, "mach-lookup", probes["lookup"].Kind)
	assert.Equal(t, "reply", probes["connect"].Expect)
	assert.Equal(t, 3*time.Second, probes["connect"].Timeout)

	for name, tc := range map[string]struct{ add, want string }{
		"expect value":   {"  - name: connect\n    kind: xpc-connect\n    expect: answer\n", `"answer"`},
		"run not theirs": {"  - name: lookup\n    kind: mach-lookup\n    run: /bin/true\n", "does not apply to a mach-lookup probe (it takes service)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(LoadOptions{File: writeConfig(t, strings.Replace(validConfig, from, from+tc.add, 1)), LookupEnv: noEnv})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
