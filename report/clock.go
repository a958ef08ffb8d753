package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/sxlab/sxlab/lab"
)

// clockMap puts the guest's times on the host's clock from an attempt's
// readings of both (lab.Record.Clock): the steps carry the host's time,
// log lines and state snapshots the guest's, and the two may be minutes
// apart (a guest that never synced its clock; a simulated guest whose
// clock jumps over scaled sleeps). Between two readings it interpolates,
// so a guest clock that runs fast is followed; outside them it keeps the
// nearest reading's offset.
type clockMap []lab.ClockReading

// host is guest time g on the host's clock; false without a reading.
func (m clockMap) host(g time.Time) (time.Time, bool) {
	if len(m) == 0 || g.IsZero() {
		return time.Time{}, false
	}
	if !g.After(m[0].Guest) {
		return g.Add(m[0].Host.Sub(m[0].Guest)), true
	}
	for i := 1; i < len(m); i++ {
		a, b := m[i-1], m[i]
		if g.After(b.Guest) {
			continue
		}
		span := b.Guest.Sub(a.Guest)
		if span <= 0 {
			return g.Add(b.Host.Sub(b.Guest)), true
		}
		f := float64(g.Sub(a.Guest)) / float64(span)
		return a.Host.Add(time.Duration(f * float64(b.Host.Sub(a.Host)))), true
	}
	last := m[len(m)-1]
	return g.Add(last.Host.Sub(last.Guest)), true
}

// describe states the measured offset(s) for a person.
func (m clockMap) describe() string {
	if len(m) == 0 {
		return "the guest's clock was not read: guest times are shown as the guest gave them"
	}
	word := func(r lab.ClockReading) string {
		d := r.Guest.Sub(r.Host).Round(100 * time.Millisecond)
		switch {
		case d.Abs() < time.Second:
			return "within a second of the host's"
		case d > 0:
			return signedDur(d) + " ahead of the host's"
		}
		return signedDur(-d) + " behind the host's"
	}
	var parts []string
	for i, r := range m {
		when := "at the first step"
		switch {
		case i == 1:
			when = "before collecting evidence"
		case i > 1:
			when = "after collecting it"
		}
		parts = append(parts, word(r)+" "+when)
	}
	return "guest clock " + strings.Join(parts, ", ") + " (read with date -u, to the second)"
}

func signedDur(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}
