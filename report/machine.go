package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/sxlab/sxlab/lab"
)

// How each try's machine started and how the lab reached its sshd, as
// the journal says (start, start_note, to_ssh, channel, channel_note), and
// the hosts a run took out (run.json quarantined, or the tries that
// named the fault): what a person needs to trust a try's verdict on a
// real host. Journals from before these fields say nothing, and neither
// do these.

// MachineLine is one try's start and channel, e.g. "restored, SSH after
// 12.3 s, over vsock"; "" when the journal says neither.
func (a Attempt) MachineLine() string {
	var parts []string
	switch a.Start {
	case lab.StartRestored:
		parts = append(parts, "restored from saved state")
	case lab.StartCold:
		if a.StartNote != "" {
			parts = append(parts, "cold boot (the restore fell back)")
		} else {
			parts = append(parts, "cold boot")
		}
	}
	if a.ToSSH > 0 {
		parts = append(parts, fmt.Sprintf("SSH after %.1f s", a.ToSSH))
	}
	switch a.Channel {
	case lab.ChannelVsock:
		parts = append(parts, "over vsock (the guest agent)")
	case lab.ChannelTCP:
		if a.ChannelNote != "" {
			parts = append(parts, "over tcp (fell back)")
		} else {
			parts = append(parts, "over tcp")
		}
	case "":
	default:
		parts = append(parts, "over "+a.Channel)
	}
	return strings.Join(parts, ", ")
}

// MachineNotes are the journal's words on what did not go as planned:
// why a restore fell back to a cold boot, why the agent's channel was
// not used, why the host was taken out of the run.
func (a Attempt) MachineNotes() []string {
	var out []string
	if a.StartNote != "" {
		out = append(out, "start: "+a.StartNote)
	}
	if a.ChannelNote != "" {
		out = append(out, "channel: "+a.ChannelNote)
	}
	if a.Quarantine != "" {
		out = append(out, fmt.Sprintf("host %s quarantined: %s; this try does not count against the product", a.Host, a.Quarantine))
	}
	return out
}

// Quarantine is a host the run took out, with its reason.
type Quarantine struct {
	Host   string
	Reason string
}

// Sentence is how reports say it.
func (q Quarantine) Sentence() string {
	s := "host " + q.Host + " needs a reboot; none of its attempts counts against the product"
	if q.Reason != "" {
		s += " (" + q.Reason + ")"
	}
	return s
}

// Quarantined lists the hosts the run took out: run.json's, and any a try
// named that run.json does not (a run that died before writing it, a
// merge of shards), by host name.
func (r *Run) Quarantined() []Quarantine {
	seen := map[string]bool{}
	var out []Quarantine
	for _, q := range r.Info.Quarantined {
		if !seen[q.Host] {
			seen[q.Host] = true
			out = append(out, Quarantine{Host: q.Host, Reason: q.Reason})
		}
	}
	var more []Quarantine
	for _, rec := range r.Records {
		if rec.Quarantine != "" && !seen[rec.Host] {
			seen[rec.Host] = true
			more = append(more, Quarantine{Host: rec.Host, Reason: rec.Quarantine})
		}
	}
	sort.Slice(more, func(i, j int) bool { return more[i].Host < more[j].Host })
	return append(out, more...)
}

// Machines counts the run's tries by start and by channel, e.g.
// "channel: vsock 3, tcp 36 (1 fell back from vsock); start: restored 30,
// cold 2 (2 restores fell back)"; "" when no try says.
func (r *Run) Machines() string {
	channels, starts := map[string]int{}, map[string]int{}
	channelFell, startFell := 0, 0
	for _, rec := range r.Records {
		if rec.Channel != "" {
			channels[rec.Channel]++
			if rec.ChannelNote != "" {
				channelFell++
			}
		}
		if rec.Start != "" {
			starts[rec.Start]++
			if rec.StartNote != "" {
				startFell++
			}
		}
	}
	var parts []string
	if c := countedBy(channels, lab.ChannelVsock, lab.ChannelTCP); c != "" {
		if channelFell > 0 {
			c += fmt.Sprintf(" (%d fell back from vsock)", channelFell)
		}
		parts = append(parts, "channel: "+c)
	}
	if s := countedBy(starts, lab.StartRestored, lab.StartCold); s != "" {
		if startFell > 0 {
			s += fmt.Sprintf(" (%d restore(s) fell back to a cold boot)", startFell)
		}
		parts = append(parts, "start: "+s)
	}
	return strings.Join(parts, "; ")
}

// countedBy is "a 3, b 2, other 1": the known keys in order, then the rest
// sorted; zero counts left out.
func countedBy(n map[string]int, known ...string) string {
	var rest []string
	for k := range n {
		if !slices.Contains(known, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	var parts []string
	for _, k := range append(known, rest...) {
		if n[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
		}
	}
	return strings.Join(parts, ", ")
}
