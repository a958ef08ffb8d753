package shell

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testClock is a guest clock that moves only when something sleeps.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

type testShell struct {
	*Shell
	host *testClock
	fs   *FS
}

func newTestShell(t *testing.T) *testShell {
	t.Helper()
	fsys := NewFS()
	for _, d := range []string{"Users/admin", "tmp", "Applications"} {
		require.NoError(t, fsys.MkdirAll(d, 0o755))
	}
	clock := &testClock{now: time.Now()} // ls shows recent files with their time, as the tree has them
	sh := New(Config{
		FS: fsys, Programs: &fakePrograms{fs: fsys}, Clock: clock,
		User: "admin", Hostname: LocalHostname("lab 1"), Release: "24.3.0", Logf: t.Logf,
	})
	return &testShell{Shell: sh, host: clock, fs: fsys}
}

func (ts *testShell) run(line string) (stdout, stderr string, code int) {
	var out, errb shBuffer
	code = ts.Shell.Run(context.Background(), line, nil, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return out.String(), errb.String(), code
}

type shCase struct {
	line, out, err string
	code           int
}

func runCases(t *testing.T, cases []shCase) {
	t.Helper()
	ts := newTestShell(t)
	for _, c := range cases {
		out, errs, code := ts.run(c.line)
		assert.Equal(t, c.out, out, "stdout of %q", c.line)
		assert.Equal(t, c.err, errs, "stderr of %q", c.line)
		assert.Equal(t, c.code, code, "status of %q", c.line)
	}
}

func TestShellQuoting(t *testing.T) {
	runCases(t, []shCase{
		{line: `args 'a b' "c d" e\ f`, out: "[a b][c d][e f]\n"},
		{line: `args 'it'\''s'`, out: "[it's]\n"},
		{line: `args "a\"b" "x\\y" "\$HOME" "a\qb" '\n'`, out: `[a"b][x\y][$HOME][a\qb][\n]` + "\n"},
		{line: `X=1; args "$X" $X ${X}y "${X}" "$X$X"`, out: "[1][1][1y][1][11]\n"},
		{line: `X='a  b'; args $X`, out: "[a  b]\n", err: ""}, // zsh does not split $X
		{line: `args "$(id -u admin)" $(echo a b) "$(echo "c  d")"`, out: "[501][a][b][c  d]\n"},
		{line: "args `echo hi` \"`echo a b`\"", out: "[hi][a b]\n"},
		{line: `args '' "" x`, out: "[][][x]\n"},
		{line: `args $EMPTY "$EMPTY" $(true) x$(true)y`, out: "[][xy]\n"},
		{line: `args ~ ~/x ~root "~" a~`, out: "[/Users/admin][/Users/admin/x][/var/root][~][a~]\n"},
		{line: `args a#b # a comment`, out: "[a#b]\n"},
		{line: `args "a b"c'd e'`, out: "[a bcd e]\n"},
		{line: "args 'two\nlines' \"x\\\ny\"", out: "[two\nlines][xy]\n"},
		{line: `args $(printf 'a\nb\n\n')`, out: "[a][b]\n"},
		{line: `args [ ] '*' "?" a=b`, out: "[[][]][*][?][a=b]\n"},
		{line: `echo $HOME $USER $SHELL $0`, out: "/Users/admin admin /bin/zsh zsh\n"},
		{line: `args "héllo 中文 🙂"`, out: "[héllo 中文 🙂]\n"},
	})
}

func TestShellSudoAndPrefixes(t *testing.T) {
	runCases(t, []shCase{
		{line: `amroot; sudo amroot; sudo -n amroot; sudo -u admin amroot; sudo -n -u root amroot; sudo -- amroot`, out: "false\ntrue\ntrue\nfalse\ntrue\ntrue\n"},
		{line: `FOO=bar envof FOO; envof FOO`, out: "bar\n\n"},
		{line: `FOO=bar; envof FOO; export FOO; envof FOO`, out: "\nbar\n"},
		{line: `sudo FOO=baz envof FOO; A=1 B=2 envof B`, out: "baz\n2\n"},
		{line: `sudo envof SUDO_USER; sudo envof USER`, out: "admin\nroot\n"},
		{line: `sudo -u nobody amroot`, err: "sudo: unknown user nobody\n", code: 1},
		// a program that runs another (launchctl asuser) goes through the
		// same lookup, sudo included
		{line: `sudo spawn amroot; spawn sudo amroot; spawn sudo -u admin envof USER; spawn nosuch`, out: "false\ntrue\nadmin\n", err: "zsh: command not found: nosuch\n", code: 127},
		{line: `sudo nosuch`, err: "sudo: nosuch: command not found\n", code: 1},
		{line: `sudo -i`, err: "sim: unsupported: sudo -i\n", code: 127},
		{line: `id -u; sudo id -u; id -un; id -u admin; id -u root; whoami; sudo whoami; id -gn`, out: "501\n0\nadmin\n501\n0\nadmin\nroot\nstaff\n"},
		{line: `id nobody`, err: "id: nobody: no such user\n", code: 1},
		// what the lab sends to launch an app as the console user
		{line: `sudo args asuser $(id -u admin) open -a "/Applications/Example VPN.app"`, out: "[asuser][501][open][-a][/Applications/Example VPN.app]\n"},
		{line: `sudo sh -c 'amroot; echo $0'; sh -c 'amroot'`, out: "true\nzsh\nfalse\n"},
		{line: `env X=1 envof X; command amroot`, out: "1\nfalse\n"},
	})
}

func TestShellOperatorsAndPipes(t *testing.T) {
	runCases(t, []shCase{
		{line: `true && echo a || echo b`, out: "a\n"},
		{line: `false && echo a || echo b`, out: "b\n"},
		{line: `false || false && echo c; echo $?`, out: "1\n"},
		{line: `false; echo $?; fail; echo $?`, out: "1\n3\n", err: "fail: it failed\n"},
		{line: `! false && echo negated; ! true; echo $?`, out: "negated\n1\n"},
		{line: "echo one\necho two\n\n", out: "one\ntwo\n"},
		{line: "echo a &&\n echo b |\n cat", out: "a\nb\n"},
		{line: `set -e; echo before; false; echo after`, out: "before\n", code: 1},
		{line: `exit 5; echo no`, code: 5},
		{line: `printf 'com.apple.x\nNetworkExtension.com.example.vpn.tunnel.3.0.300\n' | grep NetworkExtension.`, out: "NetworkExtension.com.example.vpn.tunnel.3.0.300\n"},
		{line: `printf 'a\nb\nc\n' | head -n 2; printf 'a\nb\nc\n' | head -1`, out: "a\nb\na\n"},
		{line: `printf 'a\nb\nc\n' | tail -n 1; printf 'a\nb\nc' | tail -2`, out: "c\nb\nc"},
		{line: `printf 'a\nb\nc\n' | wc -l; printf 'one two\n' | wc -w`, out: "       3\n       2\n"},
		{line: `printf 'Alpha\nbeta\n' | grep -i alpha; printf 'a\nb\n' | grep -v a`, out: "Alpha\nb\n"},
		{line: `printf 'x\n' | grep -q x && echo found; printf 'x\n' | grep y; echo $?`, out: "found\n1\n"},
		{line: `printf 'a1\nb22\nc\n' | grep -E '[0-9]+$'; printf 'a+b\nab\n' | grep 'a+b'; printf 'a.b\naxb\n' | grep -F a.b`, out: "a1\nb22\na+b\na.b\n"},
		{line: `printf 'ab\nab\nc\n' | grep -c ab; printf 'x\ny\n' | grep -n y`, out: "2\n2:y\n"},
		{line: `yes | head -n 2`, out: "y\ny\n"},
		{line: `set -o pipefail; fail | true; echo $?`, out: "3\n", err: "fail: it failed\n"},
		{line: `fail | true; echo $?`, out: "0\n", err: "fail: it failed\n"},
		{line: `echo x | cd /tmp; pwd`, out: "/tmp\n"}, // zsh runs a pipeline's last command in the shell itself
	})
}

func TestShellRedirections(t *testing.T) {
	runCases(t, []shCase{
		{line: `echo hi > /tmp/f; echo there >> /tmp/f; cat < /tmp/f; cat /tmp/f | wc -l`, out: "hi\nthere\n       2\n"},
		{line: `fail 2>&1 | wc -l`, out: "       1\n"},
		{line: `fail 2>/dev/null; echo $?`, out: "3\n"},
		{line: `echo err 1>&2 2>/dev/null`, err: "err\n"},
		{line: `fail > /tmp/o 2>&1; cat /tmp/o; echo both &> /tmp/b; cat /tmp/b`, out: "fail: it failed\nboth\n"},
		{line: `echo x >/tmp/n1 2>/tmp/n2; cat /tmp/n1`, out: "x\n"},
		{line: `echo x > /nonexistent/dir/f`, err: "zsh: no such file or directory: /nonexistent/dir/f\n", code: 1},
		{line: `cat < /tmp/none`, err: "zsh: no such file or directory: /tmp/none\n", code: 1},
		{line: `echo x > /tmp`, err: "zsh: is a directory: /tmp\n", code: 1},
		{line: `cat /dev/null; echo x > /dev/null; cat < /dev/null`, out: ""},
		{line: `cd /tmp; echo rel > r.txt; cat /tmp/r.txt`, out: "rel\n"},
	})
}

func TestShellRefusesWhatItDoesNotUnderstand(t *testing.T) {
	ts := newTestShell(t)
	for _, line := range []string{
		`sleep 1 &`, `cat <<EOF`, `cat <<< x`, `(cd /tmp)`, `ls *`, `ls /tmp/?`, `echo $((1+2))`,
		`if true; then echo; fi`, `for x in a; do echo; done`, `echo ${X:-d}`, `ls /tmp/{a,b}`,
		`echo a |& cat`, `{ echo; }`, `echo $1`, `echo $@`, `exec ls`, `source x`, `echo $'x'`,
		`echo 3>x`, `echo >&-`, `diff <(a) b`, `f() { x; }`, `set -x`, `echo ok; sleep 1 &`,
		`sed s/a/b/`, `sw_vers`, `tail -f /tmp/x`, `grep -r x /tmp`, `ls -R`,
	} {
		out, errs, code := ts.run(line)
		assert.Equal(t, 127, code, line)
		assert.Regexp(t, `^sim: unsupported: `, errs, line)
		assert.Empty(t, out, "nothing of %q runs", line)
	}
}

func TestShellSyntaxErrors(t *testing.T) {
	runCases(t, []shCase{
		{line: `echo 'open`, err: "zsh: unmatched '\n", code: 1},
		{line: `echo "open`, err: "zsh: unmatched \"\n", code: 1},
		{line: `echo a &&`, err: "zsh: parse error near `\\n'\n", code: 1},
		{line: `| cat`, err: "zsh: parse error near `|'\n", code: 1},
		{line: `echo a;; echo b`, err: "zsh: parse error near `;'\n", code: 1},
		{line: `echo $(echo`, err: "zsh: parse error in command substitution: missing )\n", code: 1},
	})
}

func TestShellBuiltins(t *testing.T) {
	ts := newTestShell(t)
	require.NoError(t, ts.fs.MkdirAll("/Applications/Example.app/Contents/MacOS", 0o755))
	require.NoError(t, ts.fs.WriteFile("/Applications/Example.app/Contents/MacOS/Example", []byte("binary"), 0o755))
	runCasesOn(t, ts, []shCase{
		{line: `echo -n a; echo b; echo 'a\tb'; echo -E 'a\tb'; echo - -n`, out: "ab\na\tb\na\\tb\n-n\n"},
		{line: `printf '%s-%d\n' a 1 b 2; printf '%5s|%-3s|%03d|%x\n' ab c 7 255`, out: "a-1\nb-2\n   ab|c  |007|ff\n"},
		{line: `uname; uname -r; uname -m; uname -sr; hostname; hostname -s`, out: "Darwin\n24.3.0\narm64\nDarwin 24.3.0\nlab-1.local\nlab-1\n"},
		{line: `mkdir -p /tmp/a/b && touch /tmp/a/b/f && ls /tmp/a/b; ls /tmp/a`, out: "f\nb\n"},
		{line: `mkdir /tmp/x; mkdir /tmp/x`, err: "mkdir: /tmp/x: File exists\n", code: 1},
		{line: `mkdir -p /tmp/full/inner; rmdir /tmp/full`, err: "rmdir: /tmp/full: Directory not empty\n", code: 1},
		{line: `mkdir /tmp/no/such`, err: "mkdir: /tmp/no/such: No such file or directory\n", code: 1},
		{line: `rm /tmp/nothing`, err: "rm: /tmp/nothing: No such file or directory\n", code: 1},
		{line: `rm -f /tmp/nothing; mkdir -p /tmp/d/e; rm /tmp/d`, err: "rm: /tmp/d: is a directory\n", code: 1},
		{line: `rm -rf /tmp/d; test -e /tmp/d || echo gone; rm -rf /`, out: "gone\n", err: "rm: \"/\" may not be removed\n", code: 1},
		{line: `touch /tmp/empty; test -f /tmp/empty && echo f; [ -d /tmp ] && echo d; [ -s /tmp/empty ] || echo empty`, out: "f\nd\nempty\n"},
		{line: `[ a = a ] && [ a != b ] && [ 3 -gt 2 ] && [ -n x ] && [ -z "" ] && [ ! -e /nope ] && echo all`, out: "all\n"},
		{line: `[ -d /tmp`, err: "[: ']' expected\n", code: 2},
		{line: `[ 1 -eq x ]`, err: "[: integer expression expected: x\n", code: 2},
		{line: `printf 12345 > /tmp/s; stat -f %z /tmp/s; stat -c %s /tmp/s; stat -f '%N %Lp %Su' /tmp/s`, out: "5\n5\n/tmp/s 644 admin\n"},
		{line: `stat -f %z /tmp/nope`, err: "stat: /tmp/nope: stat: No such file or directory\n", code: 1},
		{line: `printf abc > /tmp/h; shasum -a 256 /tmp/h; printf abc | shasum -a 256; shasum /tmp/h`,
			out: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  /tmp/h\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\na9993e364706816aba3e25717850c26c9cd0d89d  /tmp/h\n"},
		{line: `shasum -a 256 /tmp/none`, err: "shasum: /tmp/none: No such file or directory\n", code: 1},
		{line: `echo x > /tmp/m1; mv /tmp/m1 /tmp/m2; cp /tmp/m2 /tmp/m3; cat /tmp/m2 /tmp/m3; test -e /tmp/m1 || echo moved`, out: "x\nx\nmoved\n"},
		{line: `mkdir -p /tmp/t/u; echo y > /tmp/t/u/f; cp -R /tmp/t /tmp/t2; cat /tmp/t2/u/f; cp /tmp/t /tmp/t3`, out: "y\n", err: "cp: /tmp/t is a directory (not copied).\n", code: 1},
		{line: `cd /tmp && pwd; cd; pwd; cd /nope`, out: "/tmp\n/Users/admin\n", err: "cd: no such file or directory: /nope\n", code: 1},
		{line: `touch /tmp/cx; chmod 755 /tmp/cx; stat -f %Lp /tmp/cx; chmod go-rx /tmp/cx; stat -f %Lp /tmp/cx`, out: "755\n700\n"},
		{line: `"/Applications/Example.app/Contents/MacOS/Example" --check-xpc`, out: "app --check-xpc\n"},
		{line: `/Applications`, err: "zsh: permission denied: /Applications\n", code: 126},
		{line: `printf '\177ELF' > /tmp/elf; chmod 755 /tmp/elf; /tmp/elf; echo $?; sudo -u admin /tmp/elf`, out: "126\n", err: "zsh: exec format error: /tmp/elf\nsudo: unable to execute /tmp/elf: Exec format error\n", code: 126},
		{line: `touch /tmp/plain; /tmp/plain; sudo /tmp/nothing`, err: "zsh: permission denied: /tmp/plain\nsudo: /tmp/nothing: command not found\n", code: 1},
		{line: `/no/such/program`, err: "zsh: no such file or directory: /no/such/program\n", code: 127},
		{line: `/usr/bin/hello; /bin/echo hi; /usr/bin/uname`, out: "hello from admin\nhi\nDarwin\n"},
		{line: `which ls hello; command -v echo; which nosuch`, out: "/bin/ls\n/usr/bin/hello\necho\nnosuch not found\n", code: 1},
		{line: `basename /a/b.pkg .pkg; dirname /a/b.pkg`, out: "b\n/a\n"},
		{line: `true; false`, code: 1},
	})

	out, _, code := ts.run(`ls -la /tmp/t`)
	assert.Equal(t, 0, code)
	assert.Regexp(t, regexp.MustCompile(`(?m)^total \d+\ndrwxr-xr-x +\d+ admin  wheel  \d+ \w{3} [ \d]\d \d\d:\d\d \.\n`), out)
	assert.Regexp(t, regexp.MustCompile(`(?m)^drwxr-xr-x +3 admin  wheel  \d+ \w{3} [ \d]\d \d\d:\d\d u$`), out)

	before := ts.host.Now()
	_, _, code = ts.run(`sleep 90`)
	assert.Equal(t, 0, code)
	assert.GreaterOrEqual(t, ts.host.Now().Sub(before), 90*time.Second, "sleep runs on the guest clock")

	out, _, _ = ts.run(`date +%Y-%m-%d`)
	assert.Equal(t, ts.host.Now().Format("2006-01-02")+"\n", out)
}

func runCasesOn(t *testing.T, ts *testShell, cases []shCase) {
	t.Helper()
	for _, c := range cases {
		out, errs, code := ts.run(c.line)
		assert.Equal(t, c.out, out, "stdout of %q", c.line)
		assert.Equal(t, c.err, errs, "stderr of %q", c.line)
		assert.Equal(t, c.code, code, "status of %q", c.line)
	}
}

// posixQuote is the quoting the lab uses for arguments it builds: single
// quotes, with ' written as '\”.
func posixQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// randomArg draws a string full of what shells trip over.
func randomArg(r *rand.Rand) string {
	alphabet := []rune("ab Z09 \t\n'\"$\\`;&|<>()[]{}*?#~!%=-_./:,é中🙂\r")
	n := r.IntN(12)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func TestQuotedArgumentsRoundTrip(t *testing.T) {
	ts := newTestShell(t)
	r := rand.New(rand.NewPCG(1, 2))
	sh, shErr := exec.LookPath("sh")
	for i := 0; i < 500; i++ {
		arg := randomArg(r)
		q := posixQuote(arg)
		for _, line := range []string{"printf %s " + q, "echo -nE - " + q} {
			out, errs, code := ts.run(line)
			require.Equal(t, 0, code, "%q: %s", line, errs)
			require.Equal(t, arg, out, "%q", line)
		}
		// several arguments keep their boundaries
		other := randomArg(r)
		out, _, _ := ts.run("args " + q + " " + posixQuote(other))
		require.Equal(t, "["+arg+"]["+other+"]\n", out)
		if shErr == nil && i%10 == 0 {
			got, err := exec.Command(sh, "-c", "printf %s "+q).Output()
			require.NoError(t, err)
			require.Equal(t, arg, string(got), "/bin/sh agrees")
		}
	}
}
