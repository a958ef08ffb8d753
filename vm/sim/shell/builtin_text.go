package shell

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// shObsoleteCount turns head/tail's old "-5" into "-n 5".
func shObsoleteCount(args []string) []string {
	if len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		if _, err := strconv.Atoi(args[0][1:]); err == nil {
			return append([]string{"-n", args[0][1:]}, args[1:]...)
		}
	}
	return args
}

func shCount(s string) (n int64, fromStart, ok bool) {
	fromStart = strings.HasPrefix(s, "+")
	n, err := strconv.ParseInt(strings.TrimLeft(s, "+-"), 10, 64)
	return n, fromStart, err == nil && n >= 0
}

func biHead(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(shObsoleteCount(p.Args[1:]), "n:c:")
	if msg != "" {
		fmt.Fprintf(p.Stderr, "head: %s\nusage: head [-n lines | -c bytes] [file ...]\n", msg)
		return 1
	}
	lines, _, ok := shCount(o.val['n'])
	if !o.set['n'] {
		lines, ok = 10, true
	}
	bytesN, _, okc := shCount(o.val['c'])
	if !ok || (o.set['c'] && !okc) {
		fmt.Fprintf(p.Stderr, "head: illegal line count -- %s\n", o.val['n']+o.val['c'])
		return 1
	}
	return shEachInput(st, p, o.rest, "head", func(r io.Reader) error {
		if o.set['c'] {
			_, err := io.CopyN(p.Stdout, r, bytesN)
			if err == io.EOF {
				err = nil
			}
			return err
		}
		br := bufio.NewReader(r)
		for i := int64(0); i < lines; i++ {
			line, err := br.ReadString('\n')
			if line != "" {
				if _, werr := io.WriteString(p.Stdout, line); werr != nil {
					return werr
				}
			}
			if err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
		}
		return nil
	})
}

// shEachInput runs fn over each named input (stdin when none), with
// "==> NAME <==" headers for several files, as head and tail print.
func shEachInput(st *shState, p *Proc, names []string, prog string, fn func(io.Reader) error) int {
	if len(names) == 0 {
		if err := fn(p.Stdin); err != nil {
			return 1
		}
		return 0
	}
	status := 0
	for i, name := range names {
		f, err := st.open(p, name)
		if err != nil {
			fmt.Fprintf(p.Stderr, "%s: %s: %s\n", prog, name, shErrText(err))
			status = 1
			continue
		}
		if len(names) > 1 {
			if i > 0 {
				fmt.Fprintln(p.Stdout)
			}
			fmt.Fprintf(p.Stdout, "==> %s <==\n", name)
		}
		err = fn(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(p.Stderr, "%s: %s: %s\n", prog, name, shErrText(err))
			status = 1
		}
	}
	return status
}

func biTail(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(shObsoleteCount(p.Args[1:]), "FfrqUn:c:b:")
	if msg != "" {
		fmt.Fprintf(p.Stderr, "tail: %s\nusage: tail [-F | -f | -r] [-q] [-b # | -c # | -n #] [file ...]\n", msg)
		return 1
	}
	if shUnsupportedOpts(p, o, "Ffrb") {
		return 127
	}
	spec, unitBytes := "10", false
	if o.set['n'] {
		spec = o.val['n']
	}
	if o.set['c'] {
		spec, unitBytes = o.val['c'], true
	}
	n, fromStart, ok := shCount(spec)
	if !ok {
		fmt.Fprintf(p.Stderr, "tail: illegal offset -- %s\n", spec)
		return 1
	}
	return shEachInput(st, p, o.rest, "tail", func(r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		var out []byte
		if unitBytes {
			switch {
			case fromStart:
				out = data[min(int64(len(data)), max(n-1, 0)):]
			default:
				out = data[max(int64(len(data))-n, 0):]
			}
		} else {
			lines := bytes.SplitAfter(data, []byte("\n"))
			if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
				lines = lines[:len(lines)-1]
			}
			if fromStart {
				lines = lines[min(int64(len(lines)), max(n-1, 0)):]
			} else {
				lines = lines[max(int64(len(lines))-n, 0):]
			}
			out = bytes.Join(lines, nil)
		}
		_, err = p.Stdout.Write(out)
		return err
	})
}

// shBREtoRE2 translates a POSIX basic regular expression into Go syntax:
// in a BRE, ( ) { } | + ? are literal unless escaped, and * at the start
// is literal.
func shBREtoRE2(bre string) string {
	var b strings.Builder
	atStart := true
	for i := 0; i < len(bre); i++ {
		c := bre[i]
		switch {
		case c == '\\' && i+1 < len(bre):
			i++
			n := bre[i]
			if strings.IndexByte("(){}|+?", n) >= 0 {
				b.WriteByte(n)
			} else {
				b.WriteByte('\\')
				b.WriteByte(n)
			}
			atStart = n == '('
			continue
		case c == '[':
			j := i + 1
			if j < len(bre) && bre[j] == '^' {
				j++
			}
			if j < len(bre) && bre[j] == ']' {
				j++
			}
			for j < len(bre) && bre[j] != ']' {
				if bre[j] == '[' && j+1 < len(bre) && strings.IndexByte(":.=", bre[j+1]) >= 0 {
					if k := strings.Index(bre[j+2:], string(bre[j+1])+"]"); k >= 0 {
						j += k + 4
						continue
					}
				}
				j++
			}
			if j >= len(bre) {
				b.WriteString(regexp.QuoteMeta(bre[i:]))
				return b.String()
			}
			b.WriteString(bre[i : j+1])
			i = j
		case strings.IndexByte("(){}|+?", c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '*' && atStart:
			b.WriteString(`\*`)
		default:
			b.WriteByte(c)
		}
		atStart = c == '^' && i == 0
	}
	return b.String()
}

// biGrep is grep(1) with the options scripts use: -E -F -i -v -q -c -l
// -L -n -h -H -o -w -x -s -e.
func biGrep(_ context.Context, st *shState, p *Proc) int {
	for _, a := range p.Args[1:] {
		if strings.HasPrefix(a, "--") && a != "--" {
			fmt.Fprintf(p.Stderr, "sim: unsupported: grep %s\n", a)
			return 127
		}
	}
	o, msg := shGetopt(p.Args[1:], "A:B:C:EFGHILRUVZabce:f:hilnoqrsvwxz")
	if msg != "" {
		fmt.Fprintf(p.Stderr, "grep: %s\nusage: grep [-abcdDEFGHhIiJLlMmnOopqRSsUVvwXxZz] [-A num] [-B num] [-C[num]]\n\t[-e pattern] [-f file] [--binary-files=value] [--color=when]\n\t[--context[=num]] [--directories=action] [--label] [--line-buffered]\n\t[--null] [pattern] [file ...]\n", msg)
		return 2
	}
	if shUnsupportedOpts(p, o, "ABCIRUVZabfrz") {
		return 127
	}
	patterns := o.all['e']
	files := o.rest
	if !o.set['e'] {
		if len(files) == 0 {
			fmt.Fprintln(p.Stderr, "usage: grep [-abcdDEFGHhIiJLlMmnOopqRSsUVvwXxZz] [-A num] [-B num] [-C[num]]\n\t[-e pattern] [-f file] [--binary-files=value] [--color=when]\n\t[--context[=num]] [--directories=action] [--label] [--line-buffered]\n\t[--null] [pattern] [file ...]")
			return 2
		}
		patterns, files = []string{files[0]}, files[1:]
	}
	var alts []string
	for _, pat := range patterns {
		for _, one := range strings.Split(pat, "\n") {
			switch {
			case o.set['F']:
				one = regexp.QuoteMeta(one)
			case !o.set['E']:
				one = shBREtoRE2(one)
			}
			if o.set['w'] {
				one = `(?:^|[^\pL\pN_])(` + one + `)(?:$|[^\pL\pN_])`
			}
			if o.set['x'] {
				one = `^(?:` + one + `)$`
			}
			alts = append(alts, "(?:"+one+")")
		}
	}
	expr := strings.Join(alts, "|")
	if o.set['i'] {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		fmt.Fprintf(p.Stderr, "sim: unsupported: grep pattern %q: %v\n", strings.Join(patterns, "\n"), err)
		return 127
	}
	match := func(line string) []string {
		if o.set['w'] {
			var out []string
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				for _, g := range m[1:] {
					if g != "" {
						out = append(out, g)
						break
					}
				}
			}
			return out
		}
		return re.FindAllString(line, -1)
	}
	named := (len(files) > 1 || o.set['H']) && !o.set['h']
	selected, status := false, 0
	search := func(r io.Reader, label string) (stop bool) {
		br := bufio.NewReader(r)
		count := 0
		for lineNo := 1; ; lineNo++ {
			line, err := br.ReadString('\n')
			if line == "" && err != nil {
				break
			}
			text := strings.TrimSuffix(line, "\n")
			found := re.MatchString(text)
			if found == o.set['v'] {
				if err != nil {
					break
				}
				continue
			}
			count++
			selected = true
			switch {
			case o.set['q']:
				return true
			case o.set['l'] || o.set['L'] || o.set['c']:
			case o.set['o'] && !o.set['v']:
				for _, m := range match(text) {
					fmt.Fprint(p.Stdout, shGrepPrefix(named, label, o.set['n'], lineNo)+m+"\n")
				}
			default:
				fmt.Fprint(p.Stdout, shGrepPrefix(named, label, o.set['n'], lineNo)+text+"\n")
			}
			if o.set['l'] {
				break
			}
			if err != nil {
				break
			}
		}
		switch {
		case o.set['l'] && count > 0, o.set['L'] && count == 0:
			fmt.Fprintln(p.Stdout, label)
		case o.set['c'] && !o.set['l'] && !o.set['L']:
			if named {
				fmt.Fprintf(p.Stdout, "%s:%d\n", label, count)
			} else {
				fmt.Fprintln(p.Stdout, count)
			}
		}
		return false
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		label := name
		if name == "-" {
			label = "(standard input)"
		}
		f, err := st.open(p, name)
		if err != nil {
			if !o.set['s'] {
				fmt.Fprintf(p.Stderr, "grep: %s: %s\n", name, shErrText(err))
			}
			status = 2
			continue
		}
		stop := search(f, label)
		f.Close()
		if stop {
			return 0
		}
	}
	if status == 2 {
		return 2
	}
	if selected {
		return 0
	}
	return 1
}

func shGrepPrefix(named bool, label string, numbered bool, lineNo int) string {
	var b strings.Builder
	if named {
		b.WriteString(label + ":")
	}
	if numbered {
		b.WriteString(strconv.Itoa(lineNo) + ":")
	}
	return b.String()
}

// biWc is wc(1): counts right-aligned in 8 columns, as macOS prints them.
func biWc(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "clmw")
	if msg != "" {
		fmt.Fprintf(p.Stderr, "wc: %s\nusage: wc [-Lclmw] [file ...]\n", msg)
		return 1
	}
	if len(o.set) == 0 {
		o.set['l'], o.set['w'], o.set['c'] = true, true, true
	}
	type counts struct{ lines, words, chars, bytes int64 }
	count := func(r io.Reader) (counts, error) {
		var c counts
		br := bufio.NewReader(r)
		inWord := false
		for {
			ru, size, err := br.ReadRune()
			if err != nil {
				if err == io.EOF {
					return c, nil
				}
				return c, err
			}
			c.bytes += int64(size)
			c.chars++
			if ru == '\n' {
				c.lines++
			}
			if ru == utf8.RuneError && size == 1 {
				inWord = true
				continue
			}
			if unicode.IsSpace(ru) {
				inWord = false
			} else if !inWord {
				inWord = true
				c.words++
			}
		}
	}
	print := func(c counts, name string) {
		var b strings.Builder
		if o.set['l'] {
			fmt.Fprintf(&b, " %7d", c.lines)
		}
		if o.set['w'] {
			fmt.Fprintf(&b, " %7d", c.words)
		}
		if o.set['m'] {
			fmt.Fprintf(&b, " %7d", c.chars)
		} else if o.set['c'] {
			fmt.Fprintf(&b, " %7d", c.bytes)
		}
		if name != "" {
			b.WriteString(" " + name)
		}
		fmt.Fprintln(p.Stdout, b.String())
	}
	if len(o.rest) == 0 {
		c, err := count(p.Stdin)
		if err != nil {
			return 1
		}
		print(c, "")
		return 0
	}
	var total counts
	status := 0
	for _, name := range o.rest {
		f, err := st.open(p, name)
		if err != nil {
			fmt.Fprintf(p.Stderr, "wc: %s: open: %s\n", name, shErrText(err))
			status = 1
			continue
		}
		c, err := count(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(p.Stderr, "wc: %s: read: %s\n", name, shErrText(err))
			status = 1
			continue
		}
		total.lines, total.words, total.chars, total.bytes = total.lines+c.lines, total.words+c.words, total.chars+c.chars, total.bytes+c.bytes
		print(c, name)
	}
	if len(o.rest) > 1 {
		print(total, "total")
	}
	return status
}
