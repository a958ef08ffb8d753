package guest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// LogEntry is one unified-log event from `log show`.
type LogEntry struct {
	Timestamp string `json:"timestamp"` // as printed, e.g. 2025-07-27 15:41:33.057177-0400
	Process   string `json:"process"`   // base name of processImagePath
	PID       int    `json:"pid"`
	Subsystem string `json:"subsystem"`
	Category  string `json:"category"`
	Type      string `json:"type"` // messageType: Default, Info, Debug, Error, Fault
	Message   string `json:"message"`
}

// logTimeLayout is log's timestamp. Go accepts the fractional seconds the
// layout does not mention when parsing.
const (
	logTimeLayout       = "2006-01-02 15:04:05-0700"
	logTimeLayoutNoZone = "2006-01-02 15:04:05"
)

// Time parses Timestamp. Compact-style timestamps carry no zone; they are
// returned as UTC wall-clock readings of the guest's local time.
func (e LogEntry) Time() (time.Time, error) {
	t, err := time.Parse(logTimeLayout, e.Timestamp)
	if err == nil {
		return t, nil
	}
	if t, errNoZone := time.Parse(logTimeLayoutNoZone, e.Timestamp); errNoZone == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("log timestamp %q: %w", e.Timestamp, err)
}

// rawLogEntry is the subset of `log show --style json` fields kept.
type rawLogEntry struct {
	Timestamp        string          `json:"timestamp"`
	ProcessImagePath string          `json:"processImagePath"`
	ProcessID        json.RawMessage `json:"processID"`
	Subsystem        string          `json:"subsystem"`
	Category         string          `json:"category"`
	MessageType      string          `json:"messageType"`
	EventMessage     string          `json:"eventMessage"`
}

// decodeLogEntry reads one JSON object. A field of an unexpected type is
// left empty rather than costing the whole entry; ok is false for anything
// that is not an object or holds none of the kept fields.
func decodeLogEntry(data []byte) (LogEntry, bool) {
	var raw rawLogEntry
	if err := json.Unmarshal(data, &raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) || typeErr.Field == "" {
			return LogEntry{}, false
		}
	}
	e := LogEntry{
		Timestamp: raw.Timestamp,
		PID:       jsonInt(raw.ProcessID),
		Subsystem: raw.Subsystem,
		Category:  raw.Category,
		Type:      raw.MessageType,
		Message:   raw.EventMessage,
	}
	e.Process = processName(raw.ProcessImagePath)
	if e == (LogEntry{}) {
		return LogEntry{}, false
	}
	return e, true
}

// processName is the base name of a process path, so every style yields
// the same "sysextd"; empty for "", "/" and the like.
func processName(s string) string {
	base := path.Base(strings.TrimSpace(s))
	if base == "." || base == "/" {
		return ""
	}
	return base
}

// jsonInt reads a number or a numeric string; anything else is 0.
func jsonInt(raw json.RawMessage) int {
	text := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	n, err := strconv.Atoi(text)
	if err != nil {
		return 0
	}
	return n
}

const logExpected = `log show output: a JSON array, one JSON object per line, or "YYYY-MM-DD HH:MM:SS… " text lines`

// ParseLog parses `log show` output. The first non-space byte decides:
// "[" is --style json (a JSON array); otherwise the input is read as a
// stream of JSON objects — --style ndjson, or events pretty-printed over
// several lines — skipping what log prints around the events (the
// "Filtering the log data…" banner, the "Skipping … messages" notes, the
// "Log - Default: …" statistics trailer, ndjson's closing
// {"count":…,"finished":1}) and any other non-JSON line. When
// the first meaningful line is a text event line instead, the input goes to
// ParseLogCompact. No events and nothing but that noise is an empty list.
func ParseLog(r io.Reader) ([]LogEntry, error) {
	const kind = "log"
	data, err := readAll(kind, r)
	if err != nil {
		return nil, err
	}
	data = strings.TrimPrefix(data, "\uFEFF")
	trimmed := strings.TrimLeft(data, " \t\r\n")
	if trimmed == "" {
		return nil, emptyError(kind, logExpected)
	}
	if trimmed[0] == '[' {
		return parseLogArray(kind, data)
	}
	lines, err := readLines(kind, logExpected, strings.NewReader(data))
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		text := strings.TrimSpace(l.text)
		if text == "" || isLogNoise(text) {
			continue
		}
		if logTextLine(text) {
			return parseLogText(kind, lines)
		}
		break
	}
	return parseLogObjects(kind, data)
}

// maxLogEvent bounds how far one event object may reach across lines, so
// a stray "{" cannot make every later line be read again to the end.
const maxLogEvent = 1 << 20

// parseLogObjects reads a stream of JSON objects: --style ndjson's one per
// line, and also objects spread over lines, as a single pretty-printed
// event pasted from `log show --style json` without its "[ … ]" is.
// log's noise lines are skipped, and so is the {"count":N,"finished":1}
// object ndjson ends with; an object that is neither an event nor that
// summary, and any other line, is skipped too, and reported only when no
// event is found at all.
func parseLogObjects(kind, data string) ([]LogEntry, error) {
	entries := []LogEntry{}
	firstBad := -1 // byte offset of the first line that is not an event
	for off := 0; off < len(data); {
		lineEnd := len(data)
		if i := strings.IndexByte(data[off:], '\n'); i >= 0 {
			lineEnd = off + i
		}
		text := strings.TrimSpace(data[off:lineEnd])
		if text == "" || isLogNoise(text) {
			off = lineEnd + 1
			continue
		}
		if text[0] == '{' {
			// The common case, one ndjson event per line, in one pass.
			if e, ok := decodeLogEntry([]byte(text)); ok {
				entries = append(entries, e)
				off = lineEnd + 1
				continue
			}
			start := off + strings.IndexByte(data[off:lineEnd], '{')
			if raw, n, ok := nextLogObject(data[start:], lineEnd-start); ok {
				if e, ok := decodeLogEntry(raw); ok {
					entries = append(entries, e)
				} else if !isLogSummary(raw) && firstBad < 0 {
					firstBad = start
				}
				off = start + n // what follows on the line is read as a line of its own
				continue
			}
		}
		if firstBad < 0 {
			firstBad = off
		}
		off = lineEnd + 1
	}
	if len(entries) == 0 && firstBad >= 0 {
		rest := data[firstBad:]
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			rest = rest[:i]
		}
		num := 1 + strings.Count(data[:firstBad], "\n")
		return nil, &ParseError{Kind: kind, Line: num, Expected: "a JSON log event object", Got: shorten(strings.TrimSpace(rest))}
	}
	return entries, nil
}

// nextLogObject decodes the JSON object s starts with. The line it starts
// on (lineLen bytes) is tried alone first, which is every ndjson line; only
// an object the line leaves open is read on across lines. n is how many
// bytes of s the object took.
func nextLogObject(s string, lineLen int) (raw json.RawMessage, n int, ok bool) {
	decode := func(text string) (json.RawMessage, int, error) {
		dec := json.NewDecoder(strings.NewReader(text))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, 0, err
		}
		return v, int(dec.InputOffset()), nil
	}
	raw, n, err := decode(s[:lineLen])
	if err == nil {
		return raw, n, true
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) || lineLen == len(s) {
		return nil, 0, false
	}
	raw, n, err = decode(s[:min(len(s), maxLogEvent)])
	if err != nil {
		return nil, 0, false
	}
	return raw, n, true
}

// isLogSummary is the object `log show --style ndjson` prints last,
// {"count":12,"finished":1}: not an event, and all there is when the
// window held none.
func isLogSummary(raw json.RawMessage) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return false
	}
	if _, ok := fields["finished"]; !ok {
		return false
	}
	for k := range fields {
		if k != "count" && k != "finished" {
			return false
		}
	}
	return true
}

// parseLogArray streams the array element by element so a truncated
// capture keeps every complete event before the cut.
func parseLogArray(kind, data string) ([]LogEntry, error) {
	dec := json.NewDecoder(strings.NewReader(data))
	if _, err := dec.Token(); err != nil { // the "["
		return nil, arrayError(kind, data, dec.InputOffset(), err)
	}
	entries := []LogEntry{}
	elements := 0
	for dec.More() {
		var element json.RawMessage
		if err := dec.Decode(&element); err != nil {
			if len(entries) > 0 {
				return entries, nil
			}
			return nil, arrayError(kind, data, dec.InputOffset(), err)
		}
		elements++
		if e, ok := decodeLogEntry(element); ok {
			entries = append(entries, e)
		}
	}
	if len(entries) > 0 {
		return entries, nil // a missing "]" after complete events costs nothing
	}
	if _, err := dec.Token(); err != nil {
		return nil, arrayError(kind, data, dec.InputOffset(), err)
	}
	if elements > 0 {
		return nil, arrayError(kind, data, 0, errors.New("no element is a log event object"))
	}
	return entries, nil
}

func arrayError(kind, data string, offset int64, err error) error {
	if offset < 0 || offset > int64(len(data)) {
		offset = int64(len(data))
	}
	lineNum := 1 + bytes.Count([]byte(data[:offset]), []byte("\n"))
	return &ParseError{Kind: kind, Line: lineNum, Expected: "a JSON array of log event objects", Got: shorten(err.Error())}
}

// logTrailer is a line of the statistics `log show` prints last, after a
// line of dashes: "Log      - Default:          12, Info: …",
// "Activity - Create:           0, …".
var logTrailer = regexp.MustCompile(`^[A-Za-z]+\s+-\s+[A-Za-z ]+:\s+\d+`)

// isLogNoise matches what `log show` prints besides events.
func isLogNoise(text string) bool {
	switch {
	case strings.HasPrefix(text, "Filtering the log data"),
		// log says which levels it left out unless --info and --debug
		// are both given.
		strings.HasPrefix(text, "Skipping info and debug messages"),
		strings.HasPrefix(text, "Skipping debug messages"),
		strings.HasPrefix(text, "Skipping info messages"),
		strings.HasPrefix(text, "Timestamp "), // column header of the text styles
		strings.Trim(text, "-") == "",
		logTrailer.MatchString(text):
		return true
	}
	return false
}

var (
	// logDefaultStyle is `log show`'s default text: timestamp, thread,
	// type, activity, pid, ttl, then "process: …".
	logDefaultStyle = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?[+-]\d{4})\s+0x[0-9a-fA-F]+\s+(\S+)\s+0x[0-9a-fA-F]+\s+(\d+)\s+\d+\s+(.*)$`)
	// logCompactStyle is --style compact: timestamp, a type code, then
	// "process[pid:tid] …".
	logCompactStyle = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{4})?)\s+([A-Za-z]{1,2})\s+([^\[]+)\[(\d+):[0-9a-fA-F]+\]\s?(.*)$`)
)

// compactTypes maps --style compact type codes to messageType names.
func compactType(code string) string {
	switch code {
	case "Df":
		return "Default"
	case "I":
		return "Info"
	case "Db":
		return "Debug"
	case "E":
		return "Error"
	case "F":
		return "Fault"
	case "A":
		return "Activity"
	}
	return code
}

func logTextLine(text string) bool {
	return logDefaultStyle.MatchString(text) || logCompactStyle.MatchString(text)
}

// ParseLogCompact parses the text styles of `log show`: the default one
// (`2023-09-29 23:08:29.260822+1000 0x6dcc  Default  0x0  537  0  sysextd:
// [com.apple.sx:XPC] message`) and --style compact (`2023-09-29
// 23:08:29.260 Df sysextd[537:6dcc] [com.apple.sx:XPC] message`). Lines
// that do not start an event continue the previous event's message, since
// messages may span lines; before the first event they are ignored, as is
// log's banner and trailer.
func ParseLogCompact(r io.Reader) ([]LogEntry, error) {
	const kind = "log"
	lines, err := readLines(kind, logExpected, r)
	if err != nil {
		return nil, err
	}
	return parseLogText(kind, lines)
}

func parseLogText(kind string, lines []line) ([]LogEntry, error) {
	entries := []LogEntry{}
	var firstBad *line
	// The continuation lines of the last event are joined once it ends:
	// appending them one by one copies the message again for every line.
	var more []string
	endEvent := func() {
		if len(more) > 0 {
			last := &entries[len(entries)-1]
			last.Message += "\n" + strings.Join(more, "\n")
			more = more[:0]
		}
	}
	for i, l := range lines {
		text := strings.TrimSpace(l.text)
		if text == "" || isLogNoise(text) {
			continue
		}
		if e, ok := parseLogTextLine(text); ok {
			endEvent()
			entries = append(entries, e)
			continue
		}
		if len(entries) > 0 {
			more = append(more, strings.TrimRight(l.text, " \t"))
			continue
		}
		if firstBad == nil {
			firstBad = &lines[i]
		}
	}
	endEvent()
	if len(entries) == 0 && firstBad != nil {
		return nil, &ParseError{Kind: kind, Line: firstBad.num, Expected: "a log event line starting with a timestamp", Got: shorten(strings.TrimSpace(firstBad.text))}
	}
	return entries, nil
}

func parseLogTextLine(text string) (LogEntry, bool) {
	var e LogEntry
	var rest string
	if m := logDefaultStyle.FindStringSubmatch(text); m != nil {
		e.Timestamp, e.Type = m[1], m[2]
		e.PID, _ = strconv.Atoi(m[3])
		process, after, ok := strings.Cut(m[4], ": ")
		if !ok {
			process, after = strings.TrimSuffix(m[4], ":"), ""
		}
		e.Process, rest = processName(process), after
	} else if m := logCompactStyle.FindStringSubmatch(text); m != nil {
		e.Timestamp, e.Type = m[1], compactType(m[2])
		e.Process = processName(m[3])
		e.PID, _ = strconv.Atoi(m[4])
		rest = m[5]
	} else {
		return LogEntry{}, false
	}
	rest = strings.TrimSpace(rest)
	// An optional "(library) " comes before the optional
	// "[subsystem:category] "; both are only taken when they look like
	// those, so a message that starts "(pid 12) …" stays whole.
	afterLib := rest
	if strings.HasPrefix(rest, "(") {
		if closing := strings.Index(rest, ") "); closing > 0 && !strings.ContainsAny(rest[:closing], " \t") {
			afterLib = strings.TrimSpace(rest[closing+2:])
		}
	}
	if sub, cat, msg, ok := cutLogTag(afterLib); ok {
		e.Subsystem, e.Category, rest = sub, cat, msg
	} else if afterLib != rest && !strings.HasPrefix(afterLib, "[") {
		rest = afterLib // "(library) message" without a tag
	}
	e.Message = rest
	return e, true
}

// cutLogTag splits "[subsystem:category] message".
func cutLogTag(s string) (sub, cat, msg string, ok bool) {
	if !strings.HasPrefix(s, "[") {
		return "", "", "", false
	}
	closing := strings.Index(s, "]")
	if closing < 0 {
		return "", "", "", false
	}
	tag := s[1:closing]
	sub, cat, found := strings.Cut(tag, ":")
	if !found || sub == "" || strings.ContainsAny(tag, " \t") {
		return "", "", "", false
	}
	return sub, cat, strings.TrimSpace(s[closing+1:]), true
}
