package report

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Timeline is where the run's time went: one lane per slot (host#slot),
// a bar per try from its start to its end in its verdict's colour. It is
// drawn as inline SVG, without script.
type Timeline struct {
	Width, Height int
	LabelWidth    int
	Lanes         []Lane
	Ticks         []Tick
	Span          string // the run's length, for people
	// Inferred: some lanes were packed from a journal without slots
	// (their names end in "?").
	Inferred bool
}

// Lane is one slot's row.
type Lane struct {
	Name string
	Y    int
	Bars []Bar
}

// Bar is one try.
type Bar struct {
	X, W    float64
	Verdict string
	Href    string
	Title   string
}

// Tick is a mark on the time axis.
type Tick struct {
	X     float64
	Label string
}

// Timeline geometry, in SVG user units (CSS pixels at 100%).
const (
	tlWidth  = 1300
	tlLabel  = 110
	tlLane   = 18
	tlTop    = 4
	tlBottom = 22
)

// NewTimeline lays the run's tries out per slot. Tries of journals older
// than the slot field (slot 0) are packed into as many lanes of their host
// as they need, first fit, so that bars never overlap.
func NewTimeline(r *Run) Timeline {
	type try struct {
		a    Attempt
		lane string
	}
	var tries []try
	var t0, t1 time.Time
	for _, c := range r.Cells {
		for _, a := range c.Tries {
			if a.Started.IsZero() || a.Finished.Before(a.Started) {
				continue
			}
			tries = append(tries, try{a: a})
			if t0.IsZero() || a.Started.Before(t0) {
				t0 = a.Started
			}
			if a.Finished.After(t1) {
				t1 = a.Finished
			}
		}
	}
	tl := Timeline{Width: tlWidth, LabelWidth: tlLabel}
	if len(tries) == 0 {
		return tl
	}
	sort.SliceStable(tries, func(i, j int) bool { return tries[i].a.Started.Before(tries[j].a.Started) })
	free := map[string][]time.Time{} // host → end of each packed lane
	for i := range tries {
		a := tries[i].a
		host := a.Host
		if host == "" {
			host = "?"
		}
		if a.Slot > 0 {
			tries[i].lane = fmt.Sprintf("%s#%d", host, a.Slot)
			continue
		}
		lanes := free[host]
		n := -1
		for k, end := range lanes {
			if !a.Started.Before(end) {
				n = k
				break
			}
		}
		if n < 0 {
			n = len(lanes)
			lanes = append(lanes, time.Time{})
		}
		lanes[n] = a.Finished
		free[host] = lanes
		tries[i].lane = fmt.Sprintf("%s#%d?", host, n+1) // the ? says the slot was inferred
		tl.Inferred = true
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Second
	}
	scale := float64(tlWidth-tlLabel-10) / float64(span)
	x := func(t time.Time) float64 { return float64(tlLabel) + float64(t.Sub(t0))*scale }
	byLane := map[string]*Lane{}
	var names []string
	for _, t := range tries {
		l, ok := byLane[t.lane]
		if !ok {
			l = &Lane{Name: t.lane}
			byLane[t.lane] = l
			names = append(names, t.lane)
		}
		a := t.a
		w := max(float64(a.Finished.Sub(a.Started))*scale, 0.5)
		title := fmt.Sprintf("%s r%d", a.Label, a.Repeat)
		if a.Try > 1 {
			title += fmt.Sprintf(" try %d", a.Try)
		}
		title += fmt.Sprintf(": %s, %s, from +%s", a.Verdict, dur(a.Finished.Sub(a.Started)), dur(a.Started.Sub(t0)))
		if a.Triage != nil && a.Triage.Finding != "" {
			title += ", " + a.Triage.Finding
		}
		href := ""
		if p, ok := cellPagePath(a.Cell); ok {
			href = p + "#" + attemptAnchor(a)
		}
		l.Bars = append(l.Bars, Bar{X: round1(x(a.Started)), W: round1(w), Verdict: string(a.Verdict), Href: href, Title: title})
	}
	sort.Slice(names, func(i, j int) bool { return laneLess(names[i], names[j]) })
	for i, n := range names {
		l := byLane[n]
		l.Y = tlTop + i*tlLane
		tl.Lanes = append(tl.Lanes, *l)
	}
	tl.Height = tlTop + len(names)*tlLane + tlBottom
	tl.Span = dur(span)
	step := tickStep(span)
	for d := time.Duration(0); d <= span; d += step {
		tl.Ticks = append(tl.Ticks, Tick{X: round1(x(t0.Add(d))), Label: short(d)})
	}
	return tl
}

// laneLess orders host#2 before host#10.
func laneLess(a, b string) bool {
	ha, sa, _ := strings.Cut(a, "#")
	hb, sb, _ := strings.Cut(b, "#")
	if ha != hb {
		return ha < hb
	}
	if len(sa) != len(sb) {
		return len(sa) < len(sb)
	}
	return sa < sb
}

// tickStep is a round interval giving at most about ten ticks.
func tickStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
		30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour} {
		if span/s <= 10 {
			return s
		}
	}
	return 12 * time.Hour
}

// short is a tick label: 0, 30s, 5m, 1h30m.
func short(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		if d%time.Minute == 0 {
			return fmt.Sprintf("%dm", int(d.Minutes()))
		}
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }
