package lab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

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

// Journal appends records to results.jsonl, one line each, synced to disk
// before Append returns: a crash or kill -9 loses at most the line being
// written, and the reader skips a torn last line.
type Journal struct {
	mu sync.Mutex
	f  *os.File
}

// OpenJournal opens (or creates) the journal for appending.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &Journal{f: f}, nil
}

// Append writes one record and syncs it.
func (j *Journal) Append(r Record) error {
	b, err := plainjson.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal %s: %w", r.AttemptKey(), err)
	}
	b = append(b, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal is closed")
	}
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("journal %s: %w", r.AttemptKey(), err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal %s: sync: %w", r.AttemptKey(), err)
	}
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

// JournalDamage describes lines ReadJournal could not use.
type JournalDamage struct {
	Line int
	Err  string
}

// ReadJournal reads every record. A line that does not parse is reported
// in damage and skipped, so one torn line (the write a kill interrupted)
// does not hide the rest of the run.
func ReadJournal(r io.Reader) (records []Record, damage []JournalDamage, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			damage = append(damage, JournalDamage{Line: n, Err: err.Error()})
			continue
		}
		if rec.Cell == "" || rec.Repeat < 1 || rec.Verdict == "" {
			damage = append(damage, JournalDamage{Line: n, Err: "missing cell, repeat or verdict"})
			continue
		}
		records = append(records, rec)
	}
	if err := sc.Err(); err != nil {
		return records, damage, fmt.Errorf("read journal: %w", err)
	}
	return records, damage, nil
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
