package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// shBuiltins are the programs the machine provides itself, in the output
// formats of macOS's BSD tools and zsh's builtins. Model commands come
// after them in lookup.
func shBuiltins() map[string]shBuiltin {
	return map[string]shBuiltin{
		"true":     func(context.Context, *shState, *Proc) int { return 0 },
		":":        func(context.Context, *shState, *Proc) int { return 0 },
		"false":    func(context.Context, *shState, *Proc) int { return 1 },
		"echo":     biEcho,
		"printf":   biPrintf,
		"sleep":    biSleep,
		"uname":    biUname,
		"id":       biID,
		"whoami":   biWhoami,
		"hostname": biHostname,
		"pwd":      func(_ context.Context, _ *shState, p *Proc) int { fmt.Fprintln(p.Stdout, p.Dir); return 0 },
		"date":     biDate,
		"basename": biBasename,
		"dirname":  biDirname,
		"env":      biEnv,
		"which":    biWhich,
		"command":  biCommand,
		"sh":       biSh,
		"bash":     biSh,
		"zsh":      biSh,
		"cat":      biCat,
		"ls":       biLs,
		"rm":       biRm,
		"rmdir":    biRmdir,
		"mkdir":    biMkdir,
		"test":     biTest,
		"[":        biTest,
		"stat":     biStat,
		"shasum":   biShasum,
		"mv":       biMv,
		"cp":       biCp,
		"touch":    biTouch,
		"chmod":    biChmod,
		"head":     biHead,
		"tail":     biTail,
		"grep":     biGrep,
		"wc":       biWc,
	}
}

// shProg is the program's name for messages: macOS tools print their base
// name even when run by path.
func shProg(p *Proc) string { return path.Base(p.Args[0]) }

// shOpts is the result of BSD getopt over a builtin's arguments.
type shOpts struct {
	set  map[byte]bool
	val  map[byte]string   // the last value of an option with an argument
	all  map[byte][]string // every value, for repeatable options (grep -e)
	rest []string
}

// shGetopt parses single-letter options per spec ("la" or "n:"): options
// end at the first operand or at "--". On a bad option it returns a
// message in getopt's words.
func shGetopt(args []string, spec string) (*shOpts, string) {
	o := &shOpts{set: map[byte]bool{}, val: map[byte]string{}, all: map[byte][]string{}}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			k := strings.IndexByte(spec, c)
			if k < 0 || c == ':' {
				return nil, fmt.Sprintf("illegal option -- %c", c)
			}
			if k+1 < len(spec) && spec[k+1] == ':' {
				switch {
				case j+1 < len(a):
					o.val[c] = a[j+1:]
				case i+1 < len(args):
					i++
					o.val[c] = args[i]
				default:
					return nil, fmt.Sprintf("option requires an argument -- %c", c)
				}
				o.set[c] = true
				o.all[c] = append(o.all[c], o.val[c])
				break
			}
			o.set[c] = true
		}
	}
	o.rest = args[i:]
	return o, ""
}

// shCanceled is the status of a command ended by its context: 141 when
// its pipe reader left (SIGPIPE), 143 otherwise (SIGTERM).
func shCanceled(ctx context.Context) int {
	if errors.Is(context.Cause(ctx), errBrokenPipe) {
		return 141
	}
	return 143
}

// biEcho is zsh's echo: escapes are interpreted unless -E; a lone "-"
// ends the options.
func biEcho(_ context.Context, _ *shState, p *Proc) int {
	args := p.Args[1:]
	newline, escapes := true, true
	for len(args) > 0 {
		a := args[0]
		if a == "-" {
			args = args[1:]
			break
		}
		if len(a) < 2 || a[0] != '-' || strings.Trim(a[1:], "neE") != "" {
			break
		}
		for _, c := range a[1:] {
			switch c {
			case 'n':
				newline = false
			case 'e':
				escapes = true
			case 'E':
				escapes = false
			}
		}
		args = args[1:]
	}
	s := strings.Join(args, " ")
	if escapes {
		var stop bool
		s, stop = shEscapes(s, true)
		if stop {
			newline = false
		}
	}
	if newline {
		s += "\n"
	}
	_, err := io.WriteString(p.Stdout, s)
	if err != nil {
		return 1
	}
	return 0
}

// shEscapes interprets backslash escapes. echoStyle selects echo's and
// %b's octal form (\0NNN) over printf format's (\NNN). stop reports \c.
func shEscapes(s string, echoStyle bool) (out string, stop bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'c':
			return b.String(), true
		case 'e', 'E':
			b.WriteByte(0x1b)
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '\\':
			b.WriteByte('\\')
		case 'x':
			n, used := shDigits(s[i+1:], 16, 2)
			if used == 0 {
				b.WriteString(`\x`)
				continue
			}
			b.WriteByte(byte(n))
			i += used
		case '0', '1', '2', '3', '4', '5', '6', '7':
			start, max := i, 3
			if echoStyle {
				if e != '0' {
					b.WriteByte('\\')
					b.WriteByte(e)
					continue
				}
				start = i + 1
			}
			n, used := shDigits(s[start:], 8, max)
			b.WriteByte(byte(n))
			i = start + used - 1
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), false
}

// shDigits reads up to max digits in base from the start of s.
func shDigits(s string, base, max int) (n, used int) {
	for used < max && used < len(s) {
		d := strings.IndexByte("0123456789abcdef", shLowerByte(s[used]))
		if d < 0 || d >= base {
			break
		}
		n = n*base + d
		used++
	}
	return n, used
}

func shLowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// biPrintf is printf(1)/zsh's printf: the format is reused while
// arguments remain.
func biPrintf(_ context.Context, _ *shState, p *Proc) int {
	if len(p.Args) < 2 {
		fmt.Fprintln(p.Stderr, "printf: not enough arguments")
		return 1
	}
	format, args := p.Args[1], p.Args[2:]
	var out strings.Builder
	status := 0
	for {
		used, stop, bad := shPrintfOnce(&out, format, args)
		if bad {
			status = 1
		}
		args = args[used:]
		if stop || used == 0 || len(args) == 0 {
			break
		}
	}
	if _, err := io.WriteString(p.Stdout, out.String()); err != nil {
		return 1
	}
	return status
}

// shPrintfOnce formats once; it returns how many arguments it used,
// whether \c stopped all output, and whether an argument was bad.
func shPrintfOnce(out *strings.Builder, format string, args []string) (used int, stop, bad bool) {
	next := func() (string, bool) {
		if used < len(args) {
			used++
			return args[used-1], true
		}
		return "", false
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c == '\\' {
			j := i + 1
			for j < len(format) && j < i+4 && format[j] >= '0' && format[j] <= '7' {
				j++
			}
			if j == i+1 && j < len(format) {
				j++
				if format[i+1] == 'x' {
					for j < len(format) && j < i+4 && strings.IndexByte("0123456789abcdefABCDEF", format[j]) >= 0 {
						j++
					}
				}
			}
			s, st := shEscapes(format[i:j], false)
			out.WriteString(s)
			if st {
				return used, true, bad
			}
			i = j - 1
			continue
		}
		if c != '%' {
			out.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("-+ #0", format[j]) >= 0 {
			j++
		}
		spec := format[i+1 : j]
		for j < len(format) && (format[j] >= '0' && format[j] <= '9' || format[j] == '.' || format[j] == '*') {
			if format[j] == '*' {
				a, _ := next()
				n, _ := strconv.Atoi(a)
				spec += strconv.Itoa(n)
			} else {
				spec += format[j : j+1]
			}
			j++
		}
		if j >= len(format) {
			out.WriteString(format[i:])
			return used, false, true
		}
		verb := format[j]
		i = j
		switch verb {
		case '%':
			out.WriteByte('%')
		case 's':
			a, _ := next()
			fmt.Fprintf(out, "%"+spec+"s", a)
		case 'b':
			a, _ := next()
			s, st := shEscapes(a, true)
			fmt.Fprintf(out, "%"+spec+"s", s)
			if st {
				return used, true, bad
			}
		case 'c':
			a, _ := next()
			r, _ := utf8.DecodeRuneInString(a)
			if a == "" {
				r = 0
			}
			if r != 0 {
				fmt.Fprintf(out, "%"+spec+"s", string(r))
			}
		case 'd', 'i', 'u', 'o', 'x', 'X':
			a, _ := next()
			n, ok := shPrintfInt(a)
			bad = bad || !ok
			v := map[byte]string{'d': "d", 'i': "d", 'u': "d", 'o': "o", 'x': "x", 'X': "X"}[verb]
			fmt.Fprintf(out, "%"+spec+v, n)
		case 'e', 'E', 'f', 'F', 'g', 'G':
			a, _ := next()
			f, err := strconv.ParseFloat(strings.TrimSpace(a), 64)
			if err != nil && a != "" {
				bad = true
			}
			fmt.Fprintf(out, "%"+spec+string(verb), f)
		default:
			out.WriteString(format[i-len(spec)-1 : j+1])
			bad = true
		}
	}
	return used, false, bad
}

func shPrintfInt(a string) (int64, bool) {
	a = strings.TrimSpace(a)
	if a == "" {
		return 0, true
	}
	if a[0] == '\'' || a[0] == '"' {
		r, _ := utf8.DecodeRuneInString(a[1:])
		return int64(r), true
	}
	n, err := strconv.ParseInt(a, 0, 64)
	return n, err == nil
}

// biSleep waits on the machine's clock, so time_scale applies.
func biSleep(ctx context.Context, st *shState, p *Proc) int {
	if len(p.Args) < 2 {
		fmt.Fprintln(p.Stderr, "usage: sleep number[unit] [...]")
		return 1
	}
	var total time.Duration
	for _, a := range p.Args[1:] {
		unit := time.Second
		num := a
		if n := len(a); n > 0 {
			switch a[n-1] {
			case 's':
				num = a[:n-1]
			case 'm':
				unit, num = time.Minute, a[:n-1]
			case 'h':
				unit, num = time.Hour, a[:n-1]
			case 'd':
				unit, num = 24*time.Hour, a[:n-1]
			}
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 {
			fmt.Fprintf(p.Stderr, "sleep: invalid time interval: %s\n", a)
			return 1
		}
		total += time.Duration(f * float64(unit))
	}
	if err := st.sh.clock.Sleep(ctx, total); err != nil {
		return shCanceled(ctx)
	}
	return 0
}

func biUname(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "amnprsv")
	if msg != "" || len(o.rest) > 0 {
		return shUsage(p, "uname", msg, "usage: uname [-amnprsv]")
	}
	release := st.sh.release
	fields := []struct {
		flag  byte
		value string
	}{
		{'s', "Darwin"},
		{'n', st.sh.hostname},
		{'r', release},
		{'v', "Darwin Kernel Version " + release + ": Tue Jan 28 20:49:05 PST 2025; root:xnu-11215.81.4~3/RELEASE_ARM64_VMAPPLE"},
		{'m', "arm64"},
		{'p', "arm"},
	}
	if len(o.set) == 0 {
		o.set['s'] = true
	}
	var out []string
	for _, f := range fields {
		if o.set[f.flag] || (o.set['a'] && f.flag != 'p') {
			out = append(out, f.value)
		}
	}
	fmt.Fprintln(p.Stdout, strings.Join(out, " "))
	return 0
}

type shAccount struct {
	name   string
	uid    int
	gid    int
	groups []string // "id(name)"
}

func (st *shState) account(name string) (shAccount, bool) {
	switch name {
	case "root":
		return shAccount{"root", 0, 0, []string{"0(wheel)", "1(daemon)", "2(kmem)", "3(sys)", "4(tty)", "5(operator)", "8(procview)", "9(procmod)", "12(everyone)", "20(staff)", "29(certusers)", "61(localaccounts)", "80(admin)", "33(_appstore)", "98(_lpadmin)", "100(_lpoperator)", "204(_developer)", "250(_analyticsusers)", "395(com.apple.access_ftp)", "398(com.apple.access_screensharing)", "399(com.apple.access_ssh)", "400(com.apple.access_remote_ae)"}}, true
	case st.sh.user:
		return shAccount{st.sh.user, shUID, shGID, []string{"20(staff)", "12(everyone)", "61(localaccounts)", "79(_appserverusr)", "80(admin)", "81(_appserveradm)", "98(_lpadmin)", "33(_appstore)", "100(_lpoperator)", "204(_developer)", "250(_analyticsusers)", "395(com.apple.access_ftp)", "398(com.apple.access_screensharing)", "399(com.apple.access_ssh)", "400(com.apple.access_remote_ae)"}}, true
	}
	return shAccount{}, false
}

func (st *shState) currentUser(p *Proc) string {
	if p.Root {
		return "root"
	}
	return st.sh.user
}

func biID(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "GgnPpru")
	if msg != "" || len(o.rest) > 1 {
		return shUsage(p, "id", msg, "usage: id [user]\n       id -G [-n] [user]\n       id -g [-nr] [user]\n       id -u [-nr] [user]")
	}
	name := st.currentUser(p)
	if len(o.rest) == 1 {
		name = o.rest[0]
		if n, err := strconv.Atoi(name); err == nil {
			switch n {
			case 0:
				name = "root"
			case shUID:
				name = st.sh.user
			}
		}
	}
	acct, ok := st.account(name)
	if !ok {
		fmt.Fprintf(p.Stderr, "id: %s: no such user\n", name)
		return 1
	}
	group := func(s string) (id, name string) {
		id, name, _ = strings.Cut(strings.TrimSuffix(s, ")"), "(")
		return id, name
	}
	switch {
	case o.set['u']:
		if o.set['n'] {
			fmt.Fprintln(p.Stdout, acct.name)
		} else {
			fmt.Fprintln(p.Stdout, acct.uid)
		}
	case o.set['g']:
		id, gname := group(acct.groups[0])
		if o.set['n'] {
			fmt.Fprintln(p.Stdout, gname)
		} else {
			fmt.Fprintln(p.Stdout, id)
		}
	case o.set['G']:
		var out []string
		for _, g := range acct.groups {
			id, gname := group(g)
			if o.set['n'] {
				out = append(out, gname)
			} else {
				out = append(out, id)
			}
		}
		fmt.Fprintln(p.Stdout, strings.Join(out, " "))
	case o.set['n']:
		fmt.Fprintln(p.Stderr, "usage: id [user]\n       id -G [-n] [user]\n       id -g [-nr] [user]\n       id -u [-nr] [user]")
		return 1
	default:
		fmt.Fprintf(p.Stdout, "uid=%d(%s) gid=%s groups=%s\n", acct.uid, acct.name, acct.groups[0], strings.Join(acct.groups, ","))
	}
	return 0
}

func biWhoami(_ context.Context, st *shState, p *Proc) int {
	fmt.Fprintln(p.Stdout, st.currentUser(p))
	return 0
}

func biHostname(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "fs")
	if msg != "" {
		fmt.Fprintf(p.Stderr, "hostname: %s\nusage: hostname [-f] [-s | -d] [name-of-host]\n", msg)
		return 1
	}
	if len(o.rest) > 0 {
		fmt.Fprintln(p.Stderr, "sim: unsupported: setting the hostname")
		return 127
	}
	h := st.sh.hostname
	if o.set['s'] {
		h, _, _ = strings.Cut(h, ".")
	}
	fmt.Fprintln(p.Stdout, h)
	return 0
}

// biDate prints the guest clock (which runs ahead of the host's when
// time_scale skips simulated time).
func biDate(_ context.Context, st *shState, p *Proc) int {
	now := st.sh.clock.Now()
	args := p.Args[1:]
	format := ""
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		switch {
		case a == "-u":
			now = now.UTC()
		case a == "-r" && len(args) > 0:
			sec, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				fmt.Fprintf(p.Stderr, "date: %s: Invalid argument\n", args[0])
				return 1
			}
			now = time.Unix(sec, 0).In(now.Location())
			args = args[1:]
		case strings.HasPrefix(a, "+"):
			format = a[1:]
		default:
			fmt.Fprintf(p.Stderr, "sim: unsupported: date %s\n", a)
			return 127
		}
	}
	if format == "" {
		fmt.Fprintln(p.Stdout, now.Format("Mon Jan _2 15:04:05 MST 2006"))
		return 0
	}
	fmt.Fprintln(p.Stdout, shStrftime(now, format))
	return 0
}

// shStrftime formats t like strftime(3) for the common conversions.
func shStrftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			b.WriteString(t.Format("2006"))
		case 'y':
			b.WriteString(t.Format("06"))
		case 'm':
			b.WriteString(t.Format("01"))
		case 'd':
			b.WriteString(t.Format("02"))
		case 'e':
			b.WriteString(t.Format("_2"))
		case 'H':
			b.WriteString(t.Format("15"))
		case 'I':
			b.WriteString(t.Format("03"))
		case 'M':
			b.WriteString(t.Format("04"))
		case 'S':
			b.WriteString(t.Format("05"))
		case 'p':
			b.WriteString(t.Format("PM"))
		case 's':
			b.WriteString(strconv.FormatInt(t.Unix(), 10))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			b.WriteString(strconv.Itoa(wd))
		case 'w':
			b.WriteString(strconv.Itoa(int(t.Weekday())))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'R':
			b.WriteString(t.Format("15:04"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'c':
			b.WriteString(t.Format("Mon Jan _2 15:04:05 2006"))
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

func biBasename(_ context.Context, _ *shState, p *Proc) int {
	if len(p.Args) < 2 || len(p.Args) > 3 {
		fmt.Fprintln(p.Stderr, "usage: basename string [suffix]\n       basename [-a] [-s suffix] string [...]")
		return 1
	}
	b := path.Base(p.Args[1])
	if len(p.Args) == 3 && b != p.Args[2] {
		b = strings.TrimSuffix(b, p.Args[2])
	}
	fmt.Fprintln(p.Stdout, b)
	return 0
}

func biDirname(_ context.Context, _ *shState, p *Proc) int {
	if len(p.Args) < 2 {
		fmt.Fprintln(p.Stderr, "usage: dirname string [...]")
		return 1
	}
	for _, a := range p.Args[1:] {
		fmt.Fprintln(p.Stdout, path.Dir(a))
	}
	return 0
}

func biEnv(ctx context.Context, st *shState, p *Proc) int {
	args := p.Args[1:]
	env := make(map[string]string, len(p.Env))
	for k, v := range p.Env {
		env[k] = v
	}
	for len(args) > 0 {
		a := args[0]
		if a == "-u" && len(args) > 1 {
			delete(env, args[1])
			args = args[2:]
			continue
		}
		if strings.HasPrefix(a, "-") {
			fmt.Fprintf(p.Stderr, "sim: unsupported: env %s\n", a)
			return 127
		}
		name, value, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			break
		}
		env[name] = value
		args = args[1:]
	}
	if len(args) == 0 {
		for _, k := range shSortedKeys(env) {
			fmt.Fprintf(p.Stdout, "%s=%s\n", k, env[k])
		}
		return 0
	}
	return st.exec(ctx, args, env, p.Root, false, shIO{in: p.Stdin, out: p.Stdout, err: p.Stderr})
}

// shZshBuiltin reports the names zsh itself provides (command -v prints
// them bare).
func shZshBuiltin(name string) bool {
	switch name {
	case "echo", "printf", "test", "[", "true", "false", ":", "pwd", "cd", "export", "unset", "set", "eval", "exit", "command":
		return true
	}
	return false
}

// shProgramPath is where macOS keeps a program.
func shProgramPath(name string) string {
	switch name {
	case "ls", "cat", "rm", "rmdir", "mkdir", "test", "[", "echo", "sleep", "date", "pwd", "chmod", "mv", "cp", "hostname", "launchctl", "sh", "bash", "zsh", "ln", "ps", "kill", "df":
		return "/bin/" + name
	case "installer", "scutil", "pkgutil", "spctl", "sysctl", "networksetup", "chown", "diskutil", "softwareupdate", "ioreg", "system_profiler":
		return "/usr/sbin/" + name
	case "shutdown", "reboot", "halt", "ifconfig", "ping", "kextload":
		return "/sbin/" + name
	}
	return "/usr/bin/" + name
}

func (st *shState) known(name string) bool {
	if _, ok := st.lookup(name); ok {
		return true
	}
	return name == "sudo"
}

// biWhich is zsh's which builtin.
func biWhich(_ context.Context, st *shState, p *Proc) int {
	status := 0
	for _, name := range p.Args[1:] {
		switch {
		case strings.HasPrefix(name, "-"):
		case shZshBuiltin(name):
			fmt.Fprintf(p.Stdout, "%s: shell built-in command\n", name)
		case st.known(name):
			fmt.Fprintln(p.Stdout, shProgramPath(name))
		default:
			fmt.Fprintf(p.Stdout, "%s not found\n", name)
			status = 1
		}
	}
	return status
}

func biCommand(ctx context.Context, st *shState, p *Proc) int {
	args := p.Args[1:]
	if len(args) > 0 && (args[0] == "-v" || args[0] == "-V") {
		status := 0
		for _, name := range args[1:] {
			switch {
			case shZshBuiltin(name):
				fmt.Fprintln(p.Stdout, name)
			case st.known(name):
				fmt.Fprintln(p.Stdout, shProgramPath(name))
			default:
				status = 1
			}
		}
		return status
	}
	if len(args) == 0 {
		return 0
	}
	return st.exec(ctx, args, p.Env, p.Root, false, shIO{in: p.Stdin, out: p.Stdout, err: p.Stderr})
}

// biSh runs `sh -c STRING` (and bash, zsh) in a fresh shell with the
// caller's environment.
func biSh(ctx context.Context, st *shState, p *Proc) int {
	if len(p.Args) < 3 || p.Args[1] != "-c" {
		fmt.Fprintf(p.Stderr, "sim: unsupported: %s without -c\n", shProg(p))
		return 127
	}
	sub := st.sh.newState(p.Env)
	sub.dir, sub.asRoot = p.Dir, p.Root
	return sub.runLine(ctx, p.Args[2], shIO{in: p.Stdin, out: p.Stdout, err: p.Stderr})
}

// shUsage prints getopt's complaint, when there is one, then the usage
// text, as the BSD tools do, and returns their exit status 1.
func shUsage(p *Proc, cmd, msg, usage string) int {
	if msg != "" {
		fmt.Fprintf(p.Stderr, "%s: %s\n", cmd, msg)
	}
	fmt.Fprintln(p.Stderr, usage)
	return 1
}
