package shell

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Shell runs command lines inside one simulated machine: what `zsh -c`
// is to OpenSSH's exec requests.
type Shell struct {
	fs       *FS // the machine's tree; every file access goes through it
	programs Programs
	clock    Clock
	user     string // the login user
	hostname string
	release  string // kernel release, for uname
	logf     func(string, ...any)
	builtins map[string]shBuiltin
}

// Config is what a Shell runs on.
type Config struct {
	FS       *FS      // the machine's tree; every file access goes through it
	Programs Programs // may be nil: builtins only
	Clock    Clock
	User     string // the login user, "admin" by default
	Hostname string // as hostname prints it, e.g. "lab-1.local"
	Release  string // the kernel release uname -r prints, e.g. "24.3.0"
	Logf     func(string, ...any)
}

// shBuiltin is a program the shell itself provides (cat, ls, sleep, ...).
type shBuiltin func(ctx context.Context, st *shState, p *Proc) int

type shIO struct {
	in       io.Reader
	out, err io.Writer
}

// Identities of the simulated machine's accounts.
const (
	shUID      = 501 // the first account macOS creates
	shGID      = 20  // staff
	shFakePID  = 4242
	shPATH     = "/usr/bin:/bin:/usr/sbin:/sbin"
	shRootHome = "/var/root"
)

// New returns a shell for cfg.
func New(cfg Config) *Shell {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	user := cfg.User
	if user == "" {
		user = "admin"
	}
	return &Shell{
		fs: cfg.FS, programs: cfg.Programs, clock: cfg.Clock, user: user,
		hostname: cfg.Hostname, release: cfg.Release, logf: logf,
		builtins: shBuiltins(),
	}
}

// LocalHostname derives a Bonjour-style local hostname from a machine
// name: "lab 1" → "lab-1.local".
func LocalHostname(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	h := strings.Trim(b.String(), "-")
	if h == "" {
		h = "sim"
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h + ".local"
}

// Home is a user's home folder.
func (sh *Shell) Home(user string) string {
	if user == "root" {
		return shRootHome
	}
	return "/Users/" + user
}

// Run runs one command line in a fresh shell, as `zsh -c LINE` does.
func (sh *Shell) Run(ctx context.Context, line string, env map[string]string, sio IO) int {
	return sh.newState(env).runLine(ctx, line, shIO{in: sio.In, out: sio.Out, err: sio.Err})
}

// Interactive runs a shell session without a terminal: one command line
// after another from stdin, as `ssh host < script` sends them.
func (sh *Shell) Interactive(ctx context.Context, env map[string]string, sio IO) int {
	st := sh.newState(env)
	br := bufio.NewReader(sio.In)
	pending := ""
	for {
		line, err := br.ReadString('\n')
		if line == "" && err != nil {
			break
		}
		pending += line
		if _, perr := parseShell(pending); perr != nil && err == nil {
			var se *shSyntaxError
			if errors.As(perr, &se) && se.incomplete {
				continue // an open quote: read on
			}
		}
		st.runLine(ctx, pending, shIO{in: sio.In, out: sio.Out, err: sio.Err})
		pending = ""
		if st.exited || ctx.Err() != nil || err != nil {
			break
		}
	}
	return st.status
}

// shState is one shell process: variables, working directory, $?.
type shState struct {
	sh       *Shell
	vars     map[string]string
	exported map[string]bool
	dir      string
	status   int
	exited   bool
	errexit  bool
	pipefail bool
	asRoot   bool // a shell started by sudo: everything in it runs as root

	subRan    bool // a command substitution ran in the current command
	subStatus int
}

func (sh *Shell) newState(env map[string]string) *shState {
	home := sh.Home(sh.user)
	st := &shState{sh: sh, vars: map[string]string{}, exported: map[string]bool{}, dir: home}
	for k, v := range map[string]string{
		"HOME": home, "USER": sh.user, "LOGNAME": sh.user, "SHELL": "/bin/zsh",
		"PATH": shPATH, "TMPDIR": "/tmp/", "PWD": home,
	} {
		st.vars[k], st.exported[k] = v, true
	}
	for k, v := range env {
		st.vars[k], st.exported[k] = v, true
	}
	return st
}

func (st *shState) clone() *shState {
	c := *st
	c.vars = make(map[string]string, len(st.vars))
	c.exported = make(map[string]bool, len(st.exported))
	for k, v := range st.vars {
		c.vars[k] = v
	}
	for k, v := range st.exported {
		c.exported[k] = v
	}
	return &c
}

func (st *shState) environ() map[string]string {
	env := make(map[string]string, len(st.exported))
	for k := range st.exported {
		if v, ok := st.vars[k]; ok {
			env[k] = v
		}
	}
	return env
}

// runLine parses and runs a command line in this shell.
func (st *shState) runLine(ctx context.Context, line string, sio shIO) int {
	l, err := parseShell(line)
	if err != nil {
		st.status = shReportParse(err, sio.err)
		return st.status
	}
	return st.runList(ctx, l, sio)
}

func shReportParse(err error, stderr io.Writer) int {
	var u *shUnsupported
	if errors.As(err, &u) {
		fmt.Fprintf(stderr, "sim: unsupported: %s\n", u.what)
		return 127
	}
	fmt.Fprintf(stderr, "zsh: %v\n", err)
	return 1
}

func (st *shState) runList(ctx context.Context, l *shList, sio shIO) int {
	for _, ao := range l.items {
		if ctx.Err() != nil {
			break
		}
		st.status = st.runAndOr(ctx, ao, sio)
		if st.exited {
			break
		}
		if st.errexit && st.status != 0 {
			st.exited = true
			break
		}
	}
	return st.status
}

func (st *shState) runAndOr(ctx context.Context, ao *shAndOr, sio shIO) int {
	status := st.runPipeline(ctx, ao.pipes[0], sio)
	for i, op := range ao.ops {
		st.status = status
		if st.exited || ctx.Err() != nil {
			break
		}
		if (op == "&&") != (status == 0) {
			continue
		}
		status = st.runPipeline(ctx, ao.pipes[i+1], sio)
	}
	return status
}

// errBrokenPipe ends a pipeline stage that writes after its reader left,
// as SIGPIPE does.
var errBrokenPipe = errors.New("broken pipe")

// shPipeOut is a stage's end of a pipe: a failed write cancels the stage,
// so commands that ignore write errors still stop.
type shPipeOut struct {
	w      *io.PipeWriter
	cancel context.CancelCauseFunc
}

func (o *shPipeOut) Write(b []byte) (int, error) {
	n, err := o.w.Write(b)
	if err != nil {
		o.cancel(errBrokenPipe)
	}
	return n, err
}

func (st *shState) runPipeline(ctx context.Context, pl *shPipeline, sio shIO) int {
	var status int
	if len(pl.cmds) == 1 {
		status = st.runSimple(ctx, pl.cmds[0], sio)
	} else {
		status = st.runStages(ctx, pl.cmds, sio)
	}
	if pl.negate {
		if status == 0 {
			return 1
		}
		return 0
	}
	return status
}

// runStages runs a pipeline's commands concurrently. As in zsh, the last
// command runs in this shell; the others in copies of it.
func (st *shState) runStages(ctx context.Context, cmds []*shSimple, sio shIO) int {
	n := len(cmds)
	codes := make([]int, n)
	var wg sync.WaitGroup
	in := sio.in
	var prevReader *io.PipeReader
	for i, c := range cmds {
		stageCtx, cancel := context.WithCancelCause(ctx)
		stageIO := shIO{in: in, out: sio.out, err: sio.err}
		var pr *io.PipeReader
		var pw *io.PipeWriter
		target := st
		if i < n-1 {
			pr, pw = io.Pipe()
			stageIO.out = &shPipeOut{w: pw, cancel: cancel}
			target = st.clone()
		}
		upstream := prevReader
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel(nil)
			codes[i] = target.runSimple(stageCtx, c, stageIO)
			if pw != nil {
				pw.Close()
			}
			if upstream != nil {
				// whatever the previous stage still writes has no reader
				upstream.CloseWithError(errBrokenPipe)
			}
		}()
		in, prevReader = pr, pr
	}
	wg.Wait()
	if st.pipefail {
		for i := n - 1; i >= 0; i-- {
			if codes[i] != 0 {
				return codes[i]
			}
		}
	}
	return codes[n-1]
}

func (st *shState) runSimple(ctx context.Context, c *shSimple, sio shIO) int {
	st.subRan = false
	var args []string
	for _, w := range c.args {
		args = append(args, st.expandFields(ctx, w, sio)...)
	}
	values := make([]string, len(c.assigns))
	for i, a := range c.assigns {
		values[i] = st.expandString(ctx, a.value, sio)
	}
	rio, closers, code := st.redirect(ctx, c.redirs, sio)
	defer func() {
		for _, cl := range closers {
			cl.Close()
		}
	}()
	if code != 0 {
		return code
	}
	if len(args) == 0 {
		for i, a := range c.assigns {
			st.vars[a.name] = values[i]
		}
		if st.subRan {
			return st.subStatus
		}
		return 0
	}
	env := st.environ()
	for i, a := range c.assigns {
		env[a.name] = values[i]
	}
	return st.command(ctx, args, env, rio)
}

// command runs args: a builtin of the shell itself, else a program.
func (st *shState) command(ctx context.Context, args []string, env map[string]string, sio shIO) int {
	switch args[0] {
	case "cd":
		return st.cd(args, sio)
	case "export":
		return st.export(args, sio)
	case "unset":
		for _, a := range args[1:] {
			delete(st.vars, a)
			delete(st.exported, a)
		}
		return 0
	case "exit":
		st.exited = true
		if len(args) > 1 {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				fmt.Fprintf(sio.err, "zsh: exit: bad math expression: %s\n", args[1])
				return 1
			}
			return n & 0xff
		}
		return st.status
	case "set":
		return st.set(args, sio)
	case "eval":
		return st.runLine(ctx, strings.Join(args[1:], " "), sio)
	case "source", ".", "exec", "alias", "unalias", "return", "shift", "read", "trap", "wait", "jobs", "fg", "bg",
		"ulimit", "umask", "typeset", "local", "declare", "readonly", "setopt", "unsetopt", "emulate",
		"autoload", "builtin", "history", "fc", "disown", "functions", "getopts", "hash", "let", "print", "pushd", "popd":
		fmt.Fprintf(sio.err, "sim: unsupported: zsh builtin %s\n", args[0])
		return 127
	}
	return st.exec(ctx, args, env, false, false, sio)
}

func (st *shState) proc(args []string, env map[string]string, root bool, sio shIO) *Proc {
	p := &Proc{
		Args: args, Env: env, Root: root || st.asRoot, User: st.sh.user, Dir: st.dir,
		Stdin: sio.in, Stdout: sio.out, Stderr: sio.err, FS: st.sh.fs,
	}
	p.Exec = func(ctx context.Context, args []string, root bool) int {
		if len(args) == 0 {
			return 0
		}
		return st.exec(ctx, args, p.Env, root, false, shIO{in: p.Stdin, out: p.Stdout, err: p.Stderr})
	}
	return p
}

// exec runs a program: a builtin, a model command, or a path.
func (st *shState) exec(ctx context.Context, args []string, env map[string]string, root, viaSudo bool, sio shIO) int {
	name := args[0]
	p := st.proc(args, env, root, sio)
	if name == "sudo" {
		return st.sudo(ctx, p)
	}
	if strings.Contains(name, "/") {
		return st.execPath(ctx, p, viaSudo)
	}
	if run, ok := st.lookup(name); ok {
		return run(ctx, p)
	}
	if shUnimplementedProgram(name) {
		fmt.Fprintf(sio.err, "sim: unsupported: %s (a macOS program the sim does not implement)\n", name)
		return 127
	}
	if viaSudo {
		fmt.Fprintf(sio.err, "sudo: %s: command not found\n", name)
		return 1
	}
	fmt.Fprintf(sio.err, "zsh: command not found: %s\n", name)
	return 127
}

func (st *shState) lookup(name string) (func(context.Context, *Proc) int, bool) {
	if b, ok := st.sh.builtins[name]; ok {
		return func(ctx context.Context, p *Proc) int { return b(ctx, st, p) }, true
	}
	if st.sh.programs != nil {
		if c, ok := st.sh.programs.Commands()[name]; ok {
			return func(ctx context.Context, p *Proc) int { return st.sh.call(ctx, c, p) }, true
		}
	}
	return nil, false
}

// shSystemBinDir reports the folders where macOS keeps the programs the
// sim provides by name, so /usr/bin/sw_vers works like sw_vers.
func shSystemBinDir(dir string) bool {
	switch dir {
	case "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/libexec", "/usr/local/bin":
		return true
	}
	return false
}

// execPath runs a program by its path. A file nobody provides is not
// run: the sim runs only programs it models, so an executable it does not
// know gets the kernel's answer for a file it cannot load (exec format
// error), in the words of whoever tried to run it, zsh or sudo.
func (st *shState) execPath(ctx context.Context, p *Proc, viaSudo bool) int {
	name := p.Args[0]
	gp := Clean(p.Dir, name)
	if st.sh.programs != nil {
		if c, ok := st.sh.programs.Program(gp); ok {
			return st.sh.call(ctx, c, p)
		}
	}
	if shSystemBinDir(path.Dir(gp)) {
		if run, ok := st.lookup(path.Base(gp)); ok {
			return run(ctx, p)
		}
	}
	fi, err := st.sh.fs.Stat(Rel(gp))
	switch {
	case err != nil && viaSudo:
		fmt.Fprintf(p.Stderr, "sudo: %s: command not found\n", name)
		return 1
	case err != nil:
		fmt.Fprintf(p.Stderr, "zsh: no such file or directory: %s\n", name)
		return 127
	case fi.IsDir() || fi.Mode()&0o111 == 0:
		if viaSudo {
			fmt.Fprintf(p.Stderr, "sudo: %s: command not found\n", name)
			return 1
		}
		fmt.Fprintf(p.Stderr, "zsh: permission denied: %s\n", name)
		return 126
	case st.isScript(gp):
		fmt.Fprintf(p.Stderr, "sim: unsupported: running the script %s (the sim runs the programs it models only)\n", name)
		return 127
	case viaSudo:
		fmt.Fprintf(p.Stderr, "sudo: unable to execute %s: Exec format error\n", name)
		return 126
	}
	fmt.Fprintf(p.Stderr, "zsh: exec format error: %s\n", name)
	return 126
}

// isScript says whether an executable file starts with #!.
func (st *shState) isScript(gp string) bool {
	f, err := st.sh.fs.Open(Rel(gp))
	if err != nil {
		return false
	}
	defer f.Close()
	var head [2]byte
	n, _ := io.ReadFull(f, head[:])
	return n == 2 && string(head[:]) == "#!"
}

// call runs a model command; a panicking command fails like a crashed
// program instead of taking the lab down.
func (sh *Shell) call(ctx context.Context, c Command, p *Proc) (code int) {
	defer func() {
		if r := recover(); r != nil {
			sh.logf("sim: %s panicked: %v\n%s", p.Args[0], r, debug.Stack())
			fmt.Fprintf(p.Stderr, "sim: %s crashed: %v\n", p.Args[0], r)
			code = 134 // SIGABRT, as a crashed program
		}
	}()
	return c(ctx, p)
}

// sudo runs the rest of the line as root (macOS admin accounts need no
// password in the lab's images, so -n always succeeds).
func (st *shState) sudo(ctx context.Context, p *Proc) int {
	args := p.Args[1:]
	user := "root"
options:
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		switch {
		case a == "--":
			break options
		case a == "-u":
			if len(args) == 0 {
				fmt.Fprintln(p.Stderr, "sudo: option requires an argument -- u")
				return 1
			}
			user, args = args[0], args[1:]
		case strings.HasPrefix(a, "-u"):
			user = a[2:]
		default:
			for _, f := range a[1:] {
				switch f {
				case 'n', 'E', 'H', 'S', 'k', 'P', 'b':
					// accepted: no effect on the sim (no password, no terminal)
				case 'i', 's':
					fmt.Fprintf(p.Stderr, "sim: unsupported: sudo -%c\n", f)
					return 127
				default:
					fmt.Fprintf(p.Stderr, "sudo: invalid option -- %c\n", f)
					return 1
				}
			}
		}
	}
	env := make(map[string]string, len(p.Env)+6)
	for k, v := range p.Env {
		env[k] = v
	}
	for len(args) > 0 {
		name, value, ok := strings.Cut(args[0], "=")
		if !ok || !shIsName(name) {
			break
		}
		env[name] = value
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(p.Stderr, "usage: sudo -h | -K | -k | -V\nusage: sudo [-AbEHknPS] [-u user] [VAR=value] [-i|-s] [<command>]")
		return 1
	}
	root := user == "root" || user == "#0"
	if !root && user != st.sh.user && user != "#"+strconv.Itoa(shUID) {
		fmt.Fprintf(p.Stderr, "sudo: unknown user %s\n", user)
		return 1
	}
	if root {
		env["USER"], env["LOGNAME"], env["SUDO_USER"] = "root", "root", st.sh.user
		env["SUDO_UID"], env["SUDO_GID"] = strconv.Itoa(shUID), strconv.Itoa(shGID)
		env["SUDO_COMMAND"] = strings.Join(args, " ")
	}
	return st.exec(ctx, args, env, root, true, shIO{in: p.Stdin, out: p.Stdout, err: p.Stderr})
}

func (st *shState) cd(args []string, sio shIO) int {
	target := st.vars["HOME"]
	if len(args) > 1 {
		target = args[1]
	}
	if target == "-" {
		target = st.vars["OLDPWD"]
	}
	gp := Clean(st.dir, target)
	fi, err := st.sh.fs.Stat(Rel(gp))
	switch {
	case err != nil:
		fmt.Fprintf(sio.err, "cd: %s: %s\n", strings.ToLower(shErrText(err)), target)
		return 1
	case !fi.IsDir():
		fmt.Fprintf(sio.err, "cd: not a directory: %s\n", target)
		return 1
	}
	st.vars["OLDPWD"] = st.dir
	st.dir = gp
	st.vars["PWD"] = gp
	return 0
}

func (st *shState) export(args []string, sio shIO) int {
	if len(args) == 1 {
		for _, k := range shSortedKeys(st.environ()) {
			fmt.Fprintf(sio.out, "%s=%s\n", k, shQuote(st.vars[k]))
		}
		return 0
	}
	for _, a := range args[1:] {
		name, value, hasValue := strings.Cut(a, "=")
		if !shIsName(name) {
			fmt.Fprintf(sio.err, "zsh: export: not an identifier: %s\n", name)
			return 1
		}
		if hasValue {
			st.vars[name] = value
		}
		st.exported[name] = true
	}
	return 0
}

func (st *shState) set(args []string, sio shIO) int {
	for i := 1; i < len(args); i++ {
		on := args[i][0] == '-'
		switch a := args[i]; {
		case a == "-e" || a == "+e":
			st.errexit = on
		case (a == "-o" || a == "+o") && i+1 < len(args) && (args[i+1] == "pipefail" || args[i+1] == "errexit"):
			if args[i+1] == "pipefail" {
				st.pipefail = on
			} else {
				st.errexit = on
			}
			i++
		default:
			fmt.Fprintf(sio.err, "sim: unsupported: set %s\n", strings.Join(args[i:], " "))
			return 127
		}
	}
	return 0
}

// Expansion.

func shIFS(r rune) bool { return r == ' ' || r == '\t' || r == '\n' }

// expandFields expands a word into fields. Like zsh (and unlike sh),
// unquoted $VAR is not split; unquoted $(...) is split on blanks and
// newlines. Unquoted expansions that come out empty vanish.
func (st *shState) expandFields(ctx context.Context, w shWord, sio shIO) []string {
	var fields []string
	var cur strings.Builder
	set := false
	flush := func() {
		if set || cur.Len() > 0 {
			fields = append(fields, cur.String())
		}
		cur.Reset()
		set = false
	}
	for _, part := range w {
		switch part.kind {
		case shLit:
			cur.WriteString(part.text)
			set = set || part.quoted || part.text != ""
		case shTilde:
			cur.WriteString(st.tilde(part.text))
			set = true
		case shParam:
			v := st.param(part.text)
			cur.WriteString(v)
			set = set || part.quoted || v != ""
		case shCmdSub:
			out := st.substitute(ctx, part.sub, sio)
			if part.quoted {
				cur.WriteString(out)
				set = true
				continue
			}
			if out == "" {
				continue
			}
			if shIFS(rune(out[0])) {
				flush()
			}
			for i, f := range strings.FieldsFunc(out, shIFS) {
				if i > 0 {
					flush()
				}
				cur.WriteString(f)
				set = true
			}
			if shIFS(rune(out[len(out)-1])) {
				flush()
			}
		}
	}
	flush()
	return fields
}

// expandString expands a word without splitting (assignments, redirection
// targets).
func (st *shState) expandString(ctx context.Context, w shWord, sio shIO) string {
	var b strings.Builder
	for _, part := range w {
		switch part.kind {
		case shLit:
			b.WriteString(part.text)
		case shTilde:
			b.WriteString(st.tilde(part.text))
		case shParam:
			b.WriteString(st.param(part.text))
		case shCmdSub:
			b.WriteString(st.substitute(ctx, part.sub, sio))
		}
	}
	return b.String()
}

func (st *shState) tilde(user string) string {
	switch user {
	case "":
		return st.vars["HOME"]
	case st.sh.user, "root":
		return st.sh.Home(user)
	}
	return "~" + user
}

func (st *shState) param(name string) string {
	switch name {
	case "?":
		return strconv.Itoa(st.status)
	case "$":
		return strconv.Itoa(shFakePID)
	case "0":
		return "zsh"
	}
	return st.vars[name]
}

// shBuffer collects a command substitution's output; a command may write
// stdout and stderr (2>&1) from different goroutines.
type shBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *shBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *shBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (st *shState) substitute(ctx context.Context, l *shList, sio shIO) string {
	var out shBuffer
	code := st.clone().runList(ctx, l, shIO{in: sio.in, out: &out, err: sio.err})
	st.subRan, st.subStatus = true, code
	return strings.TrimRight(out.String(), "\n")
}

// Redirections.

// redirect applies redirections left to right; a non-zero code means one
// failed (already reported).
func (st *shState) redirect(ctx context.Context, rs []shRedirect, sio shIO) (shIO, []io.Closer, int) {
	fds := [3]any{sio.in, sio.out, sio.err}
	var closers []io.Closer
	for _, r := range rs {
		if r.op == shRedirDup {
			fds[r.fd] = fds[r.dupTo]
			continue
		}
		target := st.expandString(ctx, r.target, sio)
		f, err := st.openRedirect(target, r.op, fds)
		if err != nil {
			fmt.Fprintf(sio.err, "zsh: %s: %s\n", strings.ToLower(shErrText(err)), target)
			return sio, closers, 1
		}
		if c, ok := f.(io.Closer); ok && f != fds[0] && f != fds[1] && f != fds[2] {
			closers = append(closers, c)
		}
		switch r.op {
		case shRedirBoth, shRedirBothAppend:
			fds[1], fds[2] = f, f
		default:
			fds[r.fd] = f
		}
	}
	out := shIO{in: strings.NewReader(""), out: io.Discard, err: io.Discard}
	if r, ok := fds[0].(io.Reader); ok {
		out.in = r
	}
	if w, ok := fds[1].(io.Writer); ok {
		out.out = w
	}
	if w, ok := fds[2].(io.Writer); ok {
		out.err = w
	}
	return out, closers, 0
}

func (st *shState) openRedirect(target string, op shRedirOp, fds [3]any) (any, error) {
	if target == "" {
		return nil, &fs.PathError{Op: "open", Path: target, Err: fs.ErrNotExist}
	}
	gp := Clean(st.dir, target)
	switch gp {
	case "/dev/null":
		if op == shRedirIn {
			return strings.NewReader(""), nil
		}
		return io.Discard, nil
	case "/dev/stdin":
		return fds[0], nil
	case "/dev/stdout":
		return fds[1], nil
	case "/dev/stderr":
		return fds[2], nil
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	switch op {
	case shRedirIn:
		flag = os.O_RDONLY
	case shRedirAppend, shRedirBothAppend:
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := st.sh.fs.OpenFile(Rel(gp), flag, 0o644)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: target, Err: syscall.EISDIR}
	}
	return f, nil
}

// Helpers shared with the builtins.

// shErrText is the macOS strerror text of a file error.
func shErrText(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	case errors.Is(err, syscall.ENOTEMPTY): // before ErrExist, which ENOTEMPTY also matches
		return "Directory not empty"
	case errors.Is(err, fs.ErrExist):
		return "File exists"
	case errors.Is(err, fs.ErrPermission):
		return "Permission denied"
	case errors.Is(err, syscall.ENOTDIR):
		return "Not a directory"
	case errors.Is(err, syscall.EISDIR):
		return "Is a directory"
	case errors.Is(err, syscall.EINVAL):
		return "Invalid argument"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err.Error()
	}
	return err.Error()
}

// shQuote quotes s for zsh with single quotes when it needs quoting.
func shQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r == '-' || r == '.' || r == '/' || r == ':' || r == ',' || r == '+' || r == '=' || r == '@' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// shUnimplementedProgram reports macOS programs the sim does not provide:
// they exit 127 with "sim: unsupported" rather than "command not found",
// which would be a lie about macOS.
func shUnimplementedProgram(name string) bool {
	switch name {
	case "sed", "awk", "tr", "sort", "uniq", "cut", "xargs", "find", "tee", "xxd", "od", "base64",
		"curl", "wget", "python3", "perl", "ruby", "ps", "kill", "killall", "pkill", "pgrep", "top",
		"defaults", "plutil", "codesign", "profiles", "csrutil", "kextstat", "kmutil", "diskutil",
		"networksetup", "softwareupdate", "security", "tar", "gzip", "gunzip", "zip", "unzip", "ln",
		"chown", "du", "df", "less", "more", "vi", "vim", "nano", "file", "lsof", "netstat", "ifconfig",
		"ping", "dscl", "sysctl", "ioreg", "system_profiler", "mdls", "xattr", "md5", "openssl", "diff",
		"cmp", "sw_vers", "systemextensionsctl", "scutil", "launchctl", "installer", "pkgutil", "hdiutil",
		"ditto", "open", "osascript", "spctl", "log", "sysdiagnose", "shutdown", "reboot", "halt",
		"uptime", "w", "who", "caffeinate", "pmset", "nvram", "bless", "fdesetup", "tmutil", "mdutil",
		"mount", "umount", "lsbom", "pkgbuild", "productbuild", "xcrun", "stapler", "tccutil", "sqlite3":
		return true
	}
	return false
}
