package guest

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrEmptyInput is wrapped by every parser's error for input that holds
// nothing but whitespace: the command printed nothing, which callers usually
// want to tell apart from output in a format nobody expected.
var ErrEmptyInput = errors.New("empty input")

// ParseError says which parser gave up, on which line, and what it wanted
// there. Line is 1-based; it is 0 when the input was empty.
type ParseError struct {
	Kind     string // parser kind as in ParserKinds, e.g. "extensions"
	Line     int
	Expected string
	Got      string // the offending line, trimmed and shortened
	Err      error  // ErrEmptyInput or nil
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("parse %s: %v: expected %s", e.Kind, e.Err, e.Expected)
	}
	return fmt.Sprintf("parse %s: line %d: expected %s, got %q", e.Kind, e.Line, e.Expected, e.Got)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ParserKinds lists KIND names in a stable order: extensions, vpn-list,
// vpn-status, launchd, sw-vers, leases, log, pkg-info, installer.
func ParserKinds() []string {
	return []string{
		"extensions", "vpn-list", "vpn-status", "launchd", "sw-vers",
		"leases", "log", "pkg-info", "installer",
	}
}

// Parse runs the parser for kind and returns a value ready for json.Marshal.
// An unknown kind is an error listing the kinds.
func Parse(kind string, r io.Reader) (any, error) {
	switch kind {
	case "extensions":
		return ParseExtensions(r)
	case "vpn-list":
		return ParseVPNList(r)
	case "vpn-status":
		return ParseVPNStatus(r)
	case "launchd":
		return ParseLaunchdJob(r)
	case "sw-vers":
		return ParseSwVers(r)
	case "leases":
		return ParseLeases(r)
	case "log":
		return ParseLog(r)
	case "pkg-info":
		return ParsePkgInfo(r)
	case "installer":
		return ParseInstaller(r)
	}
	return nil, fmt.Errorf("parse: unknown kind %q (kinds: %s)", kind, strings.Join(ParserKinds(), ", "))
}

// line is one input line without its line ending, with its 1-based number so
// errors can point at it.
type line struct {
	num  int
	text string
}

// readLines reads all of r and splits it into lines, accepting LF and CRLF
// endings and dropping a leading UTF-8 byte-order mark (editors on the host
// add one to pasted samples). It returns an *ParseError wrapping
// ErrEmptyInput when there is nothing but whitespace.
func readLines(kind, expected string, r io.Reader) ([]line, error) {
	data, err := readAll(kind, r)
	if err != nil {
		return nil, err
	}
	data = strings.TrimPrefix(data, "\uFEFF")
	if strings.TrimSpace(data) == "" {
		return nil, emptyError(kind, expected)
	}
	raw := strings.Split(data, "\n")
	lines := make([]line, 0, len(raw))
	for i, text := range raw {
		lines = append(lines, line{num: i + 1, text: strings.TrimRight(text, "\r")})
	}
	return lines, nil
}

func readAll(kind string, r io.Reader) (string, error) {
	if r == nil {
		return "", emptyError(kind, "a reader")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("parse %s: read: %w", kind, err)
	}
	return string(data), nil
}

func emptyError(kind, expected string) error {
	return &ParseError{Kind: kind, Expected: expected, Err: ErrEmptyInput}
}

// unrecognised reports the first non-blank line as the place where the
// parser found nothing it knew.
func unrecognised(kind, expected string, lines []line) error {
	for _, l := range lines {
		if strings.TrimSpace(l.text) != "" {
			return &ParseError{Kind: kind, Line: l.num, Expected: expected, Got: shorten(strings.TrimSpace(l.text))}
		}
	}
	return emptyError(kind, expected)
}

// shorten keeps error messages readable when the offending line is a
// megabyte of binary junk.
func shorten(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}

// leadingSpace is how many whitespace bytes (tabs or spaces) start s.
func leadingSpace(s string) int {
	return len(s) - len(strings.TrimLeft(s, " \t"))
}

// unquote drops one pair of surrounding double quotes, as launchctl and
// scutil print around some names.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
