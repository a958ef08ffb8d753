package packages

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Package is what a shipped build holds.
type Package struct {
	File string `json:"file"`
	Kind string `json:"kind"` // pkg, zip, dmg
	// Product is true for a product archive (a Distribution with
	// component packages inside, what productbuild writes).
	Product bool `json:"product,omitempty"`
	// Signature names the flat package's signature styles ("RSA",
	// "CMS", "RSA+CMS"); "" for an unsigned package. Only its presence
	// is read: the certificate chain is not verified.
	Signature  string      `json:"signature,omitempty"`
	Components []Component `json:"components,omitempty"`
	Apps       []*Bundle   `json:"apps"`
}

// Component is one component package's PackageInfo.
type Component struct {
	Name            string `json:"name"` // its folder in a product archive, "" at the top
	ID              string `json:"id"`
	Version         string `json:"version"`
	InstallLocation string `json:"install_location"`
}

// App returns the app with this bundle ID, or the only app when id is
// "". An error says which apps the package does hold.
func (p *Package) App(id string) (*Bundle, error) {
	var ids []string
	for _, a := range p.Apps {
		if id == "" && len(p.Apps) == 1 || a.BundleID == id {
			return a, nil
		}
		ids = append(ids, a.BundleID+" ("+a.Path+")")
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no app bundle in the package", p.File)
	}
	if id == "" {
		return nil, fmt.Errorf("%s: %d apps (%s); name the one to check", p.File, len(ids), strings.Join(ids, ", "))
	}
	return nil, fmt.Errorf("%s: no app with bundle ID %s; it holds %s", p.File, id, strings.Join(ids, ", "))
}

// Open reads the package at file, recognised by its name: .pkg, .zip,
// .dmg. A zero Limits means DefaultLimits.
func Open(file string, lim Limits) (*Package, error) { return OpenAs(file, "", lim) }

// OpenAs reads file as a package of the given kind (pkg, zip, dmg: the
// configuration's app.versions.*.kind); "" means by its name.
func OpenAs(file, kind string, lim Limits) (*Package, error) {
	lim = lim.orDefault()
	lower := strings.ToLower(file)
	if strings.HasSuffix(lower, ".simpkg.json") {
		return nil, fmt.Errorf("%s: %w", file, ErrSimulated)
	}
	if kind == "" {
		kind = strings.TrimPrefix(path.Ext(lower), ".")
	}
	var (
		p   *Package
		err error
	)
	switch kind {
	case "pkg":
		p, err = openPkgFile(file, lim)
	case "zip":
		p, err = openZip(file, lim)
	case "dmg":
		p, err = openDMG(file, lim)
	default:
		return nil, fmt.Errorf("%s: unknown package kind %q (expected pkg, zip or dmg)", file, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

func openPkgFile(file string, lim Limits) (*Package, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, errors.New("is a directory (a bundle-style .pkg is not supported; flat packages only)")
	}
	p, err := ReadPkg(f, st.Size(), lim)
	if err != nil {
		return nil, err
	}
	p.File = file
	return p, nil
}

// pkgInfo is the part of a PackageInfo this reader uses.
type pkgInfo struct {
	ID              string `xml:"identifier,attr"`
	Version         string `xml:"version,attr"`
	InstallLocation string `xml:"install-location,attr"`
}

// ReadPkg reads a flat package (component or product archive) of the
// given size.
func ReadPkg(r io.ReaderAt, size int64, lim Limits) (*Package, error) {
	lim = lim.orDefault()
	x, err := openXar(r, size, lim)
	if err != nil {
		return nil, err
	}
	p := &Package{Kind: "pkg", Signature: x.signature}
	_, p.Product = x.files["Distribution"]
	// A component is a folder (or the root) holding PackageInfo and
	// Payload; a product archive's Distribution names them, but the
	// folders themselves are what Installer reads.
	var dirs []string
	for _, m := range x.order {
		if path.Base(m) == "PackageInfo" {
			dirs = append(dirs, path.Dir(m))
		}
	}
	sort.Strings(dirs)
	if len(dirs) == 0 {
		if p.Product {
			return nil, errors.New("product archive has a Distribution but no component package (no */PackageInfo)")
		}
		return nil, errors.New("flat package has no PackageInfo")
	}
	t := newTree(lim, "")
	for _, d := range dirs {
		prefix := ""
		if d != "." {
			prefix = d + "/"
		}
		raw, err := x.readSmall(prefix + "PackageInfo")
		if err != nil {
			return nil, err
		}
		var info pkgInfo
		if err := xml.Unmarshal(raw, &info); err != nil {
			return nil, fmt.Errorf("%sPackageInfo is not valid XML: %w", prefix, err)
		}
		c := Component{Name: strings.TrimSuffix(prefix, "/"), ID: info.ID, Version: info.Version, InstallLocation: info.InstallLocation}
		if c.InstallLocation == "" {
			c.InstallLocation = "/" // Installer's default
		}
		p.Components = append(p.Components, c)
		if _, ok := x.files[prefix+"Payload"]; !ok {
			continue // a scripts-only component installs no files
		}
		t.what = prefix + "Payload"
		if err := readPayload(x, prefix+"Payload", c.InstallLocation, t); err != nil {
			return nil, err
		}
	}
	t.what = "payload"
	p.Apps, err = t.apps()
	if err != nil {
		return nil, err
	}
	return p, nil
}

// readPayload streams one component's Payload into the tree.
func readPayload(x *xarArchive, member, location string, t *tree) error {
	raw, err := x.open(member)
	if err != nil {
		return err
	}
	dec, err := decodePayload(raw, member, x.limits)
	if err != nil {
		return err
	}
	cr := newCPIOReader(dec, x.limits, member)
	for {
		e, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if e.Mode&modeType != modeRegular {
			continue
		}
		p, ok := installPath(location, e.Name)
		if !ok {
			if strings.Contains(e.Name, "..") {
				return fmt.Errorf("%s: entry %q escapes the install location", member, e.Name)
			}
			continue
		}
		if err := t.add(p, e.Size, cr); err != nil {
			return err
		}
	}
	// Read what follows the trailer (block padding) so the compressor's
	// own check and the member's archived checksum cover all of it.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return fmt.Errorf("%s: after the cpio trailer: %w", member, err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return fmt.Errorf("%s: %w", member, err)
	}
	return nil
}

// walkDir adds the apps of a directory tree (a mounted or extracted disk
// image) to the tree as if dragged to /Applications: each path is cut
// to start at its first *.app segment. It returns the flat packages it
// saw, for an image that ships a .pkg instead of an app.
func walkDir(dir string, t *tree) (pkgs []string, err error) {
	n := 0
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n > t.limits.Entries {
			return &LimitError{What: "disk image file count", Limit: int64(t.limits.Entries)}
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.Type().IsRegular() && strings.HasSuffix(strings.ToLower(rel), ".pkg") {
			pkgs = append(pkgs, p)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		segs := strings.Split(rel, "/")
		i := slices.IndexFunc(segs, func(s string) bool { return strings.HasSuffix(s, ".app") })
		if i < 0 {
			return nil
		}
		ip := "/Applications/" + strings.Join(segs[i:], "/")
		if !wanted(ip) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		return t.add(ip, st.Size(), f)
	})
	return pkgs, err
}
