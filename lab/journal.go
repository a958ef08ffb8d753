package lab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/internal/plainjson"
)

// Verdict is the outcome of one try of an attempt.
type Verdict string

const (
	// Pass: every probe held.
	Pass Verdict = "pass"
	// Fail: the product misbehaved. Never retried; repeats measure its rate.
	Fail Verdict = "fail"
	// Error: the lab could not do its job (boot, SSH, disk). Retried, and
	// reported apart so a broken Mac mini never reads as a regression.
	Error Verdict = "error"
)

// ProbeOutcome is what one probe saw.
type ProbeOutcome struct {
	Name         string            `json:"name"`
	Held         bool              `json:"held"`
	Message      string            `json:"message,omitempty"`
	Observations map[string]string `json:"observations,omitempty"`
}

// Record is one line of results.jsonl: one finished try of an attempt.
// The journal is the run's source of truth; reports, resume, merge and
// diff are all rebuilt from it.
type Record struct {
	Cell      string            `json:"cell"`
	Label     string            `json:"label"`
	Axes      map[string]string `json:"axes"`
	Repeat    int               `json:"repeat"`
	Try       int               `json:"try"`
	Final     bool              `json:"final"` // no further try follows
	Verdict   Verdict           `json:"verdict"`
	Reason    string            `json:"reason,omitempty"`
	Probes    []ProbeOutcome    `json:"probes"`
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Host      string            `json:"host"`
	Slot      int               `json:"slot,omitempty"` // 1-based within the host; 0 in journals older than it
	Provider  string            `json:"provider"`
	Simulated bool              `json:"simulated"`
	Dir       string            `json:"dir,omitempty"` // the attempt's folder, relative to the run folder
	// Triage labels a failing attempt by the signatures found in its
	// evidence; Missing lists evidence that could not be collected.
	Triage *artifacts.Triage `json:"triage,omitempty"`
	// Interrupted: the run was interrupted before this try reached its
	// verdict with its evidence, so it was cut short and is never final;
	// resume runs the attempt again as its next try, in a new folder.
	Interrupted bool `json:"interrupted,omitempty"`
	// Kept: the machine was left running after the run (--keep).
	Kept    bool                `json:"kept,omitempty"`
	Missing []artifacts.Missing `json:"missing,omitempty"`
	// Start is how the machine started, "restored" (a saved state) or
	// "cold", when its provider says; StartNote why a restore fell back to
	// a cold boot. ToSSH is the seconds from power-on until SSH answered.
	Start     string  `json:"start,omitempty"`
	StartNote string  `json:"start_note,omitempty"`
	ToSSH     float64 `json:"to_ssh,omitempty"`
	// Channel is how the lab reached the guest's sshd: "vsock" (the guest
	// agent's channel) or "tcp"; ChannelNote why it is not the agent's
	// channel though the image has the agent.
	Channel     string `json:"channel,omitempty"`
	ChannelNote string `json:"channel_note,omitempty"`
	// Quarantine, when set, says the host is broken (e.g. it leaked a VM
	// slot and needs a reboot): the scheduler gives it no more attempts,
	// and this try is run again elsewhere.
	Quarantine string `json:"quarantine,omitempty"`
	// Clock pairs readings of the guest's clock with the host's, at the
	// first step and, for a try that did not pass, before and after
	// collecting evidence, so that log lines and snapshots (the guest's
	// time) can be placed on the steps' timeline (the host's).
	Clock []ClockReading `json:"clock,omitempty"`
}

// ClockReading is the guest's clock (`date -u`, whole seconds) and the
// host's at the middle of the command that read it.
type ClockReading struct {
	Host  time.Time `json:"host"`
	Guest time.Time `json:"guest"`
}

// Starts and channels as the journal writes them.
const (
	StartRestored = "restored"
	StartCold     = "cold"
	ChannelVsock  = "vsock"
	ChannelTCP    = "tcp"
)

// AttemptKey identifies an attempt across tries.
func (r Record) AttemptKey() string { return fmt.Sprintf("%s-r%d", r.Cell, r.Repeat) }

// JournalFormat is the run folder format this sxlab writes (run.json
// "format"): 2 = every journal line ends in a CRC-32C checksum of itself,
// `,"sum":"xxxxxxxx"}`. Folders without "format" were written by sxlab
// before checksums; their lines are read as before (see ReadJournal).
const JournalFormat = 2

// MaxJournalLine bounds one journal line. A record is a few kilobytes
// (probes' observations, triage labels with log lines); a longer line is
// damage, reported by number, never a reason to stop reading.
const MaxJournalLine = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sumSuffix is how a checksummed line ends: `,"sum":"` 8 hex digits `"}`.
const (
	sumKey    = `,"sum":"`
	sumSuffix = len(sumKey) + 8 + 2
)

// frame turns a record's JSON object into its journal line: the object
// with a "sum" member holding the CRC-32C of the object without it, so the
// line is still JSON (jq reads it) and any torn or edited byte shows.
func frame(obj []byte) []byte {
	line := make([]byte, 0, len(obj)+sumSuffix+1)
	line = append(line, obj[:len(obj)-1]...)
	line = fmt.Appendf(line, `%s%08x"}`, sumKey, crc32.Checksum(obj, castagnoli))
	return append(line, '\n')
}

// unframe returns the object a checksummed line carries. framed is false
// for a line without a sum member at its end (an old sxlab's line).
func unframe(line []byte) (obj []byte, framed bool, err error) {
	n := len(line)
	if n < sumSuffix+2 || !bytes.HasSuffix(line, []byte(`"}`)) || !bytes.Equal(line[n-sumSuffix:n-10], []byte(sumKey)) {
		return line, false, nil
	}
	want64, err := strconv.ParseUint(string(line[n-10:n-2]), 16, 32)
	if err != nil {
		return line, false, nil
	}
	want := uint32(want64)
	obj = append(append([]byte(nil), line[:n-sumSuffix]...), '}')
	if got := crc32.Checksum(obj, castagnoli); got != want {
		return nil, true, fmt.Errorf("checksum %08x does not match the line's %08x: the line was edited or damaged", got, want)
	}
	return obj, true, nil
}

// Journal appends records to results.jsonl, one checksummed line each,
// synced to disk before Append returns: a crash or kill -9 loses at most
// the line being written, and that torn line is cut off the next time the
// journal is opened, so nothing is ever appended onto it.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
	size int64 // bytes of whole lines: where the next line starts
	// torn: a failed write may have left part of a line past size that
	// could not be cut off yet; the next Append cuts it first.
	torn bool
	cut  string
}

// OpenJournal opens (or creates) the journal for appending. A last line
// without its newline (a write cut short by a kill or a full disk) is cut
// off first and kept in results.jsonl.cut; Cut says so.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j := &Journal{f: f, path: path}
	if err := j.cutTornTail(); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// Cut describes the torn last line OpenJournal cut off, or is "".
func (j *Journal) Cut() string { return j.cut }

// cutTornTail truncates the file after its last newline.
func (j *Journal) cutTornTail() error {
	st, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	size := st.Size()
	end := size
	// Walk back from the end to the last newline, a block at a time.
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := j.f.ReadAt(buf[:n], end-n); err != nil {
			return fmt.Errorf("open journal: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	j.size = end
	if end == size {
		return nil
	}
	tail := make([]byte, size-end)
	if _, err := j.f.ReadAt(tail, end); err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	// Keep what is cut: it is evidence of what happened, not ours to lose.
	if err := appendFile(j.path+".cut", append(tail, '\n')); err != nil {
		return fmt.Errorf("open journal: keep the torn last line: %w", err)
	}
	if err := j.f.Truncate(end); err != nil {
		return fmt.Errorf("open journal: cut the torn last line: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	j.cut = fmt.Sprintf("%s: cut a torn last line (%d bytes without a newline: a write cut short by a kill or a full disk) back to the last whole line; the cut bytes are in %s.cut",
		filepath.Base(j.path), len(tail), filepath.Base(j.path))
	return nil
}

func appendFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Append writes one record and syncs it. A write that fails (a full disk)
// is cut back off, so the journal never holds half a line that the next
// one would continue.
func (j *Journal) Append(r Record) error {
	obj, err := plainjson.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal %s: %w", r.AttemptKey(), err)
	}
	line := frame(obj)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal is closed")
	}
	if j.torn {
		if err := j.f.Truncate(j.size); err != nil {
			return fmt.Errorf("journal %s: cut the torn line an earlier write left: %w", r.AttemptKey(), err)
		}
		j.torn = false
	}
	if _, err := j.f.Write(line); err != nil {
		j.torn = j.f.Truncate(j.size) != nil
		return fmt.Errorf("journal %s: %w", r.AttemptKey(), err)
	}
	if err := j.f.Sync(); err != nil {
		j.torn = j.f.Truncate(j.size) != nil
		return fmt.Errorf("journal %s: sync: %w", r.AttemptKey(), err)
	}
	j.size += int64(len(line))
	return nil
}

// Close closes the journal; later Appends fail.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// JournalDamage is a journal line that was excluded, and why.
type JournalDamage struct {
	Line int
	Err  string
}

func (d JournalDamage) String() string { return fmt.Sprintf("%s:%d: %s", JournalFile, d.Line, d.Err) }

// JournalCheck says what a journal line must be to be trusted.
type JournalCheck struct {
	// Legacy: the run folder was written by sxlab before checksums
	// (run.json has no "format"): lines without a sum are read as before,
	// up to the first line that has one (a resume by this sxlab).
	Legacy bool
	// Attempts, when not nil, are the attempts of the run's plan (by
	// AttemptKey); a line naming another is excluded.
	Attempts map[string]bool
}

// JournalRead is a journal as resume, reports, merge and `journal check`
// all see it: the good lines, and every line excluded with its number.
type JournalRead struct {
	Records []Record
	Lines   [][]byte // each record's line as written, newline included
	Damage  []JournalDamage
	// Torn: the last line has no newline; OpenJournal cuts it off.
	Torn bool
}

// CheckJournal reads a journal and checks every line: its checksum (or,
// in a legacy journal, that it has none), that it parses, names a cell, a
// repeat and a try, carries a known verdict, and names an attempt of the
// plan. A line that fails is excluded and reported by its number; a line
// longer than MaxJournalLine is skipped unread. Only a read error stops it.
func CheckJournal(r io.Reader, c JournalCheck) (JournalRead, error) {
	var out JournalRead
	br := bufio.NewReaderSize(r, MaxJournalLine+1)
	sawSum := false
	for n := 1; ; n++ {
		line, long, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return out, fmt.Errorf("read journal line %d: %w", n, err)
		}
		if len(line) == 0 && long == 0 && errors.Is(err, io.EOF) {
			return out, nil
		}
		bad := func(format string, a ...any) {
			out.Damage = append(out.Damage, JournalDamage{Line: n, Err: fmt.Sprintf(format, a...)})
		}
		switch {
		case long > 0:
			bad("the line is %d bytes, over the %d-byte bound of a journal line; not read", long, MaxJournalLine)
		case errors.Is(err, io.EOF):
			out.Torn = true
			bad("torn: the last line ends without a newline (a write cut short by a kill or a full disk)")
		default:
			if rec, why := checkLine(line, c, &sawSum); why != "" {
				bad("%s", why)
			} else {
				out.Records = append(out.Records, rec)
				out.Lines = append(out.Lines, line)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
	}
}

// readLine returns the next line with its newline (without one at the end
// of the input, with io.EOF), or, for a line over the bound, its length in
// long and no bytes.
func readLine(br *bufio.Reader) (line []byte, long int, err error) {
	b, err := br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return append([]byte(nil), b...), 0, err
	}
	long = len(b)
	for errors.Is(err, bufio.ErrBufferFull) {
		b, err = br.ReadSlice('\n')
		long += len(b)
	}
	if errors.Is(err, io.EOF) {
		err = nil // the over-long line is reported as such, torn or not
	}
	return nil, long, err
}

func checkLine(line []byte, c JournalCheck, sawSum *bool) (Record, string) {
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 {
		return Record{}, "empty line"
	}
	obj, framed, err := unframe(trimmed)
	switch {
	case err != nil:
		return Record{}, err.Error()
	case framed:
		*sawSum = true
	case !c.Legacy:
		return Record{}, "no checksum: every line of this journal ends in one, so this line was not written by sxlab"
	case *sawSum:
		return Record{}, "no checksum after lines that have one: this line was not written by sxlab"
	}
	var rec Record
	if err := json.Unmarshal(obj, &rec); err != nil {
		return Record{}, "not a journal record: " + err.Error()
	}
	switch {
	case rec.Cell == "" || rec.Repeat < 1:
		return Record{}, "no cell or repeat"
	case framed && rec.Try < 1:
		return Record{}, "no try number"
	case rec.Verdict != Pass && rec.Verdict != Fail && rec.Verdict != Error:
		return Record{}, fmt.Sprintf("unknown verdict %q (pass, fail or error)", rec.Verdict)
	case c.Attempts != nil && !c.Attempts[rec.AttemptKey()]:
		return Record{}, fmt.Sprintf("attempt %s (%s) is not in this run's plan", rec.AttemptKey(), rec.Label)
	}
	if rec.Try < 1 {
		rec.Try = 1 // the oldest journals numbered first tries 0
	}
	return rec, ""
}

// ReadJournal reads a journal without a plan to check it against,
// accepting lines without a checksum as an old sxlab wrote them. Run
// folders are read with ReadRunJournal, which knows their format and plan.
func ReadJournal(r io.Reader) (records []Record, damage []JournalDamage, err error) {
	jr, err := CheckJournal(r, JournalCheck{Legacy: true})
	return jr.Records, jr.Damage, err
}

// ReadRunJournal reads a run folder's journal, checked against its
// run.json (format) and plan.json (attempts): the one way resume, the
// reports, merge and `sxlab journal check` read a journal, so they agree
// on what it holds. A missing journal is an empty one.
func ReadRunJournal(dir string, info RunInfo, plan PlanInfo) (JournalRead, error) {
	f, err := os.Open(filepath.Join(dir, JournalFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return JournalRead{}, nil // started, nothing finished yet
	case err != nil:
		return JournalRead{}, err
	}
	defer f.Close()
	return CheckJournal(f, JournalCheck{Legacy: info.Format < JournalFormat, Attempts: plan.AttemptKeys()})
}

// Finished returns the attempts that have a final record: resume skips
// them and runs the rest.
func Finished(records []Record) map[string]Record {
	out := map[string]Record{}
	for _, r := range records {
		if r.Final {
			out[r.AttemptKey()] = r
		}
	}
	return out
}

// JournalRepair says what RepairJournal did.
type JournalRepair struct {
	Kept     int             // good lines written back
	Excluded []JournalDamage // lines left out
	Original string          // where the journal as it was is kept
}

// RepairJournal rewrites a run folder's journal from its good lines (as
// ReadRunJournal sees them), keeping the original beside it as
// results.jsonl.orig-<time>. The new journal replaces the old atomically:
// a reader sees one or the other. It takes the run folder's lock, so it
// never rewrites the journal of a live run; run.json records the repair.
func RepairJournal(path string, now time.Time) (JournalRepair, error) {
	dir, err := OpenRunDir(path)
	if err != nil {
		return JournalRepair{}, err
	}
	defer dir.Close()
	var info RunInfo
	if err := ReadJSON(path, RunFile, &info); err != nil {
		return JournalRepair{}, err
	}
	var plan PlanInfo
	if err := ReadJSON(path, PlanFile, &plan); err != nil {
		return JournalRepair{}, err
	}
	jr, err := ReadRunJournal(path, info, plan)
	if err != nil {
		return JournalRepair{}, err
	}
	rep := JournalRepair{Kept: len(jr.Records), Excluded: jr.Damage}
	if len(jr.Damage) == 0 {
		return rep, nil
	}
	journal := filepath.Join(path, JournalFile)
	rep.Original = journal + ".orig-" + now.UTC().Format("20060102-150405")
	if err := os.Link(journal, rep.Original); err != nil {
		if err := copyPlain(journal, rep.Original); err != nil {
			return rep, fmt.Errorf("keep the original journal: %w", err)
		}
	}
	if err := renameio.WriteFile(journal, bytes.Join(jr.Lines, nil), 0o644); err != nil {
		return rep, fmt.Errorf("rewrite the journal: %w", err)
	}
	info.Repairs = append(info.Repairs, fmt.Sprintf("%s: sxlab journal check --repair at %s kept %d line(s) and left out %d (the original is %s)",
		JournalFile, now.UTC().Format(time.RFC3339), rep.Kept, len(rep.Excluded), filepath.Base(rep.Original)))
	if err := dir.WriteJSON(RunFile, info); err != nil {
		return rep, err
	}
	return rep, nil
}

func copyPlain(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
