package artifacts

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// When evidence is collected (collect.on).
const (
	OnFailure = "failure"
	OnAlways  = "always"
	OnNever   = "never"
)

// DefaultLogPredicate is GUEST-REFERENCE's predicate for the logs of
// sysextd, NetworkExtension and XPC; the app's own subsystem is added to
// whatever predicate is used.
const DefaultLogPredicate = `subsystem == "com.apple.sx" OR process == "sysextd" OR subsystem == "com.apple.networkextension" OR process IN {"nesessionmanager","neagent","nehelper"} OR subsystem == "com.apple.xpc"`

// DefaultTimeout bounds one attempt's collection when Policy sets none.
const DefaultTimeout = 15 * time.Minute

// Guest-side limits: sysdiagnose takes minutes (GUEST-REFERENCE allows
// 10); log show over one attempt's window takes seconds.
const (
	sysdiagnoseTimeout = 10 * time.Minute
	logShowTimeout     = 5 * time.Minute
	downloadTries      = 3
)

// Policy is the evidence policy (the configuration's collect section).
type Policy struct {
	On          string        // OnFailure (default), OnAlways, OnNever
	Sysdiagnose bool          // take a sysdiagnose after a failure
	Predicate   string        // log show predicate; "" = DefaultLogPredicate
	Timeout     time.Duration // bounds Before and After each; 0 = DefaultTimeout
}

// App is what collection needs to know about the product.
type App struct {
	BundleID          string // the app's; its log subsystem, and the prefix of its package ids
	ExtensionBundleID string
	TeamID            string
	VPNService        string   // scutil --nc name; "" skips the status
	Packages          []string // package ids for pkgutil --pkg-info; none = those starting with BundleID
}

// Collector collects the evidence of attempts. One Collector serves every
// attempt of a run; it holds no per-attempt state, so attempts may run at
// once.
type Collector struct {
	Policy Policy
	App    App
}

// Option tunes one Before or After call.
type Option func(*options)

type options struct {
	progress guest.Progress
	phase    func(string)
	written  *Written
}

// WithProgress receives the sysdiagnose download's bytes, for a progress
// bar.
func WithProgress(p guest.Progress) Option { return func(o *options) { o.progress = p } }

// WithWritten shares one attempt's Written between its Before and After
// (and the lab's own files), so that the manifest reads none of the files
// written through it back. Without it each call keeps its own.
func WithWritten(w *Written) Option { return func(o *options) { o.written = w } }

// WithPhase receives what is being collected ("sysdiagnose", "state",
// "logs", "manifest"), for progress display.
func WithPhase(f func(what string)) Option { return func(o *options) { o.phase = f } }

// Result is what After collected.
type Result struct {
	// Facts hold the logs and the after-state for triage; the lab adds
	// the probes.
	Facts Facts
	// Sysdiagnose is the archive's path relative to the attempt folder,
	// "" when none was taken.
	Sysdiagnose string
	// Missing is the evidence that could not be collected, and why.
	Missing []Missing
}

func (c *Collector) on() string { return cmp.Or(c.Policy.On, OnFailure) }

// Predicate is the log show predicate: the policy's (or the default)
// joined with the app's own subsystem.
func (c *Collector) Predicate() string {
	p := cmp.Or(strings.TrimSpace(c.Policy.Predicate), DefaultLogPredicate)
	if c.App.BundleID == "" {
		return p
	}
	return fmt.Sprintf("(%s) OR subsystem == %q", p, c.App.BundleID)
}

// Before snapshots the app's state into state/before/ of attemptDir; the
// lab calls it right before the upgrade. Unless the policy is never it
// always runs, as the verdict is not known yet.
func (c *Collector) Before(ctx context.Context, g guest.Guest, attemptDir string, opts ...Option) []Missing {
	if c.on() == OnNever {
		return nil
	}
	s := c.newSession(g, attemptDir, opts)
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	s.phase("state")
	s.snapshot(ctx, BeforeDir)
	return s.missing
}

// After collects the evidence of a finished attempt into attemptDir:
// when the policy asks for it (on failure, or always), first the
// sysdiagnose of a failure, before anything else touches the machine;
// then the state/after/ snapshot; then the unified log since since (the
// guest's clock at the attempt's first step, see GuestNow) as
// logs.ndjson. Last, whatever the guest did, manifest.json lists every
// file of the folder. Collection failures are returned as Missing and
// never stop the rest; once the guest is gone the remaining items are
// skipped, each with the reason.
func (c *Collector) After(ctx context.Context, g guest.Guest, attemptDir string, failed bool, since time.Time, opts ...Option) Result {
	s := c.newSession(g, attemptDir, opts)
	res := Result{Facts: Facts{Failed: failed}}
	if on := c.on(); on == OnAlways || (on == OnFailure && failed) {
		cctx, cancel := context.WithTimeout(ctx, c.timeout())
		work := "/var/tmp/sxlab-collect-" + randomHex(4)
		if failed && c.Policy.Sysdiagnose {
			s.phase("sysdiagnose")
			res.Sysdiagnose = s.sysdiagnose(cctx, work)
		}
		s.phase("state")
		res.Facts.After = s.snapshot(cctx, AfterDir)
		s.phase("logs")
		res.Facts.Logs = s.logs(cctx, work, since, c.Predicate())
		s.cleanup(cctx, work)
		cancel()
	}
	s.phase("manifest")
	if _, err := WriteManifest(attemptDir, s.o.written); err != nil {
		s.miss(ManifestFile, err.Error())
	}
	res.Missing = s.missing
	return res
}

func (c *Collector) timeout() time.Duration {
	if c.Policy.Timeout > 0 {
		return c.Policy.Timeout
	}
	return DefaultTimeout
}

// guestClockLine prints the guest's clock in UTC as RFC 3339; BSD date
// has no fractions of a second.
var guestClockLine = guest.Join("date", "-u", "+%Y-%m-%dT%H:%M:%SZ")

// GuestNow reads the guest's clock (to the second), to start the log
// window of an attempt in the guest's time: the host's clock may differ.
func GuestNow(ctx context.Context, g guest.Guest) (time.Time, error) {
	res, err := g.Run(ctx, guest.Cmd{Line: guestClockLine, Timeout: 30 * time.Second})
	if err != nil {
		return time.Time{}, fmt.Errorf("read the guest's clock: %w", err)
	}
	if res.Exit != 0 {
		return time.Time{}, fmt.Errorf("read the guest's clock: date exited %d: %s", res.Exit, firstLine(res.Stderr, res.Stdout))
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(res.Stdout))
	if err != nil {
		return time.Time{}, fmt.Errorf("read the guest's clock: %q is not a UTC time", strings.TrimSpace(res.Stdout))
	}
	return t, nil
}

// LogStart formats t for `log show --start` ("YYYY-MM-DD HH:MM:SS+0000",
// one of the forms log(1) accepts), in UTC so the guest's zone does not
// matter.
func LogStart(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05-0700") }

// --- one call's session -----------------------------------------------------

// reconnecter is a guest connection that can be dialled again (the lab's
// connections can).
type reconnecter interface {
	Reconnect(ctx context.Context) error
}

// session is one Before or After call: where it writes, what is missing,
// and whether the guest is still there.
type session struct {
	c          *Collector
	g          guest.Guest
	dir        string
	o          options
	missing    []Missing
	gone       error // set once the guest cannot be reached: skip the rest
	reconnects int
}

func (c *Collector) newSession(g guest.Guest, dir string, opts []Option) *session {
	s := &session{c: c, g: g, dir: dir}
	for _, o := range opts {
		o(&s.o)
	}
	if s.o.written == nil {
		s.o.written = &Written{}
	}
	return s
}

func (s *session) phase(what string) {
	if s.o.phase != nil {
		s.o.phase(what)
	}
}

func (s *session) miss(what, reason string) {
	s.missing = append(s.missing, Missing{What: what, Reason: reason})
}

// run runs one command for what. A lost connection is re-dialled once
// when the guest allows it; a guest that stays away, or the end of ctx,
// skips every later command.
func (s *session) run(ctx context.Context, what, line string, timeout time.Duration) (guest.Result, bool) {
	if s.gone != nil {
		s.miss(what, "skipped: "+s.gone.Error())
		return guest.Result{}, false
	}
	res, err := s.g.Run(ctx, guest.Cmd{Line: line, Timeout: timeout})
	if err != nil && runLost(ctx, err) && s.reconnect(ctx) {
		res, err = s.g.Run(ctx, guest.Cmd{Line: line, Timeout: timeout})
	}
	if err != nil {
		if runLost(ctx, err) && s.gone == nil {
			s.gone = err
		}
		s.miss(what, err.Error())
		return res, false
	}
	return res, true
}

// runLost: a command that did not run for any reason but its own timeout
// means the guest (or the collection's time) is gone. The client does
// not classify every way a dying transport fails a session open ("ssh:
// unexpected packet in response to channel open", a reset socket), and
// a guest that cannot start a session will not start the next one.
func runLost(ctx context.Context, err error) bool {
	return ctx.Err() != nil || !errors.Is(err, guest.ErrCommandTimeout)
}

// lost tells a transfer error that ends the whole collection (a dead
// connection, the collection's time or the run being over) from one
// file's trouble (not there, local disk). A transport error the client
// did not classify as a lost connection counts too.
func (s *session) lost(ctx context.Context, err error) bool {
	var netErr *net.OpError
	return ctx.Err() != nil || errors.Is(err, guest.ErrConnectionLost) || errors.Is(err, guest.ErrClosed) ||
		errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// reconnect re-dials a lost guest, at most twice per call: a guest that
// died should cost the collection little.
func (s *session) reconnect(ctx context.Context) bool {
	r, ok := s.g.(reconnecter)
	if !ok || ctx.Err() != nil || s.reconnects >= 2 {
		return false
	}
	s.reconnects++
	if err := r.Reconnect(ctx); err != nil {
		s.gone = fmt.Errorf("guest unreachable: %w", err)
		return false
	}
	return true
}

// sysdiagnose takes one, downloads it (resuming a broken transfer from
// its .part file, verified by the guest's sha256) and returns its name in
// the attempt folder.
func (s *session) sysdiagnose(ctx context.Context, work string) string {
	const what = "sysdiagnose"
	name := "sysdiagnose_" + time.Now().UTC().Format("2006.01.02_15-04-05") + "_sxlab"
	remote := path.Join(work, name+".tar.gz")
	line := guest.Join("mkdir", "-p", work) +
		" && " + guest.Join("sudo", "sysdiagnose", "-u", "-b", "-Q", "-f", work, "-A", name) +
		" && " + guest.Join("sudo", "chmod", "a+r", remote) // sftp and shasum run as the login user
	res, ok := s.run(ctx, what, line, sysdiagnoseTimeout)
	if !ok {
		return ""
	}
	if res.Exit != 0 {
		s.miss(what, fmt.Sprintf("sysdiagnose exited %d: %s", res.Exit, firstLine(res.Stderr, res.Stdout)))
		return ""
	}
	file := name + ".tar.gz"
	if !s.download(ctx, what, remote, filepath.Join(s.dir, file), s.o.progress) {
		return ""
	}
	return file
}

// download fetches remote into local. A transfer broken by a lost
// connection is resumed after a reconnect (guest.Client.Download keeps
// local+".part" and continues from its size); a checksum mismatch starts
// over once.
func (s *session) download(ctx context.Context, what, remote, local string, p guest.Progress) bool {
	var err error
	for try := 0; try < downloadTries && s.gone == nil; try++ {
		if err = s.g.Download(ctx, remote, local, p); err == nil {
			return true
		}
		if s.lost(ctx, err) {
			if !s.reconnect(ctx) && s.gone == nil {
				s.gone = err
			}
			continue
		}
		if !errors.Is(err, guest.ErrChecksumMismatch) {
			break // not something a retry mends
		}
	}
	var reason string
	if err != nil {
		reason = err.Error()
	} else {
		reason = "skipped: " + s.gone.Error()
	}
	if st, serr := os.Stat(local + ".part"); serr == nil {
		reason += fmt.Sprintf(" (the %d bytes received are kept in %s)", st.Size(), filepath.Base(local)+".part")
	}
	s.miss(what, reason)
	return false
}

// logs runs log show over the window into a guest file (its output may
// be far over what a command's capture keeps), downloads it as
// logs.ndjson and parses it. A zero since falls back to the last boot,
// which for a clone booted for this attempt is the same window.
func (s *session) logs(ctx context.Context, work string, since time.Time, predicate string) []guest.LogEntry {
	const what = "logs"
	remote := path.Join(work, LogsFile)
	args := []string{"log", "show", "--style", "ndjson", "--info", "--debug"}
	if since.IsZero() {
		args = append(args, "--last", "boot")
	} else {
		args = append(args, "--start", LogStart(since))
	}
	args = append(args, "--predicate", predicate)
	line := guest.Join("mkdir", "-p", work) + " && " + guest.Join(args...) + " > " + guest.Quote(remote)
	res, ok := s.run(ctx, what, line, logShowTimeout)
	if !ok {
		return nil
	}
	if res.Exit != 0 {
		s.miss(what, fmt.Sprintf("log show exited %d: %s", res.Exit, firstLine(res.Stderr, res.Stdout)))
		return nil
	}
	local := filepath.Join(s.dir, LogsFile)
	if !s.download(ctx, what, remote, local, nil) {
		return nil
	}
	f, err := os.Open(local)
	if err != nil {
		s.miss(what, err.Error())
		return nil
	}
	defer f.Close()
	// Hashed for the manifest on the way, and to its end: the file is
	// read once.
	r, done := s.o.written.reading(LogsFile, f)
	entries, err := guest.ParseLog(r)
	if err != nil && !errors.Is(err, guest.ErrEmptyInput) {
		s.miss(what, fmt.Sprintf("%s kept, but not read: %v", LogsFile, err))
	}
	if _, cerr := io.Copy(io.Discard, r); cerr == nil {
		done()
	}
	return entries
}

// cleanup removes the guest's work folder: an ssh host is not thrown
// away after the attempt. Best effort, and not evidence.
func (s *session) cleanup(ctx context.Context, work string) {
	if s.gone != nil || ctx.Err() != nil {
		return
	}
	_, _ = s.g.Run(ctx, guest.Cmd{Line: guest.Join("sudo", "rm", "-rf", work), Timeout: time.Minute})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand does not fail on supported platforms
	return hex.EncodeToString(b)
}
