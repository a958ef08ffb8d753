package lab_test

// These tests run the real pipeline on simulated Macs and then read the
// run folders the way a user does afterwards: resume, report and merge.
// They live outside package lab because report imports lab.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/report"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim"
)

// resumeLabConfig: two images, one with a certain fault (the vpn=running
// cells fail), one with a race (p = 0.5, so seeded draws decide), 2 × 2
// cells × REPEAT repeats on 2 slots, instant simulated time.
const resumeLabConfig = `lab:
  name: resume-test
  seed: SEED
  timeouts: {boot: 1m, command: 1m}
hosts:
  - name: local
    provider: sim
    slots: 2
    sim: {time_scale: 0}
images:
  macos-15.3:
    sim:
      product_version: "15.3"
      build: 24D60
      faults: [endpoint-lost-on-replace-while-running]
      golden: {mdm: {system_extension_policies: [{team: ABCDE12345}]}}
    auth: {password: admin}
  macos-15.4:
    sim:
      product_version: "15.4"
      build: 24E248
      faults: [{name: endpoint-registration-race, probability: 0.5}]
      golden: {mdm: {system_extension_policies: [{team: ABCDE12345}]}}
    auth: {password: admin}
app:
  name: Example VPN
  bundle_id: com.example.vpn
  extension:
    bundle_id: com.example.vpn.tunnel
    team_id: ABCDE12345
    mach_service: ABCDE12345.com.example.vpn.tunnel
  vpn_service: Example VPN
  versions:
    "2": {package: examples/pkg/example-vpn-2.pkg}
    "3": {package: examples/pkg/example-vpn-3.pkg}
matrix:
  axes:
    macos: [macos-15.3, macos-15.4]
    path: ["2->3"]
    vpn: [running, stopped]
  repeat: REPEAT
scenario:
  - install: "{{.From}}"
  - launch: {}
  - approve: mdm
  - wait-extension: activated enabled
  - vpn: start
    when: {vpn: running}
  - upgrade:
      version: "{{.To}}"
      before: [quit-app]
  - launch: {}
  - probe: [extension-state, mach-endpoint, xpc]
probes:
  - name: extension-state
    state: activated enabled
    old: gone-or-pending-reboot
  - name: mach-endpoint
  - name: xpc
    run: '"{{.App.Path}}/Contents/MacOS/Example VPN" --check-xpc'
retry:
  max: 1
  backoff: 1ms
`

// simLab is one lab folder: the configuration, the demo's packages, the
// runs and the simulated machines' folders.
type simLab struct {
	dir      string
	machines string
}

func newSimLab(t *testing.T, seed, repeat int) *simLab {
	t.Helper()
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "examples", "pkg")
	require.NoError(t, os.MkdirAll(pkgs, 0o755))
	demo, err := filepath.Glob(filepath.Join("..", "examples", "pkg", "*.pkg"))
	require.NoError(t, err)
	require.NotEmpty(t, demo)
	for _, src := range demo {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(pkgs, filepath.Base(src)), b, 0o644))
	}
	src := strings.NewReplacer("SEED", fmt.Sprint(seed), "REPEAT", fmt.Sprint(repeat)).Replace(resumeLabConfig)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(src), 0o644))
	return &simLab{dir: dir, machines: filepath.Join(dir, "machines")}
}

// options loads the configuration (with seed, when not 0, as --seed does)
// and wires lab.Run as sxlab run does.
func (l *simLab) options(t *testing.T, seed int64) lab.RunOptions {
	t.Helper()
	env := map[string]string{lab.EnvName("lab.runs_dir"): filepath.Join(l.dir, "runs")}
	if seed != 0 {
		env[lab.EnvName("lab.seed")] = fmt.Sprint(seed)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	loaded, err := lab.Load(lab.LoadOptions{File: filepath.Join(l.dir, "config.yaml"), LookupEnv: lookup})
	require.NoError(t, err)
	return lab.RunOptions{
		Loaded: loaded, Tool: "test", LookupEnv: lookup,
		NewProvider: func(h lab.Host, seed int64) (vm.Provider, error) {
			return sim.NewProvider(sim.Options{TimeScale: 0, Seed: seed, BaseDir: l.machines}), nil
		},
		Dial: func(ctx context.Context, ep guest.Endpoint, knownHosts, alias string) (lab.Conn, error) {
			return guest.Dial(ctx, ep, guest.Options{KnownHosts: knownHosts, HostKeyAlias: alias,
				BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
		},
		Poll: time.Millisecond, Wait: 10 * time.Second, CleanupTimeout: 10 * time.Second,
	}
}

func (l *simLab) assertNoMachinesLeft(t *testing.T) {
	t.Helper()
	left, _ := os.ReadDir(l.machines)
	assert.Empty(t, left, "simulated machines left behind")
}

// totals is what a run concluded per cell, by label.
type totals map[string]string

func totalsOf(cells []lab.CellSummary) totals {
	out := totals{}
	for _, c := range cells {
		out[c.Label] = fmt.Sprintf("%s %d/%d failed, %d errors, %d missing", c.Verdict, c.Failures, c.Attempts, c.Errors, c.Missing)
	}
	return out
}

func reportTotals(t *testing.T, dir string) totals {
	t.Helper()
	r, err := report.Load(dir)
	require.NoError(t, err)
	assert.Empty(t, r.Damage, "%s: every journal line is good", dir)
	var cells []lab.CellSummary
	for _, c := range r.Cells {
		cells = append(cells, c.CellSummary)
	}
	return totalsOf(cells)
}

func journal(t *testing.T, dir string) lab.JournalRead {
	t.Helper()
	var info lab.RunInfo
	require.NoError(t, lab.ReadJSON(dir, lab.RunFile, &info))
	var plan lab.PlanInfo
	require.NoError(t, lab.ReadJSON(dir, lab.PlanFile, &plan))
	jr, err := lab.ReadRunJournal(dir, info, plan)
	require.NoError(t, err)
	return jr
}

// checkResumedRun checks a run folder after its last resume against the
// uninterrupted run's totals: one folder per try, every attempt final
// once, no verdict final before an interrupt run again, and a merge that
// succeeds with the same totals.
func checkResumedRun(t *testing.T, dir string, want totals, finalBefore map[string]lab.Record) {
	t.Helper()
	jr := journal(t, dir)
	assert.Empty(t, jr.Damage)
	folders := map[string]int{}
	finals := map[string]int{}
	for _, r := range jr.Records {
		folders[r.Dir]++
		if r.Final {
			finals[r.AttemptKey()]++
		}
		if b, ok := finalBefore[r.AttemptKey()]; ok {
			assert.LessOrEqual(t, r.Try, b.Try, "%s: its verdict was final before an interrupt, yet it ran again", r.AttemptKey())
		}
	}
	for f, n := range folders {
		assert.Equal(t, 1, n, "one folder per try, but %s has %d records", f, n)
	}
	for k, n := range finals {
		assert.Equal(t, 1, n, "%s has %d final records", k, n)
	}
	assert.Equal(t, want, reportTotals(t, dir), "report of the resumed run")

	out := filepath.Join(t.TempDir(), "merged")
	res, err := report.Merge([]string{dir}, out)
	require.NoError(t, err, "a resumed run merges")
	assert.Empty(t, res.Missing)
	assert.Empty(t, res.Excluded)
	assert.Equal(t, want, reportTotals(t, out), "report of the merged run")
}

// TestInterruptResumeMergeAtEveryPhase interrupts a run at each phase
// boundary of one attempt, resumes it and merges the result: the merge
// succeeds with the totals of an uninterrupted run, and an attempt whose
// verdict was final before the interrupt is not run again.
func TestInterruptResumeMergeAtEveryPhase(t *testing.T) {
	l := newSimLab(t, 7, 1)
	isTarget := func(a matrices.Attempt) bool {
		return a.Cell.Values["vpn"] == "running" && a.Cell.Values["macos"] == "macos-15.3"
	}
	o := l.options(t, 0)
	var mu sync.Mutex
	var phases []string
	o.Phase = func(_ lab.Slot, a matrices.Attempt, p string) {
		if isTarget(a) {
			mu.Lock()
			phases = append(phases, p)
			mu.Unlock()
		}
	}
	ref, err := lab.Run(context.Background(), o)
	require.NoError(t, err)
	want := totalsOf(ref.Cells)
	require.Len(t, want, 4)
	require.Contains(t, phases, "collect sysdiagnose", "the target fails, so its evidence is collected")

	for k := 1; k <= len(phases); k++ {
		t.Run(fmt.Sprintf("%02d-%s", k, phases[k-1]), func(t *testing.T) {
			l := newSimLab(t, 7, 1)
			o := l.options(t, 0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			seen := 0
			o.Phase = func(_ lab.Slot, a matrices.Attempt, p string) {
				if isTarget(a) {
					mu.Lock()
					if seen++; seen == k {
						cancel()
					}
					mu.Unlock()
				}
			}
			res, err := lab.Run(ctx, o)
			require.ErrorIs(t, err, lab.ErrInterrupted)
			l.assertNoMachinesLeft(t)
			before := lab.Finished(journal(t, res.Dir).Records)
			for _, c := range res.Cells {
				if c.Missing > 0 {
					assert.Equal(t, lab.CellIncomplete, c.Verdict, "an interrupted run's unfinished cell is counted incomplete")
				}
			}

			// The interrupted run's own folder merges too, as incomplete.
			_, err = report.Merge([]string{res.Dir}, filepath.Join(t.TempDir(), "partial"))
			require.NoError(t, err)

			o.Phase, o.Resume = nil, res.Dir
			res2, err := lab.Run(context.Background(), o)
			require.NoError(t, err)
			assert.Equal(t, 0, res2.Remaining)
			assert.Equal(t, want, totalsOf(res2.Cells))
			l.assertNoMachinesLeft(t)
			checkResumedRun(t, res.Dir, want, before)
		})
	}
}

// TestInterruptAtRandomMomentsResumeMerge interrupts a run twice at random
// moments (a random phase of any attempt), resumes it to the end and
// merges it: per-cell totals equal an uninterrupted run with the same
// seed, and no verdict final before an interrupt is run again.
func TestInterruptAtRandomMomentsResumeMerge(t *testing.T) {
	const seed, repeat = 3, 3
	ref := newSimLab(t, seed, repeat)
	o := ref.options(t, 0)
	var phases int
	var mu sync.Mutex
	o.Phase = func(lab.Slot, matrices.Attempt, string) { mu.Lock(); phases++; mu.Unlock() }
	whole, err := lab.Run(context.Background(), o)
	require.NoError(t, err)
	want := totalsOf(whole.Cells)
	require.Len(t, want, 4)
	require.Contains(t, want["macos=macos-15.4 path=2->3 vpn=running"], "flaky",
		"with seed 3 the race cell is flaky, so equal totals show the resumed tries drew what the uninterrupted ones did")

	rng := rand.New(rand.NewPCG(14, 14))
	for i := range 5 {
		cuts := []int{1 + rng.IntN(phases/2), 1 + rng.IntN(phases/2)}
		t.Run(fmt.Sprintf("%d-at-%d-then-%d", i+1, cuts[0], cuts[1]), func(t *testing.T) {
			l := newSimLab(t, seed, repeat)
			finalBefore := map[string]lab.Record{}
			dir := ""
			for _, cut := range cuts {
				o := l.options(t, 0)
				o.Resume = dir
				ctx, cancel := context.WithCancel(context.Background())
				seen := 0
				o.Phase = func(lab.Slot, matrices.Attempt, string) {
					mu.Lock()
					defer mu.Unlock()
					if seen++; seen == cut {
						cancel()
					}
				}
				res, err := lab.Run(ctx, o)
				cancel()
				require.NotNil(t, res, "%v", err)
				dir = res.Dir
				for k, r := range lab.Finished(journal(t, dir).Records) {
					finalBefore[k] = r
				}
				if err == nil {
					break // it finished before the cut
				}
				require.ErrorIs(t, err, lab.ErrInterrupted)
				l.assertNoMachinesLeft(t)
			}
			o := l.options(t, 0)
			o.Resume = dir
			res, err := lab.Run(context.Background(), o)
			require.NoError(t, err)
			assert.Equal(t, want, totalsOf(res.Cells), "the same seed concludes the same, interrupted or not")
			checkResumedRun(t, dir, want, finalBefore)
		})
	}
}

// TestResumeRefusesAChangedSeed: --seed 7 on the resume of a seed-1 run
// would mix two runs' draws under one run.json; it is refused by name.
func TestResumeRefusesAChangedSeed(t *testing.T) {
	l := newSimLab(t, 1, 1)
	o := l.options(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	o.Phase = func(lab.Slot, matrices.Attempt, string) { cancel() }
	res, err := lab.Run(ctx, o)
	require.ErrorIs(t, err, lab.ErrInterrupted)

	o = l.options(t, 7) // as sxlab run --seed 7 --resume
	o.Resume = res.Dir
	_, err = lab.Run(context.Background(), o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "seed (the run has seed 1; now 7)")

	// So are changed image faults, and a changed package.
	cfg := filepath.Join(l.dir, "config.yaml")
	c, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(c), "probability: 0.5", "probability: 0.6", 1)), 0o644))
	o = l.options(t, 0)
	o.Resume = res.Dir
	_, err = lab.Run(context.Background(), o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "changed since the run started: images.macos-15.4;")
	require.NoError(t, os.WriteFile(cfg, c, 0o644))

	pkg := filepath.Join(l.dir, "examples", "pkg", "example-vpn-3.pkg")
	b, err := os.ReadFile(pkg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(pkg, append(b, '\n'), 0o644))
	o = l.options(t, 0)
	o.Resume = res.Dir
	_, err = lab.Run(context.Background(), o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "packages.3")
	assert.NotContains(t, err.Error(), "seed")
}

// TestDamagedJournalIsReadAlikeByResumeReportAndMerge damages a finished
// run's journal the ways the field did: a garbage line, a forged final
// record with an unknown verdict (for an attempt whose real line is
// gone), a 2 MB line, and a torn last line (a full disk). Resume, report
// and merge agree on what is left and name each problem by its line;
// journal check --repair yields a journal all three accept as it is.
func TestDamagedJournalIsReadAlikeByResumeReportAndMerge(t *testing.T) {
	l := newSimLab(t, 7, 1)
	o := l.options(t, 0)
	ref, err := lab.Run(context.Background(), o)
	require.NoError(t, err)
	want := totalsOf(ref.Cells)
	path := filepath.Join(ref.Dir, lab.JournalFile)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	require.Len(t, lines, 4, "4 attempts, one try each")
	gone := journal(t, ref.Dir).Records[1] // its line is replaced by a forged one

	// 1 good, 2 garbage, 3 good, 4 over-long, 5 forged (appended below),
	// 6 torn: the first half of the last real line.
	damaged := lines[0] + "garbage, not JSON\n" + lines[2] + "{\"x\":\"" + strings.Repeat("x", 2<<20) + "\"}\n"
	require.NoError(t, os.WriteFile(path, []byte(damaged), 0o644))
	j, err := lab.OpenJournal(path)
	require.NoError(t, err)
	forged := gone
	forged.Verdict, forged.Final = "bogus", true
	require.NoError(t, j.Append(forged))
	require.NoError(t, j.Close())
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(lines[3][:len(lines[3])/2])
	require.NoError(t, err)
	require.NoError(t, f.Close())
	problemLines := []int{2, 4, 5, 6}

	// Two copies: one to resume, one to repair.
	repaired := copyRun(t, ref.Dir)

	lineNumbers := func(ds []lab.JournalDamage) []int {
		var out []int
		for _, d := range ds {
			out = append(out, d.Line)
		}
		return out
	}
	r, err := report.Load(ref.Dir)
	require.NoError(t, err)
	assert.Equal(t, problemLines, lineNumbers(r.Damage), "report")
	assert.Contains(t, r.Damage[1].Err, "over the 1048576-byte bound")
	assert.Contains(t, r.Damage[2].Err, `unknown verdict "bogus"`)
	assert.Contains(t, r.Damage[3].Err, "torn")
	reportDone := r.Verdicts[lab.Pass] + r.Verdicts[lab.Fail] + r.Verdicts[lab.Error]
	assert.Equal(t, 2, reportDone)
	assert.Equal(t, 2, r.Remaining)

	m, err := report.Merge([]string{ref.Dir}, filepath.Join(t.TempDir(), "m"))
	require.NoError(t, err)
	require.Len(t, m.Excluded, 4, "merge")
	for i, e := range m.Excluded {
		assert.Contains(t, e, fmt.Sprintf("results.jsonl:%d: ", problemLines[i]))
	}
	assert.Len(t, m.Missing, 2)

	o = l.options(t, 0)
	o.Resume = ref.Dir
	var notes []string
	o.Warn = func(s string) { notes = append(notes, s) }
	resumeDone := -1
	o.Started = func(total, done int) { resumeDone = done }
	res, err := lab.Run(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, reportDone, resumeDone, "resume keeps what report counts")
	joined := strings.Join(notes, "\n")
	for _, n := range problemLines[:3] {
		assert.Contains(t, joined, fmt.Sprintf("results.jsonl:%d: ", n))
	}
	assert.Contains(t, joined, "cut a torn last line")
	assert.Equal(t, want, totalsOf(res.Cells), "the excluded attempts ran again")
	var info lab.RunInfo
	require.NoError(t, lab.ReadJSON(ref.Dir, lab.RunFile, &info))
	assert.NotEmpty(t, info.Repairs, "run.json says what was cut")
	jr := journal(t, ref.Dir)
	assert.Equal(t, []int{2, 4, 5}, lineNumbers(jr.Damage), "the torn line is gone; nothing was appended onto it")
	assert.Len(t, lab.Finished(jr.Records), 4)

	// --repair: all three accept the journal as it is.
	rep, err := lab.RepairJournal(repaired, time.Now())
	require.NoError(t, err)
	assert.Equal(t, problemLines, lineNumbers(rep.Excluded))
	assert.FileExists(t, rep.Original, "the original is kept beside it")
	orig, err := os.ReadFile(rep.Original)
	require.NoError(t, err)
	assert.Greater(t, len(orig), 2<<20)
	r, err = report.Load(repaired)
	require.NoError(t, err)
	assert.Empty(t, r.Damage)
	assert.Equal(t, 2, r.Verdicts[lab.Pass]+r.Verdicts[lab.Fail]+r.Verdicts[lab.Error])
	m, err = report.Merge([]string{repaired}, filepath.Join(t.TempDir(), "m2"))
	require.NoError(t, err)
	assert.Empty(t, m.Excluded)
	o = l.options(t, 0)
	o.Resume = repaired
	notes = nil
	o.Warn = func(s string) { notes = append(notes, s) }
	o.Started = func(total, done int) { resumeDone = done }
	res, err = lab.Run(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, 2, resumeDone)
	assert.Empty(t, notes, "nothing left to exclude or cut")
	assert.Equal(t, want, totalsOf(res.Cells))
}

// copyRun copies a run folder's files (not its attempt folders' contents
// beyond what merge and report read) to a new folder.
func copyRun(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}
