package sshd

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

// sftpFS serves SFTP requests from the machine's tree, which refuses
// paths and symlinks that lead outside it; new symlinks must be relative
// and free of "..". A sabotaged machine's
// files are served through its cutter (nil: none), which calls cut to drop
// the connection.
type sftpFS struct {
	root   *shell.FS
	cutter *Cutter
	cut    func()
}

func sftpHandlers(root *shell.FS, cutter *Cutter, cut func()) sftp.Handlers {
	h := &sftpFS{root: root, cutter: cutter, cut: cut}
	return sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
}

// Fileread opens a file for download.
func (h *sftpFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	f, err := h.root.Open(shell.Rel(r.Filepath))
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: r.Filepath, Err: syscall.EISDIR}
	}
	return h.cutter.wrap(f, h.cut), nil
}

// Filewrite opens a file for upload.
func (h *sftpFS) Filewrite(r *sftp.Request) (io.WriterAt, error) { return h.OpenFile(r) }

// OpenFile opens a file for reading and writing. The append flag is not
// passed on: clients send offsets, and WriteAt refuses O_APPEND files.
func (h *sftpFS) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	pf := r.Pflags()
	flag := os.O_RDONLY
	switch {
	case pf.Read && pf.Write:
		flag = os.O_RDWR
	case pf.Write:
		flag = os.O_WRONLY
	}
	if pf.Creat {
		flag |= os.O_CREATE
	}
	if pf.Trunc {
		flag |= os.O_TRUNC
	}
	if pf.Excl {
		flag |= os.O_EXCL
	}
	f, err := h.root.OpenFile(shell.Rel(r.Filepath), flag, 0o644)
	if err != nil {
		return nil, err
	}
	return h.cutter.wrap(f, h.cut), nil
}

// Filecmd changes the tree: setstat, rename, remove, mkdir, links.
func (h *sftpFS) Filecmd(r *sftp.Request) error {
	name := shell.Rel(r.Filepath)
	switch r.Method {
	case "Setstat":
		return h.setstat(r, name)
	case "Rename":
		// SFTP v3 rename does not replace an existing file (OpenSSH's
		// sftp-server behaves so too); posix-rename@openssh.com does
		if _, err := h.root.Lstat(shell.Rel(r.Target)); err == nil {
			return &os.LinkError{Op: "rename", Old: r.Filepath, New: r.Target, Err: fs.ErrExist}
		}
		return h.root.Rename(name, shell.Rel(r.Target))
	case "Rmdir":
		fi, err := h.root.Lstat(name)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return &fs.PathError{Op: "rmdir", Path: r.Filepath, Err: syscall.ENOTDIR}
		}
		return h.root.Remove(name)
	case "Remove":
		fi, err := h.root.Lstat(name)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return &fs.PathError{Op: "remove", Path: r.Filepath, Err: syscall.EISDIR}
		}
		return h.root.Remove(name)
	case "Mkdir":
		return h.root.Mkdir(name, 0o755)
	case "Link":
		return h.root.Link(name, shell.Rel(r.Target))
	case "Symlink":
		// pkg/sftp puts the link's target, as sent, in Filepath
		if err := shell.SafeLinkTarget(r.Filepath); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		return h.root.Symlink(r.Filepath, shell.Rel(r.Target))
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename replaces the target, as rename(2) does.
func (h *sftpFS) PosixRename(r *sftp.Request) error {
	return h.root.Rename(shell.Rel(r.Filepath), shell.Rel(r.Target))
}

func (h *sftpFS) setstat(r *sftp.Request, name string) error {
	attrs, flags := r.Attributes(), r.AttrFlags()
	if flags.Size {
		f, err := h.root.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = f.Truncate(int64(attrs.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if flags.Permissions {
		if err := h.root.Chmod(name, attrs.FileMode().Perm()); err != nil {
			return err
		}
	}
	if flags.Acmodtime {
		if err := h.root.Chtimes(name, time.Unix(int64(attrs.Atime), 0), time.Unix(int64(attrs.Mtime), 0)); err != nil {
			return err
		}
	}
	return nil // owners are not modelled
}

// Filelist lists a directory or stats a file.
func (h *sftpFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	name := shell.Rel(r.Filepath)
	switch r.Method {
	case "List":
		des, err := h.root.ReadDir(name)
		if err != nil {
			return nil, err
		}
		infos := make([]os.FileInfo, 0, len(des))
		for _, de := range des {
			if fi, err := de.Info(); err == nil {
				infos = append(infos, fi)
			}
		}
		return sftpList(infos), nil
	case "Stat":
		fi, err := h.root.Stat(name)
		if err != nil {
			return nil, err
		}
		return sftpList{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat stats a path without following a final symlink.
func (h *sftpFS) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, err := h.root.Lstat(shell.Rel(r.Filepath))
	if err != nil {
		return nil, err
	}
	return sftpList{fi}, nil
}

// Readlink returns a symlink's target as stored.
func (h *sftpFS) Readlink(p string) (string, error) {
	return h.root.Readlink(shell.Rel(p))
}

type sftpList []os.FileInfo

func (l sftpList) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}
