package macos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// msgType is a unified-log message type.
type msgType uint8

const (
	typeDefault msgType = iota
	typeInfo
	typeDebug
	typeError
	typeFault
)

func (t msgType) String() string {
	return [...]string{"Default", "Info", "Debug", "Error", "Fault"}[t]
}

// code is the number log's predicates accept for the type.
func (t msgType) code() int { return [...]int{0, 1, 2, 16, 17}[t] }

// compact is the type column of --style compact.
func (t msgType) compact() string { return [...]string{"Df", "I", "Db", "E", "F"}[t] }

// process is a running program as the log records it.
type process struct {
	path   string // processImagePath
	pid    int
	thread uint64 // its main thread, as the log shows it
	uuid   string // processImageUUID
}

func (p process) name() string { return path.Base(p.path) }

// logEntry is one unified-log event.
type logEntry struct {
	Time        time.Time
	Boot        int // boot generation the entry was written in
	BootUUID    string
	MachTime    uint64
	ProcessPath string
	ProcessUUID string
	PID         int
	ThreadID    uint64
	SenderPath  string
	SenderUUID  string
	Subsystem   string
	Category    string
	Type        msgType
	Format      string
	Message     string
	TraceID     uint64
	PC          uint64
}

func (e *logEntry) process() string { return path.Base(e.ProcessPath) }

// logTimeLayout is log's timestamp: microseconds and a numeric zone.
const logTimeLayout = "2006-01-02 15:04:05.000000-0700"

// Images whose lines the model writes. Senders other than the process
// itself appear in parentheses in the default style.
const (
	imageSysextd   = "/System/Library/Frameworks/SystemExtensions.framework/Versions/A/Helpers/sysextd"
	imageNESM      = "/usr/libexec/nesessionmanager"
	imageLaunchd   = "/sbin/launchd"
	imageInstaller = "/usr/sbin/installer"
	imageInstalld  = "/System/Library/PrivateFrameworks/PackageKit.framework/Versions/A/Resources/installd"
	imageShutdown  = "/sbin/shutdown"
	imageSysdiag   = "/usr/bin/sysdiagnose"
	imageMDM       = "/usr/libexec/mdmclient"
	imageSettings  = "/System/Applications/System Settings.app/Contents/MacOS/System Settings"
	imageSimNotes  = "/usr/local/libexec/sxlab-sim"
	libXPC         = "/usr/lib/system/libxpc.dylib"
	libSysExt      = "/System/Library/Frameworks/SystemExtensions.framework/Versions/A/SystemExtensions"
	libNE          = "/System/Library/Frameworks/NetworkExtension.framework/Versions/A/NetworkExtension"
)

// maxLogEntries bounds the store: a lab that polls --check-xpc for hours
// must not grow the model without limit. The oldest entries go first,
// as in logd's ring.
const maxLogEntries = 200000

// formatVerb matches the os_log format specifiers the model's messages use.
var formatVerb = regexp.MustCompile(`%(?:\{[a-z, ]+\})?(?:ll|l)?[@sdux]|%%`)

// renderFormat fills an os_log format string the way log shows the event:
// each specifier takes the next argument.
func renderFormat(format string, args []any) string {
	i := 0
	return formatVerb.ReplaceAllStringFunc(format, func(verb string) string {
		if verb == "%%" {
			return "%"
		}
		if i >= len(args) {
			return "<missing>"
		}
		arg := args[i]
		i++
		if strings.HasSuffix(verb, "x") {
			if n, ok := arg.(uint64); ok {
				return strconv.FormatUint(n, 16)
			}
		}
		return fmt.Sprint(arg)
	})
}

// logStyle is --style.
type logStyle int

const (
	styleDefault logStyle = iota
	styleCompact
	styleJSON
	styleNDJSON
	styleSyslog
)

func parseLogStyle(s string) (logStyle, bool) {
	switch s {
	case "default":
		return styleDefault, true
	case "compact":
		return styleCompact, true
	case "json":
		return styleJSON, true
	case "ndjson":
		return styleNDJSON, true
	case "syslog":
		return styleSyslog, true
	}
	return 0, false
}

// writeLogShow renders entries the way `log show` prints them in style.
// predicate is echoed in the banner as given.
func writeLogShow(w io.Writer, entries []logEntry, style logStyle, predicate string, info, debug bool) error {
	var b bytes.Buffer
	if style == styleJSON {
		writeJSONArray(&b, entries)
		_, err := w.Write(b.Bytes())
		return err
	}
	if predicate != "" {
		// log echoes the predicate between quotes without escaping it.
		fmt.Fprintf(&b, "Filtering the log data using \"%s\"\n", predicate)
	}
	switch {
	case !info && !debug:
		b.WriteString("Skipping info and debug messages, pass --info and/or --debug to include.\n")
	case !debug:
		b.WriteString("Skipping debug messages, pass --debug to include.\n")
	case !info:
		b.WriteString("Skipping info messages, pass --info to include.\n")
	}
	switch style {
	case styleDefault:
		b.WriteString("Timestamp                       Thread     Type        Activity             PID    TTL  \n")
	case styleCompact:
		b.WriteString("Timestamp               Ty Process[PID:TID]\n")
	case styleSyslog:
		b.WriteString("Timestamp                       (process)[PID]    \n")
	}
	counts := map[msgType]int{}
	for i := range entries {
		e := &entries[i]
		counts[e.Type]++
		switch style {
		case styleNDJSON:
			writeJSONObject(&b, e, false, "")
			b.WriteByte('\n')
		case styleCompact:
			fmt.Fprintf(&b, "%s %-2s %s[%d:%x] %s\n", e.Time.Format("2006-01-02 15:04:05.000"), e.Type.compact(), e.process(), e.PID, e.ThreadID, textTail(e, false))
		case styleSyslog:
			fmt.Fprintf(&b, "%s localhost %s[%d]: %s\n", e.Time.Format(logTimeLayout), e.process(), e.PID, textTail(e, true))
		default:
			fmt.Fprintf(&b, "%-31s %-10s %-11s %-20s %-6d %-4d %s: %s\n", e.Time.Format(logTimeLayout), fmt.Sprintf("0x%x", e.ThreadID), e.Type, "0x0", e.PID, 0, e.process(), textTail(e, true))
		}
	}
	if style == styleDefault || style == styleCompact || style == styleSyslog {
		b.WriteString(strings.Repeat("-", 116) + "\n")
	}
	fmt.Fprintf(&b, "Log      - Default: %10d, Info: %16d, Debug: %13d, Error: %10d, Fault: %10d\n",
		counts[typeDefault], counts[typeInfo], counts[typeDebug], counts[typeError], counts[typeFault])
	fmt.Fprintf(&b, "Activity - Create: %11d, Transition: %10d, Actions: %11d\n", 0, 0, 0)
	_, err := w.Write(b.Bytes())
	return err
}

// textTail is "(library) [subsystem:category] message" of the text styles.
func textTail(e *logEntry, withLibrary bool) string {
	var b strings.Builder
	if withLibrary && e.SenderPath != "" && e.SenderPath != e.ProcessPath {
		b.WriteString("(" + path.Base(e.SenderPath) + ") ")
	}
	if e.Subsystem != "" {
		b.WriteString("[" + e.Subsystem + ":" + e.Category + "] ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// jsonField is one key of a log event object, in log's own key order.
type jsonField struct {
	key string
	val any // string, int, uint64, nil or []jsonField
}

func entryFields(e *logEntry) []jsonField {
	frames := []jsonField{{"imageOffset", e.PC}, {"imageUUID", e.SenderUUID}}
	return []jsonField{
		{"traceID", e.TraceID},
		{"eventMessage", e.Message},
		{"eventType", "logEvent"},
		{"source", nil},
		{"formatString", e.Format},
		{"activityIdentifier", 0},
		{"subsystem", e.Subsystem},
		{"category", e.Category},
		{"threadID", e.ThreadID},
		{"senderImageUUID", e.SenderUUID},
		{"backtrace", []jsonField{{"frames", [][]jsonField{frames}}}},
		{"bootUUID", e.BootUUID},
		{"processImagePath", e.ProcessPath},
		{"senderImagePath", e.SenderPath},
		{"timestamp", e.Time.Format(logTimeLayout)},
		{"machTimestamp", e.MachTime},
		{"messageType", e.Type.String()},
		{"processImageUUID", e.ProcessUUID},
		{"processID", e.PID},
		{"senderProgramCounter", e.PC},
		{"parentActivityIdentifier", 0},
		{"timezoneName", ""},
	}
}

// writeJSONArray is --style json: NSJSONSerialization's pretty print,
// "key" : value with two-space indents, objects joined by "},{".
func writeJSONArray(b *bytes.Buffer, entries []logEntry) {
	if len(entries) == 0 {
		b.WriteString("[\n\n]\n")
		return
	}
	b.WriteString("[")
	for i := range entries {
		if i > 0 {
			b.WriteString(",")
		}
		writeJSONObject(b, &entries[i], true, "")
	}
	b.WriteString("]\n")
}

// writeJSONObject writes one event; compact for ndjson. Slashes are
// escaped as "\/", which NSJSONSerialization does and parsers accept.
func writeJSONObject(b *bytes.Buffer, e *logEntry, pretty bool, indent string) {
	writeJSONValue(b, entryFields(e), pretty, indent)
}

func writeJSONValue(b *bytes.Buffer, v any, pretty bool, indent string) {
	inner := indent + "  "
	sep, nl, pad, innerPad := ":", "", "", ""
	if pretty {
		sep, nl, pad, innerPad = " : ", "\n", indent, inner
	}
	switch v := v.(type) {
	case []jsonField:
		b.WriteString("{" + nl)
		for i, f := range v {
			if i > 0 {
				b.WriteString("," + nl)
			}
			b.WriteString(innerPad)
			writeJSONString(b, f.key)
			b.WriteString(sep)
			writeJSONValue(b, f.val, pretty, inner)
		}
		b.WriteString(nl + pad + "}")
	case [][]jsonField:
		b.WriteString("[" + nl)
		for i, obj := range v {
			if i > 0 {
				b.WriteString("," + nl)
			}
			b.WriteString(innerPad)
			writeJSONValue(b, obj, pretty, inner)
		}
		b.WriteString(nl + pad + "]")
	case string:
		writeJSONString(b, v)
	case nil:
		b.WriteString("null")
	default:
		fmt.Fprint(b, v)
	}
}

func writeJSONString(b *bytes.Buffer, s string) {
	if plainJSON(s) {
		// Most keys and messages need no escape; encoding each through
		// a json.Encoder was 3 % of a 2,400-attempt run's CPU.
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.WriteString(strings.ReplaceAll(strings.TrimSuffix(tmp.String(), "\n"), "/", `\/`))
}

// plainJSON reports whether s encodes as itself between quotes: printable
// ASCII without '"', '\\' or the '/' that writeJSONString escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '/' {
			return false
		}
	}
	return true
}
