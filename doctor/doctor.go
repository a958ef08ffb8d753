// Package doctor checks that this machine can run the configured hosts:
// for each provider, what it needs of the OS, the binary, the keychain,
// the network, the disk and the Virtualization.framework limits, each
// finding with the fix. Every outside fact comes through System, so the
// darwin checks are tested on Linux with canned command output.
package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/sxlab/sxlab/lab"
)

// Level says how much a finding matters.
type Level int

// Levels, mildest first.
const (
	OK      Level = iota
	Note          // worth knowing, nothing to fix
	Warning       // runs, but not as well as it could (or may fail later)
	Failure       // the configured provider cannot run here
)

func (l Level) String() string {
	switch l {
	case OK:
		return "ok"
	case Note:
		return "note"
	case Warning:
		return "warning"
	}
	return "FAILURE"
}

// Finding is the result of one check.
type Finding struct {
	Subject string // what was checked: "host mini (vz)", "this Mac", "runs_dir"
	Check   string // short name: "entitlement", "disk", ...
	Level   Level
	Message string
	Fix     string // what to do; empty when nothing is to be done
}

// Report is every finding, in the order the checks ran.
type Report struct {
	Platform string   // GOOS/GOARCH
	Summary  []string // what this platform can run, in plain words
	Findings []Finding
	// Needs lists what the Mac-only providers would need, when this
	// platform cannot run them.
	Needs []string
}

// Count returns how many findings have level l.
func (r *Report) Count(l Level) int {
	n := 0
	for _, f := range r.Findings {
		if f.Level == l {
			n++
		}
	}
	return n
}

// OK is true when nothing failed: the configured providers can run.
func (r *Report) OK() bool { return r.Count(Failure) == 0 }

// Config is what the checks need to know of the configuration.
type Config struct {
	RunsDir string
	MinFree int64 // collect.min_free, bytes
	Hosts   []Host
}

// Host is one configured host.
type Host struct {
	Name     string
	Provider string
	Slots    int
	Store    string // vz: hosts[].vz.store
	TartHome string // tart: hosts[].tart.home
	SSH      string // ssh: hosts[].ssh.address
	Reset    string // ssh: hosts[].ssh.reset
}

func (h Host) subject() string { return fmt.Sprintf("host %s (%s)", h.Name, h.Provider) }

// ConfigFrom takes what the checks need from a loaded configuration,
// with paths resolved as a run resolves them.
func ConfigFrom(l *lab.Loaded) Config {
	c := &l.Config
	out := Config{RunsDir: c.Lab.RunsDir, MinFree: int64(c.Collect.MinFree)}
	for _, h := range c.Hosts {
		dh := Host{Name: h.Name, Provider: h.Provider, Slots: h.Slots}
		if h.VZ != nil && h.VZ.Store != "" {
			dh.Store = l.Resolve(h.VZ.Store)
		}
		if h.Tart != nil && h.Tart.Home != "" {
			dh.TartHome = l.Resolve(h.Tart.Home)
		}
		if h.SSH != nil {
			dh.SSH, dh.Reset = h.SSH.Address, h.SSH.Reset
		}
		out.Hosts = append(out.Hosts, dh)
	}
	return out
}

// Check runs every check that applies to cfg on sys.
func Check(ctx context.Context, sys System, cfg Config) *Report {
	sys = sys.withDefaults()
	d := &doctor{sys: sys, cfg: cfg, r: &Report{Platform: sys.GOOS + "/" + sys.GOARCH}, vmProcs: -1}
	d.platform()
	var macHosts []Host
	for _, h := range cfg.Hosts {
		switch h.Provider {
		case lab.ProviderSim:
			d.add(h.subject(), "provider", OK, "simulated Macs run on any OS; every result from them is labelled simulated", "")
		case lab.ProviderSSH:
			d.sshHost(ctx, h)
		case lab.ProviderVZ, lab.ProviderTart:
			if d.macHost(ctx, h) {
				macHosts = append(macHosts, h)
			}
		default:
			d.add(h.subject(), "provider", Failure, fmt.Sprintf("unknown provider %q", h.Provider),
				"use one of "+strings.Join(lab.Providers(), ", "))
		}
	}
	if len(macHosts) > 0 {
		d.thisMac(ctx, macHosts)
	}
	d.runsDir()
	return d.r
}

type doctor struct {
	sys System
	cfg Config
	r   *Report
	// macOS is the host's product version, read once.
	macOS      string
	macOSMajor int
	// keychainUnlocked and vmProcs (framework VM processes, -1 unknown)
	// are what the keychain and running-VM checks found.
	keychainUnlocked bool
	vmProcs          int
}

func (d *doctor) add(subject, check string, l Level, msg, fix string) {
	d.r.Findings = append(d.r.Findings, Finding{Subject: subject, Check: check, Level: l, Message: msg, Fix: fix})
}

func (d *doctor) appleSilicon() bool { return d.sys.GOOS == "darwin" && d.sys.GOARCH == "arm64" }

// WriteText prints the report for a person: the platform, the findings
// grouped by subject with their fixes, then the verdict.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "sxlab doctor on %s\n", r.Platform)
	for _, s := range r.Summary {
		fmt.Fprintf(&b, "%s\n", s)
	}
	subject := ""
	for _, f := range r.Findings {
		if f.Subject != subject {
			subject = f.Subject
			fmt.Fprintf(&b, "\n%s\n", subject)
		}
		fmt.Fprintf(&b, "  %-8s %-13s %s\n", f.Level, f.Check, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(&b, "  %-8s %-13s fix: %s\n", "", "", f.Fix)
		}
	}
	if len(r.Needs) > 0 {
		fmt.Fprintf(&b, "\nvz and tart hosts would need:\n")
		for _, n := range r.Needs {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	fails, warns := r.Count(Failure), r.Count(Warning)
	verdict := "ok: the configured providers can run here"
	if fails > 0 {
		verdict = "not ready: the failures above keep the configured providers from running here"
	}
	fmt.Fprintf(&b, "\n%s (%d failure(s), %d warning(s))\n", verdict, fails, warns)
	_, err := io.WriteString(w, b.String())
	return err
}
