package report

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sxlab/sxlab/lab"
)

// shard is one run folder as merge and diff read it.
type shard struct {
	Dir     string
	Info    lab.RunInfo
	Plan    lab.PlanInfo
	Records []lab.Record
	Damage  []lab.JournalDamage // journal lines excluded, by number
}

// readRunFiles reads a run folder's run.json, plan.json and journal. The
// journal is read as resume reads it (lab.ReadRunJournal): a line that is
// torn, edited, unparsable, of an unknown verdict or of an attempt outside
// the plan is excluded and returned as damage.
func readRunFiles(dir string) (info lab.RunInfo, plan lab.PlanInfo, recs []lab.Record, damage []lab.JournalDamage, err error) {
	if err = lab.ReadJSON(dir, lab.RunFile, &info); err != nil {
		return info, plan, nil, nil, fmt.Errorf("run folder %s: %w", dir, err)
	}
	if err = lab.ReadJSON(dir, lab.PlanFile, &plan); err != nil {
		return info, plan, nil, nil, fmt.Errorf("run folder %s: %w", dir, err)
	}
	jr, err := lab.ReadRunJournal(dir, info, plan)
	if err != nil {
		return info, plan, nil, nil, fmt.Errorf("run folder %s: %w", dir, err)
	}
	return info, plan, jr.Records, jr.Damage, nil
}

// readShard reads a run folder for merge and diff.
func readShard(dir string) (*shard, error) {
	info, plan, recs, damage, err := readRunFiles(dir)
	if err != nil {
		return nil, err
	}
	return &shard{Dir: dir, Info: info, Plan: plan, Records: recs, Damage: damage}, nil
}

// MergeResult says what a merge joined and what it found wrong.
type MergeResult struct {
	Dir    string
	Shards []string // run IDs, in the order given
	// Overlapping are attempts with a final record in more than one shard;
	// the first shard's is kept.
	Overlapping []string
	// Missing are attempts of the plan with no final record in any shard.
	Missing []string
	// Excluded are the shards' journal lines that were not merged
	// (`RUN/results.jsonl:LINE: why`), as resume and report exclude them.
	Excluded []string
}

// Merge joins the run folders of the shards of one plan into a new run
// folder out: run.json, plan.json, the journal and every attempt folder.
// Shards of different plans are refused. Reports are not written here:
// the caller renders the merged folder like any other run.
func Merge(dirs []string, out string) (*MergeResult, error) {
	if len(dirs) == 0 {
		return nil, errors.New("merge: no run folders given")
	}
	var shards []*shard
	for _, d := range dirs {
		s, err := readShard(d)
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		if len(shards) > 0 && s.Plan.Digest != shards[0].Plan.Digest {
			return nil, fmt.Errorf("merge: %s is a shard of plan %s, but %s is of plan %s; only shards of one plan can be merged",
				d, s.Plan.Digest, shards[0].Dir, shards[0].Plan.Digest)
		}
		shards = append(shards, s)
	}
	if err := emptyOrAbsent(out); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(out, "cells"), 0o755); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	dir, err := lab.OpenRunDir(out)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	defer dir.Close()

	res := &MergeResult{Dir: out}
	first := shards[0]
	info := first.Info
	info.ID = lab.NewRunID(time.Now())
	info.Shard = ""
	info.MergedFrom = nil
	info.Format = lab.JournalFormat // the merged journal is written by this sxlab
	info.Resumed, info.Repairs = nil, nil
	plan := lab.PlanInfo{Digest: first.Plan.Digest, Cells: first.Plan.Cells, Total: first.Plan.Total}

	owner := map[string]int{} // attempt key → index of the shard whose records are kept
	var records []lab.Record
	providers := map[string]bool{}
	hosts := map[string]bool{}
	info.Hosts = nil
	for i, s := range shards {
		for _, d := range s.Damage {
			res.Excluded = append(res.Excluded, filepath.Join(s.Dir, d.String()))
		}
		res.Shards = append(res.Shards, s.Info.ID)
		info.MergedFrom = append(info.MergedFrom, s.Info.ID)
		if s.Info.Started.Before(info.Started) {
			info.Started = s.Info.Started
		}
		info.Simulated = info.Simulated || s.Info.Simulated
		for _, p := range s.Info.Providers {
			providers[p] = true
		}
		for _, h := range s.Info.Hosts {
			if !hosts[s.Info.ID+"/"+h.Name] {
				hosts[s.Info.ID+"/"+h.Name] = true
				info.Hosts = append(info.Hosts, h)
			}
		}
		for key := range lab.Finished(s.Records) {
			if j, ok := owner[key]; ok {
				res.Overlapping = append(res.Overlapping, fmt.Sprintf("%s (in %s and %s)", key, shards[j].Dir, s.Dir))
				continue
			}
			owner[key] = i
		}
	}
	for i, s := range shards {
		for _, a := range s.Plan.Attempts {
			key := attemptKey(a)
			if j, ok := owner[key]; !ok || j == i {
				owner[key] = i // unfinished attempts belong to the shard that planned them
				plan.Attempts = append(plan.Attempts, a)
			}
		}
		for _, r := range s.Records {
			if owner[r.AttemptKey()] == i {
				records = append(records, r)
			}
		}
	}
	info.Providers = slices.Sorted(maps.Keys(providers))
	sort.Strings(res.Overlapping)
	res.Missing = missingAttempts(plan, records)

	copied := map[string]bool{}
	for i, s := range shards {
		for _, r := range records {
			if owner[r.AttemptKey()] != i || r.Dir == "" || copied[r.Dir] {
				continue
			}
			// A journal of an sxlab before one folder per try can name
			// a folder twice (an interrupted try and its resumption).
			copied[r.Dir] = true
			if _, err := os.Lstat(filepath.Join(s.Dir, r.Dir)); errors.Is(err, fs.ErrNotExist) {
				continue // a try that could not even make its folder has none
			}
			if err := copyTree(filepath.Join(s.Dir, r.Dir), filepath.Join(out, r.Dir)); err != nil {
				return nil, fmt.Errorf("merge: copy %s from %s: %w", r.Dir, s.Dir, err)
			}
		}
	}
	if err := dir.WriteJSON(lab.RunFile, info); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if err := dir.WriteJSON(lab.PlanFile, plan); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	j, err := lab.OpenJournal(filepath.Join(out, lab.JournalFile))
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	for _, r := range records {
		if err := j.Append(r); err != nil {
			j.Close()
			return nil, fmt.Errorf("merge: %w", err)
		}
	}
	if err := j.Close(); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return res, nil
}

func attemptKey(a lab.PlanAttempt) string { return fmt.Sprintf("%s-r%d", a.Cell, a.Repeat) }

// missingAttempts lists the whole plan's attempts without a final record.
// plan.json keeps the whole plan's cells and its attempt count; attempts
// are cells × repeats, so the repeat count is Total / len(Cells).
func missingAttempts(plan lab.PlanInfo, records []lab.Record) []string {
	done := lab.Finished(records)
	var missing []string
	if len(plan.Cells) == 0 {
		return nil
	}
	repeats := plan.Total / len(plan.Cells)
	for r := 1; r <= repeats; r++ {
		for _, c := range plan.Cells {
			key := attemptKey(lab.PlanAttempt{Cell: c.ID, Repeat: r})
			if _, ok := done[key]; !ok {
				missing = append(missing, key+" "+c.Label)
			}
		}
	}
	return missing
}

// emptyOrAbsent refuses to merge into a folder that already holds files:
// a merge never overwrites a run.
func emptyOrAbsent(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		names := make([]string, 0, 3)
		for _, e := range entries[:min(3, len(entries))] {
			names = append(names, e.Name())
		}
		return fmt.Errorf("output folder %s is not empty (holds %s); choose a new one", dir, strings.Join(names, ", "))
	}
	return nil
}

// copyTree copies a folder, hard-linking files where it can: attempt
// folders hold sysdiagnoses of hundreds of megabytes, and the shards are
// usually on the same disk.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil // sockets, links: not evidence
		}
		if os.Link(path, target) == nil {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
