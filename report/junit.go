package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
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
	var b bytes.Buffer
	jw, err := newJUnitWriter(&b, r)
	if err != nil {
		return nil, err
	}
	for _, c := range r.Cells {
		if err := jw.suite(c); err != nil {
			return nil, err
		}
	}
	if err := jw.close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// junitWriter writes junit.xml a suite at a time, so that Write can read
// one cell's attempt folders at a time. The root's totals count test
// cases from the journal alone (probes, verdicts, times), which is what
// the suites will hold once their folders are read.
type junitWriter struct {
	enc                 *xml.Encoder
	w                   io.Writer
	r                   *Run
	names               []string
	imageAxis, pathAxis string
}

func newJUnitWriter(w io.Writer, r *Run) (*junitWriter, error) {
	jw := &junitWriter{w: w, r: r, names: axisNames(r),
		imageAxis: r.Info.Config.Matrix.ImageAxis, pathAxis: r.Info.Config.Matrix.PathAxis}
	root := junitSuites{Name: "sxlab " + r.Info.Lab + " " + r.Info.ID}
	if r.Simulated {
		root.Name += " (SIMULATED)"
	}
	var total time.Duration
	for _, c := range r.Cells {
		s, d := junitSuiteOf(r, c, jw.names, jw.imageAxis, jw.pathAxis)
		total += d
		root.Tests += s.Tests
		root.Failures += s.Failures
		root.Errors += s.Errors
	}
	root.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return nil, fmt.Errorf("junit.xml: %w", err)
	}
	jw.enc = xml.NewEncoder(w)
	jw.enc.Indent("", "  ")
	start := xml.StartElement{Name: xml.Name{Local: "testsuites"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "name"}, Value: root.Name},
		{Name: xml.Name{Local: "tests"}, Value: fmt.Sprint(root.Tests)},
		{Name: xml.Name{Local: "failures"}, Value: fmt.Sprint(root.Failures)},
		{Name: xml.Name{Local: "errors"}, Value: fmt.Sprint(root.Errors)},
		{Name: xml.Name{Local: "time"}, Value: root.Time},
	}}
	if err := jw.enc.EncodeToken(start); err != nil {
		return nil, fmt.Errorf("junit.xml: %w", err)
	}
	return jw, nil
}

// suite writes the cell's testsuite; c has its attempt folders read.
func (jw *junitWriter) suite(c Cell) error {
	s, _ := junitSuiteOf(jw.r, c, jw.names, jw.imageAxis, jw.pathAxis)
	if err := jw.enc.EncodeElement(s, xml.StartElement{Name: xml.Name{Local: "testsuite"}}); err != nil {
		return fmt.Errorf("junit.xml: %w", err)
	}
	return nil
}

func (jw *junitWriter) close() error {
	if err := jw.enc.EncodeToken(xml.EndElement{Name: xml.Name{Local: "testsuites"}}); err != nil {
		return fmt.Errorf("junit.xml: %w", err)
	}
	if err := jw.enc.Flush(); err != nil {
		return fmt.Errorf("junit.xml: %w", err)
	}
	_, err := io.WriteString(jw.w, "\n")
	return err
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
// image and path axes (either left out when the matrix has no such axis),
// with the dots inside each value made underscores: Jenkins's junit
// plugin takes everything before a classname's last dot as the package
// and the rest as the class (CaseResult.getPackageName/getSimpleName,
// github.com/jenkinsci/junit-plugin), so the values' own dots would cut
// "macos-15.3" apart; with them gone, Jenkins shows package
// upgrade.macos-15_3 and class 2->3, one package per macOS and one class
// per upgrade path. GitLab shows the classname whole in its Suite column
// and keys a test by classname and name (docs.gitlab.com/ci/testing/
// unit_test_reports), which this keeps readable and unique.
func classname(axes map[string]string, imageAxis, pathAxis string) string {
	parts := []string{"upgrade"}
	for _, a := range []string{imageAxis, pathAxis} {
		if v, ok := axes[a]; ok && a != "" {
			parts = append(parts, classPart(v))
		}
	}
	return strings.Join(parts, ".")
}

// classPart is an axis value as one dot-free part of a classname; an
// empty value still takes a place so that the parts keep their meaning.
func classPart(v string) string {
	v = strings.ReplaceAll(oneLineValue(v), ".", "_")
	if v == "" {
		return "_"
	}
	return v
}

// oneLineValue drops control characters, which XML 1.0 attributes cannot
// carry (a classname is an attribute).
func oneLineValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
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

// attachmentsOut is the system-out of a try's test cases: how its machine
// started and was reached, then the Jenkins attachments plugin's and
// GitLab's [[ATTACHMENT|path]] lines, paths relative to the run folder
// (where junit.xml is).
func attachmentsOut(a Attempt) string {
	var b strings.Builder
	// How the machine started and was reached, before the attachments:
	// a verdict from a cold boot or over a fallback channel reads
	// differently.
	if m := a.MachineLine(); m != "" {
		fmt.Fprintf(&b, "machine: %s\n", m)
	}
	for _, n := range a.MachineNotes() {
		fmt.Fprintf(&b, "%s\n", n)
	}
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
