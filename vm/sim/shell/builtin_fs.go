package shell

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The file builtins work on the machine's tree (FS), where no path or
// symlink reaches outside it.

// open opens a guest file for reading; "-" is stdin.
func (st *shState) open(p *Proc, name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(p.Stdin), nil
	}
	if Clean(p.Dir, name) == "/dev/null" {
		return io.NopCloser(strings.NewReader("")), nil
	}
	return st.sh.fs.Open(Rel(Clean(p.Dir, name)))
}

func (st *shState) stat(p *Proc, name string, follow bool) (fs.FileInfo, error) {
	rel := Rel(Clean(p.Dir, name))
	if follow {
		return st.sh.fs.Stat(rel)
	}
	return st.sh.fs.Lstat(rel)
}

func shUnsupportedOpts(p *Proc, o *shOpts, flags string) bool {
	for i := 0; i < len(flags); i++ {
		if o.set[flags[i]] {
			fmt.Fprintf(p.Stderr, "sim: unsupported: %s -%c\n", shProg(p), flags[i])
			return true
		}
	}
	return false
}

func biCat(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "belnstuv")
	if msg != "" {
		fmt.Fprintf(p.Stderr, "cat: %s\nusage: cat [-belnstuv] [file ...]\n", msg)
		return 1
	}
	if shUnsupportedOpts(p, o, "belnstv") {
		return 127
	}
	files := o.rest
	if len(files) == 0 {
		files = []string{"-"}
	}
	status := 0
	for _, name := range files {
		f, err := st.open(p, name)
		if err != nil {
			fmt.Fprintf(p.Stderr, "cat: %s: %s\n", name, shErrText(err))
			status = 1
			continue
		}
		_, err = io.Copy(p.Stdout, f)
		f.Close()
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				fmt.Fprintf(p.Stderr, "cat: %s: %s\n", name, shErrText(err))
				status = 1
				continue
			}
			return 1 // stdout is gone
		}
	}
	return status
}

type shEntry struct {
	name  string // as listed
	guest string // absolute guest path
	fi    fs.FileInfo
}

func biLs(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "@ABCFGHILOPRSTUWXabcdefghiklmnopqrstuvwxy1%,")
	if msg != "" {
		fmt.Fprintf(p.Stderr, "ls: %s\nusage: ls [-@ABCFGHILOPRSTUWXabcdefghiklmnopqrstuvwxy1%%,] [--color=when] [-D format] [file ...]\n", strings.Replace(msg, "illegal", "invalid", 1))
		return 1
	}
	if shUnsupportedOpts(p, o, "@BCFGHILOPRTUWXbcefgikmnopqsuvwxy%,") {
		return 127
	}
	operands := o.rest
	if len(operands) == 0 {
		operands = []string{"."}
	}
	status := 0
	var files, dirs []shEntry
	for _, name := range operands {
		gp := Clean(p.Dir, name)
		fi, err := st.stat(p, name, false)
		if err != nil {
			fmt.Fprintf(p.Stderr, "ls: %s: %s\n", name, shErrText(err))
			status = 1
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 && !o.set['l'] {
			if t, err := st.stat(p, name, true); err == nil {
				fi = t
			}
		}
		e := shEntry{name: name, guest: gp, fi: fi}
		if fi.IsDir() && !o.set['d'] {
			dirs = append(dirs, e)
		} else {
			files = append(files, e)
		}
	}
	st.sortEntries(files, o)
	st.sortEntries(dirs, o)
	printed := false
	if len(files) > 0 {
		st.lsPrint(p, files, o, false)
		printed = true
	}
	for _, d := range dirs {
		entries, err := st.readDir(d.guest, o.set['a'], o.set['A'])
		if printed {
			fmt.Fprintln(p.Stdout)
		}
		if len(operands) > 1 {
			fmt.Fprintf(p.Stdout, "%s:\n", d.name)
		}
		printed = true
		if err != nil {
			fmt.Fprintf(p.Stderr, "ls: %s: %s\n", d.name, shErrText(err))
			status = 1
			continue
		}
		st.sortEntries(entries, o)
		st.lsPrint(p, entries, o, true)
	}
	return status
}

func (st *shState) readDir(guest string, all, almostAll bool) ([]shEntry, error) {
	f, err := st.sh.fs.Open(Rel(guest))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var out []shEntry
	if all {
		for _, dot := range []string{".", ".."} {
			if fi, err := st.sh.fs.Stat(Rel(path.Join(guest, dot))); err == nil {
				out = append(out, shEntry{name: dot, guest: path.Join(guest, dot), fi: fi})
			}
		}
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") && !all && !almostAll {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, shEntry{name: de.Name(), guest: path.Join(guest, de.Name()), fi: fi})
	}
	return out, nil
}

func (st *shState) sortEntries(es []shEntry, o *shOpts) {
	less := func(a, b shEntry) bool { return a.name < b.name }
	switch {
	case o.set['t']:
		less = func(a, b shEntry) bool {
			if !a.fi.ModTime().Equal(b.fi.ModTime()) {
				return a.fi.ModTime().After(b.fi.ModTime())
			}
			return a.name < b.name
		}
	case o.set['S']:
		less = func(a, b shEntry) bool {
			if a.fi.Size() != b.fi.Size() {
				return a.fi.Size() > b.fi.Size()
			}
			return a.name < b.name
		}
	}
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && less(es[j], es[j-1]) != o.set['r']; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// shOwner says who owns a guest path on the simulated Mac.
func (st *shState) owner(guest string) (user, group string) {
	if o, ok := st.sh.programs.(Owners); ok {
		if u, g, ok := o.Owner(guest); ok {
			return u, g
		}
	}
	home := st.sh.Home(st.sh.user)
	switch {
	case guest == home || strings.HasPrefix(guest, home+"/"):
		return st.sh.user, "staff"
	case strings.HasPrefix(guest, "/tmp/") || strings.HasPrefix(guest, "/private/tmp/"):
		return st.sh.user, "wheel"
	case guest == "/Applications" || strings.HasPrefix(guest, "/Applications/"):
		return "root", "admin"
	}
	return "root", "wheel"
}

func shModeString(m fs.FileMode) string {
	b := []byte("-rwxrwxrwx")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	}
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	if m&fs.ModeSticky != 0 {
		if b[9] == 'x' {
			b[9] = 't'
		} else {
			b[9] = 'T'
		}
	}
	return string(b)
}

func shHumanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	f := float64(n)
	for _, unit := range []string{"K", "M", "G", "T", "P"} {
		f /= 1024
		if f < 10 {
			return fmt.Sprintf("%.1f%s", f, unit)
		}
		if f < 1024 || unit == "P" {
			return fmt.Sprintf("%.0f%s", f, unit)
		}
	}
	return strconv.FormatInt(n, 10)
}

func shBlocks(fi fs.FileInfo) int64 { return (fi.Size() + 4095) / 4096 * 8 }

func (st *shState) links(e shEntry) int {
	if !e.fi.IsDir() {
		return 1
	}
	es, err := st.readDir(e.guest, false, true)
	if err != nil {
		return 2
	}
	return len(es) + 2
}

func (st *shState) lsPrint(p *Proc, es []shEntry, o *shOpts, isDir bool) {
	if !o.set['l'] {
		for _, e := range es {
			fmt.Fprintln(p.Stdout, e.name)
		}
		return
	}
	type row struct {
		mode, links, user, group, size, date, name string
	}
	rows := make([]row, len(es))
	var wl, wu, wg, ws int
	var total int64
	now := st.sh.clock.Now()
	for i, e := range es {
		u, g := st.owner(e.guest)
		size := strconv.FormatInt(e.fi.Size(), 10)
		if o.set['h'] {
			size = shHumanSize(e.fi.Size())
		}
		mt := e.fi.ModTime()
		date := mt.Format("Jan _2 15:04")
		if mt.Before(now.AddDate(0, -6, 0)) || mt.After(now.Add(time.Hour)) {
			date = mt.Format("Jan _2  2006")
		}
		name := e.name
		if e.fi.Mode()&fs.ModeSymlink != 0 {
			if t, err := st.sh.fs.Readlink(Rel(e.guest)); err == nil {
				name += " -> " + t
			}
		}
		rows[i] = row{shModeString(e.fi.Mode()), strconv.Itoa(st.links(e)), u, g, size, date, name}
		wl, wu, wg, ws = max(wl, len(rows[i].links)), max(wu, len(u)), max(wg, len(g)), max(ws, len(size))
		total += shBlocks(e.fi)
	}
	if isDir {
		fmt.Fprintf(p.Stdout, "total %d\n", total)
	}
	for _, r := range rows {
		fmt.Fprintf(p.Stdout, "%s  %*s %-*s  %-*s  %*s %s %s\n", r.mode, wl, r.links, wu, r.user, wg, r.group, ws, r.size, r.date, r.name)
	}
}

func biRm(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "dfiIPRrvWx")
	if msg != "" || (len(o.rest) == 0 && !o.set['f']) {
		return shUsage(p, "rm", msg, "usage: rm [-f | -i] [-dIPRrvWx] file ...\n       unlink [--] file")
	}
	if shUnsupportedOpts(p, o, "iIPWx") {
		return 127
	}
	status := 0
	for _, name := range o.rest {
		gp := Clean(p.Dir, name)
		if base := path.Base(name); base == "." || base == ".." {
			fmt.Fprintln(p.Stderr, `rm: "." and ".." may not be removed`)
			status = 1
			continue
		}
		if gp == "/" {
			fmt.Fprintln(p.Stderr, `rm: "/" may not be removed`)
			status = 1
			continue
		}
		fi, err := st.stat(p, name, false)
		if err != nil {
			if !o.set['f'] || !errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(p.Stderr, "rm: %s: %s\n", name, shErrText(err))
				status = 1
			}
			continue
		}
		switch {
		case fi.IsDir() && (o.set['r'] || o.set['R']):
			err = st.sh.fs.RemoveAll(Rel(gp))
		case fi.IsDir() && !o.set['d']:
			fmt.Fprintf(p.Stderr, "rm: %s: is a directory\n", name)
			status = 1
			continue
		default:
			err = st.sh.fs.Remove(Rel(gp))
		}
		if err != nil {
			fmt.Fprintf(p.Stderr, "rm: %s: %s\n", name, shErrText(err))
			status = 1
			continue
		}
		if o.set['v'] {
			fmt.Fprintln(p.Stdout, name)
		}
	}
	return status
}

func biRmdir(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "pv")
	if msg != "" || len(o.rest) == 0 {
		fmt.Fprintln(p.Stderr, "usage: rmdir [-pv] directory ...")
		return 1
	}
	status := 0
	for _, name := range o.rest {
		fi, err := st.stat(p, name, false)
		if err == nil && !fi.IsDir() {
			err = &fs.PathError{Op: "rmdir", Path: name, Err: syscall.ENOTDIR}
		}
		if err == nil {
			err = st.sh.fs.Remove(Rel(Clean(p.Dir, name)))
		}
		if err != nil {
			fmt.Fprintf(p.Stderr, "rmdir: %s: %s\n", name, shErrText(err))
			status = 1
		}
	}
	return status
}

func biMkdir(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "m:pv")
	if msg != "" || len(o.rest) == 0 {
		return shUsage(p, "mkdir", msg, "usage: mkdir [-pv] [-m mode] directory_name ...")
	}
	perm := fs.FileMode(0o755)
	if m, ok := o.val['m']; ok {
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil {
			fmt.Fprintf(p.Stderr, "mkdir: invalid file mode: %s\n", m)
			return 1
		}
		perm = fs.FileMode(n) & fs.ModePerm
	}
	status := 0
	for _, name := range o.rest {
		rel := Rel(Clean(p.Dir, name))
		var err error
		if o.set['p'] {
			err = st.sh.fs.MkdirAll(rel, perm)
			if err == nil {
				if fi, serr := st.sh.fs.Stat(rel); serr == nil && !fi.IsDir() {
					err = fs.ErrExist
				}
			}
		} else {
			err = st.sh.fs.Mkdir(rel, perm)
		}
		if err == nil && o.set['m'] {
			err = st.sh.fs.Chmod(rel, perm)
		}
		if err != nil {
			fmt.Fprintf(p.Stderr, "mkdir: %s: %s\n", name, shErrText(err))
			status = 1
			continue
		}
		if o.set['v'] {
			fmt.Fprintln(p.Stdout, name)
		}
	}
	return status
}

// biTest is test(1) and [ as zsh runs them.
func biTest(_ context.Context, st *shState, p *Proc) int {
	args := p.Args[1:]
	name := shProg(p)
	if name == "[" {
		if len(args) == 0 || args[len(args)-1] != "]" {
			fmt.Fprintln(p.Stderr, "[: ']' expected")
			return 2
		}
		args = args[:len(args)-1]
	}
	ok, problem := st.testExpr(p, args)
	if problem != "" {
		fmt.Fprintf(p.Stderr, "%s: %s\n", name, problem)
		return 2
	}
	if ok {
		return 0
	}
	return 1
}

func (st *shState) testExpr(p *Proc, args []string) (bool, string) {
	for _, op := range []string{"-o", "-a"} {
		for i := len(args) - 2; i >= 1; i-- {
			if args[i] != op {
				continue
			}
			l, problem := st.testExpr(p, args[:i])
			if problem != "" {
				return false, problem
			}
			r, problem := st.testExpr(p, args[i+1:])
			if problem != "" {
				return false, problem
			}
			if op == "-o" {
				return l || r, ""
			}
			return l && r, ""
		}
	}
	switch len(args) {
	case 0:
		return false, ""
	case 1:
		return args[0] != "", ""
	case 2:
		if args[0] == "!" {
			return args[1] == "", ""
		}
		return st.testUnary(p, args[0], args[1])
	case 3:
		if ok, problem, isBinary := st.testBinary(p, args[0], args[1], args[2]); isBinary {
			return ok, problem
		}
		if args[0] == "!" {
			ok, problem := st.testExpr(p, args[1:])
			return !ok, problem
		}
		if args[0] == "(" && args[2] == ")" {
			return args[1] != "", ""
		}
	case 4:
		if args[0] == "!" {
			ok, problem := st.testExpr(p, args[1:])
			return !ok, problem
		}
	}
	return false, "too many arguments"
}

func (st *shState) testUnary(p *Proc, op, arg string) (bool, string) {
	switch op {
	case "-n":
		return arg != "", ""
	case "-z":
		return arg == "", ""
	}
	if Clean(p.Dir, arg) == "/dev/null" {
		return op == "-e" || op == "-c" || op == "-r" || op == "-w", ""
	}
	follow := op != "-L" && op != "-h"
	fi, err := st.stat(p, arg, follow)
	exists := err == nil
	switch op {
	case "-e", "-r", "-w":
		return exists, ""
	case "-f":
		return exists && fi.Mode().IsRegular(), ""
	case "-d":
		return exists && fi.IsDir(), ""
	case "-s":
		return exists && fi.Size() > 0, ""
	case "-x":
		return exists && (fi.IsDir() || fi.Mode()&0o111 != 0), ""
	case "-L", "-h":
		return exists && fi.Mode()&fs.ModeSymlink != 0, ""
	case "-p":
		return exists && fi.Mode()&fs.ModeNamedPipe != 0, ""
	case "-S":
		return exists && fi.Mode()&fs.ModeSocket != 0, ""
	case "-b", "-c", "-t", "-u", "-g", "-k", "-O", "-G":
		return false, ""
	}
	return false, "unknown condition: " + op
}

func (st *shState) testBinary(p *Proc, a, op, b string) (ok bool, problem string, isBinary bool) {
	switch op {
	case "=", "==":
		return a == b, "", true
	case "!=":
		return a != b, "", true
	case "<":
		return a < b, "", true
	case ">":
		return a > b, "", true
	case "-eq", "-ne", "-lt", "-le", "-gt", "-ge":
		x, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		y, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if err1 != nil {
			return false, "integer expression expected: " + a, true
		}
		if err2 != nil {
			return false, "integer expression expected: " + b, true
		}
		return map[string]bool{"-eq": x == y, "-ne": x != y, "-lt": x < y, "-le": x <= y, "-gt": x > y, "-ge": x >= y}[op], "", true
	case "-nt", "-ot":
		fa, ea := st.stat(p, a, true)
		fb, eb := st.stat(p, b, true)
		if op == "-nt" {
			return ea == nil && (eb != nil || fa.ModTime().After(fb.ModTime())), "", true
		}
		return eb == nil && (ea != nil || fa.ModTime().Before(fb.ModTime())), "", true
	}
	return false, "", false
}

// Fake but stable identities for stat: the device of the data volume and
// an inode derived from the guest path.
const shDev = 16777232

func shInode(guest string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(guest))
	return h.Sum64()%90000000 + 10000000
}

func biStat(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "FLlnqrsxc:f:t:")
	if msg != "" || len(o.rest) == 0 {
		return shUsage(p, "stat", msg, "usage: stat [-FLnq] [-f format | -l | -r | -s | -x] [-t timefmt] [file|handle ...]")
	}
	if shUnsupportedOpts(p, o, "Flrsxt") {
		return 127
	}
	status := 0
	for _, name := range o.rest {
		fi, err := st.stat(p, name, o.set['L'])
		if err != nil {
			if !o.set['q'] {
				fmt.Fprintf(p.Stderr, "stat: %s: stat: %s\n", name, shErrText(err))
			}
			status = 1
			continue
		}
		e := shEntry{name: name, guest: Clean(p.Dir, name), fi: fi}
		var out string
		switch {
		case o.set['c']:
			out = st.statGNU(e, o.val['c'])
		case o.set['f']:
			out = st.statBSD(e, o.val['f'])
		default:
			out = st.statBSD(e, `%d %i %Sp %l %Su %Sg %r %z "%Sa" "%Sm" "%Sc" "%SB" %k %b %#Xf %N`)
		}
		if !o.set['n'] {
			out += "\n"
		}
		io.WriteString(p.Stdout, out)
	}
	return status
}

// statBSD formats like macOS stat -f: %[flags][width][S|H|L|M...]field.
func (st *shState) statBSD(e shEntry, format string) string {
	var b strings.Builder
	u, g := st.owner(e.guest)
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		start := i
		j := i + 1
		for j < len(format) && strings.IndexByte("#+-0 123456789.", format[j]) >= 0 {
			j++
		}
		str, sub := false, byte(0)
		for j < len(format) && strings.IndexByte("DOUXFS", format[j]) >= 0 {
			str = str || format[j] == 'S'
			j++
		}
		if j < len(format) && strings.IndexByte("HLM", format[j]) >= 0 && j+1 < len(format) && strings.IndexByte("pTdr", format[j+1]) >= 0 {
			sub = format[j]
			j++
		}
		if j >= len(format) {
			b.WriteString(format[i:])
			break
		}
		i = j
		t := func(tm time.Time) string {
			if str {
				return tm.Format("Jan _2 15:04:05 2006")
			}
			return strconv.FormatInt(tm.Unix(), 10)
		}
		switch format[j] {
		case 'z':
			b.WriteString(strconv.FormatInt(e.fi.Size(), 10))
		case 'N':
			b.WriteString(e.name)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '%':
			b.WriteByte('%')
		case 'm', 'a', 'c', 'B':
			b.WriteString(t(e.fi.ModTime()))
		case 'p':
			mode := shStatMode(e.fi.Mode())
			switch {
			case str:
				b.WriteString(shModeString(e.fi.Mode()))
			case sub == 'L':
				fmt.Fprintf(&b, "%o", mode&0o777)
			case sub == 'M':
				fmt.Fprintf(&b, "%o", (mode>>9)&0o7)
			case sub == 'H':
				fmt.Fprintf(&b, "%o", mode>>12)
			default:
				fmt.Fprintf(&b, "%o", mode)
			}
		case 'u':
			if str {
				b.WriteString(u)
			} else {
				b.WriteString(st.uidOf(u))
			}
		case 'g':
			if str {
				b.WriteString(g)
			} else {
				b.WriteString(shGidOf(g))
			}
		case 'l':
			b.WriteString(strconv.Itoa(st.links(e)))
		case 'i':
			b.WriteString(strconv.FormatUint(shInode(e.guest), 10))
		case 'd':
			b.WriteString(strconv.Itoa(shDev))
		case 'k':
			b.WriteString("4096")
		case 'b':
			b.WriteString(strconv.FormatInt(shBlocks(e.fi), 10))
		case 'r', 'f', 'v':
			b.WriteString("0")
		case 'T':
			b.WriteString(shFileType(e.fi.Mode(), true))
		case 'Y':
			if t, err := st.sh.fs.Readlink(Rel(e.guest)); err == nil {
				b.WriteString(t)
			}
		default:
			b.WriteString(format[start : j+1])
		}
	}
	return b.String()
}

// statGNU formats like GNU stat -c (which macOS's stat does not have; the
// sim accepts it because Linux-minded scripts use it).
func (st *shState) statGNU(e shEntry, format string) string {
	var b strings.Builder
	u, g := st.owner(e.guest)
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		switch format[i] {
		case 's':
			b.WriteString(strconv.FormatInt(e.fi.Size(), 10))
		case 'n':
			b.WriteString(e.name)
		case 'N':
			b.WriteString("'" + e.name + "'")
		case 'Y', 'X', 'Z', 'W':
			b.WriteString(strconv.FormatInt(e.fi.ModTime().Unix(), 10))
		case 'a':
			fmt.Fprintf(&b, "%o", e.fi.Mode().Perm())
		case 'A':
			b.WriteString(shModeString(e.fi.Mode()))
		case 'U':
			b.WriteString(u)
		case 'u':
			b.WriteString(st.uidOf(u))
		case 'G':
			b.WriteString(g)
		case 'g':
			b.WriteString(shGidOf(g))
		case 'F':
			t := shFileType(e.fi.Mode(), false)
			if t == "regular file" && e.fi.Size() == 0 {
				t = "regular empty file"
			}
			b.WriteString(t)
		case 'h':
			b.WriteString(strconv.Itoa(st.links(e)))
		case 'i':
			b.WriteString(strconv.FormatUint(shInode(e.guest), 10))
		case 'b':
			b.WriteString(strconv.FormatInt(shBlocks(e.fi), 10))
		case 'B':
			b.WriteString("512")
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

// shStatMode is st_mode: file type bits and permissions.
func shStatMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	switch {
	case m.IsDir():
		mode |= 0o040000
	case m&fs.ModeSymlink != 0:
		mode |= 0o120000
	case m&fs.ModeNamedPipe != 0:
		mode |= 0o010000
	case m&fs.ModeSocket != 0:
		mode |= 0o140000
	default:
		mode |= 0o100000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

func shFileType(m fs.FileMode, bsd bool) string {
	var t string
	switch {
	case m.IsDir():
		t = "Directory"
	case m&fs.ModeSymlink != 0:
		t = "Symbolic Link"
	case m&fs.ModeNamedPipe != 0:
		t = "Fifo File"
	case m&fs.ModeSocket != 0:
		t = "Socket"
	default:
		t = "Regular File"
	}
	if bsd {
		return t
	}
	return strings.ToLower(t)
}

func (st *shState) uidOf(user string) string {
	if user == "root" {
		return "0"
	}
	return strconv.Itoa(shUID)
}

func shGidOf(group string) string {
	switch group {
	case "staff":
		return "20"
	case "admin":
		return "80"
	}
	return "0"
}

// biShasum is shasum(1): `shasum -a 256 FILE` prints "HEX  FILE".
func biShasum(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "a:bctU0ps")
	if msg != "" {
		fmt.Fprintf(p.Stderr, "shasum: %s\nType shasum -h for help\n", msg)
		return 1
	}
	if shUnsupportedOpts(p, o, "cU0ps") {
		return 127
	}
	alg := "1"
	if a, ok := o.val['a']; ok {
		alg = a
	}
	newHash := map[string]func() hash.Hash{
		"1": sha1.New, "224": sha256.New224, "256": sha256.New, "384": sha512.New384,
		"512": sha512.New, "512224": sha512.New512_224, "512256": sha512.New512_256,
	}[alg]
	if newHash == nil {
		fmt.Fprintf(p.Stderr, "shasum: Unrecognized algorithm\nType shasum -h for help\n")
		return 1
	}
	sep := "  "
	if o.set['b'] {
		sep = " *"
	}
	files := o.rest
	if len(files) == 0 {
		files = []string{"-"}
	}
	status := 0
	for _, name := range files {
		f, err := st.open(p, name)
		if err == nil {
			var sum []byte
			if tf, ok := f.(*File); ok {
				sum, err = tf.Sum(alg, newHash)
			} else {
				h := newHash()
				_, err = io.Copy(h, f)
				sum = h.Sum(nil)
			}
			f.Close()
			if err == nil {
				fmt.Fprintf(p.Stdout, "%s%s%s\n", hex.EncodeToString(sum), sep, name)
				continue
			}
		}
		fmt.Fprintf(p.Stderr, "shasum: %s: %s\n", name, shErrText(err))
		status = 1
	}
	return status
}

// targets resolves `SRC... DST` for mv and cp: into DST when it is a
// directory.
func (st *shState) targets(p *Proc, operands []string) (pairs [][2]string, problem string) {
	dst := operands[len(operands)-1]
	srcs := operands[:len(operands)-1]
	fi, err := st.stat(p, dst, true)
	isDir := err == nil && fi.IsDir()
	if len(srcs) > 1 && !isDir {
		return nil, dst + " is not a directory"
	}
	for _, s := range srcs {
		d := Clean(p.Dir, dst)
		if isDir {
			d = path.Join(d, path.Base(Clean(p.Dir, s)))
		}
		pairs = append(pairs, [2]string{Clean(p.Dir, s), d})
	}
	return pairs, ""
}

func biMv(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "fhinv")
	if msg != "" || len(o.rest) < 2 {
		return shUsage(p, "mv", msg, "usage: mv [-f | -i | -n] [-hv] source target\n       mv [-f | -i | -n] [-v] source ... directory")
	}
	if shUnsupportedOpts(p, o, "i") {
		return 127
	}
	pairs, problem := st.targets(p, o.rest)
	if problem != "" {
		fmt.Fprintf(p.Stderr, "mv: %s\n", problem)
		return 1
	}
	status := 0
	for _, pr := range pairs {
		if o.set['n'] {
			if _, err := st.sh.fs.Lstat(Rel(pr[1])); err == nil {
				continue
			}
		}
		if err := st.sh.fs.Rename(Rel(pr[0]), Rel(pr[1])); err != nil {
			fmt.Fprintf(p.Stderr, "mv: rename %s to %s: %s\n", pr[0], pr[1], shErrText(err))
			status = 1
			continue
		}
		if o.set['v'] {
			fmt.Fprintf(p.Stdout, "%s -> %s\n", pr[0], pr[1])
		}
	}
	return status
}

func biCp(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "HLPRafilnprvXcNSx")
	if msg != "" || len(o.rest) < 2 {
		return shUsage(p, "cp", msg, "usage: cp [-R [-H | -L | -P]] [-fi | -n] [-aclpSsvXx] source_file target_file\n       cp [-R [-H | -L | -P]] [-fi | -n] [-aclpSsvXx] source_file ... target_directory")
	}
	if shUnsupportedOpts(p, o, "HLilcNSx") {
		return 127
	}
	recursive := o.set['R'] || o.set['r'] || o.set['a']
	pairs, problem := st.targets(p, o.rest)
	if problem != "" {
		fmt.Fprintf(p.Stderr, "cp: %s\n", problem)
		return 1
	}
	status := 0
	for _, pr := range pairs {
		src, dst := pr[0], pr[1]
		fi, err := st.sh.fs.Lstat(Rel(src))
		switch {
		case err != nil:
			fmt.Fprintf(p.Stderr, "cp: %s: %s\n", src, shErrText(err))
			status = 1
			continue
		case fi.IsDir() && !recursive:
			fmt.Fprintf(p.Stderr, "cp: %s is a directory (not copied).\n", src)
			status = 1
			continue
		case fi.IsDir() && (dst == src || strings.HasPrefix(dst, src+"/")):
			fmt.Fprintf(p.Stderr, "cp: %s is a subdirectory of itself (not copied).\n", src)
			status = 1
			continue
		}
		if o.set['n'] {
			if _, err := st.sh.fs.Lstat(Rel(dst)); err == nil {
				continue
			}
		}
		if err := st.copyTree(src, dst); err != nil {
			fmt.Fprintf(p.Stderr, "cp: %v\n", err)
			status = 1
			continue
		}
		if o.set['v'] {
			fmt.Fprintf(p.Stdout, "%s -> %s\n", src, dst)
		}
	}
	return status
}

// copyTree copies a file, symlink or directory inside the machine's tree.
func (st *shState) copyTree(src, dst string) error {
	root := st.sh.fs
	return fs.WalkDir(root.IOFS(), Rel(src), func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %s", "/"+name, shErrText(err))
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(name, Rel(src)), "/")
		to := Rel(path.Join(dst, rel))
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("%s: %s", "/"+name, shErrText(err))
		}
		switch {
		case d.IsDir():
			if err := root.MkdirAll(to, info.Mode().Perm()|0o700); err != nil {
				return fmt.Errorf("%s: %s", "/"+to, shErrText(err))
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(name)
			if err == nil {
				err = SafeLinkTarget(target)
			}
			if err == nil {
				root.Remove(to)
				err = root.Symlink(target, to)
			}
			if err != nil {
				return fmt.Errorf("%s: %s", "/"+to, shErrText(err))
			}
		default:
			if err := st.copyFile(name, to, info.Mode().Perm()); err != nil {
				return fmt.Errorf("%s: %s", "/"+to, shErrText(err))
			}
		}
		return nil
	})
}

func (st *shState) copyFile(from, to string, perm fs.FileMode) error {
	in, err := st.sh.fs.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := st.sh.fs.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return st.sh.fs.Chmod(to, perm)
}

func biTouch(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "A:acfhmr:t:d:")
	if msg != "" || len(o.rest) == 0 {
		return shUsage(p, "touch", msg, "usage: touch [-A [-][[hh]mm]SS] [-achm] [-r file] [-t [[CC]YY]MMDDhhmm[.SS]]\n       [-d YYYY-MM-DDThh:mm:SS[.frac][tz]] file ...")
	}
	if shUnsupportedOpts(p, o, "Ahrtd") {
		return 127
	}
	now := st.sh.clock.Now()
	status := 0
	for _, name := range o.rest {
		rel := Rel(Clean(p.Dir, name))
		if _, err := st.sh.fs.Stat(rel); err != nil {
			if o.set['c'] {
				continue
			}
			f, err := st.sh.fs.OpenFile(rel, os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				fmt.Fprintf(p.Stderr, "touch: %s: %s\n", name, shErrText(err))
				status = 1
				continue
			}
			f.Close()
		}
		if err := st.sh.fs.Chtimes(rel, now, now); err != nil {
			fmt.Fprintf(p.Stderr, "touch: %s: %s\n", name, shErrText(err))
			status = 1
		}
	}
	return status
}

func biChmod(_ context.Context, st *shState, p *Proc) int {
	o, msg := shGetopt(p.Args[1:], "RfhvHLP")
	if msg != "" || len(o.rest) < 2 {
		return shUsage(p, "chmod", msg, "usage: chmod [-fhv] [-R [-H | -L | -P]] [-a | +a | =a  [i][# [ n]]] mode|entry file ...\n       chmod [-fhv] [-R [-H | -L | -P]] [-E | -C | -N | -i | -I] file ...")
	}
	spec := o.rest[0]
	status := 0
	apply := func(rel, shown string, fi fs.FileInfo) {
		mode, ok := shChmod(fi.Mode(), spec)
		if !ok {
			fmt.Fprintf(p.Stderr, "chmod: Invalid file mode: %s\n", spec)
			status = 1
			return
		}
		if err := st.sh.fs.Chmod(rel, mode); err != nil {
			fmt.Fprintf(p.Stderr, "chmod: %s: %s\n", shown, shErrText(err))
			status = 1
		}
	}
	for _, name := range o.rest[1:] {
		rel := Rel(Clean(p.Dir, name))
		fi, err := st.sh.fs.Stat(rel)
		if err != nil {
			fmt.Fprintf(p.Stderr, "chmod: %s: %s\n", name, shErrText(err))
			status = 1
			continue
		}
		if !o.set['R'] || !fi.IsDir() {
			apply(rel, name, fi)
			continue
		}
		fs.WalkDir(st.sh.fs.IOFS(), rel, func(n string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if info, err := d.Info(); err == nil && info.Mode()&fs.ModeSymlink == 0 {
				apply(n, "/"+n, info)
			}
			return nil
		})
	}
	return status
}

// shChmod applies an octal or symbolic ([ugoa][+-=][rwxX],...) mode.
func shChmod(mode fs.FileMode, spec string) (fs.FileMode, bool) {
	if n, err := strconv.ParseUint(spec, 8, 32); err == nil {
		perm := fs.FileMode(n) & fs.ModePerm
		if n&0o1000 != 0 {
			perm |= fs.ModeSticky
		}
		return perm, true
	}
	perm := mode & (fs.ModePerm | fs.ModeSticky)
	for _, clause := range strings.Split(spec, ",") {
		i := 0
		var who fs.FileMode
		for ; i < len(clause) && strings.IndexByte("ugoa", clause[i]) >= 0; i++ {
			who |= map[byte]fs.FileMode{'u': 0o700, 'g': 0o070, 'o': 0o007, 'a': 0o777}[clause[i]]
		}
		if who == 0 {
			who = 0o777
		}
		if i == len(clause) {
			return mode, false
		}
		for i < len(clause) {
			op := clause[i]
			if op != '+' && op != '-' && op != '=' {
				return mode, false
			}
			i++
			var bits fs.FileMode
			for ; i < len(clause) && strings.IndexByte("rwxX", clause[i]) >= 0; i++ {
				switch clause[i] {
				case 'r':
					bits |= 0o444
				case 'w':
					bits |= 0o222
				case 'x':
					bits |= 0o111
				case 'X':
					if mode.IsDir() || perm&0o111 != 0 {
						bits |= 0o111
					}
				}
			}
			bits &= who
			switch op {
			case '+':
				perm |= bits
			case '-':
				perm &^= bits
			case '=':
				perm = perm&^who | bits
			}
		}
	}
	return perm, true
}
