package lab

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTimeoutsDefaultForRealMacs(t *testing.T) {
	l, err := Load(LoadOptions{File: writeConfig(t, validConfig), LookupEnv: noEnv})
	require.NoError(t, err)
	assert.Equal(t, Duration(10*time.Minute), l.Config.Lab.Timeouts.Boot)
	assert.Equal(t, Duration(30*time.Minute), l.Config.Lab.Timeouts.Command)
}

func TestTimeoutsFromFileAndEnvironment(t *testing.T) {
	src := strings.Replace(validConfig, "lab:\n  name: t\n", "lab:\n  name: t\n  timeouts:\n    command: 45m\n", 1)
	l, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: envOf("SXLAB_LAB_TIMEOUTS_BOOT", "3m")})
	require.NoError(t, err)
	assert.Equal(t, Duration(3*time.Minute), l.Config.Lab.Timeouts.Boot)
	assert.Equal(t, Duration(45*time.Minute), l.Config.Lab.Timeouts.Command)
}

func TestTimeoutsMustBePositive(t *testing.T) {
	src := strings.Replace(validConfig, "lab:\n  name: t\n", "lab:\n  name: t\n  timeouts:\n    boot: 0s\n    command: 30\n", 1)
	_, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	lines := problemLines(t, err)
	require.Len(t, lines, 2, strings.Join(lines, "\n"))
	assert.Contains(t, lines[0], ":4:11: lab.timeouts.boot: must be more than 0")
	assert.Contains(t, lines[1], ":5:14:")
	assert.Contains(t, lines[1], `"30" is not a duration`)
}
