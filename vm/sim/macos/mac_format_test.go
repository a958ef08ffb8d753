package macos

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
)

// The golden files pin the exact output formats (tabs, padding, header
// suffixes); GUEST-REFERENCE.md is the source they were checked against.
// Rewrite them with: go test ./vm/sim -run Golden -update-mac-golden

func TestGoldenSwVers(t *testing.T) {
	s := newSimMac(t)
	out := s.ok(false, "sw_vers")
	golden(t, "sw_vers.golden", out)
	assert.Equal(t, "ProductName:\t\tmacOS\nProductVersion:\t\t15.3\nBuildVersion:\t\t24D60\n", out)
	assert.Equal(t, "24D60\n", s.ok(false, "sw_vers -buildVersion"))
}

func TestGoldenExtensionListDuringUpgrade(t *testing.T) {
	s := newSimMac(t)
	s.upgradeWithVPN(2, 3, true)
	golden(t, "systemextensionsctl_list_upgrade.golden", s.ok(false, "systemextensionsctl list"))
}

func TestExtensionListHeaderByRelease(t *testing.T) {
	for _, tc := range []struct {
		version, suffix string
	}{
		{"15.3", " (Go to 'System Settings > General > Login Items & Extensions > Network Extensions' to modify these system extension(s))"},
		{"14.7", " (Go to 'System Settings > Privacy & Security' to modify these system extension(s))"},
		{"12.7", ""},
	} {
		t.Run(tc.version, func(t *testing.T) {
			s := newSimMac(t, withVersion(tc.version, "X"))
			s.install(3)
			s.launch()
			lines := strings.Split(s.ok(false, "systemextensionsctl list"), "\n")
			assert.Equal(t, "1 extension(s)", lines[0])
			assert.Equal(t, "--- com.apple.system_extension.network_extension"+tc.suffix, lines[1])
			assert.Equal(t, "enabled\tactive\tteamID\tbundleID (version)\tname\t[state]", lines[2])
			assert.Equal(t, "\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated waiting for user]", lines[3])
		})
	}
	s := newSimMac(t)
	assert.Equal(t, "0 extension(s)\n", s.ok(false, "systemextensionsctl list"))
}

func TestGoldenVPNList(t *testing.T) {
	s := newSimMac(t)
	s.upgradeWithVPN(2, 3, true)
	out := s.ok(false, "scutil --nc list")
	golden(t, "scutil_nc_list.golden", out)
	// scutil pads the status to 16 columns with its parentheses.
	assert.Contains(t, out, "\n* (Connected)      ")
	golden(t, "scutil_nc_status_connected.golden", s.ok(false, `scutil --nc status "Example VPN"`))

	r := s.run(`scutil --nc status "No Such VPN"`)
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "No service\n", r.err)
}

func TestGoldenLaunchdJob(t *testing.T) {
	t.Run("with endpoints", func(t *testing.T) {
		s := newSimMac(t)
		s.upgradeWithVPN(2, 3, true)
		golden(t, "launchctl_print_endpoints.golden", s.ok(true, "launchctl print system/"+jobLabel("3.0.300")))
	})
	t.Run("without endpoints", func(t *testing.T) {
		s := newSimMac(t, faultEndpointLost)
		s.upgradeWithVPN(2, 3, true)
		golden(t, "launchctl_print_no_endpoints.golden", s.ok(true, "launchctl print system/"+jobLabel("3.0.300")))
	})
	t.Run("launchctl list", func(t *testing.T) {
		s := newSimMac(t)
		s.upgradeWithVPN(2, 3, true)
		out := s.ok(true, "launchctl list")
		assert.True(t, strings.HasPrefix(out, "PID\tStatus\tLabel\n"))
		assert.Regexp(t, `\n\d+\t0\tNetworkExtension\.com\.example\.vpn\.tunnel\.3\.0\.300\n`, out)
		r := s.sudo("launchctl print system/NetworkExtension.com.example.nothing.1.0.1")
		assert.Equal(t, 113, r.code)
		assert.Equal(t, "Could not find service \"NetworkExtension.com.example.nothing.1.0.1\" in domain for system\n", r.err)
	})
}

// delegateScenario leaves the delegate-no-callback lines in the log.
func delegateScenario(t *testing.T) *simMac {
	s := newSimMac(t)
	weak := s.variant(3, "example-vpn-3-weak-delegate", weakDelegate)
	s.upgradeWithVPN(2, 2, true)
	s.quitApp()
	s.installPath(weak)
	s.launch()
	return s
}

const conflictPredicate = `eventMessage CONTAINS "conflict" OR eventMessage CONTAINS "invalidated" OR eventMessage BEGINSWITH "activateDecision" OR eventMessage BEGINSWITH "initial activation"`

func TestGoldenLogShow(t *testing.T) {
	s := delegateScenario(t)
	ndjson := s.ok(false, "log show --style ndjson --predicate '"+conflictPredicate+"'")
	golden(t, "log_show_conflict.ndjson.golden", ndjson)
	golden(t, "log_show_conflict.default.golden", s.ok(false, "log show --predicate '"+conflictPredicate+"'"))
	golden(t, "log_show_conflict.compact.golden", s.ok(false, "log show --style compact --predicate '"+conflictPredicate+"'"))

	// The shape of one event line: every field the lab reads.
	var line string
	for _, l := range strings.Split(ndjson, "\n") {
		if strings.Contains(l, "notifying client of activation conflict") {
			line = l
		}
	}
	require.NotEmpty(t, line)
	for _, field := range []string{`"timestamp":"2025-07-27 `, `-0400"`, `"processImagePath":"\/System\/Library\/Frameworks\/SystemExtensions.framework\/Versions\/A\/Helpers\/sysextd"`,
		`"processID":`, `"subsystem":"com.apple.sx"`, `"category":"XPC"`, `"messageType":"Default"`, `"eventType":"logEvent"`,
		`"senderImagePath":`, `"formatString":"notifying client of activation conflict"`, `"threadID":`, `"traceID":`} {
		assert.Contains(t, line, field)
	}
}

func TestLogShowJSONIsOneArray(t *testing.T) {
	s := delegateScenario(t)
	out := s.ok(false, "log show --style json --predicate 'process == \"sysextd\"'")
	assert.True(t, strings.HasPrefix(out, "[{\n  \"traceID\" : "), out[:min(len(out), 80)])
	entries, err := guest.ParseLog(strings.NewReader(out))
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		assert.Equal(t, "sysextd", e.Process)
	}
	empty := s.ok(false, `log show --style json --predicate 'process == "nobody"'`)
	entries, err = guest.ParseLog(strings.NewReader(empty))
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestLogShowTimeWindowAndTypes(t *testing.T) {
	s := newSimMac(t)
	s.install(3)
	s.host.advance(10 * 60e9) // ten minutes
	s.launch()
	s.clickAllow()

	all := s.logs()
	recent, err := guest.ParseLog(strings.NewReader(s.ok(false, "log show --style ndjson --info --debug --last 5m")))
	require.NoError(t, err)
	assert.Less(t, len(recent), len(all))
	for _, e := range recent {
		assert.NotContains(t, e.Message, "PackageKit: Installed", "installed more than five minutes ago")
	}

	start := s.host.Now().Add(-60e9).Format("2006-01-02 15:04:05")
	since, err := guest.ParseLog(strings.NewReader(s.ok(false, `log show --style ndjson --info --start "`+start+`"`)))
	require.NoError(t, err)
	assert.Equal(t, len(recent), len(since))

	noInfo, err := guest.ParseLog(strings.NewReader(s.ok(false, "log show --style ndjson")))
	require.NoError(t, err)
	for _, e := range noInfo {
		assert.NotEqual(t, "Info", e.Type)
	}

	r := s.run(`log show --start "yesterday"`)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.err, "log: invalid date")
}

func TestLogInfoMessagesDoNotSurviveReboot(t *testing.T) {
	s := newSimMac(t)
	s.install(3)
	s.launch()
	infoBefore := countOf(s.messages(), "activating SystemExtension")
	require.Equal(t, 1, infoBefore)
	s.ok(true, "reboot")
	assert.Equal(t, 0, countOf(s.messages(), "activating SystemExtension"), "info lives in memory only")
	assert.Equal(t, 1, countOf(s.messages(), "client activation request"), "default messages persist")

	s.ok(true, `log config --mode "level:debug,persist:debug" --subsystem com.example.vpn`)
	s.launch()
	s.ok(true, "reboot")
	assert.Equal(t, 1, countOf(s.messages(), "activating SystemExtension"), "persisted by log config")
}

func TestPredicates(t *testing.T) {
	accepted := []string{
		`subsystem == "com.apple.sx"`,
		`process == "sysextd"`,
		`subsystem == "com.apple.sx" OR process == "sysextd" OR subsystem == "com.apple.networkextension" OR process IN {"nesessionmanager","neagent","nehelper"} OR subsystem == "com.apple.xpc"`,
		`(subsystem == "com.apple.sx" AND category == "XPC") || process == 'Example VPN'`,
		`messageType == error`,
		`messageType == "Error" OR messageType == 17`,
		`eventMessage CONTAINS[c] "ACTIVATION"`,
		`eventMessage BEGINSWITH "client" AND NOT eventMessage ENDSWITH "tunnel"`,
		`processImagePath ENDSWITH "/sysextd" && ! (processID == 1)`,
		`eventMessage LIKE "*conflict*"`,
		`sender == "libxpc.dylib"`,
		`eventType == logEvent`,
		`processID IN {1, 2, 3}`,
		`subsystem != "com.apple.sx"`,
	}
	for _, p := range accepted {
		_, err := parsePredicate(p)
		assert.NoError(t, err, p)
	}
	rejected := map[string]string{
		`subsystem == `:                       "unexpected end",
		`subsystem = = "x"`:                   "quoted value",
		`foo == "x"`:                          `unsupported field "foo"`,
		`eventMessage MATCHES "a.*"`:          "unsupported operator",
		`processID > 3`:                       "unsupported operator",
		`(subsystem == "x"`:                   "missing ')'",
		`subsystem == "x" AND`:                "unexpected end",
		`subsystem == "unterminated`:          "unterminated string",
		`process IN {"a" "b"}`:                "expected ',' or '}'",
		`process == sysextd`:                  "quoted value",
		`subsystem == "x" subsystem == "y"`:   "unexpected",
		`eventMessage CONTAINS[x] "a"`:        "unsupported modifier",
		strings.Repeat("(", 100) + `a == 1`:   "nested deeper",
		`subsystem == "x" # comment`:          "unexpected character",
		`processID == "1"`:                    "number",
		`eventMessage CONTAINS "a" OR OR b`:   `unsupported field "OR"`,
		`"sysextd" == process`:                "expected a field name",
		`subsystem IN "com.apple.sx"`:         "IN needs a list",
		`category == "x" AND (process == "y"`: "missing ')'",
	}
	for p, want := range rejected {
		_, err := parsePredicate(p)
		if assert.Error(t, err, p) {
			assert.Contains(t, err.Error(), want, p)
			assert.True(t, strings.HasPrefix(err.Error(), "Invalid predicate: "), err.Error())
		}
	}

	s := delegateScenario(t)
	r := s.run(`log show --predicate 'foo == "x"'`)
	assert.Equal(t, exitUsage, r.code)
	assert.True(t, strings.HasPrefix(r.err, "log: Invalid predicate: "), r.err)

	// The lab's default predicate selects sysextd's, NE's and XPC's lines.
	lab := accepted[2] + ` OR subsystem == "com.example.vpn"`
	entries, err := guest.ParseLog(strings.NewReader(s.ok(false, "log show --style ndjson --info --predicate '"+lab+"'")))
	require.NoError(t, err)
	procs := map[string]bool{}
	for _, e := range entries {
		procs[e.Process] = true
	}
	assert.True(t, procs["sysextd"] && procs["nesessionmanager"] && procs["Example VPN"], "%v", procs)
	assert.False(t, procs["installd"] || procs["launchd"], "%v", procs)
}

func TestPredicateMatching(t *testing.T) {
	e := &logEntry{ProcessPath: "/usr/libexec/nesessionmanager", PID: 412, Subsystem: "com.apple.networkextension", Category: "", Type: typeError, Message: "listener failed to activate", SenderPath: libNE}
	for p, want := range map[string]bool{
		`process == "nesessionmanager"`:                 true,
		`process == "NESessionManager"`:                 false,
		`process ==[c] "NESessionManager"`:              true,
		`messageType == error`:                          true,
		`messageType == 16`:                             true,
		`messageType == default`:                        false,
		`process IN {"nehelper", "nesessionmanager"}`:   true,
		`eventMessage CONTAINS "failed" AND pid == 412`: false, // pid is not a field: parse error below
		`eventMessage LIKE "listener*activate"`:         true,
		`sender == "NetworkExtension"`:                  true,
		`NOT subsystem == "com.apple.networkextension"`: false,
		`processID == 412`:                              true,
	} {
		pred, err := parsePredicate(p)
		if strings.Contains(p, "pid ==") {
			assert.Error(t, err)
			continue
		}
		require.NoError(t, err, p)
		assert.Equal(t, want, pred.match(e), p)
	}
}

func TestKernelRelease(t *testing.T) {
	for product, want := range map[string]string{
		"15.3": "24.3.0", "15.6.1": "24.6.0", "14.7": "23.7.0", "13.0": "22.0.0", "11.2": "20.2.0",
		"26.0": "25.0.0", "10.15.7": "19.0.0", "": "24.0.0",
	} {
		assert.Equal(t, want, KernelRelease(product), product)
	}
}
