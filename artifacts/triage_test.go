package artifacts_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/internal/strictyaml"
)

// logAt builds log lines one after the other, at the given offsets from
// a fixed start.
type logAt struct{ lines []guest.LogEntry }

func (l *logAt) add(offset time.Duration, process, msg string) *logAt {
	t := time.Date(2025, 7, 27, 15, 42, 55, 0, time.FixedZone("", -4*3600)).Add(offset)
	l.lines = append(l.lines, guest.LogEntry{Timestamp: t.Format("2006-01-02 15:04:05.000000-0700"), Process: process, Message: msg})
	return l
}

func (l *logAt) conflict(at time.Duration) *logAt {
	return l.add(at, "sysextd", `activateDecision found entry to replace: com.example.vpn.tunnel, BundleVersion(CFBundleShortVersionString: "2.0", CFBundleVersion: "200")`).
		add(at, "sysextd", "initial activation decision: requestAppReplaceAction(<sysextd.Extension: 0xa46e72290>)").
		add(at, "sysextd", "notifying client of activation conflict")
}

func (l *logAt) cancel(at time.Duration) *logAt {
	return l.add(at, "Example VPN", "[0x14e33ac40] invalidated because the current process cancelled the connection by calling xpc_connection_cancel()").
		add(at, "sysextd", "client connection (pid 358) invalidated")
}

func catalog(t *testing.T, extra ...artifacts.Signature) *artifacts.Catalog {
	t.Helper()
	c, err := artifacts.LoadCatalog(extra...)
	require.NoError(t, err)
	return c
}

func TestBuiltinCatalog(t *testing.T) {
	c := catalog(t)
	var ids []string
	for _, s := range c.Signatures() {
		ids = append(ids, s.ID)
		assert.NotEmpty(t, s.Meaning, s.ID)
		assert.NotEmpty(t, s.Report, s.ID)
	}
	assert.Equal(t, []string{
		"replacement-path", "delegate-released", "approval-coalesced", "endpoint-lost", "listener-name-held",
		"staging-remove-failed", "realize-silent", "validation-failed", "bootstrap-lookup-failed",
	}, ids)
}

// TestTriageSimGoldenDelegateReleased: the sim's delegate-no-callback
// log, as log show prints it, names the released delegate with the
// replacement path as its evidence.
func TestTriageSimGoldenDelegateReleased(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "vm", "sim", "macos", "testdata", "log_show_conflict.ndjson.golden"))
	require.NoError(t, err)
	defer f.Close()
	logs, err := guest.ParseLog(f)
	require.NoError(t, err)

	tr := catalog(t).Triage(artifacts.Facts{Failed: true, Logs: logs})
	require.NotNil(t, tr)
	assert.Equal(t, "delegate-released", tr.Finding)
	assert.Equal(t, []string{"delegate-released", "replacement-path"}, labelIDs(tr))
	ev := tr.Labels[0].Evidence
	require.Len(t, ev, 2)
	assert.Contains(t, ev[0].Message, "xpc_connection_cancel()")
	assert.Equal(t, "Example VPN", ev[0].Process)
	assert.Equal(t, "client connection (pid 358) invalidated", ev[1].Message)
	assert.Equal(t, artifacts.LogsFile, ev[1].Source)
	assert.Equal(t, "2025-07-27T19:42:54.000555Z", ev[0].Time.UTC().Format(time.RFC3339Nano))
	assert.Equal(t, "delegate-no-callback", tr.Labels[0].Report)
}

func TestTriageCancelLineCountsOnlyRightAfterTheConflict(t *testing.T) {
	c := catalog(t)
	t.Run("alone", func(t *testing.T) {
		tr := c.Triage(artifacts.Facts{Failed: true, Logs: new(logAt).cancel(0).lines})
		assert.Equal(t, artifacts.Unclassified, tr.Finding)
		assert.Equal(t, []string{artifacts.Unclassified}, labelIDs(tr))
	})
	t.Run("before the conflict", func(t *testing.T) {
		tr := c.Triage(artifacts.Facts{Failed: true, Logs: new(logAt).cancel(0).conflict(0).lines})
		assert.Equal(t, artifacts.Unclassified, tr.Finding)
	})
	t.Run("2s after the conflict", func(t *testing.T) {
		tr := c.Triage(artifacts.Facts{Failed: true, Logs: new(logAt).conflict(0).cancel(2 * time.Second).lines})
		assert.Equal(t, artifacts.Unclassified, tr.Finding, "the replacement path is context, never the finding")
		assert.Equal(t, []string{artifacts.Unclassified, "replacement-path"}, labelIDs(tr))
	})
	t.Run("within 1s", func(t *testing.T) {
		tr := c.Triage(artifacts.Facts{Failed: true, Logs: new(logAt).conflict(0).cancel(900 * time.Millisecond).lines})
		assert.Equal(t, "delegate-released", tr.Finding)
	})
	t.Run("second conflict", func(t *testing.T) {
		// A conflict long before does not count; the one just before does.
		logs := new(logAt).conflict(0).conflict(time.Minute).cancel(time.Minute + 100*time.Millisecond).lines
		tr := c.Triage(artifacts.Facts{Failed: true, Logs: logs})
		assert.Equal(t, "delegate-released", tr.Finding)
		assert.Len(t, tr.Labels[1].Evidence, 6, "both replacement paths are evidence")
	})
}

func TestTriagePassingAttemptCarriesNothing(t *testing.T) {
	logs := new(logAt).conflict(0).cancel(0).lines
	assert.Nil(t, catalog(t).Triage(artifacts.Facts{Failed: false, Logs: logs}))
}

func TestTriageEndpointLostNeedsStateAndProbe(t *testing.T) {
	c := catalog(t)
	taken := time.Date(2025, 7, 27, 20, 0, 0, 0, time.UTC)
	noEndpoints := &artifacts.State{Taken: taken, Jobs: []artifacts.Job{{
		Label: "NetworkExtension.com.example.vpn.tunnel.3.0.300",
		Job:   &guest.LaunchdJob{Label: "NetworkExtension.com.example.vpn.tunnel.3.0.300", State: "running", Fields: map[string]any{}},
	}}}
	withEndpoints := &artifacts.State{Taken: taken, Jobs: []artifacts.Job{{
		Label: "NetworkExtension.com.example.vpn.tunnel.3.0.300",
		Job:   &guest.LaunchdJob{Label: "NetworkExtension.com.example.vpn.tunnel.3.0.300", State: "running", Fields: map[string]any{"endpoints": map[string]any{}}},
	}}}
	// The message is sxlab-probe's report summary (schema.Report.Summary).
	const lookupFailed = "xpc-connect ABCDE12345.com.example.vpn.tunnel: lookup failed: no Mach service of that name is registered in this user's bootstrap namespace (BOOTSTRAP_UNKNOWN_SERVICE); the XPC connection saw connection-invalid [bootstrap_look_up BOOTSTRAP_UNKNOWN_SERVICE (1102): Unknown service name] [xpc connection-invalid: Connection invalid]"
	invalidated := []artifacts.Probe{
		{Name: "mach-endpoint", Kind: "mach-endpoint", Held: false, Message: "job has no endpoints block"},
		{Name: "xpc", Kind: "xpc-connect", Held: false, Message: lookupFailed},
	}
	for _, tc := range []struct {
		name    string
		state   *artifacts.State
		probes  []artifacts.Probe
		finding string
	}{
		{"both", noEndpoints, invalidated, "endpoint-lost"},
		{"no after-state", nil, invalidated, "bootstrap-lookup-failed"},
		{"endpoints there", withEndpoints, invalidated, "bootstrap-lookup-failed"},
		{"xpc held", noEndpoints, []artifacts.Probe{{Name: "xpc", Kind: "xpc-connect", Held: true, Message: "xpc-connect ABCDE12345.com.example.vpn.tunnel: reachable, rejected the message (connection-invalid)"}}, "bootstrap-lookup-failed"},
		{"timed out, not a failed lookup", noEndpoints, []artifacts.Probe{{Name: "xpc", Kind: "xpc-connect", Held: false, Message: "xpc-connect ABCDE12345.com.example.vpn.tunnel: the service is registered but neither answered nor closed the connection within 5s"}}, "bootstrap-lookup-failed"},
		{"probe named by its kind", noEndpoints, []artifacts.Probe{{Name: "xpc-connect", Held: false, Message: lookupFailed}}, "endpoint-lost"},
		{"another kind", noEndpoints, []artifacts.Probe{{Name: "app-check", Kind: "command", Held: false, Message: "lookup failed"}}, "bootstrap-lookup-failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := new(logAt).conflict(0).add(time.Second, "Example VPN", "[0x1d851a7b0] failed to do a bootstrap look-up: xpc_error=[3: No such process]").lines
			tr := c.Triage(artifacts.Facts{Failed: true, Logs: logs, After: tc.state, Probes: tc.probes})
			// Without endpoint-lost, the look-up failure is all that explains it.
			assert.Equal(t, tc.finding, tr.Finding, "labels %v", labelIDs(tr))
			if tc.finding != "endpoint-lost" {
				assert.NotContains(t, labelIDs(tr), "endpoint-lost")
				return
			}
			assert.Equal(t, []string{"endpoint-lost", "replacement-path", "bootstrap-lookup-failed"}, labelIDs(tr))
			ev := tr.Labels[0].Evidence
			require.Len(t, ev, 2)
			assert.Equal(t, "state/after.txt", ev[0].Source, "the snapshot's transcript")
			assert.Equal(t, taken, ev[0].Time)
			assert.Contains(t, ev[1].Message, "BOOTSTRAP_UNKNOWN_SERVICE")
			assert.Equal(t, artifacts.StepsFile, ev[1].Source)
		})
	}
}

// TestTriageCoalescedIsTheFindingOverTheStagingError: the staging error
// comes first in time but is evidence of the coalesced request, which is
// why no prompt appeared.
func TestTriageCoalescedIsTheFindingOverTheStagingError(t *testing.T) {
	logs := new(logAt).
		add(0, "sysextd", "\nRemoving tree at\n  path: /Library/SystemExtensions/30D6C688\nfailed with\n  error: “30D6C688” couldn’t be removed.\nResetting flags and trying again!").
		add(time.Second, "sysextd", "client activation request for com.example.vpn.tunnel").
		add(time.Second, "sysextd", "activateDecision found existing entry of same version: state activated_waiting_for_user, ID 30D6C688").
		add(time.Second, "sysextd", "initial activation decision: coalesceWithActivationInProgress(<sysextd.Extension: 0x7fc262405b60>)").
		lines
	tr := catalog(t).Triage(artifacts.Facts{Failed: true, Logs: logs})
	assert.Equal(t, "approval-coalesced", tr.Finding)
	assert.Equal(t, []string{"approval-coalesced", "staging-remove-failed"}, labelIDs(tr))
	assert.Equal(t, "approval-dialog-missing", tr.Labels[0].Report)
}

func TestTriageRealizeSilent(t *testing.T) {
	c := catalog(t)
	logs := new(logAt).
		add(0, "sysextd", "client activation request for com.example.vpn.tunnel").
		add(0, "sysextd", "attempting to realize extension with identifier com.example.vpn.tunnel").
		add(time.Second, "nesessionmanager", "unrelated")
	assert.Equal(t, "realize-silent", c.Triage(artifacts.Facts{Failed: true, Logs: logs.lines}).Finding)
	logs.add(2*time.Second, "sysextd", "extension com.example.vpn.tunnel advancing state from validating to activated_enabled")
	assert.Equal(t, artifacts.Unclassified, c.Triage(artifacts.Facts{Failed: true, Logs: logs.lines}).Finding)
}

func TestTriageEarliestHeadIsTheFinding(t *testing.T) {
	logs := new(logAt).
		add(0, "sysextd", "extension failed to validate! uninstalling").
		add(time.Second, "Example VPN", "[0x1] failed to do a bootstrap look-up: xpc_error=[3: No such process]").
		lines
	tr := catalog(t).Triage(artifacts.Facts{Failed: true, Logs: logs})
	assert.Equal(t, "validation-failed", tr.Finding)
	assert.Equal(t, []string{"validation-failed", "bootstrap-lookup-failed"}, labelIDs(tr))
}

func TestTriageEvidenceIsCapped(t *testing.T) {
	l := new(logAt)
	for i := range 50 {
		l.add(time.Duration(i)*time.Second, "Example VPN", fmt.Sprintf("[0x%x] failed to do a bootstrap look-up: xpc_error=[3: No such process]", i))
	}
	tr := catalog(t).Triage(artifacts.Facts{Failed: true, Logs: l.lines})
	assert.Equal(t, "bootstrap-lookup-failed", tr.Finding)
	assert.Len(t, tr.Labels[0].Evidence, 12)
	assert.Contains(t, tr.Labels[0].Evidence[0].Message, "[0x0]", "the first lines are kept")
}

// decodeConfig decodes signatures the way the configuration loader does.
func decodeConfig(t *testing.T, text string) ([]artifacts.Signature, []strictyaml.Problem) {
	t.Helper()
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(text), &root))
	var out struct {
		Signatures []artifacts.Signature `yaml:"signatures"`
	}
	d := strictyaml.NewDecoder()
	d.Decode(&root, &out)
	return out.Signatures, d.Problems
}

func TestCatalogExtendedFromConfig(t *testing.T) {
	sigs, problems := decodeConfig(t, `
signatures:
  - id: vendor-helper-crash
    meaning: our helper crashed during activation
    report: FB00000000
    process: ProxyAgent
    message: 'asyncControlProxyWithErrorHandler'
    after: replacement-path
    within: 500ms
  - id: validation-failed
    meaning: validation failed (pattern of macOS 26)
    message: 'failed to validate'
`)
	require.Empty(t, problems)
	require.Len(t, sigs, 2)
	assert.Equal(t, artifacts.Duration(500*time.Millisecond), sigs[0].Within)
	c := catalog(t, sigs...)

	ids := []string{}
	for _, s := range c.Signatures() {
		ids = append(ids, s.ID)
	}
	assert.Equal(t, "vendor-helper-crash", ids[len(ids)-1], "added at the end")
	assert.Equal(t, len(catalog(t).Signatures())+1, len(ids), "validation-failed replaced, not added")

	logs := new(logAt).conflict(0).add(200*time.Millisecond, "ProxyAgent", "-[ExtensionLoader asyncControlProxyWithErrorHandler:]").lines
	assert.Equal(t, "vendor-helper-crash", c.Triage(artifacts.Facts{Failed: true, Logs: logs}).Finding)
	logs = new(logAt).add(0, "sysextd", "com.example.vpn.tunnel failed to validate (macOS 26 wording)").lines
	assert.Equal(t, "validation-failed", c.Triage(artifacts.Facts{Failed: true, Logs: logs}).Finding, "the replacement's pattern is used")

	_, problems = decodeConfig(t, "signatures:\n  - id: x\n    meaning: y\n    mesage: z\n    within: soon\n")
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.Msg)
	}
	assert.Len(t, msgs, 2, "%q", msgs)
	assert.Contains(t, strings.Join(msgs, "\n"), "mesage")
	assert.Contains(t, strings.Join(msgs, "\n"), `"soon" is not a duration`)
}

func TestCatalogRefusesBadSignatures(t *testing.T) {
	ok := artifacts.Signature{ID: "x", Meaning: "m", Message: "boom"}
	with := func(edit func(s *artifacts.Signature)) artifacts.Signature {
		s := ok
		edit(&s)
		return s
	}
	for _, tc := range []struct {
		name  string
		sigs  []artifacts.Signature
		error string
	}{
		{"no id", []artifacts.Signature{with(func(s *artifacts.Signature) { s.ID = "" })}, "id is required"},
		{"reserved id", []artifacts.Signature{with(func(s *artifacts.Signature) { s.ID = "unclassified" })}, "reserved"},
		{"no meaning", []artifacts.Signature{with(func(s *artifacts.Signature) { s.Meaning = "" })}, "meaning is required"},
		{"bad regexp", []artifacts.Signature{with(func(s *artifacts.Signature) { s.Message = "a(b" })}, "line 1: message: error parsing regexp"},
		{"no condition", []artifacts.Signature{with(func(s *artifacts.Signature) { s.Message = "" })}, "no condition"},
		{"both forms", []artifacts.Signature{with(func(s *artifacts.Signature) { s.Lines = []artifacts.LinePattern{{Message: "a"}} })}, "either process/message or lines"},
		{"unknown state", []artifacts.Signature{with(func(s *artifacts.Signature) { s.State = "launchd-sad" })}, `unknown state check "launchd-sad" (known: extension-waiting-for-user, launchd-no-endpoints, old-copy-terminated)`},
		{"probe without kind", []artifacts.Signature{with(func(s *artifacts.Signature) { s.Probe = &artifacts.ProbePattern{} })}, "probe: kind is required"},
		{"after without lines", []artifacts.Signature{with(func(s *artifacts.Signature) {
			s.Message, s.State, s.After = "", "launchd-no-endpoints", "replacement-path"
		})}, "need log lines"},
		{"within without after", []artifacts.Signature{with(func(s *artifacts.Signature) { s.Within = artifacts.Duration(time.Second) })}, "within needs after"},
		{"unknown after", []artifacts.Signature{with(func(s *artifacts.Signature) { s.After = "nope" })}, `after names unknown signature "nope"`},
		{"unknown explains", []artifacts.Signature{with(func(s *artifacts.Signature) { s.Explains = []string{"nope"} })}, `explains names unknown signature "nope"`},
		{"repeated extra", []artifacts.Signature{ok, ok}, `signature 1: id "x" repeats signature 0`},
		{"explains cycle", []artifacts.Signature{
			with(func(s *artifacts.Signature) { s.Explains = []string{"y"} }),
			with(func(s *artifacts.Signature) { s.ID, s.Explains = "y", []string{"x"} }),
		}, "explain each other in a cycle: x -> y -> x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := artifacts.LoadCatalog(tc.sigs...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.error)
		})
	}
}
