package shell

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// FS maps guest paths ("/Applications/Example VPN.app") onto the
// machine's folder on the host. The shell, the model and the SFTP server
// all go through it, so they see one file tree.
type FS struct {
	root string
}

// NewFS returns the file tree rooted at the host folder root.
func NewFS(root string) *FS { return &FS{root: root} }

// Root is the host folder holding the tree.
func (f *FS) Root() string { return f.root }

// Path returns the host path of a guest path. Relative guest paths are
// taken from dir. ".." never leaves the tree: like "/.." on a real system
// it stops at the root.
func (f *FS) Path(dir, guestPath string) string {
	return filepath.Join(f.root, filepath.FromSlash(Clean(dir, guestPath)))
}

// Clean returns the absolute, cleaned guest path of p seen from dir.
func Clean(dir, p string) string {
	if !strings.HasPrefix(p, "/") {
		p = path.Join("/", dir, p)
	}
	return path.Clean("/" + p)
}

// Rel turns a guest path into a name for the machine's os.Root.
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
