package guest

import (
	"os"
	"sync"
	"time"
)

// FileSums remembers the sha256 of the local files uploads read, so that
// a run which uploads the same sxlab-probe (or package) in every attempt
// hashes it once, not once per attempt. Give one to every Dial of a run
// through Options.FileSums; it is safe for concurrent use.
//
// A sum is keyed by the file's identity: path, device, inode, size,
// modification and status-change time. Any write to the file changes its
// ctime, which no program can set back, and a replaced file is another
// inode; a sum is only remembered when both times are older than the
// hashing by more than the coarsest timestamp a Mac or Linux file system
// keeps (HFS+: 1 s), so that a write in the same timestamp tick cannot
// look like the file that was hashed. Even then the sum is only what
// the guest's `shasum -a 256` is compared with: a wrong one would be a
// loud ErrChecksumMismatch (after which it is forgotten), never bytes
// taken for others.
type FileSums struct {
	mu   sync.Mutex
	sums map[string]fileSum // by path
	now  func() time.Time   // when hashing starts; a test moves it
}

type fileSum struct {
	id  fileID
	sum string // hex
}

// fileID is what must stay the same for a remembered sum to hold.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // ns since the epoch
}

// sumMargin is how much older than the hashing a file's times must be
// for its sum to be remembered: more than any file system's timestamp
// granularity the lab runs on (ext4 and APFS: ns, HFS+: 1 s).
const sumMargin = 2 * time.Second

// NewFileSums returns an empty cache.
func NewFileSums() *FileSums { return &FileSums{sums: map[string]fileSum{}, now: time.Now} }

// start is the time hashing starts, which remember compares the file's
// times with.
func (s *FileSums) start() time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.now()
}

// lookup returns the remembered sum of path, whose identity is id.
func (s *FileSums) lookup(path string, id fileID, ok bool) (string, bool) {
	if s == nil || !ok {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, found := s.sums[path]
	if !found || e.id != id {
		return "", false
	}
	return e.sum, true
}

// remember stores sum for path when its identity is one that no later
// write can keep (see FileSums); hashed is when its hashing started.
func (s *FileSums) remember(path string, id fileID, ok bool, sum string, hashed time.Time) {
	if s == nil || !ok {
		return
	}
	limit := hashed.Add(-sumMargin).UnixNano()
	if id.mtime >= limit || id.ctime >= limit {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sums[path] = fileSum{id: id, sum: sum}
}

// forget drops what is remembered of path.
func (s *FileSums) forget(path string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sums, path)
}

// identity is info's fileID; false where the platform does not say
// (then nothing is remembered).
func identity(info os.FileInfo) (fileID, bool) {
	id, ok := statID(info)
	id.size = info.Size()
	return id, ok
}
