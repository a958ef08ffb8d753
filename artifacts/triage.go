package artifacts

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// Files of an attempt folder that triage cites.
const (
	LogsFile     = "logs.ndjson"
	StepsFile    = "steps.jsonl" // written by the lab; probes are recorded there
	ManifestFile = "manifest.json"
	BeforeDir    = "state/before" // the snapshots: + TranscriptExt, + StateExt
	AfterDir     = "state/after"
)

// maxEvidence bounds the lines one label carries into the journal; the
// whole log stays in logs.ndjson.
const maxEvidence = 12

// Facts is what triage looks at for one attempt.
type Facts struct {
	// Failed is true for a product failure (verdict fail). Passing
	// attempts and infrastructure errors are not triaged.
	Failed bool
	// Logs are the unified-log events of the attempt's window, in order.
	Logs []guest.LogEntry
	// After is the state snapshot taken after the probes; nil when it
	// could not be taken.
	After *State
	// Probes are the attempt's probe outcomes.
	Probes []Probe
}

// Probe is one probe's outcome, as the lab recorded it.
type Probe struct {
	Name    string
	Kind    string // extension-state, mach-endpoint, vpn-status, xpc, command; "" = the name
	Held    bool
	Message string
}

// match is one matched signature with its evidence and where its first
// evidence sits (log lines first by position, then state, then probes).
type match struct {
	sig      *compiled
	evidence []Evidence
	order    [2]int
	ends     []int // log index of the last line of each occurrence
}

// Triage labels a failing attempt by the signatures its evidence shows.
// It returns nil for an attempt that did not fail: a pass carries no
// finding, even when its logs show signatures (every upgrade takes the
// replacement path, for one).
//
// The finding is a matched signature that no other matched signature
// explains and that is not context; when several qualify, the one whose
// evidence came first. Labels[0] is the finding; the other matches
// follow in the order their first evidence appeared. A failure that
// matches no such signature has the finding Unclassified, with a label
// of that name first.
func (c *Catalog) Triage(f Facts) *Triage {
	if !f.Failed {
		return nil
	}
	ms := c.matchAll(f)
	byID := map[string]*match{}
	for _, m := range ms {
		byID[m.sig.ID] = m
	}
	var finding *match
	for _, m := range ms {
		if m.sig.Context || explained(m, ms) {
			continue
		}
		if finding == nil || less(m, finding) {
			finding = m
		}
	}
	slices.SortStableFunc(ms, func(a, b *match) int {
		if less(a, b) {
			return -1
		}
		if less(b, a) {
			return 1
		}
		return 0
	})
	t := &Triage{Labels: []Label{}}
	if finding == nil {
		t.Finding = Unclassified
		t.Labels = append(t.Labels, Label{Signature: Unclassified, Meaning: "the failure matched no known signature", Evidence: []Evidence{}})
	} else {
		t.Finding = finding.sig.ID
		t.Labels = append(t.Labels, finding.label())
	}
	for _, m := range ms {
		if m != finding {
			t.Labels = append(t.Labels, m.label())
		}
	}
	return t
}

func explained(m *match, all []*match) bool {
	for _, o := range all {
		if o != m && o.sig.explains[m.sig.ID] {
			return true
		}
	}
	return false
}

func less(a, b *match) bool {
	if c := cmp.Compare(a.order[0], b.order[0]); c != 0 {
		return c < 0
	}
	return a.order[1] < b.order[1]
}

func (m *match) label() Label {
	return Label{Signature: m.sig.ID, Meaning: m.sig.Meaning, Report: m.sig.Report, Evidence: m.evidence}
}

// matchAll evaluates every signature, those named by `after` first.
func (c *Catalog) matchAll(f Facts) []*match {
	lastOf := map[string]int{} // process -> index of its last line
	for i, e := range f.Logs {
		lastOf[e.Process] = i
	}
	times := make([]time.Time, len(f.Logs))
	for i, e := range f.Logs {
		times[i], _ = e.Time() // zero when unreadable: within cannot hold
	}
	done := map[string]*match{}
	evaluated := map[string]bool{}
	var eval func(cs *compiled)
	eval = func(cs *compiled) {
		if evaluated[cs.ID] {
			return
		}
		evaluated[cs.ID] = true
		if cs.After != "" {
			eval(c.byID[cs.After])
		}
		if m := cs.match(f, times, lastOf, done[cs.After]); m != nil {
			done[cs.ID] = m
		}
	}
	for _, cs := range c.sigs {
		eval(cs)
	}
	var out []*match
	for _, cs := range c.sigs {
		if m := done[cs.ID]; m != nil {
			out = append(out, m)
		}
	}
	return out
}

// match checks every condition of the signature; nil unless all hold.
// after is the match of the signature named by After (nil when it did
// not match or none is named).
func (cs *compiled) match(f Facts, times []time.Time, lastOf map[string]int, after *match) *match {
	m := &match{sig: cs, order: [2]int{3, 0}}
	if len(cs.lines) > 0 {
		if cs.After != "" && after == nil {
			return nil
		}
		if !cs.matchLines(f.Logs, times, lastOf, after, m) {
			return nil
		}
	}
	if cs.State != "" {
		if f.After == nil {
			return nil
		}
		ev := stateChecks[cs.State](f.After)
		if len(ev) == 0 {
			return nil
		}
		if m.order[0] > 1 {
			m.order = [2]int{1, 0}
		}
		m.evidence = append(m.evidence, ev...)
	}
	if cs.Probe != nil {
		found := false
		for i, p := range f.Probes {
			kind := cmp.Or(p.Kind, p.Name)
			if p.Held || kind != cs.Probe.Kind || (cs.probe != nil && !cs.probe.MatchString(p.Message)) {
				continue
			}
			if !found && m.order[0] > 2 {
				m.order = [2]int{2, i}
			}
			found = true
			m.evidence = append(m.evidence, Evidence{Process: "probe " + p.Name, Message: p.Message, Source: StepsFile})
		}
		if !found {
			return nil
		}
	}
	return m
}

// matchLines finds the occurrences of the signature's lines, in order. At
// the first line a later candidate replaces an earlier one, so the lines
// cited are the closest together; past it, progress is kept.
func (cs *compiled) matchLines(logs []guest.LogEntry, times []time.Time, lastOf map[string]int, after *match, m *match) bool {
	var partial []int
	afterIdx := 0 // into after.ends: the occurrences ending before i
	lines := 0
	for i := range logs {
		e := &logs[i]
		if len(partial) > 0 && cs.lines[len(partial)].matches(e) {
			partial = append(partial, i)
		} else if cs.lines[0].matches(e) && cs.firstAllowed(i, times, after, &afterIdx) {
			partial = append(partial[:0], i)
		} else {
			continue
		}
		if len(partial) < len(cs.lines) {
			continue
		}
		last := partial[len(partial)-1]
		if !cs.SilentAfter || lastOf[logs[last].Process] == last {
			if len(m.ends) == 0 {
				m.order = [2]int{0, partial[0]}
			}
			m.ends = append(m.ends, last)
			for _, j := range partial {
				if lines < maxEvidence {
					m.evidence = append(m.evidence, logEvidence(logs[j], times[j]))
					lines++
				}
			}
		}
		partial = partial[:0]
	}
	return len(m.ends) > 0
}

// firstAllowed applies `after` and `within` to a first line at index i.
func (cs *compiled) firstAllowed(i int, times []time.Time, after *match, k *int) bool {
	if after == nil {
		return true
	}
	for *k < len(after.ends) && after.ends[*k] < i {
		*k++
	}
	if *k == 0 {
		return false // no occurrence ends before this line
	}
	prev := after.ends[*k-1]
	if cs.Within == 0 {
		return true
	}
	if times[i].IsZero() || times[prev].IsZero() {
		return false
	}
	gap := times[i].Sub(times[prev])
	return gap >= 0 && gap <= time.Duration(cs.Within)
}

func (l compiledLine) matches(e *guest.LogEntry) bool {
	return (l.process == "" || l.process == e.Process) && l.re.MatchString(e.Message)
}

func logEvidence(e guest.LogEntry, t time.Time) Evidence {
	return Evidence{Time: t, Process: e.Process, Message: e.Message, Source: LogsFile}
}

// --- state checks -----------------------------------------------------------

// checkNoEndpoints: a launchd job of the extension whose `launchctl print`
// has no endpoints block at all (xpc-broken-20-percent's observation).
func checkNoEndpoints(st *State) []Evidence {
	var out []Evidence
	for _, j := range st.Jobs {
		if j.Job == nil || j.Job.HasEndpointsBlock() {
			continue
		}
		out = append(out, Evidence{Time: st.Taken, Process: "launchd",
			Message: fmt.Sprintf("launchctl print system/%s: no endpoints block (state = %s)", j.Label, j.Job.State),
			Source:  AfterDir + TranscriptExt})
	}
	return out
}

// checkOldCopyTerminated: a retired copy of the extension still waits
// for a reboot to go.
func checkOldCopyTerminated(st *State) []Evidence {
	return extensionRows(st, "terminated waiting to uninstall on reboot")
}

// checkWaitingForUser: a copy of the extension waits for approval.
func checkWaitingForUser(st *State) []Evidence {
	return extensionRows(st, "activated waiting for user")
}

func extensionRows(st *State, state string) []Evidence {
	var out []Evidence
	for _, e := range st.Extensions {
		if e.State != state {
			continue
		}
		out = append(out, Evidence{Time: st.Taken, Process: "systemextensionsctl",
			Message: fmt.Sprintf("%s %s (%s/%s) [%s]", e.TeamID, e.BundleID, e.ShortVersion, e.Build, e.State),
			Source:  AfterDir + TranscriptExt})
	}
	return out
}
