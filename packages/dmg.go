package packages

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Unverified on macOS: the hdiutil path is type-checked from Linux
// (internal/darwincheck) but was not run on a Mac in this change.
//
// A disk image has no pure-Go reader worth trusting (UDIF with HFS+ or
// APFS inside), so it is opened by a tool: hdiutil on macOS, 7-Zip
// elsewhere. Neither is run without a bound on time; 7-Zip's listing is
// summed first so an image that would unpack past Limits.Stream is
// refused before anything is written.

const dmgTimeout = 5 * time.Minute

func openDMG(file string, lim Limits) (*Package, error) {
	tmp, err := os.MkdirTemp("", "sxlab-dmg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), dmgTimeout)
	defer cancel()
	var root string
	switch {
	case runtime.GOOS == "darwin":
		mnt := filepath.Join(tmp, "mnt")
		if err := os.Mkdir(mnt, 0o700); err != nil {
			return nil, err
		}
		attach := exec.CommandContext(ctx, "hdiutil", "attach", "-readonly", "-nobrowse", "-noautoopen", "-mountpoint", mnt, file)
		// An image with a licence agreement asks for it on stdin; the
		// usual answer in scripts is `yes | hdiutil attach` (unverified
		// on macOS here). The timeout bounds any other prompt.
		attach.Stdin = strings.NewReader(strings.Repeat("Y\n", 64))
		out, err := attach.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("hdiutil attach: %v: %s", err, bytes.TrimSpace(out))
		}
		// Detached after reading, also when reading fails; a fresh
		// context, since the read's may have run out.
		defer func() {
			dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
			defer dcancel()
			if exec.CommandContext(dctx, "hdiutil", "detach", mnt).Run() != nil {
				_ = exec.CommandContext(dctx, "hdiutil", "detach", "-force", mnt).Run()
			}
		}()
		root = mnt
	default:
		sz, err := exec.LookPath("7z")
		if err != nil {
			return nil, errors.New("reading a .dmg needs hdiutil (macOS) or 7z on PATH (Debian/Ubuntu: apt-get install p7zip-full); neither was found")
		}
		root = filepath.Join(tmp, "x")
		if err := sevenZip(ctx, sz, file, root, lim); err != nil {
			return nil, err
		}
		// 7-Zip may unpack the image to its partition (an .hfs or .apfs
		// file) rather than the files: unpack that once more.
		inner, _ := filepath.Glob(filepath.Join(root, "*.[ha][fp][sf]*"))
		for i, in := range inner {
			if err := sevenZip(ctx, sz, in, filepath.Join(tmp, "p"+strconv.Itoa(i)), lim); err != nil {
				return nil, err
			}
		}
		root = tmp
	}
	t := newTree(lim, "disk image")
	pkgs, err := walkDir(root, t)
	if err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	apps, err := t.apps()
	if err != nil {
		return nil, err
	}
	if len(apps) == 0 && len(pkgs) > 0 {
		if len(pkgs) > 1 {
			return nil, fmt.Errorf("disk image holds no app but %d packages; check one of them directly", len(pkgs))
		}
		p, err := openPkgFile(pkgs[0], lim)
		if err != nil {
			return nil, fmt.Errorf("disk image: %s: %w", filepath.Base(pkgs[0]), err)
		}
		p.File, p.Kind = file, "dmg"
		return p, nil
	}
	return &Package{File: file, Kind: "dmg", Apps: apps}, nil
}

// sevenZip unpacks file into dir after checking that the listed sizes
// fit the stream limit.
func sevenZip(ctx context.Context, sz, file, dir string, lim Limits) error {
	out, err := exec.CommandContext(ctx, sz, "l", "-slt", "-ba", file).Output()
	if err != nil {
		return fmt.Errorf("7z cannot list the image: %v", err)
	}
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Size = "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if total += n; total > lim.Stream || n < 0 {
				return &LimitError{What: "disk image contents (7z listing)", Limit: lim.Stream}
			}
		}
	}
	if out, err := exec.CommandContext(ctx, sz, "x", "-y", "-bd", "-o"+dir, file).CombinedOutput(); err != nil {
		return fmt.Errorf("7z cannot unpack the image: %v: %s", err, lastLine(out))
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
