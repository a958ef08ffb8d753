package macos

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strings"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// mount is a disk image attached with hdiutil: its app, as the packages
// reader read it, laid out under the mount point.
type mount struct {
	image string // guest path of the .dmg
	dev   string // /dev/diskN
	app   pkgPayload
}

// cmdHdiutil is `hdiutil attach [-nobrowse] [-readonly] [-noautoopen]
// [-mountpoint DIR] IMAGE` and `hdiutil detach DIR`. The image is read
// with the packages reader; its app appears under the mount point.
func (m *Mac) cmdHdiutil(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 0 {
		fmt.Fprintln(stderr(p), "Usage: hdiutil <verb> <options>\n<verb> is one of the following:\nattach\ndetach")
		return exitFailure
	}
	switch args[0] {
	case "attach", "mount":
		return m.hdiutilAttach(p, args[1:])
	case "detach", "eject":
		return m.hdiutilDetach(p, args[1:])
	}
	fmt.Fprintf(stderr(p), "sim: unsupported: hdiutil %s (the simulated Mac knows attach and detach)\n", args[0])
	return 127
}

func (m *Mac) hdiutilAttach(p *shell.Proc, args []string) int {
	var image, mnt string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-nobrowse", "-readonly", "-noautoopen", "-quiet", "-noverify", "-noautofsck":
		case "-mountpoint":
			if i+1 >= len(args) {
				fmt.Fprintln(stderr(p), "hdiutil: attach: -mountpoint requires an argument")
				return exitFailure
			}
			i++
			mnt = guestPath(p, args[i])
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr(p), "hdiutil: attach: unrecognized option %s\n", a)
				return exitFailure
			}
			image = a
		}
	}
	if image == "" {
		fmt.Fprintln(stderr(p), "hdiutil: attach: no disk image specified")
		return exitFailure
	}
	gp := guestPath(p, image)
	if _, err := m.fs.Stat(gp); err != nil {
		fmt.Fprintln(stderr(p), "hdiutil: attach failed - No such file or directory")
		return exitFailure
	}
	pl, err := m.readReal(gp, "dmg")
	if err != nil {
		// Reading a .dmg off macOS needs 7z on the host: a limit of the
		// simulation, not something macOS would say.
		if _, lerr := exec.LookPath("7z"); runtime.GOOS != "darwin" && lerr != nil {
			fmt.Fprintln(stderr(p), "sim: unsupported: attaching a .dmg in the simulated Mac needs 7z on the host's PATH (p7zip-full)")
			return 127
		}
		fmt.Fprintln(stderr(p), "hdiutil: attach failed - image not recognized")
		m.begin()
		m.installLog(process{path: "/usr/bin/hdiutil", pid: m.newPID()}, "hdiutil: "+gp+" could not be read: "+err.Error())
		m.mu.Unlock()
		return exitFailure
	}
	if mnt == "" {
		mnt = "/Volumes/" + strings.TrimSuffix(path.Base(gp), path.Ext(gp))
	}
	m.begin()
	defer m.mu.Unlock()
	if _, busy := m.mounts[mnt]; busy {
		fmt.Fprintln(stderr(p), "hdiutil: attach failed - Resource busy")
		return exitFailure
	}
	app := pl.relocated(mnt + "/" + path.Base(pl.appDir))
	for _, f := range app.files {
		if err := m.writeFile(f.path, f.content); err != nil {
			fmt.Fprintf(stderr(p), "hdiutil: attach failed - %v\n", err)
			return exitFailure
		}
	}
	dev := fmt.Sprintf("/dev/disk%d", 4+len(m.mounts))
	m.mounts[mnt] = &mount{image: gp, dev: dev, app: app}
	fmt.Fprintf(stdout(p), "%s          \tGUID_partition_scheme          \t\n%ss1        \tApple_HFS                      \t%s\n", dev, dev, mnt)
	return exitOK
}

func (m *Mac) hdiutilDetach(p *shell.Proc, args []string) int {
	var target string
	for _, a := range args {
		if a == "-force" || a == "-quiet" {
			continue
		}
		target = guestPath(p, a)
	}
	m.begin()
	defer m.mu.Unlock()
	for dir, mt := range m.mounts {
		if dir == target || mt.dev == target || mt.dev+"s1" == target {
			if err := m.removeAll(dir); err != nil {
				fmt.Fprintf(stderr(p), "hdiutil: detach failed - %v\n", err)
				return exitFailure
			}
			delete(m.mounts, dir)
			fmt.Fprintf(stdout(p), "\"%s\" ejected.\n", strings.TrimPrefix(mt.dev, "/dev/"))
			return exitOK
		}
	}
	fmt.Fprintln(stderr(p), "hdiutil: detach failed - No such file or directory")
	return exitFailure
}

// cmdDitto is `ditto -x -k ARCHIVE.zip DIR` (extract a .zip of an app,
// read with the packages reader) and `ditto SRC DST` (copy; an app
// copied out of an attached image is installed, as dragging it to
// /Applications does).
func (m *Mac) cmdDitto(ctx context.Context, p *shell.Proc) int {
	var extract, pkzip bool
	var operands []string
	for _, a := range cmdArgs(p) {
		switch a {
		case "-x":
			extract = true
		case "-k":
			pkzip = true
		case "-V", "-v", "--rsrc", "--norsrc", "--extattr", "--noextattr", "--qtn", "--noqtn", "--acl", "--noacl", "--sequesterRsrc", "--keepParent":
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr(p), "sim: unsupported: ditto option %s\n", a)
				return 127
			}
			operands = append(operands, a)
		}
	}
	if len(operands) != 2 {
		fmt.Fprintln(stderr(p), "Usage: ditto [ <options> ] src [ ... src ] dst")
		return exitFailure
	}
	src, dst := guestPath(p, operands[0]), guestPath(p, operands[1])
	if _, err := m.fs.Stat(src); err != nil {
		fmt.Fprintf(stderr(p), "ditto: %s: No such file or directory\n", operands[0])
		return exitFailure
	}
	if extract {
		if !pkzip {
			fmt.Fprintln(stderr(p), "sim: unsupported: ditto -x of a cpio archive (the simulated Mac extracts PKZip archives: -x -k)")
			return 127
		}
		pl, err := m.readReal(src, "zip")
		if err != nil {
			// ditto's words for a file that is not a PKZip archive
			// (unverified on macOS for every kind of damage).
			fmt.Fprintln(stderr(p), "ditto: Couldn't read PKZip signature")
			m.begin()
			m.installLog(process{path: "/usr/bin/ditto", pid: m.newPID()}, "ditto: "+src+" could not be read: "+err.Error())
			m.mu.Unlock()
			return exitFailure
		}
		m.begin()
		defer m.mu.Unlock()
		if err := m.installPayload(pl.relocated(dst+"/"+path.Base(pl.appDir)), process{}, src, false, false); err != nil {
			fmt.Fprintf(stderr(p), "ditto: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	m.begin()
	defer m.mu.Unlock()
	for _, mt := range m.mounts {
		if src == mt.app.appDir {
			if err := m.installPayload(mt.app.relocated(dst), process{}, src, false, false); err != nil {
				fmt.Fprintf(stderr(p), "ditto: %v\n", err)
				return exitFailure
			}
			return exitOK
		}
	}
	if st, err := m.fs.Stat(src); err == nil && !st.IsDir() {
		data, err := m.fs.ReadFile(src)
		if err == nil {
			err = m.writeFile(dst, string(data))
		}
		if err != nil {
			fmt.Fprintf(stderr(p), "ditto: %s: %v\n", operands[1], err)
			return exitFailure
		}
		return exitOK
	}
	if err := m.copyTree(src, dst); err != nil {
		fmt.Fprintf(stderr(p), "ditto: %s: %v\n", operands[1], err)
		return exitFailure
	}
	return exitOK
}

// copyTree copies the folder src to dst inside the tree, as os.CopyFS
// did when the tree was a host folder: folders merge, an existing file
// is not overwritten, symlinks are copied as links.
func (m *Mac) copyTree(src, dst string) error {
	return fs.WalkDir(m.fs.IOFS(), shell.Rel(src), func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(name, shell.Rel(src)), "/")
		to := path.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return m.fs.MkdirAll(to, 0o777)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := m.fs.Readlink(name)
			if err == nil {
				err = m.fs.Symlink(target, to)
			}
			return err
		}
		data, err := m.fs.ReadFile(name)
		if err != nil {
			return err
		}
		w, err := m.fs.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666|info.Mode().Perm())
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return err
	})
}
