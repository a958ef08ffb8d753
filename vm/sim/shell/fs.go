package shell

import (
	"bytes"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"weak"
)

// FS is a simulated machine's file tree, held in memory: folders,
// regular files with their bytes, and symlinks, each with a mode and
// times. The shell, the model and the SFTP server all go through it, so
// they see one tree, and none of their file work is a system call (a
// night of thousands of attempts made a real folder per machine cost
// more than the orchestrator; bench/README.md).
//
// Names are guest paths: absolute ("/Applications/Example VPN.app"), or
// relative to "/" (what Rel returns). ".." stops at the root, as "/.."
// does on a real system. Errors are the *fs.PathError / *os.LinkError
// values os returns, wrapping the same errno (ENOENT, EEXIST, ENOTDIR,
// ENOTEMPTY, EISDIR, EINVAL), so the words the sim prints for them stay
// macOS's. Symlinks are followed like os.Root follows them: a link whose
// target is absolute, or climbs above the root, is refused.
//
// Permissions are kept and shown but not enforced: every guest account
// may read and write everything, as root may (no command the lab sends
// depends on being refused by a mode; a real folder refused only what
// the host's own user could not do).
//
// It is safe for concurrent use: SFTP, the shell and the model touch a
// machine's tree at once.
type FS struct {
	mu    sync.RWMutex
	root  *node
	now   func() time.Time
	blobs *Blobs // nil: no sharing
}

// node is a folder, a regular file or a symlink. Hard links share a node.
type node struct {
	mode   fs.FileMode // type bits and permissions
	mtime  time.Time
	atime  time.Time
	data   content          // a regular file's bytes
	blob   *blob            // data's owner when data is shared: copied before a write
	follow *blob            // an upload repeating follow's bytes so far: data borrows them (see FS.follows)
	target string           // a symlink's target, as written
	kids   map[string]*node // a folder's entries
}

// umask is macOS's default for the accounts the sim models.
const umask = 0o022

// maxLinks bounds symlink resolution, as MAXSYMLINKS does.
const maxLinks = 32

// errEscapes is os.Root's answer to a path leading out of the tree.
var errEscapes = errors.New("path escapes from parent")

// NewFS returns an empty tree: just "/".
func NewFS() *FS { return NewSharedFS(nil) }

// NewSharedFS returns an empty tree whose large files share their bytes
// with the identical files of other trees of blobs (nil: none).
func NewSharedFS(blobs *Blobs) *FS {
	f := &FS{now: time.Now, blobs: blobs}
	f.root = f.newNode(fs.ModeDir | 0o755)
	return f
}

func (f *FS) newNode(mode fs.FileMode) *node {
	t := f.now()
	n := &node{mode: mode, mtime: t, atime: t}
	if mode.IsDir() {
		n.kids = map[string]*node{}
	}
	return n
}

// Clear empties the tree, giving its memory back: a deleted machine's
// installed apps and uploads go with it even while something still
// holds the machine.
func (f *FS) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.root = f.newNode(fs.ModeDir | 0o755)
}

// Clean returns the absolute, cleaned guest path of p seen from dir.
func Clean(dir, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = path.Join("/", dir, p)
	}
	return path.Clean("/" + p)
}

// Rel turns a guest path into a name relative to the root ("." for
// the root itself), as io/fs names are.
func Rel(guestPath string) string {
	p := Clean("/", guestPath)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// SafeLinkTarget accepts only relative symlink targets without "..":
// such links cannot lead out of the tree, wherever they are moved, and
// whatever other links they pass through.
func SafeLinkTarget(target string) error {
	if target == "" || path.IsAbs(target) {
		return fmt.Errorf("symlink to %q: %w", target, fs.ErrPermission)
	}
	for _, part := range strings.Split(target, "/") {
		if part == ".." {
			return fmt.Errorf("symlink to %q: %w", target, fs.ErrPermission)
		}
	}
	return nil
}

// found is where a name led: its folder (nil for the root), its last
// component and its node (nil when there is none yet). dirs are the
// folders walked through to parent, from the root.
type found struct {
	dirs   []*node
	parent *node
	base   string
	n      *node
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// resolve walks name, following symlinks on the way and, when follow is
// set, the last one too. Callers hold mu.
func (f *FS) resolve(op, name string, follow bool) (found, error) {
	rest := splitPath(Clean("/", name))
	stack := []*node{f.root}
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			if len(stack) == 1 {
				return found{}, &fs.PathError{Op: op, Path: name, Err: errEscapes}
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cur := stack[len(stack)-1]
		if !cur.mode.IsDir() {
			return found{}, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		child := cur.kids[c]
		last := len(rest) == 0
		if child != nil && child.mode&fs.ModeSymlink != 0 && (!last || follow) {
			links++
			if links > maxLinks {
				return found{}, &fs.PathError{Op: op, Path: name, Err: syscall.ELOOP}
			}
			if path.IsAbs(child.target) {
				return found{}, &fs.PathError{Op: op, Path: name, Err: errEscapes}
			}
			rest = append(splitPath(child.target), rest...)
			continue
		}
		if last {
			return found{dirs: stack, parent: cur, base: c, n: child}, nil
		}
		if child == nil {
			return found{}, &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
		}
		if !child.mode.IsDir() {
			return found{}, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		stack = append(stack, child)
	}
	// The name (or the links it went through) ended at a folder already
	// on the stack: the root, or one reached through "..".
	n := stack[len(stack)-1]
	if len(stack) == 1 {
		return found{dirs: stack[:0], n: n}, nil
	}
	parent := stack[len(stack)-2]
	for k, v := range parent.kids {
		if v == n {
			return found{dirs: stack[:len(stack)-1], parent: parent, base: k, n: n}, nil
		}
	}
	return found{dirs: stack[:len(stack)-1], n: n}, nil
}

// existing resolves name and requires it to exist.
func (f *FS) existing(op, name string, follow bool) (found, error) {
	r, err := f.resolve(op, name, follow)
	if err == nil && r.n == nil {
		err = &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
	}
	return r, err
}

func (f *FS) touchDir(d *node) { d.mtime = f.now() }

// Stat describes name, following symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, err := f.existing("stat", name, true)
	if err != nil {
		return nil, err
	}
	return r.n.info(path.Base(Clean("/", name))), nil
}

// Lstat describes name; a final symlink is described, not followed.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, err := f.existing("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return r.n.info(r.base), nil
}

// Open opens name for reading.
func (f *FS) Open(name string) (*File, error) { return f.OpenFile(name, os.O_RDONLY, 0) }

// OpenFile opens name with os's flags (O_RDONLY, O_WRONLY, O_RDWR,
// O_CREATE, O_EXCL, O_TRUNC, O_APPEND); perm, less the umask, is a new
// file's mode.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.resolve("open", name, flag&(os.O_CREATE|os.O_EXCL) != os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, err
	}
	write := flag&(os.O_WRONLY|os.O_RDWR) != 0
	n := r.n
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	case n == nil:
		if r.parent == nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
		}
		n = f.newNode(perm.Perm() &^ umask)
		r.parent.kids[r.base] = n
		f.touchDir(r.parent)
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EEXIST}
	case n.mode&fs.ModeSymlink != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ELOOP}
	case n.mode.IsDir() && write:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	case flag&os.O_TRUNC != 0 && write && n.mode.IsRegular():
		n.data, n.blob, n.follow = content{}, nil, nil
		n.mtime = f.now()
	}
	base := r.base
	if base == "" {
		base = "/"
	}
	return &File{fs: f, n: n, name: name, base: base, flag: flag, dir: n.mode.IsDir()}, nil
}

// ReadFile returns the bytes of name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, err := f.existing("open", name, true)
	if err != nil {
		return nil, err
	}
	if r.n.mode.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	return r.n.data.bytes(), nil
}

// WriteFile writes data to name, creating it with perm (less the umask)
// or truncating it, as os.WriteFile does.
func (f *FS) WriteFile(name string, data []byte, perm fs.FileMode) error {
	w, err := f.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	f.mu.Lock()
	w.n.data, w.n.blob, w.n.follow = contentOf(data), nil, nil
	w.n.mtime = f.now()
	f.share(w.n)
	f.mu.Unlock()
	return nil
}

// Mkdir makes the folder name with perm (less the umask).
func (f *FS) Mkdir(name string, perm fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mkdir(name, perm)
}

func (f *FS) mkdir(name string, perm fs.FileMode) error {
	r, err := f.resolve("mkdir", name, false)
	if err != nil {
		return err
	}
	if r.n != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.EEXIST}
	}
	r.parent.kids[r.base] = f.newNode(fs.ModeDir | perm.Perm()&^umask)
	f.touchDir(r.parent)
	return nil
}

// MkdirAll makes name and the folders above it, as os.MkdirAll does.
func (f *FS) MkdirAll(name string, perm fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mkdirAll(name, perm)
}

func (f *FS) mkdirAll(name string, perm fs.FileMode) error {
	r, err := f.resolve("mkdir", name, true)
	if err == nil && r.n != nil {
		if r.n.mode.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
	}
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	if parent := path.Dir(Clean("/", name)); parent != "/" {
		if err := f.mkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := f.mkdir(name, perm); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	return nil
}

// Remove removes a file, a symlink or an empty folder.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.existing("remove", name, false)
	if err != nil {
		return err
	}
	if r.parent == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.EBUSY}
	}
	if r.n.mode.IsDir() && len(r.n.kids) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(r.parent.kids, r.base)
	f.touchDir(r.parent)
	return nil
}

// RemoveAll removes name and everything under it; a name that is not
// there is no error.
func (f *FS) RemoveAll(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.resolve("unlinkat", name, false)
	switch {
	case errors.Is(err, syscall.ENOENT):
		return nil
	case err != nil:
		return err
	case r.n == nil:
		return nil
	case r.parent == nil:
		return &fs.PathError{Op: "unlinkat", Path: name, Err: syscall.EINVAL}
	}
	delete(r.parent.kids, r.base)
	f.touchDir(r.parent)
	return nil
}

// Rename moves oldname to newname, replacing a file there as rename(2)
// does, and refusing to replace a folder, as os.Rename does.
func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	lerr := func(err error) error { return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err} }
	from, err := f.existing("rename", oldname, false)
	if err != nil {
		return lerr(unwrapPath(err))
	}
	to, err := f.resolve("rename", newname, false)
	if err != nil {
		return lerr(unwrapPath(err))
	}
	switch {
	case from.parent == nil || to.parent == nil:
		return lerr(syscall.EBUSY)
	case from.n == to.n:
		return nil
	case from.n.mode.IsDir() && (slices.Contains(to.dirs, from.n) || to.parent == from.n):
		return lerr(syscall.EINVAL)
	case to.n != nil && from.n.mode.IsDir() && !to.n.mode.IsDir():
		return lerr(syscall.ENOTDIR)
	case to.n != nil && to.n.mode.IsDir():
		// os.Rename refuses to replace a folder, whatever the kernel
		// would do; the shell's mv has always answered so.
		return lerr(syscall.EEXIST)
	}
	delete(from.parent.kids, from.base)
	to.parent.kids[to.base] = from.n
	f.touchDir(from.parent)
	f.touchDir(to.parent)
	return nil
}

// Symlink makes name a symlink to target, stored as written. Callers
// that take targets from the guest check them with SafeLinkTarget.
func (f *FS) Symlink(target, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.resolve("symlink", name, false)
	if err != nil {
		return &os.LinkError{Op: "symlink", Old: target, New: name, Err: unwrapPath(err)}
	}
	if r.n != nil || r.parent == nil {
		return &os.LinkError{Op: "symlink", Old: target, New: name, Err: syscall.EEXIST}
	}
	n := f.newNode(fs.ModeSymlink | 0o755)
	n.target = target
	r.parent.kids[r.base] = n
	f.touchDir(r.parent)
	return nil
}

// Readlink returns a symlink's target as stored.
func (f *FS) Readlink(name string) (string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, err := f.existing("readlink", name, false)
	if err != nil {
		return "", err
	}
	if r.n.mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: syscall.EINVAL}
	}
	return r.n.target, nil
}

// Link makes newname a hard link to the file oldname.
func (f *FS) Link(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	lerr := func(err error) error { return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err} }
	from, err := f.existing("link", oldname, false)
	if err != nil {
		return lerr(unwrapPath(err))
	}
	if from.n.mode.IsDir() {
		return lerr(syscall.EPERM)
	}
	to, err := f.resolve("link", newname, false)
	if err != nil {
		return lerr(unwrapPath(err))
	}
	if to.n != nil || to.parent == nil {
		return lerr(syscall.EEXIST)
	}
	to.parent.kids[to.base] = from.n
	f.touchDir(to.parent)
	return nil
}

// Chmod sets the permissions (and sticky, setuid, setgid bits) of name.
func (f *FS) Chmod(name string, mode fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.existing("chmod", name, true)
	if err != nil {
		return err
	}
	const bits = fs.ModePerm | fs.ModeSticky | fs.ModeSetuid | fs.ModeSetgid
	r.n.mode = r.n.mode&^bits | mode&bits
	return nil
}

// Chtimes sets the access and modification times of name; a zero time
// leaves that one as it is.
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.existing("chtimes", name, true)
	if err != nil {
		return err
	}
	if !atime.IsZero() {
		r.n.atime = atime
	}
	if !mtime.IsZero() {
		r.n.mtime = mtime
	}
	return nil
}

// Truncate sets the size of the file name.
func (f *FS) Truncate(name string, size int64) error {
	w, err := f.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	return w.Truncate(size)
}

// ReadDir lists the folder name, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, err := f.existing("open", name, true)
	if err != nil {
		return nil, err
	}
	if !r.n.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdirent", Path: name, Err: syscall.ENOTDIR}
	}
	return r.n.entries(), nil
}

// IOFS is the tree as an io/fs file system (for fs.WalkDir, fs.Glob):
// names relative to the root, "." for the root.
func (f *FS) IOFS() fs.FS { return ioFS{f} }

type ioFS struct{ f *FS }

func (x ioFS) Open(name string) (fs.File, error)          { return x.f.Open(name) }
func (x ioFS) Stat(name string) (fs.FileInfo, error)      { return x.f.Stat(name) }
func (x ioFS) ReadDir(name string) ([]fs.DirEntry, error) { return x.f.ReadDir(name) }
func (x ioFS) ReadFile(name string) ([]byte, error)       { return x.f.ReadFile(name) }
func (x ioFS) Lstat(name string) (fs.FileInfo, error)     { return x.f.Lstat(name) }
func (x ioFS) ReadLink(name string) (string, error)       { return x.f.Readlink(name) }

// unwrapPath returns the errno inside a *fs.PathError, for the
// *os.LinkError of a two-name operation.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// entries lists a folder's nodes, sorted. Callers hold mu.
func (n *node) entries() []fs.DirEntry {
	names := make([]string, 0, len(n.kids))
	for k := range n.kids {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]fs.DirEntry, len(names))
	for i, k := range names {
		out[i] = fs.FileInfoToDirEntry(n.kids[k].info(k))
	}
	return out
}

// info describes n as it is now. Callers hold mu.
func (n *node) info(name string) fs.FileInfo {
	if name == "" {
		name = "/"
	}
	return &fileInfo{name: name, size: n.size(), mode: n.mode, mtime: n.mtime}
}

func (n *node) size() int64 {
	if n.mode&fs.ModeSymlink != 0 {
		return int64(len(n.target))
	}
	return n.data.size
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.mtime }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return nil }

// File is an open file of an FS: os.File's methods the sim uses.
// Reads and writes see the node, so a file renamed or removed while
// open keeps working, as on a real file system.
type File struct {
	fs     *FS
	n      *node
	name   string // as opened
	base   string
	flag   int
	dir    bool
	wrote  bool       // offered to the tree's blobs on Close
	mu     sync.Mutex // the offset
	off    int64
	dirOff int
	closed bool
}

var (
	_ io.ReadWriteCloser = (*File)(nil)
	_ io.ReaderAt        = (*File)(nil)
	_ io.WriterAt        = (*File)(nil)
	_ io.Seeker          = (*File)(nil)
	_ fs.ReadDirFile     = (*File)(nil)
)

// Name is the name the file was opened with.
func (w *File) Name() string { return w.name }

func (w *File) check(op string, write bool) error {
	if w.closed {
		return &fs.PathError{Op: op, Path: w.name, Err: fs.ErrClosed}
	}
	canWrite := w.flag&(os.O_WRONLY|os.O_RDWR) != 0
	canRead := w.flag&os.O_WRONLY == 0
	if (write && !canWrite) || (!write && !canRead) {
		return &fs.PathError{Op: op, Path: w.name, Err: syscall.EBADF}
	}
	if w.dir {
		return &fs.PathError{Op: op, Path: w.name, Err: syscall.EISDIR}
	}
	return nil
}

// Read reads from the file's offset.
func (w *File) Read(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.readAt("read", p, w.off)
	w.off += int64(n)
	return n, err
}

// ReadAt reads at off, leaving the offset alone.
func (w *File) ReadAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.readAt("read", p, off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (w *File) readAt(op string, p []byte, off int64) (int, error) {
	if err := w.check(op, false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: op, Path: w.name, Err: syscall.EINVAL}
	}
	w.fs.mu.RLock()
	defer w.fs.mu.RUnlock()
	if off >= w.n.data.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	return w.n.data.readAt(p, off), nil
}

// Write writes at the file's offset, or at its end with O_APPEND.
func (w *File) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	off := w.off
	if w.flag&os.O_APPEND != 0 {
		w.fs.mu.RLock()
		off = w.n.data.size
		w.fs.mu.RUnlock()
	}
	n, err := w.writeAt(p, off)
	w.off = off + int64(n)
	return n, err
}

// WriteString writes s, as Write does.
func (w *File) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// WriteAt writes at off; like os.File it refuses O_APPEND files.
func (w *File) WriteAt(p []byte, off int64) (int, error) {
	if w.flag&os.O_APPEND != 0 {
		return 0, errors.New("os: invalid use of WriteAt on file opened with O_APPEND")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeAt(p, off)
}

func (w *File) writeAt(p []byte, off int64) (int, error) {
	if err := w.check("write", true); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: w.name, Err: syscall.EINVAL}
	}
	w.fs.mu.Lock()
	defer w.fs.mu.Unlock()
	w.wrote = true
	if !w.fs.follows(w.n, p, off) {
		w.n.unshare()
		w.n.data.writeAt(p, off)
	}
	w.n.mtime = w.fs.now()
	return len(p), nil
}

// Truncate sets the file's size.
func (w *File) Truncate(size int64) error {
	if err := w.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: w.name, Err: syscall.EINVAL}
	}
	w.fs.mu.Lock()
	defer w.fs.mu.Unlock()
	w.n.unshare()
	w.wrote = true
	w.n.data.truncate(size)
	w.n.mtime = w.fs.now()
	return nil
}

// Seek sets the offset for the next Read or Write.
func (w *File) Seek(offset int64, whence int) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, &fs.PathError{Op: "seek", Path: w.name, Err: fs.ErrClosed}
	}
	switch whence {
	case io.SeekCurrent:
		offset += w.off
	case io.SeekEnd:
		w.fs.mu.RLock()
		offset += w.n.data.size
		w.fs.mu.RUnlock()
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: w.name, Err: syscall.EINVAL}
	}
	w.off = offset
	return offset, nil
}

// Stat describes the open file.
func (w *File) Stat() (fs.FileInfo, error) {
	if w.closed {
		return nil, &fs.PathError{Op: "stat", Path: w.name, Err: fs.ErrClosed}
	}
	w.fs.mu.RLock()
	defer w.fs.mu.RUnlock()
	return w.n.info(w.base), nil
}

// ReadDir lists an open folder: all of it for n <= 0, else the next n
// entries (io.EOF at the end), as os.File.ReadDir does.
func (w *File) ReadDir(n int) ([]fs.DirEntry, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, &fs.PathError{Op: "readdirent", Path: w.name, Err: fs.ErrClosed}
	}
	if !w.dir {
		return nil, &fs.PathError{Op: "readdirent", Path: w.name, Err: syscall.ENOTDIR}
	}
	w.fs.mu.RLock()
	all := w.n.entries()
	w.fs.mu.RUnlock()
	if w.dirOff > len(all) {
		w.dirOff = len(all)
	}
	rest := all[w.dirOff:]
	if n <= 0 {
		w.dirOff = len(all)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	w.dirOff += len(rest)
	return rest, nil
}

// Close closes the file; its bytes stay in the tree.
func (w *File) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return &fs.PathError{Op: "close", Path: w.name, Err: fs.ErrClosed}
	}
	w.closed = true
	if w.wrote {
		w.fs.mu.Lock()
		w.fs.share(w.n)
		w.fs.mu.Unlock()
	}
	return nil
}

// minShared is the size from which a file's bytes are shared between
// trees: smaller files are not worth the hashing.
const minShared = 256 << 10

// Blobs shares the bytes of identical large files between the trees of
// one provider. Every attempt of a night uploads the same sxlab-probe
// (3.7 MB) to its machine; with the bytes shared, the machines alive at
// once hold one copy. A tree writing to a shared file copies it first.
// Entries are weak: bytes no tree holds any more are freed by the GC.
type Blobs struct {
	mu      sync.Mutex
	seed    maphash.Seed
	m       map[uint64][]weak.Pointer[blob] // by content.hash
	heads   map[uint64][]weak.Pointer[blob] // by the hash of the first headSize bytes
	sweepAt int
}

// blob is the bytes of one or more files, never written once shared.
// sums keeps their digests by algorithm (see File.Sum).
type blob struct {
	c    content
	mu   sync.Mutex
	sums map[string][]byte
}

// Sum is the digest of the file's bytes by newHash, which alg names. The
// digest of bytes shared between trees (which never change) is kept with
// them: every attempt's machine checks its copy of the same sxlab-probe
// with shasum, and the bytes are then hashed once, not once per attempt.
// What a shell sees is the same either way: the digest of the bytes.
func (w *File) Sum(alg string, newHash func() hash.Hash) ([]byte, error) {
	if err := w.check("read", false); err != nil {
		return nil, err
	}
	w.fs.mu.Lock()
	b := w.n.blob
	w.fs.mu.Unlock()
	if b == nil {
		h := newHash()
		if _, err := io.Copy(h, w); err != nil {
			return nil, err
		}
		return h.Sum(nil), nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if sum, ok := b.sums[alg]; ok {
		return slices.Clone(sum), nil
	}
	h := newHash()
	for _, ch := range b.c.chunks {
		h.Write(ch)
	}
	sum := h.Sum(nil)
	if b.sums == nil {
		b.sums = map[string][]byte{}
	}
	b.sums[alg] = sum
	return slices.Clone(sum), nil
}

// NewBlobs returns an empty set of shared file contents.
func NewBlobs() *Blobs {
	return &Blobs{seed: maphash.MakeSeed(), m: map[uint64][]weak.Pointer[blob]{}, heads: map[uint64][]weak.Pointer[blob]{}, sweepAt: 64}
}

// share gives n's bytes to the tree's blobs, taking back the copy
// already there when another tree holds the same bytes. Callers hold
// f.mu.
func (f *FS) share(n *node) {
	if n.follow != nil {
		if n.data.size == n.follow.c.size {
			n.data, n.blob, n.follow = n.follow.c, n.follow, nil
			return
		}
		n.unshare()
	}
	if f.blobs == nil || n.blob != nil || n.data.size < minShared {
		return
	}
	n.blob = f.blobs.intern(n.data)
	n.data = n.blob.c
}

// unshare gives n bytes of its own before a write. Callers hold the
// tree's mu.
func (n *node) unshare() {
	switch {
	case n.blob != nil:
		n.data, n.blob = n.data.clone(), nil
	case n.follow != nil:
		n.data, n.follow = n.data.clone(), nil
	}
}

// headSize is how much of a file's start finds the shared file an
// upload repeats.
const headSize = 4 << 10

// follows takes a write that continues, in order, the bytes of a shared
// file: n's data then borrows that file's bytes instead of copying them
// (every attempt's machine is sent the same 2.5 MB sxlab-probe, and
// copying it was 3 % of a 2,400-attempt run's CPU, and most of its
// garbage). The first write must start the file; the first write that
// differs, skips ahead or would grow it past the shared file's size
// returns false, and the caller's unshare copies what was borrowed.
// Callers hold f.mu.
func (f *FS) follows(n *node, p []byte, off int64) bool {
	switch {
	case n.follow != nil:
		if off != n.data.size || !n.follow.c.hasAt(p, off) {
			return false
		}
	case f.blobs == nil || n.blob != nil || off != 0 || n.data.size != 0 || len(p) < headSize:
		return false
	default:
		if n.follow = f.blobs.starting(p); n.follow == nil {
			return false
		}
	}
	n.data.borrow(&n.follow.c, off+int64(len(p)))
	return true
}

func (b *Blobs) intern(data content) *blob {
	h := data.hash(b.seed)
	b.mu.Lock()
	defer b.mu.Unlock()
	var found *blob
	live := b.m[h][:0]
	for _, wp := range b.m[h] {
		if v := wp.Value(); v != nil {
			live = append(live, wp)
			if found == nil && v.c.equal(&data) {
				found = v
			}
		}
	}
	if found == nil {
		found = &blob{c: data}
		wp := weak.Make(found)
		live = append(live, wp)
		hh := b.headHash(data.chunks[0][:headSize])
		b.heads[hh] = append(b.heads[hh], wp)
	}
	b.m[h] = live
	if len(b.m) > b.sweepAt {
		sweep(b.m)
		sweep(b.heads)
		b.sweepAt = 2*len(b.m) + 64
	}
	return found
}

// sweep drops the keys whose files are all gone.
func sweep(m map[uint64][]weak.Pointer[blob]) {
	for k, wps := range m {
		if !slices.ContainsFunc(wps, func(wp weak.Pointer[blob]) bool { return wp.Value() != nil }) {
			delete(m, k)
		}
	}
}

func (b *Blobs) headHash(head []byte) uint64 { return maphash.Bytes(b.seed, head) }

// starting returns a shared file whose bytes start with p (at least
// headSize of them), or nil.
func (b *Blobs) starting(p []byte) *blob {
	h := b.headHash(p[:headSize])
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, wp := range b.heads[h] {
		if v := wp.Value(); v != nil && v.c.hasAt(p, 0) {
			return v
		}
	}
	return nil
}

// chunkSize is the piece a file's bytes are kept in: an upload grows
// by whole pieces, never by copying what arrived so far (a 3.7 MB
// upload grown by doubling left 4 MB of garbage per attempt).
const chunkSize = 64 << 10

// content is a file's bytes: full chunks of chunkSize, the last one
// shorter. Callers hold the tree's mu.
type content struct {
	chunks [][]byte
	size   int64
}

func contentOf(data []byte) content {
	var c content
	c.writeAt(data, 0)
	return c
}

func (c *content) readAt(p []byte, off int64) int {
	n := 0
	for n < len(p) && off < c.size {
		k := copy(p[n:], c.chunks[off/chunkSize][off%chunkSize:])
		n += k
		off += int64(k)
	}
	return n
}

func (c *content) writeAt(p []byte, off int64) {
	if off == c.size { // in order, as an upload writes: no zeros to overwrite
		c.extend(int64(len(p)), p)
		return
	}
	if end := off + int64(len(p)); end > c.size {
		c.grow(end)
	}
	for len(p) > 0 {
		k := copy(c.chunks[off/chunkSize][off%chunkSize:], p)
		p = p[k:]
		off += int64(k)
	}
}

// grow extends c with zeros to size bytes.
func (c *content) grow(size int64) {
	if size > c.size {
		c.extend(size-c.size, nil)
	}
}

// extend adds n bytes at the end: src's when it is given, else zeros.
// The first chunk grows as a slice does (most files are small); a file
// past it is large, and gets whole chunks.
func (c *content) extend(n int64, src []byte) {
	for n > 0 {
		last := len(c.chunks) - 1
		if last < 0 || len(c.chunks[last]) == chunkSize {
			capacity := chunkSize
			if last < 0 {
				capacity = int(min(n, chunkSize))
			}
			c.chunks = append(c.chunks, make([]byte, 0, capacity))
			last++
		}
		ch := c.chunks[last]
		add := int(min(int64(chunkSize-len(ch)), n))
		if len(ch)+add > cap(ch) {
			nc := make([]byte, len(ch), min(chunkSize, max(2*cap(ch), len(ch)+add)))
			copy(nc, ch)
			ch = nc
		}
		if src != nil {
			ch = append(ch, src[:add]...)
			src = src[add:]
		} else {
			// A truncated chunk keeps its old bytes past its length.
			ch = ch[:len(ch)+add]
			clear(ch[len(ch)-add:])
		}
		c.chunks[last] = ch
		c.size += int64(add)
		n -= int64(add)
	}
}

// hasAt reports whether c holds p at off. A shared file's bytes never
// change, so callers need no lock for those.
func (c *content) hasAt(p []byte, off int64) bool {
	if off < 0 || off+int64(len(p)) > c.size {
		return false
	}
	for len(p) > 0 {
		ch := c.chunks[off/chunkSize][off%chunkSize:]
		k := min(len(ch), len(p))
		if !bytes.Equal(ch[:k], p[:k]) {
			return false
		}
		p = p[k:]
		off += int64(k)
	}
	return true
}

// borrow makes c the first size bytes of src, which c already begins:
// c's chunks become src's, capped so that an append to one copies it.
func (c *content) borrow(src *content, size int64) {
	for i := max(len(c.chunks)-1, 0); int64(i)*chunkSize < size; i++ {
		k := min(int64(len(src.chunks[i])), size-int64(i)*chunkSize)
		ch := src.chunks[i][:k:k]
		if i < len(c.chunks) {
			c.chunks[i] = ch
		} else {
			c.chunks = append(c.chunks, ch)
		}
	}
	c.size = size
}

func (c *content) truncate(size int64) {
	if size >= c.size {
		c.grow(size)
		return
	}
	keep := int((size + chunkSize - 1) / chunkSize)
	clear(c.chunks[keep:])
	c.chunks = c.chunks[:keep]
	if keep > 0 {
		c.chunks[keep-1] = c.chunks[keep-1][:size-int64(keep-1)*chunkSize]
	}
	c.size = size
}

func (c *content) bytes() []byte {
	out := make([]byte, 0, c.size)
	for _, ch := range c.chunks {
		out = append(out, ch...)
	}
	return out
}

func (c *content) clone() content {
	out := content{chunks: make([][]byte, len(c.chunks)), size: c.size}
	for i, ch := range c.chunks {
		out.chunks[i] = slices.Clone(ch)
	}
	return out
}

func (c *content) equal(d *content) bool {
	if c.size != d.size || len(c.chunks) != len(d.chunks) {
		return false
	}
	for i := range c.chunks {
		if !bytes.Equal(c.chunks[i], d.chunks[i]) {
			return false
		}
	}
	return true
}

// hash is intern's bucket key: the size and the first and last chunks,
// not every byte. equal decides; a key shared by different files costs
// a comparison, while hashing all of a 2.5 MB upload cost 3 % of a
// 600-attempt run's CPU.
func (c *content) hash(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	maphash.WriteComparable(&h, c.size)
	if n := len(c.chunks); n > 0 {
		h.Write(c.chunks[0])
		if n > 1 {
			h.Write(c.chunks[n-1])
		}
	}
	return h.Sum64()
}
