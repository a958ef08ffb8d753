package report

import (
	"path"
	"sort"
	"strings"
	"time"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/steps"
)

// Event is one thing that happened in an attempt, on the host's clock: a
// step (stamped by the host), or a piece of evidence the guest stamped (a
// log line, a state snapshot) moved onto the host's clock with the
// attempt's clock readings. Each event is listed once, however many
// signatures cite it.
type Event struct {
	Host  time.Time // on the host's clock; zero when it cannot be placed
	Guest time.Time // the guest's own stamp (evidence only)
	// Placed says Host was computed from Guest with a clock reading.
	Placed bool
	Step   *steps.Entry        // a step, or
	Ev     *artifacts.Evidence // evidence
	// Signatures are the triage signatures citing the evidence.
	Signatures []string
	scenario   string // the scenario step a probe's command belongs to
}

// Snapshot says the evidence is a state snapshot's (a file under state/),
// read when the snapshot was taken, not a line the guest logged.
func (e Event) Snapshot() bool {
	return e.Ev != nil && strings.HasPrefix(e.Ev.Source, "state/")
}

// SnapshotName is the snapshot (state/after) of a snapshot event: its
// transcript's name without .txt, or in older run folders the folder of
// the command's file.
func (e Event) SnapshotName() string {
	if !e.Snapshot() {
		return ""
	}
	if dir := path.Dir(e.Ev.Source); dir != "state" {
		return dir
	}
	return strings.TrimSuffix(e.Ev.Source, path.Ext(e.Ev.Source))
}

// Events merges an attempt's steps and its timed evidence onto one
// timeline, the host's, in order. Evidence without a time (a probe's
// word) has no place on it and stays with its signature.
func (a Attempt) Events() []Event {
	var labels []artifacts.Label
	if a.Triage != nil {
		labels = a.Triage.Labels
	}
	return a.events(labels)
}

// events is Events over the given labels (FEEDBACK.md bounds each one's
// evidence).
func (a Attempt) events(labels []artifacts.Label) []Event {
	clock := clockMap(a.Clock)
	var out []Event
	for i := range a.Steps {
		out = append(out, Event{Host: a.Steps[i].Started, Step: &a.Steps[i]})
	}
	seen := map[string]int{}
	{
		for _, l := range labels {
			for i := range l.Evidence {
				ev := &l.Evidence[i]
				if ev.Time.IsZero() {
					continue
				}
				key := ev.Time.String() + "\x00" + ev.Process + "\x00" + ev.Message + "\x00" + ev.Source
				if j, ok := seen[key]; ok {
					out[j].Signatures = appendNew(out[j].Signatures, l.Signature)
					continue
				}
				e := Event{Guest: ev.Time, Ev: ev, Signatures: []string{l.Signature}}
				e.Host, e.Placed = clock.host(ev.Time)
				seen[key] = len(out)
				out = append(out, e)
			}
		}
	}
	labelProbeSteps(out)
	sort.SliceStable(out, func(i, j int) bool {
		hi, hj := out[i].Host, out[j].Host
		switch {
		case hi.IsZero() != hj.IsZero():
			return !hi.IsZero() // unplaceable evidence last
		}
		return hi.Before(hj)
	})
	return out
}

// Untimed is the evidence of a label that has no time (a probe's
// message): it is not on the timeline.
func Untimed(l artifacts.Label) []artifacts.Evidence {
	var out []artifacts.Evidence
	for _, e := range l.Evidence {
		if e.Time.IsZero() {
			out = append(out, e)
		}
	}
	return out
}

func appendNew(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// StepLabel is the scenario step an entry belongs to, named as the
// configuration numbers it ("9 probe"): the commands a probe step runs are
// recorded as "probe <kind>" before the step's own entry, and are shown
// under that step's number like every other step's commands.
func (e Event) StepLabel() string {
	if e.Step == nil {
		return ""
	}
	if e.scenario != "" {
		return e.scenario
	}
	return e.Step.Step
}

// Probe is the probe a "probe <kind>" entry ran, "" otherwise.
func (e Event) Probe() string {
	if e.Step == nil || e.scenario == "" {
		return ""
	}
	return strings.TrimPrefix(e.Step.Step, "probe ")
}

// labelProbeSteps gives each "probe <kind>" entry the label of the
// scenario step recorded after it (the probe step's own entry).
func labelProbeSteps(evs []Event) {
	next := ""
	for i := len(evs) - 1; i >= 0; i-- {
		st := evs[i].Step
		if st == nil {
			continue
		}
		if strings.HasPrefix(st.Step, "probe ") {
			evs[i].scenario = next
			continue
		}
		next = st.Step
	}
}
