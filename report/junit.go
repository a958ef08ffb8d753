package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sxlab/sxlab/lab"
)

// The JUnit dialect of Jenkins, pytest and GitLab (../shared/schemas/
// junit-10.xsd): one testsuite per cell, one testcase per probe per try.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	ID         string          `xml:"id,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr,omitempty"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Type    string `xml:"type,attr,omitempty"`
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// JUnit renders the run as JUnit XML.
func JUnit(r *Run) ([]byte, error) {
	imageAxis, pathAxis := r.Info.Config.Matrix.ImageAxis, r.Info.Config.Matrix.PathAxis
	names := axisNames(r)
	out := junitSuites{Name: "sxlab " + r.Info.Lab + " " + r.Info.ID}
	if r.Simulated {
		out.Name += " (SIMULATED)"
	}
	var total time.Duration
	for _, c := range r.Cells {
		s, d := junitSuiteOf(r, c, names, imageAxis, pathAxis)
		total += d
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Suites = append(out.Suites, s)
	}
	out.Time = seconds(total)
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("junit.xml: %w", err)
	}
	b.WriteString("\n")
	return b.Bytes(), nil
}

func junitSuiteOf(r *Run, c Cell, names []string, imageAxis, pathAxis string) (junitSuite, time.Duration) {
	s := junitSuite{Name: c.Label, ID: c.Cell}
	if r.Simulated {
		s.Name = "SIMULATED " + s.Name
	}
	for _, a := range names {
		if v, ok := c.Axes[a]; ok {
			s.Properties = append(s.Properties, junitProperty{Name: a, Value: v})
		}
	}
	s.Properties = append(s.Properties,
		junitProperty{Name: "cell", Value: c.Cell},
		junitProperty{Name: "verdict", Value: c.Status()},
		junitProperty{Name: "failure_rate", Value: fmt.Sprintf("%d/%d", c.Failures, c.Attempts)},
		junitProperty{Name: "interval95", Value: fmt.Sprintf("%.3f-%.3f", c.Low, c.High)},
		junitProperty{Name: "simulated", Value: fmt.Sprint(r.Simulated)},
	)
	class := classname(c.Axes, imageAxis, pathAxis)
	// The other axes tell cells of one classname apart in test names, so
	// consumers that key tests by classname and name (GitLab) see each
	// attempt of each cell once.
	var rest []string
	for _, a := range names {
		if a == imageAxis || a == pathAxis {
			continue
		}
		if v, ok := c.Axes[a]; ok {
			rest = append(rest, a+"="+v)
		}
	}
	var hosts []string
	var total time.Duration
	var first time.Time
	for _, a := range c.Tries {
		tag := strings.Join(append(slices.Clone(rest), fmt.Sprintf("r%d", a.Repeat)), " ")
		if a.Try > 1 {
			tag += fmt.Sprintf(" try%d", a.Try)
		}
		if r.Simulated {
			tag += " simulated"
		}
		d := a.Finished.Sub(a.Started)
		if d > 0 {
			total += d
		}
		if !a.Started.IsZero() && (first.IsZero() || a.Started.Before(first)) {
			first = a.Started
		}
		if a.Host != "" && !slices.Contains(hosts, a.Host) {
			hosts = append(hosts, a.Host)
		}
		for _, tc := range junitCasesOf(a, class, tag) {
			s.Tests++
			if tc.Failure != nil {
				s.Failures++
			}
			if tc.Error != nil {
				s.Errors++
			}
			s.Cases = append(s.Cases, tc)
		}
	}
	s.Time = seconds(total)
	if !first.IsZero() {
		s.Timestamp = first.UTC().Format("2006-01-02T15:04:05")
	}
	sort.Strings(hosts)
	s.Hostname = strings.Join(hosts, ",")
	return s, total
}

// classname is upgrade.<image>.<path> from the cell's values of the
// image and path axes (either left out when the matrix has no such axis).
func classname(axes map[string]string, imageAxis, pathAxis string) string {
	parts := []string{"upgrade"}
	for _, a := range []string{imageAxis, pathAxis} {
		if v, ok := axes[a]; ok && a != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, ".")
}

// junitCasesOf is one testcase per probe of the try; a try without probes
// (it ended before them) is one testcase for the whole attempt.
func junitCasesOf(a Attempt, class, tag string) []junitCase {
	out := attachmentsOut(a)
	var cases []junitCase
	for _, p := range a.Probes {
		tc := junitCase{Name: fmt.Sprintf("%s [%s]", p.Name, tag), Classname: class, SystemOut: out}
		if d := probeDuration(a, p.Name); d > 0 {
			tc.Time = seconds(d)
		}
		if !p.Held {
			problem := &junitProblem{Message: p.Message, Body: probeBody(a, p)}
			if a.Verdict == lab.Error || a.Interrupted {
				// The lab was at fault in this try (or the run stopped under
				// it, and a resume runs it again); the probe's word is not
				// the product's.
				problem.Type = infraType(a)
				tc.Error = problem
			} else {
				problem.Type = findingOf(a)
				tc.Failure = problem
			}
		}
		cases = append(cases, tc)
	}
	if len(a.Probes) == 0 || (a.Verdict != lab.Pass && allHeld(a)) {
		tc := junitCase{Name: fmt.Sprintf("attempt [%s]", tag), Classname: class, SystemOut: out}
		if d := a.Finished.Sub(a.Started); d > 0 {
			tc.Time = seconds(d)
		}
		switch {
		case a.Verdict == lab.Fail && !a.Interrupted:
			tc.Failure = &junitProblem{Type: findingOf(a), Message: a.Reason, Body: attemptBody(a)}
		case a.Verdict == lab.Pass && !a.Interrupted:
		default:
			tc.Error = &junitProblem{Type: infraType(a), Message: a.Reason, Body: attemptBody(a)}
		}
		cases = append(cases, tc)
	}
	return cases
}

// infraType is the type of a try's error: the lab's, or the interrupt's.
func infraType(a Attempt) string {
	if a.Interrupted {
		return "interrupted"
	}
	return "infrastructure"
}

func allHeld(a Attempt) bool {
	for _, p := range a.Probes {
		if !p.Held {
			return false
		}
	}
	return true
}

func findingOf(a Attempt) string {
	if a.Triage != nil && a.Triage.Finding != "" {
		return a.Triage.Finding
	}
	return "product-failure"
}

// probeDuration sums the steps the probe ran (recorded as "probe <kind>";
// a probe named after its kind, the usual case, is found).
func probeDuration(a Attempt, probe string) time.Duration {
	var d time.Duration
	for _, e := range a.Steps {
		if e.Step == "probe "+probe && e.Result != nil {
			d += e.Result.Duration
		}
	}
	return d
}

func probeBody(a Attempt, p lab.ProbeOutcome) string {
	var b strings.Builder
	b.WriteString(p.Message + "\n")
	keys := make([]string, 0, len(p.Observations))
	for k := range p.Observations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, p.Observations[k])
	}
	b.WriteString(attemptBody(a))
	return b.String()
}

// attemptBody is what a person reading CI output needs first: why, the
// finding with its evidence, what evidence is missing.
func attemptBody(a Attempt) string {
	var b strings.Builder
	if a.Reason != "" {
		fmt.Fprintf(&b, "attempt: %s\n", a.Reason)
	}
	if a.Triage != nil {
		fmt.Fprintf(&b, "finding: %s\n", a.Triage.Finding)
		for _, l := range a.Triage.Labels {
			fmt.Fprintf(&b, "  %s: %s\n", l.Signature, l.Meaning)
			for _, e := range l.Evidence {
				fmt.Fprintf(&b, "    %s\n", evidenceLine(e))
			}
		}
	}
	for _, m := range a.Missing {
		fmt.Fprintf(&b, "missing evidence: %s: %s\n", m.What, m.Reason)
	}
	if a.Folder != "" {
		fmt.Fprintf(&b, "folder: %s\n", a.Folder)
	}
	return b.String()
}

// attachmentsOut is the system-out of a try's test cases: the Jenkins
// attachments plugin's and GitLab's [[ATTACHMENT|path]] lines, paths
// relative to the run folder (where junit.xml is).
func attachmentsOut(a Attempt) string {
	var b strings.Builder
	for _, f := range a.Attachments() {
		fmt.Fprintf(&b, "[[ATTACHMENT|%s]]\n", f.Path)
	}
	return b.String()
}

// seconds formats d as the schema's SUREFIRE_TIME: plain decimal seconds.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3f", d.Seconds())
}

// axisNames are the matrix's axes in order, then keys only cells have.
func axisNames(r *Run) []string {
	var names []string
	for _, ax := range r.Info.Config.Matrix.Axes {
		if !slices.Contains(names, ax.Name) {
			names = append(names, ax.Name)
		}
	}
	var extra []string
	for _, c := range r.Cells {
		for k := range c.Axes {
			if !slices.Contains(names, k) && !slices.Contains(extra, k) {
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	return append(names, extra...)
}
