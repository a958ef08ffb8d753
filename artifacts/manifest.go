package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

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

// Written remembers the size and sha256 of the files an attempt's
// evidence was written into, computed from the bytes as they were
// written, so that its manifest need not read them back. One serves one
// attempt folder (its Before and After, and the lab's steps.jsonl); it is
// safe for concurrent use, and the zero value is ready.
type Written struct {
	mu    sync.Mutex
	files map[string]*writtenFile
}

type writtenFile struct {
	h hash.Hash
	n int64
}

// WriteFile writes data into dir/rel (rel with forward slashes) as
// os.WriteFile does and remembers its sum. A failed write is forgotten,
// so the manifest reads what it left.
func (w *Written) WriteFile(dir, rel string, data []byte) error {
	err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), data, 0o644)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		delete(w.files, rel)
		return err
	}
	if w.files == nil {
		w.files = map[string]*writtenFile{}
	}
	f := &writtenFile{h: sha256.New(), n: int64(len(data))}
	f.h.Write(data)
	w.files[rel] = f
	return nil
}

// Appended adds p, just appended whole to the file rel, to its sum (the
// lab's steps.jsonl, written line by line). A file first seen here is
// taken to have been empty; one whose append failed must be Forgotten.
func (w *Written) Appended(rel string, p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.files == nil {
		w.files = map[string]*writtenFile{}
	}
	f := w.files[rel]
	if f == nil {
		f = &writtenFile{h: sha256.New()}
		w.files[rel] = f
	}
	f.h.Write(p)
	f.n += int64(len(p))
}

// reading hashes what is read through the returned reader; done, once
// that reader was read to its end, remembers it as rel's sum (the logs,
// hashed while they are parsed rather than read again for the manifest).
func (w *Written) reading(rel string, r io.Reader) (io.Reader, func()) {
	f := &writtenFile{h: sha256.New()}
	cw := &countWriter{w: f.h}
	return io.TeeReader(r, cw), func() {
		f.n = cw.n
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.files == nil {
			w.files = map[string]*writtenFile{}
		}
		w.files[rel] = f
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Forget drops what is known of rel: the manifest reads it instead.
func (w *Written) Forget(rel string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.files, rel)
}

// entry is rel's manifest entry when rel was written through w and the
// file still has the size written; anything else is read from disk.
func (w *Written) entry(rel string, size int64) (ManifestEntry, bool) {
	if w == nil {
		return ManifestEntry{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.files[rel]
	if f == nil || f.n != size {
		return ManifestEntry{}, false
	}
	return ManifestEntry{Path: rel, Size: f.n, SHA256: hex.EncodeToString(f.h.Sum(nil))}, true
}

// WriteManifest lists every regular file under dir (but the manifest
// itself) and writes dir/manifest.json atomically: a reader (and a run
// killed at any moment) sees the old manifest or the new one, never half
// of one. Entries are sorted by path. Files known to known (nil: none)
// are not read again.
//
// The manifest is not fsynced: the journal line that follows it is the
// attempt's durable record, and the evidence files it lists are not
// synced either, so a sync here would make only the list outlive a power
// cut, at the price of a flush per attempt (F_FULLFSYNC on macOS). After
// a power cut a manifest may be missing or empty like any evidence file;
// its reader (the feedback bundle) then lists the files without sums.
func WriteManifest(dir string, known *Written) (Manifest, error) {
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
		// The temporary files start with a dot and the target's name.
		if rel == ManifestFile || strings.HasPrefix(rel, "."+ManifestFile) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if e, ok := known.entry(rel, info.Size()); ok {
			m.Files = append(m.Files, e)
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
	if err := replaceFile(dir, ManifestFile, append(b, '\n')); err != nil {
		return Manifest{}, fmt.Errorf("write manifest of %s: %w", dir, err)
	}
	return m, nil
}

// replaceFile writes dir/name through a temporary file in dir (never
// $TMPDIR: a run killed mid-write leaves nothing outside its folder),
// renamed over name once whole.
func replaceFile(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "."+name+"."+randomHex(4))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
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
