package shell

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCleanStaysInsideTheTree(t *testing.T) {
	assert.Equal(t, "/Applications/Example VPN.app", Clean("/", "/Applications/Example VPN.app"))
	assert.Equal(t, "/Users/admin/x.pkg", Clean("/Users/admin", "x.pkg"))
	assert.Equal(t, "/etc/passwd", Clean("/Users/admin", "../../../../etc/passwd"), "dot-dot stops at the root")
	assert.Equal(t, "/", Clean("/", "/.."))
	assert.Equal(t, ".", Rel("/"))
	assert.Equal(t, "Users/admin", Rel("/Users/admin/"))
}

// treeOp is one file operation, done to the in-memory tree and to a
// real folder through os.Root: the tree must answer as the kernel does.
type treeOp struct {
	name string
	mem  func(f *FS) (string, error)
	real func(r *os.Root) (string, error)
}

func statText(fi fs.FileInfo, err error) (string, error) {
	if err != nil {
		return "", err
	}
	size := fi.Size()
	if fi.IsDir() {
		size = 0 // a real folder's size is the file system's business
	}
	mode := fi.Mode().String()
	if fi.Mode()&fs.ModeSymlink != 0 {
		mode = "L" // Linux shows links 0777, macOS (and the tree) 0755
	}
	return fmt.Sprintf("%s %s %d", fi.Name(), mode, size), nil
}

func namesText(des []fs.DirEntry, err error) (string, error) {
	if err != nil {
		return "", err
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name()+":"+d.Type().String())
	}
	return strings.Join(names, ","), nil
}

func realReadDir(r *os.Root, name string) ([]fs.DirEntry, error) {
	return fs.ReadDir(r.FS(), name)
}

func both(name string, mem func(f *FS) (string, error), real func(r *os.Root) (string, error)) treeOp {
	return treeOp{name, mem, real}
}

func noOut(err error) (string, error) { return "", err }

// errnoOf names the errno an error wraps, the way the shell's messages
// tell them apart.
func errnoOf(err error) string {
	if err == nil {
		return "ok"
	}
	for _, e := range []error{syscall.ENOENT, syscall.EEXIST, syscall.ENOTDIR, syscall.EISDIR, syscall.ENOTEMPTY, syscall.EINVAL, syscall.ELOOP, syscall.EPERM, syscall.EBADF, syscall.EXDEV} {
		if errors.Is(err, e) {
			return e.(syscall.Errno).Error()
		}
	}
	if strings.Contains(err.Error(), "path escapes from parent") {
		return "escapes"
	}
	return "other: " + err.Error()
}

func TestMemoryTreeAnswersAsTheKernelDoes(t *testing.T) {
	dir := t.TempDir()
	real, err := os.OpenRoot(dir)
	require.NoError(t, err)
	defer real.Close()
	mem := NewFS()
	syscall.Umask(0o022)

	write := func(name, data string) treeOp {
		return both("write "+name,
			func(f *FS) (string, error) { return noOut(f.WriteFile(name, []byte(data), 0o644)) },
			func(r *os.Root) (string, error) { return noOut(r.WriteFile(name, []byte(data), 0o644)) })
	}
	read := func(name string) treeOp {
		return both("read "+name,
			func(f *FS) (string, error) { b, err := f.ReadFile(name); return string(b), err },
			func(r *os.Root) (string, error) { b, err := r.ReadFile(name); return string(b), err })
	}
	stat := func(name string) treeOp {
		return both("stat "+name,
			func(f *FS) (string, error) { return statText(f.Stat(name)) },
			func(r *os.Root) (string, error) { return statText(r.Stat(name)) })
	}
	lstat := func(name string) treeOp {
		return both("lstat "+name,
			func(f *FS) (string, error) { return statText(f.Lstat(name)) },
			func(r *os.Root) (string, error) { return statText(r.Lstat(name)) })
	}
	mkdir := func(name string) treeOp {
		return both("mkdir "+name,
			func(f *FS) (string, error) { return noOut(f.Mkdir(name, 0o755)) },
			func(r *os.Root) (string, error) { return noOut(r.Mkdir(name, 0o755)) })
	}
	mkdirAll := func(name string) treeOp {
		return both("mkdir -p "+name,
			func(f *FS) (string, error) { return noOut(f.MkdirAll(name, 0o755)) },
			func(r *os.Root) (string, error) { return noOut(r.MkdirAll(name, 0o755)) })
	}
	remove := func(name string) treeOp {
		return both("remove "+name,
			func(f *FS) (string, error) { return noOut(f.Remove(name)) },
			func(r *os.Root) (string, error) { return noOut(r.Remove(name)) })
	}
	removeAll := func(name string) treeOp {
		return both("remove -r "+name,
			func(f *FS) (string, error) { return noOut(f.RemoveAll(name)) },
			func(r *os.Root) (string, error) { return noOut(r.RemoveAll(name)) })
	}
	rename := func(a, b string) treeOp {
		return both("rename "+a+" "+b,
			func(f *FS) (string, error) { return noOut(f.Rename(a, b)) },
			func(r *os.Root) (string, error) { return noOut(r.Rename(a, b)) })
	}
	symlink := func(target, name string) treeOp {
		return both("symlink "+target+" "+name,
			func(f *FS) (string, error) { return noOut(f.Symlink(target, name)) },
			func(r *os.Root) (string, error) { return noOut(r.Symlink(target, name)) })
	}
	readlink := func(name string) treeOp {
		return both("readlink "+name,
			func(f *FS) (string, error) { return f.Readlink(name) },
			func(r *os.Root) (string, error) { return r.Readlink(name) })
	}
	link := func(a, b string) treeOp {
		return both("link "+a+" "+b,
			func(f *FS) (string, error) { return noOut(f.Link(a, b)) },
			func(r *os.Root) (string, error) { return noOut(r.Link(a, b)) })
	}
	chmod := func(name string, mode fs.FileMode) treeOp {
		return both(fmt.Sprintf("chmod %o %s", mode, name),
			func(f *FS) (string, error) { return noOut(f.Chmod(name, mode)) },
			func(r *os.Root) (string, error) { return noOut(r.Chmod(name, mode)) })
	}
	readDir := func(name string) treeOp {
		return both("ls "+name,
			func(f *FS) (string, error) { return namesText(f.ReadDir(name)) },
			func(r *os.Root) (string, error) { return namesText(realReadDir(r, name)) })
	}
	openFlags := func(name string, flag int) treeOp {
		return both(fmt.Sprintf("open %s %#x", name, flag),
			func(f *FS) (string, error) {
				h, err := f.OpenFile(name, flag, 0o600)
				if err != nil {
					return "", err
				}
				return "", h.Close()
			},
			func(r *os.Root) (string, error) {
				h, err := r.OpenFile(name, flag, 0o600)
				if err != nil {
					return "", err
				}
				return "", h.Close()
			})
	}

	ops := []treeOp{
		mkdirAll("Applications/A.app/Contents/MacOS"),
		mkdirAll("Applications/A.app/Contents/MacOS"),
		mkdir("Applications"),
		mkdir("missing/folder"),
		write("Applications/A.app/Contents/Info.plist", "<plist/>"),
		read("Applications/A.app/Contents/Info.plist"),
		read("Applications/A.app/Contents/none"),
		read("Applications"),
		stat("Applications/A.app/Contents/Info.plist"),
		stat("Applications/A.app/Contents/Info.plist/inside"),
		mkdirAll("Applications/A.app/Contents/Info.plist/x"),
		mkdir("Applications/A.app/Contents/Info.plist/x"),
		write("Applications/A.app/Contents/Info.plist/x", "no"),
		symlink("Contents/Info.plist", "Applications/A.app/plist"),
		symlink("Contents/Info.plist", "Applications/A.app/plist"),
		read("Applications/A.app/plist"),
		lstat("Applications/A.app/plist"),
		stat("Applications/A.app/plist"),
		readlink("Applications/A.app/plist"),
		readlink("Applications/A.app/Contents"),
		symlink("A.app/Contents", "Applications/C"),
		read("Applications/C/Info.plist"),
		write("Applications/C/New", "through a link"),
		read("Applications/A.app/Contents/New"),
		symlink("/etc/passwd", "Applications/abs"),
		read("Applications/abs"),
		symlink("../../../../etc", "Applications/up"),
		stat("Applications/up/passwd"),
		symlink("loop2", "loop1"),
		symlink("loop1", "loop2"),
		stat("loop1"),
		symlink("nowhere", "dangling"),
		stat("dangling"),
		lstat("dangling"),
		remove("Applications/A.app"),
		remove("Applications/A.app/plist"),
		lstat("Applications/A.app/plist"),
		remove("Applications/A.app/gone"),
		mkdir("tmp"),
		write("tmp/f", "1"),
		write("tmp/g", "22"),
		link("tmp/f", "tmp/hard"),
		link("tmp/f", "tmp/g"),
		link("tmp", "tmp2"),
		write("tmp/hard", "333"),
		read("tmp/f"),
		rename("tmp/f", "tmp/g"),
		read("tmp/g"),
		stat("tmp/f"),
		rename("tmp/none", "tmp/x"),
		rename("tmp/g", "tmp"),
		mkdir("tmp/d"),
		write("tmp/d/in", "x"),
		rename("tmp", "tmp/d/sub"),
		rename("tmp/g", "tmp/d"),
		mkdir("tmp/e"),
		rename("tmp/e", "tmp/d"),
		rename("tmp/d", "tmp/e"),
		rename("tmp/e", "tmp/g"),
		readDir("tmp"),
		readDir("tmp/g"),
		readDir("Applications"),
		chmod("tmp/hard", 0o755),
		stat("tmp/hard"),
		chmod("tmp/missing", 0o755),
		openFlags("tmp/hard", os.O_WRONLY|os.O_CREATE|os.O_EXCL),
		openFlags("tmp/new", os.O_WRONLY|os.O_CREATE|os.O_EXCL),
		stat("tmp/new"),
		openFlags("tmp/e", os.O_WRONLY),
		openFlags("tmp/e", os.O_RDONLY),
		openFlags("dangling", os.O_WRONLY|os.O_CREATE),
		stat("dangling"),
		removeAll("tmp/missing/deeper"),
		removeAll("tmp"),
		stat("tmp"),
		readDir("."),
	}
	for _, op := range ops {
		gotMem, errMem := op.mem(mem)
		gotReal, errReal := op.real(real)
		assert.Equal(t, errnoOf(errReal), errnoOf(errMem), "%s: error (kernel: %v; tree: %v)", op.name, errReal, errMem)
		assert.Equal(t, gotReal, gotMem, "%s", op.name)
		var pe *fs.PathError
		var le *os.LinkError
		if errMem != nil && !errors.As(errMem, &pe) && !errors.As(errMem, &le) {
			t.Errorf("%s: %T is no *fs.PathError or *os.LinkError", op.name, errMem)
		}
	}
}

func TestMemoryFilesReadWriteSeekLikeOSFiles(t *testing.T) {
	f := NewFS()
	require.NoError(t, f.MkdirAll("/var/log", 0o755))
	w, err := f.OpenFile("/var/log/install.log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	require.NoError(t, err)
	_, err = w.WriteString("one\n")
	require.NoError(t, err)
	_, err = w.WriteAt([]byte("x"), 0)
	assert.Error(t, err, "WriteAt on an O_APPEND file, as os refuses it")
	_, err = w.Read(make([]byte, 1))
	assert.ErrorIs(t, err, syscall.EBADF, "a write-only file does not read")
	require.NoError(t, w.Close())
	w, err = f.OpenFile("/var/log/install.log", os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = w.Write([]byte("two\n"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	assert.ErrorIs(t, w.Close(), fs.ErrClosed)

	data, err := f.ReadFile("/var/log/install.log")
	require.NoError(t, err)
	assert.Equal(t, "one\ntwo\n", string(data))

	rw, err := f.OpenFile("/var/log/install.log", os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = rw.WriteAt([]byte("ZZ"), 10) // past the end: a hole of zeros
	require.NoError(t, err)
	fi, err := rw.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(12), fi.Size())
	_, err = rw.Seek(4, io.SeekStart)
	require.NoError(t, err)
	rest, err := io.ReadAll(rw)
	require.NoError(t, err)
	assert.Equal(t, "two\n\x00\x00ZZ", string(rest))
	buf := make([]byte, 4)
	n, err := rw.ReadAt(buf, 10)
	assert.Equal(t, 2, n)
	assert.ErrorIs(t, err, io.EOF, "ReadAt short of p says why")
	require.NoError(t, rw.Truncate(3))
	require.NoError(t, rw.Close())
	data, _ = f.ReadFile("/var/log/install.log")
	assert.Equal(t, "one", string(data))

	// A file removed while open keeps its bytes for whoever has it open.
	r, err := f.Open("/var/log/install.log")
	require.NoError(t, err)
	require.NoError(t, f.Remove("/var/log/install.log"))
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "one", string(got))

	d, err := f.Open("/var")
	require.NoError(t, err)
	_, err = d.Read(buf)
	assert.ErrorIs(t, err, syscall.EISDIR)
	first, err := d.ReadDir(1)
	require.NoError(t, err)
	assert.Equal(t, "log", first[0].Name())
	_, err = d.ReadDir(1)
	assert.ErrorIs(t, err, io.EOF)
}

func TestMemoryTreeTimesAndModes(t *testing.T) {
	f := NewFS()
	require.NoError(t, f.WriteFile("/probe", []byte("bin"), 0o777))
	fi, err := f.Stat("/probe")
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o755), fi.Mode(), "the umask applies to new files")
	then := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, f.Chtimes("/probe", time.Time{}, then))
	fi, _ = f.Stat("/probe")
	assert.True(t, fi.ModTime().Equal(then))
	require.NoError(t, f.Chmod("/probe", fs.ModeSticky|0o700))
	fi, _ = f.Stat("/probe")
	assert.Equal(t, fs.ModeSticky|0o700, fi.Mode())
	assert.Error(t, f.Remove("/"), "the root stays")
	assert.Error(t, f.RemoveAll("/"), "the root stays")
}

func TestMemoryTreeWalksAsAnIOFS(t *testing.T) {
	f := NewFS()
	require.NoError(t, f.MkdirAll("/Library/SystemExtensions/ABC/x.systemextension/Contents", 0o755))
	require.NoError(t, f.WriteFile("/Library/SystemExtensions/ABC/x.systemextension/Contents/Info.plist", nil, 0o644))
	require.NoError(t, f.Symlink("ABC", "/Library/SystemExtensions/current"))
	var walked []string
	require.NoError(t, fs.WalkDir(f.IOFS(), "Library", func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		walked = append(walked, p)
		return nil
	}))
	assert.Equal(t, []string{"Library", "Library/SystemExtensions", "Library/SystemExtensions/ABC", "Library/SystemExtensions/ABC/x.systemextension",
		"Library/SystemExtensions/ABC/x.systemextension/Contents", "Library/SystemExtensions/ABC/x.systemextension/Contents/Info.plist",
		"Library/SystemExtensions/current"}, walked, "symlinks are listed, not followed")
	m, err := fs.Glob(f.IOFS(), "Library/SystemExtensions/*/x.systemextension/Contents/Info.plist")
	require.NoError(t, err)
	assert.Len(t, m, 2, "once directly, once through the link")
}

func TestMemoryTreeIsSafeForConcurrentUse(t *testing.T) {
	f := NewFS()
	require.NoError(t, f.MkdirAll("/Users/admin", 0o755))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("/Users/admin/f%d", i)
			for j := range 50 {
				w, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
				if !assert.NoError(t, err) {
					return
				}
				_, _ = w.WriteAt([]byte("data"), int64(j*4))
				_, _ = w.Stat()
				_ = w.Close()
				_, _ = f.ReadDir("/Users/admin")
				_ = f.Rename(name, name+".moved")
				_ = f.Rename(name+".moved", name)
				_ = f.Chmod(name, 0o600)
			}
			_ = f.RemoveAll(name)
		}()
	}
	wg.Wait()
	des, err := f.ReadDir("/Users/admin")
	require.NoError(t, err)
	assert.Empty(t, des)
}

func TestClearGivesTheTreeBack(t *testing.T) {
	f := NewFS()
	require.NoError(t, f.MkdirAll("/tmp", 0o755))
	require.NoError(t, f.WriteFile("/tmp/sxlab-probe", make([]byte, 1<<20), 0o755))
	f.Clear()
	_, err := f.Stat("/tmp")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	des, err := f.ReadDir("/")
	require.NoError(t, err)
	assert.Empty(t, des)
}

func TestTreesShareTheBytesOfIdenticalLargeFiles(t *testing.T) {
	blobs := NewBlobs()
	a, b := NewSharedFS(blobs), NewSharedFS(blobs)
	probe := make([]byte, 3<<20)
	for i := range probe {
		probe[i] = byte(i * 7)
	}
	upload := func(f *FS) {
		w, err := f.OpenFile("/tmp-probe", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
		require.NoError(t, err)
		for off := 0; off < len(probe); off += 32 << 10 { // as SFTP writes it
			_, err := w.WriteAt(probe[off:min(off+32<<10, len(probe))], int64(off))
			require.NoError(t, err)
		}
		require.NoError(t, w.Close())
	}
	upload(a)
	upload(b)
	na, _ := a.resolve("t", "/tmp-probe", true)
	nb, _ := b.resolve("t", "/tmp-probe", true)
	require.NotNil(t, na.n.blob)
	require.NotEmpty(t, na.n.data.chunks)
	for i := range na.n.data.chunks {
		assert.Same(t, &na.n.data.chunks[i][0], &nb.n.data.chunks[i][0], "one copy of the probe for both machines")
	}

	// A write to one machine's copy is not seen by the other.
	w, err := a.OpenFile("/tmp-probe", os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = w.WriteAt([]byte("changed"), 0)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	got, err := b.ReadFile("/tmp-probe")
	require.NoError(t, err)
	assert.Equal(t, probe, got)
	got, err = a.ReadFile("/tmp-probe")
	require.NoError(t, err)
	assert.Equal(t, "changed", string(got[:7]))
	assert.Equal(t, probe[7:], got[7:])
	require.NoError(t, b.Truncate("/tmp-probe", 10))
	got, _ = a.ReadFile("/tmp-probe")
	assert.Len(t, got, len(probe), "truncating one copy leaves the other")
}

// Files that differ only in the middle have the same bucket key
// (size, first and last chunk) and must still keep their own bytes.
func TestLargeFilesThatDifferInTheMiddleAreNotShared(t *testing.T) {
	blobs := NewBlobs()
	a, b := NewSharedFS(blobs), NewSharedFS(blobs)
	base := make([]byte, 4*chunkSize)
	for i := range base {
		base[i] = byte(i % 253)
	}
	other := slices.Clone(base)
	other[2*chunkSize+17] ^= 0xff
	require.NoError(t, a.WriteFile("/probe", base, 0o755))
	require.NoError(t, b.WriteFile("/probe", other, 0o755))
	gotA, err := a.ReadFile("/probe")
	require.NoError(t, err)
	gotB, err := b.ReadFile("/probe")
	require.NoError(t, err)
	assert.Equal(t, base, gotA)
	assert.Equal(t, other, gotB, "the second file keeps its own middle")
	sum := func(f *FS) []byte {
		r, err := f.Open("/probe")
		require.NoError(t, err)
		defer r.Close()
		d, err := r.Sum("sha256", sha256.New)
		require.NoError(t, err)
		return d
	}
	assert.NotEqual(t, sum(a), sum(b))
}

// A write past the end leaves zeros in the gap, also where a truncated
// file's old bytes still sit in memory; a write at the end appends.
func TestWritesAfterATruncateSeeZerosNotOldBytes(t *testing.T) {
	f := NewFS()
	w, err := f.OpenFile("/f", os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = w.WriteAt(bytes.Repeat([]byte("x"), 200), 0)
	require.NoError(t, err)
	require.NoError(t, w.Truncate(50))
	_, err = w.WriteAt([]byte("ab"), 50) // at the end
	require.NoError(t, err)
	_, err = w.WriteAt([]byte("yy"), 100) // past it
	require.NoError(t, err)
	require.NoError(t, w.Close())
	got, err := f.ReadFile("/f")
	require.NoError(t, err)
	want := slices.Concat(bytes.Repeat([]byte("x"), 50), []byte("ab"), make([]byte, 48), []byte("yy"))
	assert.Equal(t, want, got)
}

func TestLargeFilesReadAndWriteAcrossChunks(t *testing.T) {
	f := NewFS()
	want := make([]byte, 3*chunkSize+123)
	for i := range want {
		want[i] = byte(i % 251)
	}
	// Out of order, as a client with several writes in flight sends them.
	w, err := f.OpenFile("/big", os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	for _, off := range []int{2 * chunkSize, 0, 3 * chunkSize, chunkSize} {
		end := min(off+chunkSize, len(want))
		_, err := w.WriteAt(want[off:end], int64(off))
		require.NoError(t, err)
	}
	buf := make([]byte, 1000)
	n, err := w.ReadAt(buf, chunkSize-500)
	require.NoError(t, err)
	assert.Equal(t, want[chunkSize-500:chunkSize+500], buf[:n], "a read across a chunk's end")
	require.NoError(t, w.Truncate(chunkSize+1))
	require.NoError(t, w.Truncate(chunkSize+5))
	require.NoError(t, w.Close())
	got, err := f.ReadFile("/big")
	require.NoError(t, err)
	assert.Equal(t, append(slices.Clone(want[:chunkSize+1]), 0, 0, 0, 0), got, "truncated, then extended with zeros")
}

// shasum of a large file shared between machines answers from the digest
// kept with the shared bytes; what it prints must be the digest of the
// bytes each machine holds, also after one machine changed its copy.
func TestShasumOfSharedBytesIsTheirDigest(t *testing.T) {
	blobs := NewBlobs()
	big := make([]byte, minShared+12345)
	for i := range big {
		big[i] = byte(i * 13)
	}
	shells := make([]*Shell, 2)
	trees := make([]*FS, 2)
	for i := range shells {
		trees[i] = NewSharedFS(blobs)
		require.NoError(t, trees[i].MkdirAll("tmp", 0o755))
		require.NoError(t, trees[i].WriteFile("/tmp/probe", big, 0o755))
		shells[i] = New(Config{FS: trees[i], Clock: &testClock{now: time.Now()}})
	}
	shasum := func(sh *Shell, alg string) string {
		var out, errb shBuffer
		code := sh.Run(context.Background(), "shasum -a "+alg+" /tmp/probe", nil, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
		require.Equal(t, 0, code, errb.String())
		return out.String()
	}
	want256 := fmt.Sprintf("%x  /tmp/probe\n", sha256.Sum256(big))
	want1 := fmt.Sprintf("%x  /tmp/probe\n", sha1.Sum(big))
	for range 2 {
		for _, sh := range shells {
			assert.Equal(t, want256, shasum(sh, "256"))
			assert.Equal(t, want1, shasum(sh, "1"), "each algorithm its own digest")
		}
	}
	require.NoError(t, trees[0].WriteFile("/tmp/probe", append(slices.Clone(big), 'x'), 0o755))
	assert.Equal(t, fmt.Sprintf("%x  /tmp/probe\n", sha256.Sum256(append(slices.Clone(big), 'x'))), shasum(shells[0], "256"))
	assert.Equal(t, want256, shasum(shells[1], "256"), "the other machine's copy is unchanged")

	w, err := trees[1].OpenFile("/tmp/probe", os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = w.WriteAt([]byte("changed"), 0)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	changed := slices.Clone(big)
	copy(changed, "changed")
	assert.Equal(t, fmt.Sprintf("%x  /tmp/probe\n", sha256.Sum256(changed)), shasum(shells[1], "256"), "a write in place")
}

// An upload that repeats a shared file borrows its bytes as it goes;
// one that then differs, stops short, runs past its end or arrives out
// of order still ends up with exactly the bytes it was sent, and the
// shared file and the other machines' copies keep theirs.
func TestUploadsThatRepeatASharedFileKeepTheirOwnBytes(t *testing.T) {
	probe := make([]byte, minShared+3*chunkSize+999)
	for i := range probe {
		probe[i] = byte(i * 7 / 3)
	}
	const piece = 32 << 10 // as SFTP writes it
	diverged := slices.Clone(probe)
	diverged[len(probe)/2] ^= 0x5a
	longer := append(slices.Clone(probe), "and then some"...)
	shorter := probe[:len(probe)-piece-5]
	inOrder := func(n int) []int {
		var offs []int
		for off := 0; off < n; off += piece {
			offs = append(offs, off)
		}
		return offs
	}
	swapped := inOrder(len(probe))
	swapped[3], swapped[4] = swapped[4], swapped[3]
	cases := []struct {
		name string
		want []byte
		offs []int
	}{
		{"the same bytes", probe, inOrder(len(probe))},
		{"differs in the middle", diverged, inOrder(len(diverged))},
		{"runs past the end", longer, inOrder(len(longer))},
		{"stops short", shorter, inOrder(len(shorter))},
		{"out of order", probe, swapped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blobs := NewBlobs()
			first, other := NewSharedFS(blobs), NewSharedFS(blobs)
			require.NoError(t, first.WriteFile("/probe", probe, 0o755))
			require.NoError(t, other.WriteFile("/probe", probe, 0o755))
			f := NewSharedFS(blobs)
			w, err := f.OpenFile("/probe", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o755)
			require.NoError(t, err)
			for i, off := range tc.offs {
				_, err := w.WriteAt(tc.want[off:min(off+piece, len(tc.want))], int64(off))
				require.NoError(t, err)
				if i == 2 {
					got := make([]byte, 3*piece)
					n, err := w.ReadAt(got, 0)
					require.NoError(t, err)
					assert.Equal(t, tc.want[:3*piece], got[:n], "the bytes written so far read back mid-upload")
					fi, err := f.Stat("/probe")
					require.NoError(t, err)
					assert.EqualValues(t, 3*piece, fi.Size())
				}
			}
			require.NoError(t, w.Close())
			got, err := f.ReadFile("/probe")
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			for _, tree := range []*FS{first, other} {
				got, err := tree.ReadFile("/probe")
				require.NoError(t, err)
				assert.Equal(t, probe, got, "the shared file is unchanged")
			}
			// Changing the upload afterwards leaves the shared file too.
			require.NoError(t, f.Truncate("/probe", 10))
			got, err = f.ReadFile("/probe")
			require.NoError(t, err)
			assert.Equal(t, tc.want[:10], got)
			got, err = other.ReadFile("/probe")
			require.NoError(t, err)
			assert.Equal(t, probe, got)
		})
	}
}

// The repeat of a shared file holds no bytes of its own, while it is
// being written and after.
func TestAnUploadThatRepeatsASharedFileCopiesNothing(t *testing.T) {
	blobs := NewBlobs()
	probe := make([]byte, minShared+5*chunkSize)
	for i := range probe {
		probe[i] = byte(i * 11)
	}
	first, f := NewSharedFS(blobs), NewSharedFS(blobs)
	require.NoError(t, first.WriteFile("/probe", probe, 0o755))
	shared, err := first.resolve("t", "/probe", true)
	require.NoError(t, err)
	w, err := f.OpenFile("/probe", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	n, err := f.resolve("t", "/probe", true)
	require.NoError(t, err)
	for off := 0; off < len(probe); off += 32 << 10 {
		_, err := w.WriteAt(probe[off:min(off+32<<10, len(probe))], int64(off))
		require.NoError(t, err)
		last := len(n.n.data.chunks) - 1
		assert.Same(t, &shared.n.data.chunks[last][0], &n.n.data.chunks[last][0], "at %d the bytes are borrowed", off)
	}
	require.NoError(t, w.Close())
	assert.Same(t, shared.n.blob, n.n.blob)
}
