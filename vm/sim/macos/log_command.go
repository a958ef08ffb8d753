package macos

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// logQuery is what `log show` was asked for.
type logQuery struct {
	style     logStyle
	start     time.Time // zero: from the beginning
	end       time.Time // zero: until now
	lastBoot  bool
	info      bool
	debug     bool
	pred      predicate
	predTexts []string
}

// parseLogQuery reads log show's options. now and loc resolve --last and
// the zone-less dates of --start and --end (guest local time).
func parseLogQuery(args []string, now time.Time) (logQuery, error) {
	q := logQuery{style: styleDefault}
	var preds []predicate
	value := func(i *int, flag string) (string, error) {
		if *i+1 >= len(args) {
			return "", fmt.Errorf("option %s requires an argument", flag)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		flag, inline, hasInline := strings.Cut(args[i], "=")
		if !strings.HasPrefix(flag, "--") {
			hasInline = false
			flag = args[i]
		}
		get := func() (string, error) {
			if hasInline {
				return inline, nil
			}
			return value(&i, flag)
		}
		switch flag {
		case "--info":
			q.info = true
		case "--debug":
			q.debug = true
		case "--source", "--signpost", "--backtrace", "--no-pager", "--mach-continuous-time", "--loss", "--no-loss", "--no-info", "--no-debug", "--no-backtrace", "--no-signpost":
		case "--color", "--timezone":
			if _, err := get(); err != nil {
				return q, err
			}
		case "--style":
			v, err := get()
			if err != nil {
				return q, err
			}
			s, ok := parseLogStyle(v)
			if !ok {
				return q, fmt.Errorf("invalid style %q (default, compact, json, ndjson, syslog)", v)
			}
			q.style = s
		case "--start", "--end":
			v, err := get()
			if err != nil {
				return q, err
			}
			t, err := parseLogDate(v, now.Location())
			if err != nil {
				return q, err
			}
			if flag == "--start" {
				q.start = t
			} else {
				q.end = t
			}
		case "--last":
			v, err := get()
			if err != nil {
				return q, err
			}
			if v == "boot" {
				q.lastBoot = true
				continue
			}
			d, err := parseLogDuration(v)
			if err != nil {
				return q, err
			}
			q.start = now.Add(-d)
		case "--predicate":
			v, err := get()
			if err != nil {
				return q, err
			}
			pred, err := parsePredicate(v)
			if err != nil {
				return q, err
			}
			preds = append(preds, pred)
			q.predTexts = append(q.predTexts, v)
		default:
			if strings.HasPrefix(flag, "-") {
				return q, fmt.Errorf("unrecognized option '%s'", args[i])
			}
			return q, fmt.Errorf("%s: log archives cannot be read on the simulated Mac; show the live log", args[i])
		}
	}
	// Several --predicate options must all hold, as log combines them.
	for _, p := range preds {
		if q.pred == nil {
			q.pred = p
		} else {
			q.pred = andPred{q.pred, p}
		}
	}
	return q, nil
}

func parseLogDate(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05-0700", "2006-01-02 15:04:05.000000-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04:05.000000", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q, expected \"YYYY-MM-DD HH:MM:SS\" or \"YYYY-MM-DD\"", s)
}

// parseLogDuration reads --last: a number with s, m, h or d (seconds
// when bare).
func parseLogDuration(s string) (time.Duration, error) {
	unit := time.Second
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 's':
			num = s[:n-1]
		case 'm':
			unit, num = time.Minute, s[:n-1]
		case 'h':
			unit, num = time.Hour, s[:n-1]
		case 'd':
			unit, num = 24*time.Hour, s[:n-1]
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 100000 {
		return 0, fmt.Errorf("invalid duration %q for --last, expected e.g. 5m, 2h, 1d or boot", s)
	}
	return time.Duration(n) * unit, nil
}

// selectLogs returns the entries q asks for. Callers hold mu.
func (m *Mac) selectLogs(q logQuery) []logEntry {
	var out []logEntry
	for i := range m.logs {
		e := &m.logs[i]
		switch {
		case e.Type == typeInfo && !q.info, e.Type == typeDebug && !q.debug:
			continue
		case !q.start.IsZero() && e.Time.Before(q.start):
			continue
		case !q.end.IsZero() && e.Time.After(q.end):
			continue
		case q.lastBoot && e.Boot != m.bootGen:
			continue
		case q.pred != nil && !q.pred.match(e):
			continue
		}
		out = append(out, *e)
	}
	return out
}

// cmdLog is log(1): show, collect and config.
func (m *Mac) cmdLog(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 0 {
		fmt.Fprintln(stderr(p), "usage:\n    log <command>\n\nglobal options:\n    -?, --help\n    -q, --quiet\n    -v, --verbose\n\ncommands:\n    collect         gather system logs into a log archive\n    config          view/change logging system settings\n    show            view/search system logs")
		return exitUsage
	}
	switch args[0] {
	case "show":
		m.begin()
		now := m.host.Now()
		m.mu.Unlock()
		q, err := parseLogQuery(args[1:], now)
		if err != nil {
			fmt.Fprintf(stderr(p), "log: %v\n", err)
			return exitUsage
		}
		m.begin()
		entries := m.selectLogs(q)
		m.mu.Unlock()
		if err := writeLogShow(stdout(p), entries, q.style, strings.Join(q.predTexts, " AND "), q.info, q.debug); err != nil {
			return exitFailure
		}
		return exitOK
	case "collect":
		return m.logCollect(ctx, p, args[1:])
	case "config":
		return m.logConfig(p, args[1:])
	case "stream":
		fmt.Fprintln(stderr(p), "log: stream is not available on the simulated Mac; use log show")
		return exitFailure
	}
	fmt.Fprintf(stderr(p), "log: unknown command '%s'\n", args[0])
	return exitUsage
}

// logConfig accepts changes of levels; persist:info or persist:debug for
// a subsystem keeps its info/debug messages across reboots.
func (m *Mac) logConfig(p *shell.Proc, args []string) int {
	var mode, subsystem string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--mode", "--subsystem", "--category", "--process":
			if i+1 >= len(args) {
				fmt.Fprintf(stderr(p), "log: option %s requires an argument\n", args[i])
				return exitUsage
			}
			if args[i] == "--mode" {
				mode = args[i+1]
			} else if args[i] == "--subsystem" {
				subsystem = args[i+1]
			}
			i++
		case "--status", "--reset":
		default:
			fmt.Fprintf(stderr(p), "log: unrecognized option '%s'\n", args[i])
			return exitUsage
		}
	}
	if mode == "" && subsystem != "" {
		// the subsystem's mode: what the golden (or a log config) persisted
		m.begin()
		persisted := m.persist[subsystem]
		m.mu.Unlock()
		level := "DEFAULT PERSIST_DEFAULT"
		if persisted {
			level = "DEBUG PERSIST_DEBUG"
		}
		fmt.Fprintf(stdout(p), "Mode for '%s'  %s\n", subsystem, level)
		return exitOK
	}
	if mode == "" {
		fmt.Fprintln(stdout(p), "System mode = INFO")
		return exitOK
	}
	if !p.Root {
		fmt.Fprintln(stderr(p), "log: Must be admin to run 'config' command")
		return exitFailure
	}
	if subsystem != "" && (strings.Contains(mode, "persist:debug") || strings.Contains(mode, "persist:info")) {
		m.begin()
		m.persist[subsystem] = true
		m.mu.Unlock()
	}
	return exitOK
}

// logCollect writes a simulated archive: a folder with the log as
// ndjson (logs.ndjson) — real .logarchive bundles cannot be produced.
func (m *Mac) logCollect(ctx context.Context, p *shell.Proc, args []string) int {
	output := "system_logs.logarchive"
	var rest []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--output" && i+1 < len(args) {
			output = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	if !p.Root {
		fmt.Fprintln(stderr(p), "log: Must be admin to run 'collect' command")
		return exitFailure
	}
	m.begin()
	now := m.host.Now()
	m.mu.Unlock()
	q, err := parseLogQuery(append(rest, "--info", "--debug"), now)
	if err != nil {
		fmt.Fprintf(stderr(p), "log: %v\n", err)
		return exitUsage
	}
	gp := guestPath(p, output)
	if m.exists(gp) {
		fmt.Fprintf(stderr(p), "log: Archive already exists at %s\n", gp)
		return exitFailure
	}
	m.begin()
	entries := m.selectLogs(q)
	m.mu.Unlock()
	var b bytes.Buffer
	for i := range entries {
		writeJSONObject(&b, &entries[i], false, "")
		b.WriteByte('\n')
	}
	if err := m.writeFile(gp+"/logs.ndjson", b.String()); err != nil {
		fmt.Fprintf(stderr(p), "log: could not write archive: %v\n", err)
		return exitFailure
	}
	_ = m.writeFile(gp+"/README-SIMULATED.txt", "Simulated Mac: logs.ndjson holds the events as `log show --style ndjson --info --debug` prints them.\n")
	fmt.Fprintf(stdout(p), "Archive successfully written to %s\n", gp)
	return exitOK
}
