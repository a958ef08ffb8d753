package lab

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/renameio/v2"

	"github.com/sxlab/sxlab/internal/plainjson"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/packages"
)

// Files of a run folder (see ARCHITECTURE.md, "Run folder").
const (
	RunFile     = "run.json"
	PlanFile    = "plan.json"
	JournalFile = "results.jsonl"
	lockFile    = ".lock"
)

// ErrRunLocked is returned when another sxlab process holds a run folder.
var ErrRunLocked = errors.New("run folder is in use by another sxlab")

// RunInfo is run.json: what a person (or merge, or resume) needs to know
// about how the run was made.
type RunInfo struct {
	ID   string `json:"id"`
	Lab  string `json:"lab"`
	Tool string `json:"tool"` // the sxlab (version and commit) that started the run
	// Format is the run folder's format (JournalFormat when this sxlab
	// made it); absent in folders of sxlab before journal checksums,
	// whose journals are read as before.
	Format int `json:"format,omitempty"`
	// Resumed lists each resume: which sxlab, when.
	Resumed []Resume `json:"resumed,omitempty"`
	// Repairs say what was done to the journal to keep it whole (a torn
	// last line cut off on resume, lines excluded, `journal check
	// --repair`), kept across resumes.
	Repairs    []string  `json:"repairs,omitempty"`
	Started    time.Time `json:"started"`
	Seed       int64     `json:"seed"`
	Shard      string    `json:"shard,omitempty"` // "2/3"
	PlanDigest string    `json:"plan_digest"`     // the whole plan's, shared by its shards
	Hosts      []Host    `json:"hosts"`
	Providers  []string  `json:"providers"`
	Simulated  bool      `json:"simulated"`   // any host is simulated: results are not about real macOS
	Config     Config    `json:"config"`      // snapshot, secrets redacted
	ConfigFile string    `json:"config_file"` // where it was read from
	ConfigDir  string    `json:"config_dir"`  // base of its relative paths, for resume
	// MergedFrom names the runs (shards) a merged run was joined from.
	MergedFrom []string `json:"merged_from,omitempty"`
	// Notes say what shaped the run beyond the configuration, such as a
	// host that restores an image into fewer clones than it has slots.
	Notes []string `json:"notes,omitempty"`
	// Preflight is `sxlab preflight` over this run's upgrade paths, run
	// before the first attempt (absent when the caller did not run it).
	Preflight *packages.Report `json:"preflight,omitempty"`
	// Quarantined names the hosts taken out of the run because they are
	// broken (e.g. leaked a VM slot) and what fixes them.
	Quarantined []QuarantinedHost `json:"quarantined,omitempty"`
}

// QuarantinedHost is a host the run stopped giving attempts to.
type QuarantinedHost struct {
	Host   string `json:"host"`
	Reason string `json:"reason"`
}

// Resume is one `sxlab run --resume` of a run folder.
type Resume struct {
	Tool string    `json:"tool"`
	At   time.Time `json:"at"`
}

// PlanInfo is plan.json: the whole plan and this run's share of it.
type PlanInfo struct {
	Digest string `json:"digest"`
	// Inputs are what decides results besides the attempts, each with its
	// value or digest (see PlanInputs); Digest covers them, and resume
	// names those that changed. Absent in folders of older sxlab.
	Inputs   map[string]string `json:"inputs,omitempty"`
	Cells    []PlanCell        `json:"cells"`
	Attempts []PlanAttempt     `json:"attempts"` // this run's (this shard's)
	Total    int               `json:"total"`    // attempts in the whole plan
}

// PlanCell is one cell of the plan.
type PlanCell struct {
	ID    string            `json:"id"`
	Label string            `json:"label"`
	Axes  map[string]string `json:"axes"`
}

// PlanAttempt is one attempt of this run.
type PlanAttempt struct {
	Cell   string `json:"cell"`
	Repeat int    `json:"repeat"`
}

// AttemptKeys are the keys (Record.AttemptKey) of this run's attempts.
func (p PlanInfo) AttemptKeys() map[string]bool {
	out := make(map[string]bool, len(p.Attempts))
	for _, a := range p.Attempts {
		out[fmt.Sprintf("%s-r%d", a.Cell, a.Repeat)] = true
	}
	return out
}

// PlanDigest identifies a plan by its attempts and its inputs (seed,
// images, scenario, probes, packages: PlanInputs), so shards of one plan
// can be told from shards of another when merged, and a resume from a
// new run.
func PlanDigest(p matrices.Plan, inputs map[string]string) string {
	h := sha256.New()
	for _, a := range p.Attempts {
		fmt.Fprintf(h, "%s\n", a.ID())
	}
	if len(inputs) > 0 {
		fmt.Fprintf(h, "inputs\n")
		for _, k := range sortedKeys(inputs) {
			fmt.Fprintf(h, "%s=%s\n", k, inputs[k])
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// NewPlanInfo describes shard, a share of whole made from inputs.
func NewPlanInfo(shard, whole matrices.Plan, inputs map[string]string) PlanInfo {
	info := PlanInfo{Digest: PlanDigest(whole, inputs), Inputs: inputs, Total: len(whole.Attempts)}
	for _, c := range whole.Cells {
		info.Cells = append(info.Cells, PlanCell{ID: c.ID, Label: c.Label, Axes: c.Values})
	}
	for _, a := range shard.Attempts {
		info.Attempts = append(info.Attempts, PlanAttempt{Cell: a.Cell.ID, Repeat: a.Repeat})
	}
	return info
}

// RunDir is an open run folder, locked by this process.
type RunDir struct {
	Path string
	lock *flock.Flock
}

// NewRunID makes a run ID that sorts by time and does not collide when
// two shards start in the same second.
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// CreateRunDir makes runs/<id> and locks it.
func CreateRunDir(runsDir, id string) (*RunDir, error) {
	path := filepath.Join(runsDir, id)
	if err := os.MkdirAll(filepath.Join(path, "cells"), 0o755); err != nil {
		return nil, fmt.Errorf("create run folder: %w", err)
	}
	return OpenRunDir(path)
}

// OpenRunDir locks an existing run folder (for resume). Another live
// sxlab on the same folder is ErrRunLocked; a dead one's lock is free.
func OpenRunDir(path string) (*RunDir, error) {
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("run folder %s: not found", path)
	}
	l := flock.New(filepath.Join(path, lockFile))
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock run folder %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: %w", path, ErrRunLocked)
	}
	return &RunDir{Path: path, lock: l}, nil
}

// Close releases the lock.
func (d *RunDir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Unlock()
	d.lock = nil
	return err
}

// WriteJSON writes a file of the run folder atomically: a reader sees the
// old file or the new one, never half of one.
func (d *RunDir) WriteJSON(name string, v any) error {
	b, err := plainjson.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := renameio.WriteFile(filepath.Join(d.Path, name), append(b, '\n'), 0o644, renameio.WithTempDir(d.Path)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// ReadJSON reads a file of a run folder.
func ReadJSON(dir, name string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// AttemptDir is the folder of one try of an attempt, relative to the run
// folder: cells/<cell>/<repeat>[-try<n>].
func AttemptDir(cell string, repeat, try int) string {
	name := fmt.Sprintf("%d", repeat)
	if try > 1 {
		name = fmt.Sprintf("%d-try%d", repeat, try)
	}
	return filepath.Join("cells", cell, name)
}
