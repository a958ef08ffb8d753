package macos

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// predicate is a parsed `log --predicate` filter. The model understands
// the subset the lab and people use on these logs: comparisons of event
// fields with ==, !=, IN {…}, CONTAINS, BEGINSWITH, ENDSWITH and LIKE
// (with [c]/[d]/[cd]), joined by AND, OR, NOT and parentheses. Anything
// else is refused, like log refuses what NSPredicate cannot parse, so a
// lab that works against the sim does not rely on a filter the sim
// quietly misread.
type predicate interface {
	match(e *logEntry) bool
}

type andPred struct{ l, r predicate }
type orPred struct{ l, r predicate }
type notPred struct{ p predicate }

func (p andPred) match(e *logEntry) bool { return p.l.match(e) && p.r.match(e) }
func (p orPred) match(e *logEntry) bool  { return p.l.match(e) || p.r.match(e) }
func (p notPred) match(e *logEntry) bool { return !p.p.match(e) }

// predField is an event field a predicate can name.
type predField int

const (
	fieldSubsystem predField = iota
	fieldCategory
	fieldProcess
	fieldProcessPath
	fieldSender
	fieldSenderPath
	fieldMessage
	fieldMessageType
	fieldEventType
	fieldPID
)

var predFields = map[string]predField{
	"subsystem":         fieldSubsystem,
	"category":          fieldCategory,
	"process":           fieldProcess,
	"processImagePath":  fieldProcessPath,
	"sender":            fieldSender,
	"senderImagePath":   fieldSenderPath,
	"eventMessage":      fieldMessage,
	"composedMessage":   fieldMessage,
	"messageType":       fieldMessageType,
	"eventType":         fieldEventType,
	"processID":         fieldPID,
	"processIdentifier": fieldPID,
}

// compare is "field OP value(s)".
type compare struct {
	field    predField
	op       string // ==, !=, IN, CONTAINS, BEGINSWITH, ENDSWITH, LIKE
	values   []string
	caseFold bool
	like     *regexp.Regexp
}

func (c compare) match(e *logEntry) bool {
	got := fieldValue(c.field, e)
	eq := func(want string) bool {
		switch c.field {
		case fieldMessageType:
			return messageTypeIs(e.Type, want)
		case fieldEventType:
			return strings.EqualFold(want, "logEvent") || want == "1024"
		}
		if c.caseFold {
			return strings.EqualFold(got, want)
		}
		return got == want
	}
	norm := func(s string) string {
		if c.caseFold {
			return strings.ToLower(s)
		}
		return s
	}
	switch c.op {
	case "==":
		return eq(c.values[0])
	case "!=":
		return !eq(c.values[0])
	case "IN":
		for _, v := range c.values {
			if eq(v) {
				return true
			}
		}
		return false
	case "CONTAINS":
		return strings.Contains(norm(got), norm(c.values[0]))
	case "BEGINSWITH":
		return strings.HasPrefix(norm(got), norm(c.values[0]))
	case "ENDSWITH":
		return strings.HasSuffix(norm(got), norm(c.values[0]))
	case "LIKE":
		return c.like.MatchString(got)
	}
	return false
}

func fieldValue(f predField, e *logEntry) string {
	switch f {
	case fieldSubsystem:
		return e.Subsystem
	case fieldCategory:
		return e.Category
	case fieldProcess:
		return e.process()
	case fieldProcessPath:
		return e.ProcessPath
	case fieldSender:
		return path.Base(e.SenderPath)
	case fieldSenderPath:
		return e.SenderPath
	case fieldMessage:
		return e.Message
	case fieldMessageType:
		return strings.ToLower(e.Type.String())
	case fieldEventType:
		return "logEvent"
	case fieldPID:
		return strconv.Itoa(e.PID)
	}
	return ""
}

// messageTypeIs accepts the names and numbers log accepts for a type.
func messageTypeIs(t msgType, want string) bool {
	if n, err := strconv.Atoi(want); err == nil {
		return n == t.code()
	}
	return strings.EqualFold(want, t.String())
}

// predicateError is what log prints for a filter it cannot use; the
// parenthesis says what the simulated Mac tripped on.
type predicateError struct {
	predicate string
	reason    string
}

func (e *predicateError) Error() string {
	// NSPredicate quotes the format string without escaping it.
	return fmt.Sprintf("Invalid predicate: Unable to parse the format string \"%s\" (simulated Mac: %s)", e.predicate, e.reason)
}

// parsePredicate parses a filter; the error is a *predicateError.
func parsePredicate(s string) (predicate, error) {
	toks, err := lexPredicate(s)
	if err != nil {
		return nil, &predicateError{s, err.Error()}
	}
	p := &predParser{toks: toks}
	pred, err := p.parseOr(0)
	if err == nil && p.pos < len(p.toks) {
		err = fmt.Errorf("unexpected %s", p.toks[p.pos])
	}
	if err != nil {
		return nil, &predicateError{s, err.Error()}
	}
	return pred, nil
}

type tokKind int

const (
	tokWord tokKind = iota
	tokString
	tokNumber
	tokOp
	tokPunct
)

type token struct {
	kind tokKind
	text string
}

func (t token) String() string {
	if t.kind == tokString {
		return strconv.Quote(t.text)
	}
	return "'" + t.text + "'"
}

// maxPredicateTokens and maxPredicateDepth keep hostile input from
// costing much: a predicate arrives over the network.
const (
	maxPredicateTokens = 2000
	maxPredicateDepth  = 50
)

func lexPredicate(s string) ([]token, error) {
	var toks []token
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if len(toks) > maxPredicateTokens {
			return nil, fmt.Errorf("more than %d tokens", maxPredicateTokens)
		}
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '"' || r == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(rs) && rs[j] != r; j++ {
				if rs[j] == '\\' && j+1 < len(rs) {
					j++
				}
				b.WriteRune(rs[j])
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated string at offset %d", i)
			}
			toks = append(toks, token{tokString, b.String()})
			i = j + 1
		case unicode.IsDigit(r):
			j := i
			for j < len(rs) && unicode.IsDigit(rs[j]) {
				j++
			}
			toks = append(toks, token{tokNumber, string(rs[i:j])})
			i = j
		case unicode.IsLetter(r) || r == '_':
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '_' || rs[j] == '.') {
				j++
			}
			toks = append(toks, token{tokWord, string(rs[i:j])})
			i = j
		case r == '[':
			j := i + 1
			for j < len(rs) && rs[j] != ']' {
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated modifier at offset %d", i)
			}
			toks = append(toks, token{tokOp, "[" + strings.ToLower(string(rs[i+1:j])) + "]"})
			i = j + 1
		default:
			two := ""
			if i+1 < len(rs) {
				two = string(rs[i : i+2])
			}
			switch two {
			case "==", "!=", "<>", "&&", "||", "<=", ">=", "=<", "=>":
				toks = append(toks, token{tokOp, two})
				i += 2
				continue
			}
			switch r {
			case '=', '!', '<', '>':
				toks = append(toks, token{tokOp, string(r)})
			case '(', ')', '{', '}', ',':
				toks = append(toks, token{tokPunct, string(r)})
			default:
				return nil, fmt.Errorf("unexpected character %q at offset %d", r, i)
			}
			i++
		}
	}
	return toks, nil
}

type predParser struct {
	toks []token
	pos  int
}

func (p *predParser) peek() (token, bool) {
	if p.pos >= len(p.toks) {
		return token{}, false
	}
	return p.toks[p.pos], true
}

func (p *predParser) next() (token, error) {
	t, ok := p.peek()
	if !ok {
		return token{}, fmt.Errorf("unexpected end of predicate")
	}
	p.pos++
	return t, nil
}

// isWord reports whether the next token is one of the keywords, in any case.
func (p *predParser) isWord(words ...string) bool {
	t, ok := p.peek()
	if !ok || (t.kind != tokWord && t.kind != tokOp) {
		return false
	}
	for _, w := range words {
		if strings.EqualFold(t.text, w) {
			return true
		}
	}
	return false
}

func (p *predParser) parseOr(depth int) (predicate, error) {
	if depth > maxPredicateDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxPredicateDepth)
	}
	l, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	for p.isWord("OR", "||") {
		p.pos++
		r, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		l = orPred{l, r}
	}
	return l, nil
}

func (p *predParser) parseAnd(depth int) (predicate, error) {
	l, err := p.parseNot(depth)
	if err != nil {
		return nil, err
	}
	for p.isWord("AND", "&&") {
		p.pos++
		r, err := p.parseNot(depth)
		if err != nil {
			return nil, err
		}
		l = andPred{l, r}
	}
	return l, nil
}

func (p *predParser) parseNot(depth int) (predicate, error) {
	if p.isWord("NOT", "!") {
		p.pos++
		if depth > maxPredicateDepth {
			return nil, fmt.Errorf("nested deeper than %d", maxPredicateDepth)
		}
		inner, err := p.parseNot(depth + 1)
		if err != nil {
			return nil, err
		}
		return notPred{inner}, nil
	}
	if t, ok := p.peek(); ok && t.kind == tokPunct && t.text == "(" {
		p.pos++
		inner, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if t, err := p.next(); err != nil || t.text != ")" {
			return nil, fmt.Errorf("missing ')'")
		}
		return inner, nil
	}
	return p.parseCompare()
}

func (p *predParser) parseCompare() (predicate, error) {
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tokWord {
		return nil, fmt.Errorf("expected a field name, got %s", t)
	}
	field, ok := predFields[t.text]
	if !ok {
		return nil, fmt.Errorf("unsupported field %q (supported: subsystem, category, process, processImagePath, sender, senderImagePath, eventMessage, composedMessage, messageType, eventType, processID)", t.text)
	}
	opTok, err := p.next()
	if err != nil {
		return nil, err
	}
	op := strings.ToUpper(opTok.text)
	switch op {
	case "=":
		op = "=="
	case "<>":
		op = "!="
	case "==", "!=", "IN", "CONTAINS", "BEGINSWITH", "ENDSWITH", "LIKE":
	default:
		return nil, fmt.Errorf("unsupported operator %s", opTok)
	}
	c := compare{field: field, op: op}
	if mod, ok := p.peek(); ok && mod.kind == tokOp && strings.HasPrefix(mod.text, "[") {
		p.pos++
		switch mod.text {
		case "[c]", "[cd]", "[dc]":
			c.caseFold = true
		case "[d]":
		default:
			return nil, fmt.Errorf("unsupported modifier %s", mod.text)
		}
	}
	if op == "IN" {
		if c.values, err = p.parseList(field); err != nil {
			return nil, err
		}
		return c, nil
	}
	v, err := p.parseValue(field)
	if err != nil {
		return nil, err
	}
	c.values = []string{v}
	if field == fieldPID && op != "==" && op != "!=" {
		return nil, fmt.Errorf("%s needs == , != or IN with a number", t.text)
	}
	if op == "LIKE" {
		c.like = likePattern(v, c.caseFold)
	}
	return c, nil
}

func (p *predParser) parseList(field predField) ([]string, error) {
	if t, err := p.next(); err != nil || t.text != "{" {
		return nil, fmt.Errorf("IN needs a list like {\"a\", \"b\"}")
	}
	var values []string
	for {
		v, err := p.parseValue(field)
		if err != nil {
			return nil, err
		}
		values = append(values, v)
		t, err := p.next()
		if err != nil {
			return nil, fmt.Errorf("unterminated list")
		}
		if t.text == "}" {
			return values, nil
		}
		if t.text != "," {
			return nil, fmt.Errorf("expected ',' or '}' in list, got %s", t)
		}
	}
}

// parseValue reads a literal. Bare words are accepted for messageType and
// eventType only (messageType == error), as log's documentation shows.
func (p *predParser) parseValue(field predField) (string, error) {
	t, err := p.next()
	if err != nil {
		return "", err
	}
	switch t.kind {
	case tokString:
		if field == fieldPID {
			return "", fmt.Errorf("processID compares with a number, got %s", t)
		}
		return t.text, nil
	case tokNumber:
		return t.text, nil
	case tokWord:
		if field == fieldMessageType || field == fieldEventType {
			return t.text, nil
		}
	}
	return "", fmt.Errorf("expected a quoted value, got %s", t)
}

// likePattern turns NSPredicate's LIKE wildcards (* and ?) into a regexp.
func likePattern(glob string, fold bool) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?s)")
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
