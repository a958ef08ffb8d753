package vz

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Layout of the store: golden bundles are folders directly in it, clones
// live in ClonesDir as ClonePrefix<run>-<attempt>.
const (
	ClonesDir   = "clones"
	ClonePrefix = "sxlab-"
	// SocketFile is the worker's unix socket inside a clone.
	SocketFile = "worker.sock"
	// OwnerLockFile is flock(2)ed by the run that owns a clone for the
	// clone's whole life; config.json is fcntl-locked by its worker.
	OwnerLockFile = "sxlab.lock"
	// WorkerLogFile takes the worker's stderr.
	WorkerLogFile = "worker.log"
)

// maxSocketPath is the longest path a unix socket may have on macOS
// (sun_path is 104 bytes with its NUL).
const maxSocketPath = 103

var namePart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CloneName is the folder name of attempt's clone in run: sxlab-<run>-<attempt>.
// attempt is the machine name the lab gives Clone ("sxlab-<cell>-r1-t1"),
// whose own sxlab- prefix is dropped. run is a word without dashes, so the
// name splits back unambiguously.
func CloneName(run, attempt string) (string, error) {
	attempt = strings.TrimPrefix(attempt, ClonePrefix)
	switch {
	case run == "" || strings.Contains(run, "-") || !namePart.MatchString(run):
		return "", fmt.Errorf("clone name: run %q must be letters and digits", run)
	case !namePart.MatchString(attempt):
		return "", fmt.Errorf("clone name: attempt %q must be letters, digits, dots, dashes and underscores", attempt)
	}
	return ClonePrefix + run + "-" + attempt, nil
}

// ParseCloneName splits a clone folder name into its run and attempt.
func ParseCloneName(name string) (run, attempt string, ok bool) {
	rest, ok := strings.CutPrefix(name, ClonePrefix)
	if !ok {
		return "", "", false
	}
	run, attempt, ok = strings.Cut(rest, "-")
	return run, attempt, ok && run != "" && attempt != ""
}

// CloneDir is where attempt's clone of run lives in store. It refuses a
// path so long that the worker's socket in it would not fit a sockaddr.
func CloneDir(store, run, attempt string) (string, error) {
	name, err := CloneName(run, attempt)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(store, ClonesDir, name)
	if sock := filepath.Join(dir, SocketFile); len(sock) > maxSocketPath {
		return "", fmt.Errorf("clone folder %s: the worker socket path would be %d bytes, macOS allows %d: use a shorter hosts[].vz.store", dir, len(sock), maxSocketPath)
	}
	return dir, nil
}

// ClonePlan says how a clone is made from a golden bundle: which files are
// cloned copy-on-write, and the config.json written with the clone's MAC.
type ClonePlan struct {
	Golden  string   // the golden bundle's folder
	Dest    string   // the clone's folder
	Files   []string // cloned from the golden, in order
	MAC     string   // the clone's macAddress
	Restore bool     // the clone restores the golden's saved state
	Method  string   // "clonefile" (APFS copy-on-write, darwin) or "copy"

	config Config
}

// PlanClone plans a clone of golden into dest. restore asks for the golden's
// saved state to be cloned too (the golden must have one); the MAC follows
// CloneMAC.
func PlanClone(golden *Bundle, dest string, restore bool, rand io.Reader) (ClonePlan, error) {
	if restore && !golden.HasSavedState {
		return ClonePlan{}, fmt.Errorf("plan clone of %s: restore asked for, but the bundle has no %s", golden.Dir, StateFile)
	}
	mac, err := CloneMAC(golden.Config.MACAddress, restore, rand)
	if err != nil {
		return ClonePlan{}, fmt.Errorf("plan clone of %s: %w", golden.Dir, err)
	}
	files := []string{DiskFile, NVRAMFile}
	if restore {
		files = append(files, StateFile)
	}
	return ClonePlan{Golden: golden.Dir, Dest: dest, Files: files, MAC: mac, Restore: restore,
		Method: cloneMethod, config: golden.Config}, nil
}

// Apply makes the clone's files in dir (an existing, empty folder; the
// caller renames it to Dest once it is complete).
func (p ClonePlan) Apply(dir string) error {
	for _, f := range p.Files {
		if err := cloneFile(filepath.Join(p.Golden, f), filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	cfg, err := p.config.WithMAC(p.MAC)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), cfg, 0o644); err != nil {
		return fmt.Errorf("write clone config: %w", err)
	}
	return nil
}

// copyFile copies src to dst, which must not exist; the fallback where
// clonefile(2) does not exist, and what tests on Linux use.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("copy %s: %w", src, cerr)
		}
		if err != nil {
			err = errors.Join(err, os.Remove(dst))
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}
