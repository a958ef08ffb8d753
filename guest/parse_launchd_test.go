package guest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// referenceLaunchd is GUEST-REFERENCE's example, elisions included.
const referenceLaunchd = "system/NetworkExtension.com.example.vpn.tunnel.3.0.300 = {\n" +
	"\tactive count = 1\n" +
	"\tpath = (submitted by nesessionmanager)\n" +
	"\tstate = running\n" +
	"\t...\n" +
	"\tendpoints = {\n" +
	"\t\t\"ABCDE12345.com.example.vpn.tunnel\" = {\n" +
	"\t\t\tport = 0x2ed07\n" +
	"\t\t\tactive = 1\n" +
	"\t\t\tmanaged = 1\n" +
	"\t\t\treset = 0\n" +
	"\t\t\thide = 0\n" +
	"\t\t\twatching = 0\n" +
	"\t\t}\n" +
	"\t}\n" +
	"\t...\n" +
	"}\n"

func TestParseLaunchdJobReference(t *testing.T) {
	job, err := ParseLaunchdJob(strings.NewReader(referenceLaunchd))
	require.NoError(t, err)
	assert.Equal(t, "NetworkExtension.com.example.vpn.tunnel.3.0.300", job.Label)
	assert.Equal(t, "running", job.State)
	assert.Equal(t, 0, job.PID, "no pid line")
	assert.Equal(t, []LaunchdEndpoint{{Name: "ABCDE12345.com.example.vpn.tunnel", Port: "0x2ed07", Active: true}}, job.Endpoints)
	assert.True(t, job.HasEndpointsBlock())
	assert.Equal(t, "(submitted by nesessionmanager)", job.Fields["path"])
	assert.Equal(t, "1", job.Fields["active count"])
}

func TestParseLaunchdJobHealthyAndBroken(t *testing.T) {
	healthy := sample(t, "launchd_ne_healthy.txt")
	broken := sample(t, "launchd_ne_broken.txt")
	wantEndpoints := []LaunchdEndpoint{
		{Name: "ABCDE12345.com.example.vpn.tunnel", Port: "0x2ed07", Active: true},
		{Name: "com.example.vpn.tunnel.diagnostics", Port: "0x2f103", Active: false},
	}
	tests := []struct {
		name      string
		input     string
		label     string
		pid       int
		endpoints []LaunchdEndpoint
	}{
		{"healthy", healthy, "NetworkExtension.com.example.vpn.tunnel.3.0.300", 1234, wantEndpoints},
		{"healthy, tab per space", tabsTo(healthy, 1), "NetworkExtension.com.example.vpn.tunnel.3.0.300", 1234, wantEndpoints},
		{"healthy, four spaces per tab", tabsTo(healthy, 4), "NetworkExtension.com.example.vpn.tunnel.3.0.300", 1234, wantEndpoints},
		{"healthy, indentation lost", stripIndent(healthy), "NetworkExtension.com.example.vpn.tunnel.3.0.300", 1234, wantEndpoints},
		{"healthy, CRLF", crlf(healthy), "NetworkExtension.com.example.vpn.tunnel.3.0.300", 1234, wantEndpoints},
		{"broken upgrade: no endpoints block", broken, "NetworkExtension.com.example.vpn.tunnel.3.1.310", 2345, []LaunchdEndpoint{}},
		{"broken upgrade, spaces", tabsTo(broken, 2), "NetworkExtension.com.example.vpn.tunnel.3.1.310", 2345, []LaunchdEndpoint{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := ParseLaunchdJob(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.label, job.Label)
			assert.Equal(t, "running", job.State, "nested coalition states must not leak out")
			assert.Equal(t, tt.pid, job.PID)
			require.NotNil(t, job.Endpoints)
			assert.Equal(t, tt.endpoints, job.Endpoints)
			assert.Equal(t, len(tt.endpoints) > 0, job.HasEndpointsBlock())

			f := job.Fields
			assert.Equal(t, "daemon (3)", f["spawn type"])
			assert.Equal(t, "ipc (mach)", f["immediate reason"])
			assert.Equal(t, "(unlimited)", f["jetsam memory limit (active)"])
			assert.Equal(t, "supports transactions | supports pressured exit | inferred program | system service", f["properties"])
			assert.Equal(t, map[string]any{"XPC_SERVICE_NAME": strings.TrimPrefix(tt.label, ""), "MallocSpaceEfficient": "1"}, f["environment"])
			assert.Equal(t, []string{"/Library/SystemExtensions/3F1C2A7E-1B2C-4D5E-8F90-A1B2C3D4E5F6/com.example.vpn.tunnel.systemextension/Contents/MacOS/com.example.vpn.tunnel"}, f["arguments"])
			assert.Equal(t, map[string]any{"ID": "1207", "type": "resource", "state": "active", "active count": "1", "name": tt.label}, f["resource coalition"])
			triggers, ok := f["event triggers"].(map[string]any)
			require.True(t, ok)
			wake, ok := triggers["com.example.vpn.tunnel.wake"].(map[string]any)
			require.True(t, ok, "a block opened with => is a block too")
			assert.Equal(t, map[string]any{"Notification": `"com.example.vpn.wake"`}, wake["descriptor"])
		})
	}
}

func TestParseLaunchdJobEndpointsJSON(t *testing.T) {
	// The CLI prints endpoints as [] when the block is missing: null would
	// read as "not checked" instead of the xpc-broken signal.
	job, err := ParseLaunchdJob(strings.NewReader(sample(t, "launchd_ne_broken.txt")))
	require.NoError(t, err)
	out, err := json.Marshal(job)
	require.NoError(t, err)
	assert.Contains(t, string(out), `"endpoints":[]`)
	assert.Contains(t, string(out), `"pid":2345`)
	assert.Contains(t, string(out), `"label":"NetworkExtension.com.example.vpn.tunnel.3.1.310"`)
}

func TestParseLaunchdJobForms(t *testing.T) {
	t.Run("raw shell argument with a brace in column 0", func(t *testing.T) {
		input := "gui/501/com.example.job = {\n" +
			"\tstate = not running\n" +
			"\targuments = {\n" +
			"\t\t/bin/sh\n" +
			"\t\t-c\n" +
			"\t\tprog=/opt/example/bin/job\n" +
			"[ -x \"$prog\" ] || {\n" +
			"  pid = 99\n" +
			"}\n" +
			"exec \"$prog\"\n" +
			"\t}\n" +
			"\tproperties = \n" +
			"\tlast exit code = 78: EX_CONFIG\n" +
			"}\n"
		job, err := ParseLaunchdJob(strings.NewReader(input))
		require.NoError(t, err)
		assert.Equal(t, "com.example.job", job.Label)
		assert.Equal(t, "not running", job.State)
		assert.Equal(t, 0, job.PID, "the pid inside the script is not the job's")
		assert.Equal(t, []string{"/bin/sh", "-c", "prog=/opt/example/bin/job", `[ -x "$prog" ] || {`, "pid = 99", "}", `exec "$prog"`}, job.Fields["arguments"])
		assert.Equal(t, "", job.Fields["properties"])
		assert.Equal(t, "78: EX_CONFIG", job.Fields["last exit code"])
	})
	t.Run("empty endpoints block on one line", func(t *testing.T) {
		job, err := ParseLaunchdJob(strings.NewReader("system/x = {\n\tendpoints = {}\n\tstate = running\n}\n"))
		require.NoError(t, err)
		assert.Equal(t, []LaunchdEndpoint{}, job.Endpoints)
		assert.True(t, job.HasEndpointsBlock())
		assert.Equal(t, "running", job.State)
	})
	t.Run("endpoints only nested elsewhere do not count", func(t *testing.T) {
		job, err := ParseLaunchdJob(strings.NewReader("system/x = {\n\tother = {\n\t\tendpoints = {\n\t\t\t\"a\" = {\n\t\t\t\tport = 0x1\n\t\t\t}\n\t\t}\n\t}\n}\n"))
		require.NoError(t, err)
		assert.Empty(t, job.Endpoints)
		assert.False(t, job.HasEndpointsBlock())
	})
	t.Run("endpoint block before the job's own state", func(t *testing.T) {
		job, err := ParseLaunchdJob(strings.NewReader("system/x = {\n\tendpoints = {\n\t\t\"a.b\" = {\n\t\t\tstate = active\n\t\t\tpid = 99999\n\t\t\tport = 12345\n\t\t}\n\t}\n\tstate = running\n\tpid = 5474\n}\n"))
		require.NoError(t, err)
		assert.Equal(t, "running", job.State)
		assert.Equal(t, 5474, job.PID)
		assert.Equal(t, []LaunchdEndpoint{{Name: "a.b", Port: "12345"}}, job.Endpoints)
	})
	t.Run("noise around the job, truncated output", func(t *testing.T) {
		input := "admin@vm ~ % sudo launchctl print system/NetworkExtension.x.1.0.1\nPassword:\n" +
			"system/NetworkExtension.x.1.0.1 = {\n\tstate = running\n\tpid = 17\n\tendpoints = {\n\t\t\"T.x\" = {\n\t\t\tport = 0x1\n\t\t\tactive = 1\n"
		job, err := ParseLaunchdJob(strings.NewReader(input))
		require.NoError(t, err)
		assert.Equal(t, "NetworkExtension.x.1.0.1", job.Label)
		assert.Equal(t, 17, job.PID)
		assert.Equal(t, []LaunchdEndpoint{{Name: "T.x", Port: "0x1", Active: true}}, job.Endpoints)
	})
	t.Run("garbage after the closing brace", func(t *testing.T) {
		job, err := ParseLaunchdJob(strings.NewReader(referenceLaunchd + "state = stopped\n}\nsystem/other = {\n"))
		require.NoError(t, err)
		assert.Equal(t, "running", job.State)
		assert.Len(t, job.Endpoints, 1)
	})
	t.Run("headerless paste", func(t *testing.T) {
		job, err := ParseLaunchdJob(strings.NewReader("\tstate = running\n\tpid = 42\n"))
		require.NoError(t, err)
		assert.Equal(t, "", job.Label)
		assert.Equal(t, 42, job.PID)
		assert.Equal(t, []LaunchdEndpoint{}, job.Endpoints)
	})
	t.Run("pid that is not a number", func(t *testing.T) {
		job, err := ParseLaunchdJob(strings.NewReader("system/x = {\n\tpid = (none)\n}\n"))
		require.NoError(t, err)
		assert.Equal(t, 0, job.PID)
		assert.Equal(t, "(none)", job.Fields["pid"])
	})
}

func TestParseLaunchdJobErrors(t *testing.T) {
	_, err := ParseLaunchdJob(strings.NewReader(""))
	require.True(t, errors.Is(err, ErrEmptyInput))

	_, err = ParseLaunchdJob(strings.NewReader("Bad request.\nCould not find service \"NetworkExtension.x\" in domain for system\n"))
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "launchd", pe.Kind)
	assert.Equal(t, 1, pe.Line)
	assert.Contains(t, err.Error(), "DOMAIN/LABEL = {")
}

// FuzzLaunchdJob's seeds stay short (see FuzzLog): the 2 KB samples made
// the fuzzer spend its time minimizing, at a few hundred executions a second.
func FuzzLaunchdJob(f *testing.F) {
	for _, seed := range []string{
		referenceLaunchd, tabsTo(referenceLaunchd, 1), stripIndent(referenceLaunchd),
		"system/x = {\n\tpid = 12\n\tstate = running\n\tendpoints = {\n\t}\n}\n",
		"x = {\n}\n}\n", "\targuments = {\n}\n", "a => {\n\"\" = {}\n", " =\n = \n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		job, err := ParseLaunchdJob(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotNil(t, job.Endpoints)
		require.NotNil(t, job.Fields)
		require.GreaterOrEqual(t, job.PID, 0)
		if len(job.Endpoints) > 0 {
			require.True(t, job.HasEndpointsBlock())
		}
		_, err = json.Marshal(job)
		require.NoError(t, err)
	})
}
