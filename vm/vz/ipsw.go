package vz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// IPSWDir is the folder of a store that keeps downloaded restore images,
// so that a second `image create` from the same URL downloads nothing.
const IPSWDir = "ipsw"

// LatestIPSW is the --ipsw value that asks Virtualization.framework for
// the newest restore image this host supports.
const LatestIPSW = "latest"

// partSuffix marks a download in progress; it is resumed next time.
const partSuffix = ".part"

// IPSWOptions says where restore images go and how to fetch them.
type IPSWOptions struct {
	Store     string       // downloads go to Store/ipsw
	Installer Installer    // answers "latest"
	Client    *http.Client // nil: http.DefaultClient
	// Progress, if set, gets the bytes on disk and the total (-1 when the
	// server does not say) as a download goes.
	Progress func(done, total int64)
}

// ResolveIPSW turns --ipsw into the path of a restore image on this
// machine: a local file, an http(s) URL (downloaded into the store, or
// found there from an earlier download) or "latest".
func ResolveIPSW(ctx context.Context, arg string, o IPSWOptions) (string, error) {
	switch {
	case arg == "":
		return "", errors.New("no restore image: give --ipsw a file, an http(s) URL or latest")
	case arg == LatestIPSW:
		if o.Installer == nil {
			return "", errors.New("find the latest restore image: no installer")
		}
		u, err := o.Installer.LatestURL(ctx)
		if err != nil {
			return "", fmt.Errorf("find the latest restore image: %w", err)
		}
		return DownloadIPSW(ctx, u, o)
	case strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://"):
		return DownloadIPSW(ctx, arg, o)
	case strings.Contains(arg, "://"):
		return "", fmt.Errorf("restore image %s: only http and https URLs are downloaded; give a local file path otherwise", arg)
	}
	p := ExpandHome(arg)
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("restore image %s: no such file (give an .ipsw file, an http(s) URL or latest)", p)
	case err != nil:
		return "", fmt.Errorf("restore image %s: %w", p, err)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("restore image %s: not a regular file (an .ipsw restore image is one file)", p)
	}
	return p, nil
}

// DownloadIPSW downloads rawURL into Store/ipsw under the last element of
// its path and returns the file's path. A file already there is used as
// it is, without asking the network. The download goes through a .part
// file that an interrupted download leaves behind and the next call
// resumes with an HTTP Range request.
func DownloadIPSW(ctx context.Context, rawURL string, o IPSWOptions) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("download %s: not an http(s) URL", rawURL)
	}
	base := path.Base(u.Path)
	if base == "" || base == "." || base == "/" || base == ".." || strings.HasPrefix(base, ".") {
		return "", fmt.Errorf("download %s: the URL path ends in no file name to save it under", rawURL)
	}
	dir := filepath.Join(o.Store, IPSWDir)
	dest := filepath.Join(dir, base)
	if fi, err := os.Stat(dest); err == nil && fi.Mode().IsRegular() {
		return dest, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("download %s: %w", rawURL, err)
	}
	part := dest + partSuffix
	// A server that cannot resume where the .part ends (416, or a range
	// elsewhere) gets one fresh try from the start.
	for range 2 {
		complete, err := fetch(ctx, rawURL, part, o)
		if err != nil {
			return "", fmt.Errorf("download %s: %w", rawURL, err)
		}
		if complete {
			if err := os.Rename(part, dest); err != nil {
				return "", fmt.Errorf("download %s: %w", rawURL, err)
			}
			return dest, nil
		}
		if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("download %s: start over: %w", rawURL, err)
		}
	}
	return "", fmt.Errorf("download %s: the server does not send the file from its start when asked for all of it", rawURL)
}

// fetch appends to part what the server has beyond it. It reports false,
// with no error, when the server cannot send the range asked for.
func fetch(ctx context.Context, rawURL, part string, o IPSWOptions) (complete bool, err error) {
	var have int64
	if fi, err := os.Stat(part); err == nil {
		have = fi.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return false, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	flags := os.O_WRONLY | os.O_CREATE
	total := int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, size, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return false, nil
		}
		flags |= os.O_APPEND
		total = size
		if total < 0 && resp.ContentLength >= 0 {
			total = have + resp.ContentLength
		}
	case resp.StatusCode == http.StatusOK:
		// Ignored Range, or nothing to resume: the body is the whole file.
		flags |= os.O_TRUNC
		have = 0
		total = resp.ContentLength
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		if _, size, _ := contentRange(resp.Header.Get("Content-Range")); size == have {
			return true, nil // the .part held the whole file already
		}
		return false, nil
	default:
		return false, fmt.Errorf("HTTP %s", resp.Status)
	}

	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return false, err
	}
	w := &countingWriter{w: f, done: have, total: total, progress: o.Progress}
	w.report()
	_, copyErr := io.Copy(w, resp.Body)
	closeErr := f.Close()
	switch {
	case copyErr != nil:
		return false, fmt.Errorf("interrupted after %d of %s bytes (%s is resumed next time): %w", w.done, sizeWords(total), part, copyErr)
	case closeErr != nil:
		return false, closeErr
	case total >= 0 && w.done != total:
		return false, fmt.Errorf("the connection ended after %d of %d bytes (%s is resumed next time)", w.done, total, part)
	}
	return true, nil
}

func sizeWords(total int64) string {
	if total < 0 {
		return "an unknown number of"
	}
	return strconv.FormatInt(total, 10)
}

// contentRange reads "bytes START-END/SIZE" or "bytes */SIZE"; size is -1
// when the server writes *.
func contentRange(h string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !found {
		return 0, -1, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, -1, false
	}
	size = -1
	if sz != "*" {
		n, err := strconv.ParseInt(sz, 10, 64)
		if err != nil {
			return 0, -1, false
		}
		size = n
	}
	if rng == "*" {
		return 0, size, true
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, -1, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, -1, false
	}
	return start, size, true
}

// countingWriter reports the bytes on disk after every write.
type countingWriter struct {
	w           io.Writer
	done, total int64
	progress    func(done, total int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.done += int64(n)
	c.report()
	return n, err
}

func (c *countingWriter) report() {
	if c.progress != nil {
		c.progress(c.done, c.total)
	}
}
