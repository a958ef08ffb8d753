package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyCache keeps known_hosts files in memory for the connections of
// one process (one sxlab run): a run's file gains a line per machine, and
// reading it whole for every connection made a run quadratic (2.27 ms a
// check at 2,400 lines, 14 ms at 10,000). The file stays the record: new
// keys are appended to it at once, and what others append is read on the
// next check, from where the last read stopped. Safe for concurrent use.
type HostKeyCache struct {
	mu    sync.Mutex
	files map[string]*knownHostsFile
}

// NewHostKeyCache returns an empty cache; give it to every Dial of a run
// through Options.HostKeyCache.
func NewHostKeyCache() *HostKeyCache {
	return &HostKeyCache{files: map[string]*knownHostsFile{}}
}

func (c *HostKeyCache) file(path string) *knownHostsFile {
	if c == nil {
		return &knownHostsFile{path: path}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.files[path]
	if !ok {
		f = &knownHostsFile{path: path}
		c.files[path] = f
	}
	return f
}

// knownHostsFile is one known_hosts file as read so far.
type knownHostsFile struct {
	path string

	mu     sync.Mutex
	info   os.FileInfo // of the file when last read; nil before
	read   int64       // bytes parsed: whole lines only
	lines  int
	hosts  map[string][]knownKey // by host name as written (knownhosts.Normalize)
	opaque bool                  // a hashed name, pattern or marker: only knownhosts can judge it
}

type knownKey struct {
	key  ssh.PublicKey
	line int
}

// refresh reads what was appended since the last read. A file that was
// replaced or shrank is read again from the start.
func (f *knownHostsFile) refresh() error {
	info, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		f.reset(nil)
		return nil
	}
	if err != nil {
		return err
	}
	if f.info != nil && os.SameFile(f.info, info) && info.Size() == f.read {
		return nil
	}
	if f.info == nil || !os.SameFile(f.info, info) || info.Size() < f.read {
		f.reset(info)
	}
	file, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err := file.Seek(f.read, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReader(file)
	for {
		text, err := r.ReadBytes('\n')
		if err == io.EOF {
			break // a line still being written is read next time
		}
		if err != nil {
			return err
		}
		f.read += int64(len(text))
		f.lines++
		f.parse(text)
	}
	f.info = info
	return nil
}

func (f *knownHostsFile) reset(info os.FileInfo) {
	f.info, f.read, f.lines, f.opaque = info, 0, 0, false
	f.hosts = map[string][]knownKey{}
}

// parse takes one line. Lines knownhosts itself would not take are left to
// it (opaque), so the cache never accepts what the file refuses.
func (f *knownHostsFile) parse(text []byte) {
	trimmed := bytes.TrimSpace(text)
	if len(trimmed) == 0 || trimmed[0] == '#' {
		return
	}
	marker, hosts, key, _, _, err := ssh.ParseKnownHosts(trimmed)
	if err != nil || marker != "" {
		f.opaque = true
		return
	}
	for _, h := range hosts {
		if h == "" || strings.ContainsAny(h, "*?!|") {
			f.opaque = true
			continue
		}
		f.hosts[h] = append(f.hosts[h], knownKey{key: key, line: f.lines})
	}
}

// lookup says whether key is recorded for name (host:port): true when it
// is, false when the name is unknown, a *HostKeyChangedError when the name
// is known with other keys, and a *permanentError when the file is
// unusable.
func (f *knownHostsFile) lookup(name string, remote net.Addr, key ssh.PublicKey) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.refresh(); err != nil {
		return false, &permanentError{fmt.Errorf("known_hosts: %w", err)}
	}
	if f.opaque {
		return f.lookupSlow(name, remote, key)
	}
	label := knownhosts.Normalize(name)
	known := f.hosts[label]
	if len(known) == 0 {
		return false, nil
	}
	for _, k := range known {
		if bytes.Equal(k.key.Marshal(), key.Marshal()) {
			return true, nil
		}
	}
	want := known[0]
	for _, k := range known {
		if k.key.Type() == key.Type() {
			want = k
			break
		}
	}
	return false, &HostKeyChangedError{Host: label, Want: ssh.FingerprintSHA256(want.key),
		Got: ssh.FingerprintSHA256(key), Source: fmt.Sprintf("%s:%d", f.path, want.line)}
}

// lookupSlow asks knownhosts, which reads the whole file: for files with
// hashed names, patterns or markers, which sxlab never writes.
func (f *knownHostsFile) lookupSlow(name string, remote net.Addr, key ssh.PublicKey) (bool, error) {
	cb, err := knownhosts.New(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, &permanentError{fmt.Errorf("known_hosts: %w", err)}
	}
	if remote == nil { // knownhosts needs one; only the name is used
		remote = &net.TCPAddr{IP: net.IPv4zero}
	}
	err = cb(name, remote, key)
	if err == nil {
		return true, nil
	}
	ke, ok := errors.AsType[*knownhosts.KeyError](err)
	if !ok {
		return false, &permanentError{fmt.Errorf("known_hosts %s: %w", f.path, err)}
	}
	if len(ke.Want) == 0 {
		return false, nil
	}
	want := ke.Want[0]
	for _, w := range ke.Want {
		if w.Key.Type() == key.Type() {
			want = w
			break
		}
	}
	return false, &HostKeyChangedError{Host: knownhosts.Normalize(name), Want: ssh.FingerprintSHA256(want.Key),
		Got: ssh.FingerprintSHA256(key), Source: fmt.Sprintf("%s:%d", want.Filename, want.Line)}
}

// keyType is the key type recorded for name when there is exactly one,
// else "" (also for files only knownhosts can read: no hint, still checked).
func (f *knownHostsFile) keyType(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refresh() != nil || f.opaque {
		return ""
	}
	typ := ""
	for _, k := range f.hosts[knownhosts.Normalize(name)] {
		if typ != "" && typ != k.key.Type() {
			return ""
		}
		typ = k.key.Type()
	}
	return typ
}

// add records key for name. One short O_APPEND write per line keeps lines
// whole when several processes share the file; the next refresh reads it
// back like any other line.
func (f *knownHostsFile) add(name string, key ssh.PublicKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, err := os.OpenFile(f.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	_, err = file.WriteString(knownhosts.Line([]string{name}, key) + "\n")
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	return nil
}
