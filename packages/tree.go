package packages

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// tree holds the few files of an installed layout that describe its
// bundles — each bundle's Contents/Info.plist and Contents/MacOS/* — by
// absolute install path, so a payload can be streamed once and never
// held whole.
type tree struct {
	files  map[string][]byte
	kept   int64
	limits Limits
	what   string
}

func newTree(lim Limits, what string) *tree {
	return &tree{files: map[string][]byte{}, limits: lim, what: what}
}

// bundleExt are the bundle kinds this reader describes.
var bundleExt = []string{".app", ".systemextension"}

// wanted reports whether p (an absolute install path) is a file a bundle
// description needs.
func wanted(p string) bool {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if base == "Info.plist" && path.Base(dir) == "Contents" {
		return isBundle(path.Dir(dir))
	}
	if path.Base(dir) == "MacOS" && path.Base(path.Dir(dir)) == "Contents" {
		return isBundle(path.Dir(path.Dir(dir)))
	}
	return false
}

func isBundle(p string) bool {
	for _, e := range bundleExt {
		if strings.HasSuffix(p, e) && len(p) > len(e)+1 {
			return true
		}
	}
	return false
}

// add keeps r's bytes under p when the file is wanted, else skips it.
func (t *tree) add(p string, size int64, r io.Reader) error {
	if !wanted(p) {
		return nil
	}
	limit := t.limits.Kept - t.kept
	if strings.HasSuffix(p, "/Info.plist") && t.limits.Plist < limit {
		limit = t.limits.Plist
	}
	if size > limit {
		return &LimitError{What: fmt.Sprintf("%s: %s (%d bytes kept in memory)", t.what, p, size), Limit: limit}
	}
	b, err := readAllBounded(r, limit, t.what+": "+p)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", t.what, p, err)
	}
	t.kept += int64(len(b))
	t.files[p] = b
	return nil
}

// bundles returns the installed bundles: top-level apps (not inside
// another bundle), each with the system extensions under its
// Contents/Library/SystemExtensions/; and extensions that no app holds.
func (t *tree) bundles() (apps, loose []string) {
	seen := map[string]bool{}
	for p := range t.files {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			if isBundle(d) {
				seen[d] = true
			}
		}
	}
	all := make([]string, 0, len(seen))
	for b := range seen {
		all = append(all, b)
	}
	sort.Strings(all)
	for _, b := range all {
		if strings.HasSuffix(b, ".app") && !inBundle(b) {
			apps = append(apps, b)
		}
		if strings.HasSuffix(b, ".systemextension") && !strings.HasSuffix(path.Dir(b), ".app/Contents/Library/SystemExtensions") {
			loose = append(loose, b)
		}
	}
	return apps, loose
}

func inBundle(p string) bool {
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		if isBundle(d) {
			return true
		}
	}
	return false
}

// extensions lists the *.systemextension bundles directly under an app's
// Contents/Library/SystemExtensions/ (where sysextd looks for them).
func (t *tree) extensions(app string) []string {
	dir := app + "/Contents/Library/SystemExtensions/"
	seen := map[string]bool{}
	for p := range t.files {
		rest, ok := strings.CutPrefix(p, dir)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		if strings.HasSuffix(name, ".systemextension") {
			seen[dir+name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}
