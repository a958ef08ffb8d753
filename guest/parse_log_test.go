package guest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sampleLogEntries is what log.ndjson and log_array.json hold.
var sampleLogEntries = []LogEntry{
	{Timestamp: "2025-07-27 15:41:33.057177-0400", Process: "sysextd", PID: 537, Subsystem: "com.apple.sx", Category: "XPC", Type: "Default", Message: "client activation request for com.example.vpn.tunnel"},
	{Timestamp: "2025-07-27 15:41:33.811827-0400", Process: "sysextd", PID: 537, Subsystem: "com.apple.sx", Type: "Default", Message: `activateDecision found entry to replace: com.example.vpn.tunnel, BundleVersion(CFBundleShortVersionString: "3.0", CFBundleVersion: "300")`},
	{Timestamp: "2025-07-27 15:41:33.812156-0400", Process: "Example VPN", PID: 2599, Subsystem: "com.apple.xpc", Category: "connection", Type: "Default", Message: "[0x154f2d5b0] invalidated because the current process cancelled the connection by calling xpc_connection_cancel()"},
	{Timestamp: "2025-07-27 15:41:34.000001-0400", Process: "nesessionmanager", PID: 412, Subsystem: "com.apple.networkextension", Type: "Error", Message: "NESMVPNSession[Primary Tunnel:Example]: listener failed to activate: xpc_error=[1: Operation not permitted]"},
}

func TestParseLogJSON(t *testing.T) {
	ndjson := sample(t, "log.ndjson")
	array := sample(t, "log_array.json")
	tests := []struct {
		name  string
		input string
		want  []LogEntry
	}{
		{"ndjson with banner and trailer", ndjson, sampleLogEntries},
		{"ndjson CRLF", crlf(ndjson), sampleLogEntries},
		{"ndjson with a truncated last line", ndjson[:strings.LastIndex(ndjson, `"processID":412`)], sampleLogEntries[:3]},
		{"ndjson with garbage between events", strings.Replace(ndjson, "\n{", "\nnot json\n[1,2]\n{}\n{", 2), sampleLogEntries},
		{"json array", array, sampleLogEntries},
		{"json array CRLF with leading space", "  \r\n" + crlf(array), sampleLogEntries},
		{"json array truncated keeps complete events", array[:strings.LastIndex(array, `"processID": 412`)], sampleLogEntries[:3]},
		{"json array with trailing text", array + "Log      - Default:          3\n", sampleLogEntries},
		{"empty json array", "[]\n", []LogEntry{}},
		{"ndjson after log's skipping-debug note", "Skipping debug messages, pass --debug to include.\n" + ndjson, sampleLogEntries},
		{"ndjson after log's skipping-info note", "Skipping info messages, pass --info to include.\n" + ndjson, sampleLogEntries},
		{"only banner and a skipping note: no events", "Filtering the log data using \"process == \\\"x\\\"\"\nSkipping debug messages, pass --debug to include.\n", []LogEntry{}},
		{"only banner and trailer: no events", "Filtering the log data using \"process == \\\"x\\\"\"\nLog      - Default:          0, Info:                0, Debug:             0, Error:          0, Fault:          0\n", []LogEntry{}},
		// --style ndjson ends with a summary object, which is no event.
		{"ndjson ending with log's count object", strings.Replace(ndjson, "Log      - Default", `{"count":4,"finished":1}`+"\nLog      - Default", 1), sampleLogEntries},
		{"a window with no events: banner and count object", "Filtering the log data using \"process == \\\"x\\\"\"\n{\"count\":0,\"finished\":1}\n", []LogEntry{}},
		{"a window with no events: count object alone", `{"count":0,"finished":1}`, []LogEntry{}},
		{"fields of the wrong type are left empty", `{"timestamp":"2025-07-27 15:41:33.057177-0400","processID":"537","subsystem":7,"eventMessage":"m"}` + "\n", []LogEntry{{Timestamp: "2025-07-27 15:41:33.057177-0400", PID: 537, Message: "m"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLog(strings.NewReader(tt.input))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// A single event copied out of `log show --style json` is a pretty-printed
// object without the array around it; several such objects make a stream.
func TestParseLogPrettyObjects(t *testing.T) {
	array := sample(t, "log_array.json")
	body := strings.TrimSpace(array)
	body = strings.TrimSuffix(strings.TrimPrefix(body, "["), "]")
	objects := strings.Split(body, "},\n{")
	require.Len(t, objects, len(sampleLogEntries), "the sample's events")
	first := strings.TrimSpace(objects[0]) + "\n}"

	got, err := ParseLog(strings.NewReader(first))
	require.NoError(t, err, "a single pretty-printed event")
	assert.Equal(t, sampleLogEntries[:1], got)

	got, err = ParseLog(strings.NewReader(crlf(first)))
	require.NoError(t, err, "the same with CRLF")
	assert.Equal(t, sampleLogEntries[:1], got)

	stream := strings.Join(objects, "}\n{")
	got, err = ParseLog(strings.NewReader("Filtering the log data using \"x\"\n" + stream + "\n{\"count\":4,\"finished\":1}\n"))
	require.NoError(t, err, "a stream of pretty-printed events")
	assert.Equal(t, sampleLogEntries, got)

	// An object left open does not cost the events after it.
	got, err = ParseLog(strings.NewReader("{\"eventMessage\": \n" + sample(t, "log.ndjson")))
	require.NoError(t, err)
	assert.Equal(t, sampleLogEntries, got)
}

// Many continuation lines are joined in one go, not copied once per line.
func TestParseLogManyContinuationLines(t *testing.T) {
	const n = 200_000
	input := "2023-09-29 23:08:29.260 Df sysextd[537:6dcc] start\n" + strings.Repeat("  more\n", n)
	got, err := ParseLog(strings.NewReader(input))
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, n, strings.Count(got[0].Message, "\n  more"))
}

func TestParseLogText(t *testing.T) {
	want := []LogEntry{
		{Timestamp: "2023-09-29 23:08:29.260822+1000", Process: "sysextd", PID: 537, Subsystem: "com.apple.sx", Category: "XPC", Type: "Default", Message: "client activation request for com.example.vpn.tunnel"},
		{Timestamp: "2023-09-29 23:08:29.261004+1000", Process: "sysextd", PID: 537, Subsystem: "com.apple.sx", Category: "XPC", Type: "Default", Message: "attempting to realize extension with identifier com.example.vpn.tunnel"},
		{Timestamp: "2023-09-29 23:08:30.915439+1000", Process: "sysextd", PID: 537, Subsystem: "com.apple.sx", Category: "Staging", Type: "Error", Message: "\nRemoving tree at\n  path: /Library/SystemExtensions/30D6C688-7BDF-46EE-A7AF-459AB7699380\nfailed with\n  error: “30D6C688-7BDF-46EE-A7AF-459AB7699380” couldn’t be removed."},
		{Timestamp: "2023-09-29 23:08:31.000100+1000", Process: "Example VPN", PID: 2599, Subsystem: "com.apple.xpc", Category: "connection", Type: "Default", Message: "[0x154f2d5b0] invalidated because the current process cancelled the connection by calling xpc_connection_cancel()"},
	}
	text := sample(t, "log_default.txt")
	for name, input := range map[string]string{"default style": text, "CRLF": crlf(text)} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseLog(strings.NewReader(input))
			require.NoError(t, err)
			assert.Equal(t, want, got)
			direct, err := ParseLogCompact(strings.NewReader(input))
			require.NoError(t, err)
			assert.Equal(t, want, direct)
		})
	}

	// log prints a note on the levels it left out before the column
	// header unless --info and --debug are both given; the text style
	// must still be recognised after it.
	for _, note := range []string{
		"Skipping info and debug messages, pass --info and/or --debug to include.",
		"Skipping debug messages, pass --debug to include.",
		"Skipping info messages, pass --info to include.",
	} {
		t.Run("after the note "+note, func(t *testing.T) {
			banner, rest, _ := strings.Cut(text, "\n")
			got, err := ParseLog(strings.NewReader(banner + "\n" + note + "\n" + rest))
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}

	t.Run("reference line", func(t *testing.T) {
		got, err := ParseLogCompact(strings.NewReader("2023-09-29 23:08:29.260822+1000 0x6dcc     Default     0x0                  537    0    sysextd: [com.apple.sx:XPC] client activation request for com.example.vpn.tunnel\n"))
		require.NoError(t, err)
		assert.Equal(t, want[:1], got)
	})
	t.Run("compact style", func(t *testing.T) {
		got, err := ParseLog(strings.NewReader("Timestamp               Ty Process[PID:TID]\n2023-09-29 23:08:29.260 Df sysextd[537:6dcc] [com.apple.sx:XPC] client activation request for com.example.vpn.tunnel\n2023-09-29 23:08:29.300 E  Example VPN[2599:7a01] (libxpc.dylib) failed (pid 12) badly\n"))
		require.NoError(t, err)
		assert.Equal(t, []LogEntry{
			{Timestamp: "2023-09-29 23:08:29.260", Process: "sysextd", PID: 537, Subsystem: "com.apple.sx", Category: "XPC", Type: "Default", Message: "client activation request for com.example.vpn.tunnel"},
			{Timestamp: "2023-09-29 23:08:29.300", Process: "Example VPN", PID: 2599, Type: "Error", Message: "failed (pid 12) badly"},
		}, got)
	})
	t.Run("process printed as a path becomes its base name (fuzz regression)", func(t *testing.T) {
		got, err := ParseLog(strings.NewReader("0000-00-00 00:00:00+0000 0x0 0 0x0 0 0 /0\n2023-09-29 23:08:29.260 Df /usr/libexec/sysextd[537:6dcc] m\n"))
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.Equal(t, "0", got[0].Process)
		assert.Equal(t, "sysextd", got[1].Process)
	})
	t.Run("message starting with parentheses stays whole", func(t *testing.T) {
		got, err := ParseLogCompact(strings.NewReader("2023-09-29 23:08:29.260822+1000 0x6dcc     Default     0x0                  537    0    sysextd: (pid 12) went away\n"))
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, "(pid 12) went away", got[0].Message)
	})
}

func TestLogEntryTime(t *testing.T) {
	got, err := LogEntry{Timestamp: "2025-07-27 15:41:33.057177-0400"}.Time()
	require.NoError(t, err)
	assert.True(t, got.Equal(time.Date(2025, 7, 27, 19, 41, 33, 57177000, time.UTC)), got.String())

	got, err = LogEntry{Timestamp: "2023-09-29 23:08:29.260822+1000"}.Time()
	require.NoError(t, err)
	assert.True(t, got.Equal(time.Date(2023, 9, 29, 13, 8, 29, 260822000, time.UTC)), got.String())

	got, err = LogEntry{Timestamp: "2023-09-29 23:08:29.260"}.Time()
	require.NoError(t, err)
	assert.Equal(t, time.Date(2023, 9, 29, 23, 8, 29, 260000000, time.UTC), got)

	_, err = LogEntry{Timestamp: "yesterday"}.Time()
	assert.Error(t, err)
}

func TestParseLogErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		line  int
	}{
		{"empty", "", 0},
		{"blank", "\n\n  \n", 0},
		{"not log output", "\nlog: Could not open local log store: Operation not permitted\n", 2},
		{"broken array", "[\n  {\"timestamp\": \n", 2},
		{"array of nothing usable", "[1, 2", 1},
		{"array of non-objects", "[1, 2]", 1},
		{"garbage text", "2023 was a good year\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLog(strings.NewReader(tt.input))
			require.Error(t, err)
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, "log", pe.Kind)
			assert.Equal(t, tt.line, pe.Line)
			assert.Equal(t, tt.line == 0, errors.Is(err, ErrEmptyInput))
		})
	}
}

// FuzzLog's seeds are short on purpose: whenever the fuzzer finds new
// coverage it minimizes the input, which costs about the square of its
// length in executions; seeded with the 4 KB samples it spent its whole
// time minimizing and reported a dozen executions. The samples themselves
// are read by the tests above.
func FuzzLog(f *testing.F) {
	for _, seed := range []string{
		`{"timestamp":"2025-07-27 15:41:33.057177-0400","processImagePath":"\/usr\/libexec\/sysextd","processID":537,"subsystem":"com.apple.sx","category":"XPC","messageType":"Default","eventMessage":"m"}` + "\n" + `{"count":1,"finished":1}`,
		"[{\n  \"processID\": 1,\n  \"eventMessage\": \"m\"\n}]",
		"{\n  \"processID\": 1,\n  \"eventMessage\": \"m\"\n}\n{\"eventMessage\":\"n\"}",
		"Filtering the log data using \"x\"\nTimestamp  Thread\n2023-09-29 23:08:29.260822+1000 0x6dcc     Default     0x0   537    0    sysextd: [com.apple.sx:XPC] m\n  more\nLog      - Default:          1, Info: 0",
		"[", "[{}", `{"processImagePath":"/"}`, "2023-09-29 23:08:29 x y[1:2]", "\uFEFF[]",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		entries, err := ParseLog(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotNil(t, entries)
		for _, e := range entries {
			require.NotEqual(t, LogEntry{}, e)
			require.NotContains(t, e.Process, "/")
		}
	})
}

func FuzzLogCompact(f *testing.F) {
	for _, seed := range []string{"2023-09-29 23:08:29.260822+1000 0x6dcc     Default     0x0   537    0    sysextd: [com.apple.sx:XPC] m\n  more", "2023-09-29 23:08:29.260 Df p[1:2] [a:b] m", "2023-09-29 23:08:29+0000 0x1 T 0x0 1 0 p: (l) ["} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		entries, err := ParseLogCompact(strings.NewReader(input))
		if err != nil {
			return
		}
		require.NotNil(t, entries)
		for _, e := range entries {
			require.NotEmpty(t, e.Timestamp)
		}
	})
}

// BenchmarkParseLogNDJSON reads a failing attempt's logs.ndjson of 2,000
// events, as the lab does once per failing attempt.
func BenchmarkParseLogNDJSON(b *testing.B) {
	lines := strings.Split(strings.TrimSpace(sample(b, "log.ndjson")), "\n")
	var events []string
	for _, l := range lines {
		if strings.HasPrefix(l, "{") {
			events = append(events, l)
		}
	}
	var sb strings.Builder
	for i := range 2000 {
		sb.WriteString(events[i%len(events)] + "\n")
	}
	sb.WriteString(`{"count":2000,"finished":1}` + "\n")
	input := sb.String()
	b.SetBytes(int64(len(input)))
	for b.Loop() {
		entries, err := ParseLog(strings.NewReader(input))
		if err != nil || len(entries) != 2000 {
			b.Fatalf("%d entries, %v", len(entries), err)
		}
	}
}
