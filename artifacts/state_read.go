package artifacts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/sxlab/sxlab/guest"
)

// ReadState reads the snapshot sub (BeforeDir, AfterDir) of an attempt
// folder: sub.json, or in a folder of the older layout the per-command
// files sw_vers.json, systemextensionsctl-list.json (the app's rows are
// not told apart there: every row is returned) and pkgutil-pkg-info-*.json.
// A snapshot that was not taken is fs.ErrNotExist.
func ReadState(attemptDir, sub string) (*State, error) {
	base := filepath.Join(attemptDir, filepath.FromSlash(sub))
	var st State
	err := readStateFile(base+StateExt, &st)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return &st, err
	}
	if fi, serr := os.Stat(base); serr != nil || !fi.IsDir() {
		return nil, err // neither layout: not taken
	}
	var sw guest.SwVers
	if readStateFile(filepath.Join(base, SwVersFile+".json"), &sw) == nil {
		st.SwVers = &sw
	}
	_ = readStateFile(filepath.Join(base, ExtensionsFile+".json"), &st.Extensions)
	matches, _ := filepath.Glob(filepath.Join(base, pkgInfoFile+"*.json"))
	sort.Strings(matches)
	for _, m := range matches {
		var info guest.PkgInfo
		if readStateFile(m, &info) == nil {
			st.Packages = append(st.Packages, info)
		}
	}
	return &st, nil
}

func readStateFile(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}
