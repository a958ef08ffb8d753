package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/packages"
	"github.com/sxlab/sxlab/vm"
)

// RunOptions says what to run and with what.
type RunOptions struct {
	Loaded *Loaded
	Plan   PlanOptions
	// Resume names a run folder whose attempts without a final record are
	// run again; the plan must be the one that run was made with.
	Resume string
	Tool   string // version string for run.json
	// NewProvider makes the provider of a host (the CLI maps names to
	// vm/sim, vm/vz, ...); it is called once per host, with the host's
	// paths and credentials resolved (ResolveHost).
	NewProvider func(h Host, seed int64) (vm.Provider, error)
	Dial        DialFunc
	LookupEnv   func(string) (string, bool)
	// Started, Phase and Finished report progress. Started comes once,
	// before the first attempt: total attempts of the run, done already
	// (resumed). Finished receives every try's record, retried errors
	// (Final false) included; done counts final records.
	Started  func(total, done int)
	Phase    func(slot Slot, a matrices.Attempt, phase string)
	Finished func(r Record, done, total int)
	// Transfer, when set, shows an attempt's sysdiagnose download.
	Transfer func(slot Slot, a matrices.Attempt) guest.Progress
	// Note receives each of run.json's notes before the first attempt.
	Note func(string)
	// ProbeBinary gives the local darwin/arm64 sxlab-probe for the
	// mach-lookup and xpc-connect probes (the CLI builds it with
	// guestbin); called only when such a probe runs.
	ProbeBinary func(ctx context.Context) (string, error)
	// Preflight, when set, is recorded in run.json.
	Preflight *packages.Report
	// Warn receives, before the first attempt, each journal line a resume
	// leaves out and what was cut or repaired (run.json's repairs): shown
	// whatever the progress display, since results are at stake.
	Warn func(string)
	// Keep leaves the machine of the first failing attempt running; the
	// result's Kept says which, and the caller deletes it when done.
	Keep bool
	// Created, when set, learns a new run's folder as soon as it exists:
	// when Run then fails before its first attempt (no result), the
	// caller may remove it (a full disk must not leave an empty folder).
	Created func(dir string)
	// RequireRestore makes a restore that fell back to a cold boot an
	// error (run --require-restore).
	RequireRestore bool
	// CheckImages boots each image the attempts use once, before the
	// first attempt, for golden.Preflight; a FAILURE stops the run with
	// ErrImageUnfit (imagecheck.go).
	CheckImages bool
	// Tuning for tests.
	Poll, Wait, CleanupTimeout time.Duration
}

// RunResult is what a run leaves for the summary.
type RunResult struct {
	Dir       string
	Info      RunInfo
	Records   []Record // every final record of the run, resumed ones included
	Cells     []CellSummary
	Remaining int // attempts without a final record
	// Kept is the machine left running by RunOptions.Keep, or nil.
	Kept *Kept
}

// Run runs the plan and journals every try. It returns the result even
// when interrupted (ErrInterrupted), so the caller can summarise what was
// done.
func Run(ctx context.Context, o RunOptions) (*RunResult, error) {
	l := o.Loaded
	cfg := &l.Config
	shard, whole, err := cfg.Plan(o.Plan)
	if err != nil {
		return nil, err
	}
	images, err := l.ResolveImages(o.LookupEnv)
	if err != nil {
		return nil, err
	}
	app, err := l.StepsApp()
	if err != nil {
		return nil, err
	}
	probes, err := cfg.StepsProbes()
	if err != nil {
		return nil, err
	}

	inputs, err := l.PlanInputs()
	if err != nil {
		return nil, err
	}
	planInfo := NewPlanInfo(shard, whole, inputs)

	var dir *RunDir
	var info RunInfo
	var prev JournalRead
	var repairs []string // what this run did or found in the journal, for stderr and run.json
	if o.Resume != "" {
		if dir, err = OpenRunDir(o.Resume); err != nil {
			return nil, err
		}
		if info, prev, repairs, err = resumeRun(dir, whole, inputs, o.Tool); err != nil {
			dir.Close()
			return nil, fmt.Errorf("resume %s: %w", o.Resume, err)
		}
	} else {
		id := NewRunID(time.Now())
		if dir, err = CreateRunDir(cfg.Lab.RunsDir, id); err != nil {
			return nil, err
		}
		if o.Created != nil {
			o.Created(dir.Path)
		}
		info = RunInfo{ID: id, Lab: cfg.Lab.Name, Tool: o.Tool, Format: JournalFormat, Started: time.Now().UTC(), Seed: cfg.Lab.Seed,
			PlanDigest: planInfo.Digest, Hosts: cfg.Redact().Hosts, Config: cfg.Redact(),
			ConfigFile: l.File, ConfigDir: l.Dir}
		info.Shard = o.Plan.ShardName()
	}
	defer dir.Close()
	journal, err := OpenJournal(filepath.Join(dir.Path, JournalFile))
	if err != nil {
		return nil, err
	}
	defer journal.Close()
	if cut := journal.Cut(); cut != "" {
		repairs = append(repairs, cut)
	}
	for _, r := range repairs {
		if !slices.Contains(info.Repairs, r) {
			info.Repairs = append(info.Repairs, r)
		}
		if o.Warn != nil {
			o.Warn(r)
		}
	}

	info.Providers, info.Simulated, info.Notes, info.Quarantined = nil, false, nil, nil // what runs now, also on resume
	info.Preflight = o.Preflight
	providers := map[string]vm.Provider{}
	limits := map[string]int{} // host + image → machines at once, from vm.Limiter
	var slots []Slot
	seen := map[string]bool{}
	for _, h := range cfg.Hosts {
		h, err := l.ResolveHost(h, o.LookupEnv)
		if err != nil {
			return nil, err
		}
		p, err := o.NewProvider(h, cfg.Lab.Seed)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		providers[h.Name] = p
		if !seen[p.Name()] {
			seen[p.Name()] = true
			info.Providers = append(info.Providers, p.Name())
		}
		info.Simulated = info.Simulated || p.Simulated()
		for i := range h.Slots {
			slots = append(slots, Slot{Host: h.Name, Provider: h.Provider, Index: i + 1})
		}
		// Leftovers of runs killed before their cleanup ran.
		if err := p.Reap(ctx); err != nil {
			return nil, fmt.Errorf("host %s: remove leftovers of dead runs: %w", h.Name, err)
		}
		if lim, ok := p.(vm.Limiter); ok {
			for _, name := range sortedKeys(images) {
				n, why := lim.MaxMachines(images[name])
				if n <= 0 {
					continue
				}
				limits[limitKey(h.Name, name)] = n
				if n < h.Slots {
					info.Notes = append(info.Notes, fmt.Sprintf("host %s restores image %s into %d clone(s) at a time though it has %d slots, so attempts of %s wait for each other there: %s", h.Name, name, n, h.Slots, name, why))
				}
			}
		}
	}
	sort.Strings(info.Providers)
	if err := dir.WriteJSON(RunFile, info); err != nil {
		return nil, err
	}
	if o.Resume == "" {
		if err := dir.WriteJSON(PlanFile, planInfo); err != nil {
			return nil, err
		}
	}

	var todo []matrices.Attempt
	res := &RunResult{Dir: dir.Path, Info: info}
	done := Finished(prev.Records)
	for _, a := range shard.Attempts {
		if r, ok := done[a.ID()]; ok {
			res.Records = append(res.Records, r)
			continue
		}
		todo = append(todo, a)
	}
	if o.CheckImages && len(todo) > 0 {
		if err := checkImagesFirst(ctx, o, todo, images, providers, dir.Path); err != nil {
			return nil, err
		}
	}

	catalog, err := artifacts.LoadCatalog(cfg.Collect.Signatures...)
	if err != nil {
		return nil, fmt.Errorf("collect.signatures: %w", err)
	}
	x := &Attempts{RunDir: dir.Path, Config: cfg, App: app, Probes: probes, Images: images, Providers: providers,
		Dial: o.Dial, Phase: o.Phase, Poll: o.Poll, Wait: o.Wait, CleanupTimeout: o.CleanupTimeout,
		Collect: cfg.Collector(app), Catalog: catalog, Transfer: o.Transfer, ProbeBinary: o.ProbeBinary,
		RequireRestore: o.RequireRestore}
	if o.Keep {
		x.Keep = &Keeper{}
	}
	total := len(shard.Attempts)
	var mu sync.Mutex // slots finish concurrently
	resume, errs := nextTries(dir.Path, prev.Records)
	x.Draws = NewDraws(errs)
	sched := &Scheduler{Slots: slots, Retry: cfg.Retry, Exec: x.Execute, Resume: resume}
	if len(limits) > 0 {
		sched.Limit = func(slot Slot, a matrices.Attempt) (string, int) {
			k := limitKey(slot.Host, imageOf(cfg, images, a))
			return k, limits[k]
		}
	}
	// A quarantined host is in run.json at once, so even a run that dies
	// later says which host needs a reboot.
	sched.Quarantine = func(host, reason string) {
		mu.Lock()
		defer mu.Unlock()
		res.Info.Quarantined = append(res.Info.Quarantined, QuarantinedHost{Host: host, Reason: reason})
		_ = dir.WriteJSON(RunFile, res.Info) // written again at the end
		if o.Note != nil {
			o.Note(fmt.Sprintf("host %s is out of this run: %s", host, reason))
		}
	}
	sched.Record = func(r Record) error {
		if err := journal.Append(r); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Final {
			res.Records = append(res.Records, r)
		}
		if o.Finished != nil {
			o.Finished(r, len(res.Records), total)
		}
		return nil
	}
	if o.Note != nil {
		for _, n := range info.Notes {
			o.Note(n)
		}
	}
	if o.Started != nil {
		o.Started(total, len(res.Records))
	}
	runErr := sched.Run(ctx, todo)
	res.Kept = x.Keep.Kept()
	// A provider may learn only on contact that its Mac is simulated (an
	// ssh host pointed at sxlab sim serve): run.json must say so too.
	rewrite := len(res.Info.Quarantined) > 0
	for _, p := range providers {
		if p.Simulated() && !res.Info.Simulated {
			res.Info.Simulated, rewrite = true, true
		}
	}
	if rewrite {
		if err := dir.WriteJSON(RunFile, res.Info); err != nil && runErr == nil {
			runErr = err
		}
	}
	res.Cells = SummarisePlan(res.Records, planInfo.Cells, planInfo.Attempts)
	res.Remaining = total - len(res.Records)
	return res, runErr
}

// resumeRun reads what a run folder holds for its resume: run.json, the
// journal's good lines (and what was wrong with the others), after making
// sure the plan is the one the run was made with.
func resumeRun(dir *RunDir, whole matrices.Plan, inputs map[string]string, tool string) (RunInfo, JournalRead, []string, error) {
	var info RunInfo
	if err := ReadJSON(dir.Path, RunFile, &info); err != nil {
		return info, JournalRead{}, nil, err
	}
	var prev PlanInfo
	if err := ReadJSON(dir.Path, PlanFile, &prev); err != nil {
		return info, JournalRead{}, nil, err
	}
	if changed := ChangedInputs(prev, whole, inputs); len(changed) > 0 {
		return info, JournalRead{}, nil, fmt.Errorf("the plan changed since the run started: %s; resume with the configuration and flags it was made with, or start a new run",
			strings.Join(changed, ", "))
	}
	jr, err := ReadRunJournal(dir.Path, info, prev)
	if err != nil {
		return info, jr, nil, err
	}
	var notes []string
	for i, d := range jr.Damage {
		if jr.Torn && i == len(jr.Damage)-1 {
			continue // OpenJournal cuts it and says so
		}
		notes = append(notes, d.String()+"; excluded, so its attempt runs again")
	}
	info.Resumed = append(info.Resumed, Resume{Tool: tool, At: time.Now().UTC()})
	return info, jr, notes, nil
}

// nextTries says where each attempt of a resumed run goes on: the try
// after the last one journalled, in a folder of its own (a folder already
// there, of a try whose line was lost, is skipped), and the errors so
// far, which count against retry.max; tries cut short by an interrupt do
// not.
func nextTries(runDir string, records []Record) (func(matrices.Attempt) (int, int), map[string]int) {
	last := map[string]int{}
	errs := map[string]int{}
	for _, r := range records {
		k := r.AttemptKey()
		last[k] = max(last[k], r.Try)
		// An old sxlab marked tries an interrupt cut short only by their reason.
		if r.Verdict == Error && !r.Interrupted && !r.Final && !strings.HasPrefix(r.Reason, "interrupted during") {
			errs[k]++
		}
	}
	return func(a matrices.Attempt) (int, int) {
		next := last[a.ID()] + 1
		for {
			if _, err := os.Lstat(filepath.Join(runDir, AttemptDir(a.Cell.ID, a.Repeat, next))); errors.Is(err, os.ErrNotExist) {
				break
			}
			next++
		}
		return next, errs[a.ID()]
	}, errs
}

// ResolveImages turns the configured images into what providers clone:
// passwords read from their environment variables, key paths resolved.
func (l *Loaded) ResolveImages(lookup func(string) (string, bool)) (map[string]vm.Image, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	out := map[string]vm.Image{}
	for name, img := range l.Config.Images {
		auth, err := l.resolveAuth("images."+name+".auth", img.Auth, lookup)
		if err != nil {
			return nil, err
		}
		vi := vm.Image{Name: name, User: img.User, Password: auth.Password, KeyFile: auth.Key, Agent: img.Agent}
		if s := img.Sim; s != nil {
			si := &vm.SimImage{ProductVersion: s.ProductVersion, Build: s.Build, Golden: s.Golden.vm()}
			for _, f := range s.Faults {
				vf := vm.Fault{Name: f.Name}
				if f.Probability != nil {
					vf.Probability = *f.Probability
				}
				si.Faults = append(si.Faults, vf)
			}
			vi.Sim = si
		}
		if img.VZ != nil {
			vi.VZ = &vm.VZImage{Bundles: img.VZ.Goldens()}
		}
		if img.Tart != nil {
			vi.Tart = &vm.TartImage{VM: img.Tart.VM}
		}
		out[name] = vi
	}
	return out, nil
}

// resolveAuth makes credentials final: the password read from its
// environment variable, the key path resolved against the config's folder.
func (l *Loaded) resolveAuth(where string, a Auth, lookup func(string) (string, bool)) (Auth, error) {
	if a.PasswordEnv != "" {
		pw, ok := lookup(a.PasswordEnv)
		if !ok || pw == "" {
			return Auth{}, fmt.Errorf("%s.password_env: environment variable %s is not set", where, a.PasswordEnv)
		}
		a.Password, a.PasswordEnv = pw, ""
	}
	if a.Key != "" {
		a.Key = l.Resolve(a.Key)
	}
	return a, nil
}

// ResolveHost returns a copy of h ready for its provider: paths resolved
// against the config's folder, the ssh host's credentials final.
func (l *Loaded) ResolveHost(h Host, lookup func(string) (string, bool)) (Host, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if h.VZ != nil && h.VZ.Store != "" {
		v := *h.VZ
		v.Store = l.Resolve(v.Store)
		h.VZ = &v
	}
	if h.Tart != nil && h.Tart.Home != "" {
		t := *h.Tart
		t.Home = l.Resolve(t.Home)
		h.Tart = &t
	}
	if h.SSH != nil {
		s := *h.SSH
		auth, err := l.resolveAuth("hosts."+h.Name+".ssh.auth", s.Auth, lookup)
		if err != nil {
			return Host{}, err
		}
		s.Auth = auth
		h.SSH = &s
	}
	return h, nil
}

func limitKey(host, image string) string { return host + "\x00" + image }
