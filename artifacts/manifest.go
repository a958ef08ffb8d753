package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
	"github.com/sxlab/sxlab/internal/plainjson"
)

// Manifest is manifest.json: every file of an attempt folder with its
// size and sha256, so a copy of the folder can be checked (sha256sum
// agrees with each entry).
type Manifest struct {
	Files []ManifestEntry `json:"files"`
}

// ManifestEntry is one file; Path is relative to the attempt folder, with
// forward slashes.
type ManifestEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// WriteManifest lists every regular file under dir (but the manifest
// itself) and writes dir/manifest.json atomically: a reader sees the old
// manifest or the new one, never half of one. Entries are sorted by path.
func WriteManifest(dir string) (Manifest, error) {
	m := Manifest{Files: []ManifestEntry{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // folders; links are not followed
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		// renameio's temporary files start with a dot and the target's name.
		if rel == ManifestFile || strings.HasPrefix(rel, "."+ManifestFile) {
			return nil
		}
		size, sum, err := hashFile(p)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, ManifestEntry{Path: rel, Size: size, SHA256: sum})
		return nil
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	b, err := plainjson.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	// The temporary file goes in dir, never $TMPDIR (renameio's default
	// when it is on the same file system): a run killed mid-write then
	// leaves nothing outside its run folder.
	if err := renameio.WriteFile(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o644, renameio.WithTempDir(dir)); err != nil {
		return Manifest{}, fmt.Errorf("write manifest of %s: %w", dir, err)
	}
	return m, nil
}

// VerifyManifest checks every entry of dir/manifest.json against the
// files; the error names each file that is missing or differs.
func VerifyManifest(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	var errs []error
	for _, e := range m.Files {
		if !filepath.IsLocal(filepath.FromSlash(e.Path)) {
			errs = append(errs, fmt.Errorf("%s: not a path inside the folder", e.Path))
			continue
		}
		size, sum, err := hashFile(filepath.Join(dir, filepath.FromSlash(e.Path)))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", e.Path, err))
		case size != e.Size || sum != e.SHA256:
			errs = append(errs, fmt.Errorf("%s: %d bytes, sha256 %s; the manifest says %d bytes, sha256 %s", e.Path, size, sum, e.Size, e.SHA256))
		}
	}
	return errors.Join(errs...)
}

func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
