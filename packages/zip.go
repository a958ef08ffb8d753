package packages

import (
	"archive/zip"
	"fmt"
	"os"
	"path"
	"strings"
)

// openZip reads a .zip of an app: Info-ZIP's `zip -r` and `ditto -c -k
// --keepParent` both put "Name.app/Contents/..." at the top; ditto may
// add AppleDouble "._" files and a __MACOSX folder, which are skipped.
// The app is described as if dragged to /Applications.
func openZip(file string, lim Limits) (*Package, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("not a readable zip archive: %w", err)
	}
	if len(zr.File) > lim.Entries {
		return nil, &LimitError{What: "zip entry count", Limit: int64(lim.Entries)}
	}
	t := newTree(lim, "zip")
	for _, zf := range zr.File {
		name := zf.Name
		if strings.HasPrefix(name, "__MACOSX/") || strings.HasPrefix(path.Base(name), "._") || !zf.Mode().IsRegular() {
			continue
		}
		ip, ok := installPath("/Applications", name)
		if !ok {
			if strings.Contains(name, "..") {
				return nil, fmt.Errorf("zip entry %q escapes the archive", name)
			}
			continue
		}
		if !wanted(ip) {
			continue
		}
		if zf.UncompressedSize64 > uint64(lim.Stream) {
			return nil, &LimitError{What: fmt.Sprintf("zip entry %s (%d bytes decompressed)", name, zf.UncompressedSize64), Limit: lim.Stream}
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Errorf("zip entry %s: %w", name, err)
		}
		err = t.add(ip, int64(zf.UncompressedSize64), bounded(rc, lim.Stream, "zip entry "+name+" (decompressed)"))
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	apps, err := t.apps()
	if err != nil {
		return nil, err
	}
	return &Package{File: file, Kind: "zip", Apps: apps}, nil
}
