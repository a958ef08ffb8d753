package shell

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The sim's shell understands the part of zsh the lab sends: words with
// POSIX quoting, $VAR and $(...) expansion, VAR=value prefixes, `;`, `&&`,
// `||`, `|`, `!` and simple redirections. Anything else is refused with
// "sim: unsupported: ..." so a scenario never passes on a misunderstood
// command line.

// shUnsupported is a construct the sim's shell refuses (exit 127).
type shUnsupported struct{ what string }

func (e *shUnsupported) Error() string { return "unsupported: " + e.what }

// shSyntaxError is a command line zsh itself would reject (exit 1).
type shSyntaxError struct {
	msg string
	// incomplete is set when more input could complete the line (an open
	// quote); the interactive shell then reads another line.
	incomplete bool
}

func (e *shSyntaxError) Error() string { return e.msg }

type shPartKind int

const (
	shLit    shPartKind = iota // literal text
	shParam                    // $NAME, ${NAME}, $?
	shCmdSub                   // $(...) or `...`
	shTilde                    // ~ or ~user at the start of a word
)

type shPart struct {
	kind   shPartKind
	text   string // literal, parameter name or tilde user
	quoted bool   // inside quotes: no field splitting
	sub    *shList
}

type shWord []shPart

type shRedirOp int

const (
	shRedirIn         shRedirOp = iota // N< file
	shRedirOut                         // N> file
	shRedirAppend                      // N>> file
	shRedirDup                         // N>&M
	shRedirBoth                        // &> file, >& file
	shRedirBothAppend                  // &>> file
)

type shRedirect struct {
	fd     int
	op     shRedirOp
	target shWord
	dupTo  int
}

type shAssign struct {
	name  string
	value shWord
}

type shSimple struct {
	assigns []shAssign
	args    []shWord
	redirs  []shRedirect
}

type shPipeline struct {
	negate bool
	cmds   []*shSimple
}

type shAndOr struct {
	pipes []*shPipeline
	ops   []string // ops[i] joins pipes[i] and pipes[i+1]: "&&" or "||"
}

type shList struct{ items []*shAndOr }

type shParser struct {
	src string
	pos int
}

// parseShell parses one command line (it may hold several lines).
func parseShell(src string) (*shList, error) {
	p := &shParser{src: src}
	return p.list(false)
}

func (p *shParser) eof() bool { return p.pos >= len(p.src) }

func (p *shParser) peek() byte { return p.peekAt(0) }

func (p *shParser) peekAt(i int) byte {
	if p.pos+i >= len(p.src) {
		return 0
	}
	return p.src[p.pos+i]
}

func (p *shParser) has(prefix string) bool { return strings.HasPrefix(p.src[p.pos:], prefix) }

// skipBlanks skips spaces, tabs, line continuations and comments, but not
// newlines (they separate commands).
func (p *shParser) skipBlanks() {
	for !p.eof() {
		switch c := p.peek(); {
		case c == ' ' || c == '\t':
			p.pos++
		case c == '\\' && p.peekAt(1) == '\n':
			p.pos += 2
		case c == '#':
			for !p.eof() && p.peek() != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

// skipSpace also skips newlines, where a command may continue on the next
// line (after `&&`, `|`, at the start of a list).
func (p *shParser) skipSpace() {
	for {
		p.skipBlanks()
		if p.peek() != '\n' {
			return
		}
		p.pos++
	}
}

func (p *shParser) near() string {
	if p.eof() {
		return `\n`
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return string(r)
}

func (p *shParser) parseError() error {
	return &shSyntaxError{msg: fmt.Sprintf("parse error near `%s'", p.near())}
}

// list parses commands up to the end of input, or up to the `)` closing a
// command substitution when sub is set.
func (p *shParser) list(sub bool) (*shList, error) {
	l := &shList{}
	for {
		p.skipSpace()
		if p.eof() {
			if sub {
				return nil, &shSyntaxError{msg: "parse error in command substitution: missing )", incomplete: true}
			}
			return l, nil
		}
		switch p.peek() {
		case ')':
			if sub {
				p.pos++
				return l, nil
			}
			return nil, p.parseError()
		case ';', '|':
			return nil, p.parseError()
		case '&':
			if p.peekAt(1) != '>' {
				return nil, p.parseError()
			}
		}
		ao, err := p.andOr(sub)
		if err != nil {
			return nil, err
		}
		l.items = append(l.items, ao)
		p.skipBlanks()
		if p.eof() {
			continue
		}
		switch p.peek() {
		case ';', '\n':
			p.pos++
		case ')':
			// closes the substitution, or is an error: the loop decides
		case '&':
			return nil, &shUnsupported{"background jobs (&)"}
		default:
			return nil, p.parseError()
		}
	}
}

func (p *shParser) andOr(sub bool) (*shAndOr, error) {
	first, err := p.pipeline(sub)
	if err != nil {
		return nil, err
	}
	ao := &shAndOr{pipes: []*shPipeline{first}}
	for {
		p.skipBlanks()
		var op string
		switch {
		case p.has("&&"):
			op = "&&"
		case p.has("||"):
			op = "||"
		default:
			return ao, nil
		}
		p.pos += 2
		p.skipSpace()
		next, err := p.pipeline(sub)
		if err != nil {
			return nil, err
		}
		ao.ops = append(ao.ops, op)
		ao.pipes = append(ao.pipes, next)
	}
}

func (p *shParser) pipeline(sub bool) (*shPipeline, error) {
	p.skipBlanks()
	pl := &shPipeline{}
	if p.peek() == '!' && (p.peekAt(1) == ' ' || p.peekAt(1) == '\t') {
		pl.negate = true
		p.pos++
	}
	for {
		c, err := p.simple(sub)
		if err != nil {
			return nil, err
		}
		pl.cmds = append(pl.cmds, c)
		p.skipBlanks()
		if p.peek() != '|' || p.peekAt(1) == '|' {
			return pl, nil
		}
		if p.peekAt(1) == '&' {
			return nil, &shUnsupported{"|& pipes"}
		}
		p.pos++
		p.skipSpace()
	}
}

// shKeyword reports zsh's reserved words; the sim runs no compound
// commands.
func shKeyword(s string) bool {
	switch s {
	case "if", "then", "elif", "else", "fi", "for", "foreach", "while", "until", "do", "done",
		"case", "esac", "select", "function", "time", "coproc", "repeat", "end", "nocorrect",
		"{", "}", "[[", "]]":
		return true
	}
	return false
}

func (p *shParser) simple(sub bool) (*shSimple, error) {
	c := &shSimple{}
	for {
		p.skipBlanks()
		if p.eof() {
			break
		}
		ch := p.peek()
		if ch == '\n' || ch == ';' || ch == '|' || (ch == ')' && sub) {
			break
		}
		if ch == '&' && p.peekAt(1) != '>' {
			break
		}
		if ch == ')' {
			return nil, p.parseError()
		}
		if ch == '(' {
			return nil, &shUnsupported{"subshells and grouping ( )"}
		}
		if ch == '<' || ch == '>' || ch == '&' || (ch >= '0' && ch <= '9' && (p.peekAt(1) == '<' || p.peekAt(1) == '>')) {
			r, err := p.redirect(sub)
			if err != nil {
				return nil, err
			}
			c.redirs = append(c.redirs, r)
			continue
		}
		w, err := p.word(sub)
		if err != nil {
			return nil, err
		}
		if len(c.args) == 0 {
			if a, ok := shAssignment(w); ok {
				c.assigns = append(c.assigns, a)
				continue
			}
			if len(w) == 1 && w[0].kind == shLit && !w[0].quoted && shKeyword(w[0].text) {
				return nil, &shUnsupported{"shell keyword " + w[0].text}
			}
		}
		c.args = append(c.args, w)
	}
	if len(c.args) == 0 && len(c.assigns) == 0 && len(c.redirs) == 0 {
		return nil, p.parseError()
	}
	return c, nil
}

// shAssignment recognises NAME=value: the name must be unquoted literal
// text.
func shAssignment(w shWord) (shAssign, bool) {
	if len(w) == 0 || w[0].kind != shLit || w[0].quoted {
		return shAssign{}, false
	}
	name, rest, ok := strings.Cut(w[0].text, "=")
	if !ok || !shIsName(name) {
		return shAssign{}, false
	}
	value := shWord{}
	if rest != "" {
		value = append(value, shPart{kind: shLit, text: rest})
	}
	value = append(value, w[1:]...)
	return shAssign{name: name, value: value}, true
}

func shIsName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

func (p *shParser) redirect(sub bool) (shRedirect, error) {
	r := shRedirect{fd: -1}
	if c := p.peek(); c >= '0' && c <= '9' {
		r.fd = int(c - '0')
		p.pos++
		if r.fd > 2 {
			return r, &shUnsupported{fmt.Sprintf("redirection of file descriptor %d", r.fd)}
		}
	}
	switch {
	case p.has("&>"):
		if r.fd != -1 {
			return r, p.parseError()
		}
		p.pos += 2
		r.op = shRedirBoth
		if p.peek() == '>' {
			p.pos++
			r.op = shRedirBothAppend
		}
	case p.has("<<"):
		return r, &shUnsupported{"here-documents and here-strings (<<)"}
	case p.has("<>"), p.has("<&"):
		return r, &shUnsupported{"redirection " + p.src[p.pos:p.pos+2]}
	case p.has("<"):
		p.pos++
		r.op = shRedirIn
	case p.has(">>"):
		p.pos += 2
		r.op = shRedirAppend
	case p.has(">&"):
		p.pos += 2
		p.skipBlanks()
		if p.peek() == '-' {
			return r, &shUnsupported{"closing file descriptors (>&-)"}
		}
		w, err := p.word(sub)
		if err != nil {
			return r, err
		}
		if len(w) == 1 && w[0].kind == shLit && !w[0].quoted && len(w[0].text) == 1 && w[0].text[0] >= '0' && w[0].text[0] <= '9' {
			r.op = shRedirDup
			r.dupTo = int(w[0].text[0] - '0')
			if r.dupTo > 2 {
				return r, &shUnsupported{fmt.Sprintf("redirection to file descriptor %d", r.dupTo)}
			}
			if r.fd == -1 {
				r.fd = 1
			}
			return r, nil
		}
		if r.fd != -1 && r.fd != 1 {
			return r, p.parseError()
		}
		r.op, r.fd, r.target = shRedirBoth, -1, w
		return r, nil
	case p.has(">|"), p.has(">!"):
		p.pos += 2
		r.op = shRedirOut
	case p.has(">"):
		p.pos++
		r.op = shRedirOut
	default:
		return r, p.parseError()
	}
	if r.fd == -1 && r.op != shRedirBoth && r.op != shRedirBothAppend {
		r.fd = 1
		if r.op == shRedirIn {
			r.fd = 0
		}
	}
	p.skipBlanks()
	if p.peek() == '(' {
		return r, &shUnsupported{"process substitution <( ) >( )"}
	}
	if p.eof() || strings.IndexByte("\n;|&<>()", p.peek()) >= 0 {
		return r, p.parseError()
	}
	w, err := p.word(sub)
	if err != nil {
		return r, err
	}
	r.target = w
	return r, nil
}

// word reads one word: up to an unquoted blank or operator.
func (p *shParser) word(sub bool) (shWord, error) {
	var w shWord
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			w = append(w, shPart{kind: shLit, text: lit.String()})
			lit.Reset()
		}
	}
	start := p.pos
	for !p.eof() {
		c := p.peek()
		switch c {
		case ' ', '\t', '\n', ';', '&', '|', '<', '>', ')':
			flush()
			return w, nil
		case '(':
			return nil, &shUnsupported{"( inside a word (subshells, glob qualifiers)"}
		case '\'':
			flush()
			end := strings.IndexByte(p.src[p.pos+1:], '\'')
			if end < 0 {
				return nil, &shSyntaxError{msg: "unmatched '", incomplete: true}
			}
			w = append(w, shPart{kind: shLit, text: p.src[p.pos+1 : p.pos+1+end], quoted: true})
			p.pos += end + 2
		case '"':
			flush()
			parts, err := p.doubleQuoted()
			if err != nil {
				return nil, err
			}
			w = append(w, parts...)
		case '\\':
			p.pos++
			if p.eof() {
				lit.WriteByte('\\')
				continue
			}
			if p.peek() == '\n' {
				p.pos++
				continue
			}
			flush()
			_, size := utf8.DecodeRuneInString(p.src[p.pos:])
			w = append(w, shPart{kind: shLit, text: p.src[p.pos : p.pos+size], quoted: true})
			p.pos += size
		case '$':
			flush()
			part, err := p.dollar(false)
			if err != nil {
				return nil, err
			}
			w = append(w, part)
		case '`':
			flush()
			part, err := p.backquote(false)
			if err != nil {
				return nil, err
			}
			w = append(w, part)
		case '~':
			if p.pos != start {
				lit.WriteByte(c)
				p.pos++
				continue
			}
			end := p.pos + 1
			for end < len(p.src) && (shIsName(p.src[end:end+1]) || (p.src[end] >= '0' && p.src[end] <= '9') || p.src[end] == '-' || p.src[end] == '.') {
				end++
			}
			if end < len(p.src) && strings.IndexByte(" \t\n;&|<>)/", p.src[end]) < 0 {
				// ~ followed by quotes or expansions: zsh keeps it literal
				lit.WriteByte(c)
				p.pos++
				continue
			}
			w = append(w, shPart{kind: shTilde, text: p.src[p.pos+1 : end]})
			p.pos = end
		case '*', '?':
			return nil, &shUnsupported{fmt.Sprintf("globbing (unquoted %c)", c)}
		case '[':
			next := p.peekAt(1)
			alone := p.pos == start && (next == 0 || strings.IndexByte(" \t\n;&|<>)", next) >= 0)
			if !alone {
				return nil, &shUnsupported{"globbing (unquoted [)"}
			}
			lit.WriteByte(c)
			p.pos++
		case '{':
			if p.braceExpansion() {
				return nil, &shUnsupported{"brace expansion {a,b}"}
			}
			lit.WriteByte(c)
			p.pos++
		default:
			lit.WriteByte(c)
			p.pos++
		}
	}
	flush()
	return w, nil
}

// braceExpansion reports whether the `{` at pos opens a zsh brace
// expansion ({a,b} or {1..3}) before the word ends.
func (p *shParser) braceExpansion() bool {
	for i := p.pos + 1; i < len(p.src); i++ {
		switch p.src[i] {
		case '}':
			inner := p.src[p.pos+1 : i]
			return strings.Contains(inner, ",") || strings.Contains(inner, "..")
		case ' ', '\t', '\n', ';', '&', '|', '<', '>', '(', ')', '\'', '"', '\\', '$', '`':
			return false
		}
	}
	return false
}

// doubleQuoted reads "..." starting at the opening quote.
func (p *shParser) doubleQuoted() (shWord, error) {
	p.pos++
	w := shWord{}
	var lit strings.Builder
	flush := func(force bool) {
		if lit.Len() > 0 || force {
			w = append(w, shPart{kind: shLit, text: lit.String(), quoted: true})
			lit.Reset()
		}
	}
	for {
		if p.eof() {
			return nil, &shSyntaxError{msg: `unmatched "`, incomplete: true}
		}
		c := p.peek()
		switch c {
		case '"':
			p.pos++
			flush(len(w) == 0) // "" is an empty word, not no word
			return w, nil
		case '\\':
			switch next := p.peekAt(1); next {
			case '$', '`', '"', '\\':
				lit.WriteByte(next)
				p.pos += 2
			case '\n':
				p.pos += 2
			default:
				lit.WriteByte('\\')
				p.pos++
			}
		case '$':
			flush(false)
			part, err := p.dollar(true)
			if err != nil {
				return nil, err
			}
			w = append(w, part)
		case '`':
			flush(false)
			part, err := p.backquote(true)
			if err != nil {
				return nil, err
			}
			w = append(w, part)
		default:
			lit.WriteByte(c)
			p.pos++
		}
	}
}

// dollar reads an expansion starting at `$`.
func (p *shParser) dollar(quoted bool) (shPart, error) {
	p.pos++
	c := p.peek()
	switch {
	case p.eof():
		return shPart{kind: shLit, text: "$", quoted: quoted}, nil
	case c == '(':
		if p.peekAt(1) == '(' {
			return shPart{}, &shUnsupported{"arithmetic expansion $(( ))"}
		}
		p.pos++
		l, err := p.list(true)
		if err != nil {
			return shPart{}, err
		}
		return shPart{kind: shCmdSub, sub: l, quoted: quoted}, nil
	case c == '{':
		end := strings.IndexByte(p.src[p.pos:], '}')
		if end < 0 {
			return shPart{}, &shSyntaxError{msg: "closing brace expected", incomplete: true}
		}
		inner := p.src[p.pos+1 : p.pos+end]
		if !shIsName(inner) && inner != "?" {
			return shPart{}, &shUnsupported{"parameter expansion ${" + inner + "}"}
		}
		p.pos += end + 1
		return shPart{kind: shParam, text: inner, quoted: quoted}, nil
	case shIsName(string(c)):
		end := p.pos
		for end < len(p.src) && shIsName(p.src[p.pos:end+1]) {
			end++
		}
		name := p.src[p.pos:end]
		p.pos = end
		return shPart{kind: shParam, text: name, quoted: quoted}, nil
	case c == '?' || c == '$' || c == '0':
		p.pos++
		return shPart{kind: shParam, text: string(c), quoted: quoted}, nil
	case c >= '1' && c <= '9', c == '#', c == '@', c == '*', c == '!', c == '-':
		return shPart{}, &shUnsupported{fmt.Sprintf("special parameter $%c", c)}
	case c == '\'' && !quoted:
		return shPart{}, &shUnsupported{"$'...' quoting"}
	case c == '"' && !quoted:
		return shPart{}, &shUnsupported{`$"..." quoting`}
	default:
		return shPart{kind: shLit, text: "$", quoted: quoted}, nil
	}
}

// backquote reads `...` (the old form of $(...)).
func (p *shParser) backquote(inDouble bool) (shPart, error) {
	p.pos++
	var inner strings.Builder
	for {
		if p.eof() {
			return shPart{}, &shSyntaxError{msg: "unmatched `", incomplete: true}
		}
		c := p.peek()
		if c == '`' {
			p.pos++
			break
		}
		if c == '\\' {
			next := p.peekAt(1)
			if next == '\\' || next == '`' || next == '$' || (inDouble && next == '"') {
				inner.WriteByte(next)
				p.pos += 2
				continue
			}
		}
		inner.WriteByte(c)
		p.pos++
	}
	l, err := parseShell(inner.String())
	if err != nil {
		return shPart{}, err
	}
	return shPart{kind: shCmdSub, sub: l, quoted: inDouble}, nil
}
