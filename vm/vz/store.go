package vz

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultStore is the store when hosts[].vz.store is not set: ~/.sxlab/vz.
func DefaultStore() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("the default vz store lives in the home folder: %w", err)
	}
	return filepath.Join(home, ".sxlab", "vz"), nil
}

// ExpandHome replaces a leading ~/ with the home folder.
func ExpandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// ResolveBundle turns images.<name>.vz.bundle into a folder: a bare name is
// a bundle in store, anything with a path separator (or ~/) is a path.
func ResolveBundle(store, bundle string) string {
	bundle = ExpandHome(bundle)
	if filepath.IsAbs(bundle) || strings.ContainsRune(bundle, filepath.Separator) || strings.Contains(bundle, "/") {
		return bundle
	}
	return filepath.Join(store, bundle)
}

// StoreEntry is one golden bundle in a store; Err says why it cannot be
// loaded, with Bundle nil.
type StoreEntry struct {
	Name   string
	Dir    string
	Bundle *Bundle
	Err    error
}

// ListBundles lists the golden bundles in store by name: every folder but
// clones and hidden ones (half-made imports). A missing store is empty.
func ListBundles(store string) ([]StoreEntry, error) {
	entries, err := os.ReadDir(store)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the vz store: %w", err)
	}
	var out []StoreEntry
	for _, e := range entries {
		if !e.IsDir() || e.Name() == ClonesDir || e.Name() == IPSWDir || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(store, e.Name())
		b, err := LoadBundle(dir)
		out = append(out, StoreEntry{Name: e.Name(), Dir: dir, Bundle: b, Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// TartHome is tart's home: $TART_HOME, else ~/.tart.
func TartHome(lookupEnv func(string) (string, bool)) (string, error) {
	if lookupEnv != nil {
		if h, ok := lookupEnv("TART_HOME"); ok && h != "" {
			return ExpandHome(h), nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("tart's home is ~/.tart: %w", err)
	}
	return filepath.Join(home, ".tart"), nil
}

// Import is what ImportTart did.
type Import struct {
	From, To string
	Method   string // clonefile or copy
	// SkippedState is set when the tart VM was suspended: its state was
	// saved with tart's device set, which sxlab's differs from, so it is
	// not imported and the image boots cold.
	SkippedState bool
}

// ImportTart clones the tart VM name from tartHome/vms into store as as
// (default name). The VM must not be running: tart holds an fcntl lock on
// its config.json while it runs, as sxlab's workers do.
func ImportTart(tartHome, name, store, as string) (Import, error) {
	if as == "" {
		as = name
	}
	if !namePart.MatchString(name) || strings.Contains(name, "/") {
		return Import{}, fmt.Errorf("import tart VM %q: not a local VM name (pull remote images with tart first: tart clone REMOTE %s)", name, name)
	}
	dst, err := CheckNewBundle(store, as)
	if err != nil {
		return Import{}, fmt.Errorf("import tart VM %s: %w (choose another name with --as)", name, err)
	}
	src := filepath.Join(tartHome, "vms", name)
	imp := Import{From: src, To: dst, Method: cloneMethod}
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return imp, fmt.Errorf("import tart VM %s: %s does not exist (tart list shows the local VMs; TART_HOME moves them)", name, src)
	}
	b, err := LoadBundle(src)
	if err != nil {
		return imp, fmt.Errorf("import tart VM %s: %w", name, err)
	}
	if err := b.CheckBootable(); err != nil {
		return imp, fmt.Errorf("import tart VM %s: %w", name, err)
	}
	if pid := runBy(b.Dir); pid > 0 {
		return imp, fmt.Errorf("import tart VM %s: it is running (process %d); stop it first: tart stop %s", name, pid, name)
	}
	err = buildBundle(dst, func(tmp string) error {
		for _, f := range []string{DiskFile, NVRAMFile} {
			if err := cloneFile(b.Path(f), filepath.Join(tmp, f)); err != nil {
				return err
			}
		}
		// config.json verbatim: the golden keeps its MAC; clones draw theirs.
		return copyFile(b.Path(ConfigFile), filepath.Join(tmp, ConfigFile))
	})
	if err != nil {
		return imp, fmt.Errorf("import tart VM %s: %w", name, err)
	}
	imp.SkippedState = b.HasSavedState
	return imp, nil
}

// buildBundle makes the bundle dst: fill writes its files into a hidden
// folder beside it, renamed into place only when fill succeeds, so a
// half-made bundle is never listed or cloned.
func buildBundle(dst string, fill func(tmp string) error) error {
	store := filepath.Dir(dst)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(store, ".making-"+filepath.Base(dst)+"-")
	if err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return errors.Join(err, os.RemoveAll(tmp))
	}
	// Another command may have made dst meanwhile; rename would replace
	// an empty folder, so look first.
	if _, err := os.Lstat(dst); err == nil {
		return errors.Join(fmt.Errorf("%s appeared meanwhile (another sxlab image command?); this one was discarded", dst), os.RemoveAll(tmp))
	}
	if err := os.Rename(tmp, dst); err != nil {
		return errors.Join(err, os.RemoveAll(tmp))
	}
	return nil
}

// CopyBundle makes the golden as in store from the golden src (a name in
// the store or a path): disk and NVRAM cloned, a fresh MAC, no saved
// state. It is how a pool of warm goldens is made: each restores into one
// clone at a time, so two slots need two, each warmed on its own.
func CopyBundle(store, src, as string, rand io.Reader) (string, error) {
	dst, err := CheckNewBundle(store, as)
	if err != nil {
		return "", fmt.Errorf("copy bundle %s: %w", src, err)
	}
	b, err := LoadBundle(ResolveBundle(store, src))
	if err != nil {
		return "", fmt.Errorf("copy bundle %s: %w", src, err)
	}
	if err := b.CheckBootable(); err != nil {
		return "", fmt.Errorf("copy bundle %s: %w", src, err)
	}
	if pid := runBy(b.Dir); pid > 0 {
		return "", fmt.Errorf("copy bundle %s: worker %d runs it; copy it when it has stopped", src, pid)
	}
	plan, err := PlanClone(b, dst, false, rand)
	if err != nil {
		return "", fmt.Errorf("copy bundle %s: %w", src, err)
	}
	if err := buildBundle(dst, plan.Apply); err != nil {
		return "", fmt.Errorf("copy bundle %s to %s: %w", src, dst, err)
	}
	return dst, nil
}
