package report

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

// needTool skips a test that needs an outside tool, or fails it in CI
// (CI=true), where the tool is part of the contract.
func needTool(t *testing.T, what, hint string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing in CI: %s", what, hint)
	}
	t.Skipf("%s is missing (%s); skipped", what, hint)
}

func TestJUnitValidatesAgainstTheSchema(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		needTool(t, "xmllint", "apt-get install libxml2-utils")
	}
	// A copy of ../shared/schemas/junit-10.xsd (see testdata/README.md).
	schema := filepath.Join("testdata", "junit-10.xsd")
	for _, simulated := range []bool{true, false} {
		dir := fxRun(t, simulated)
		require.NoError(t, Write(dir))
		out, err := exec.Command(xmllint, "--noout", "--schema", schema, filepath.Join(dir, JUnitFile)).CombinedOutput()
		assert.NoError(t, err, "xmllint: %s", out)
	}
}

type xSuites struct {
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Name     string   `xml:"name,attr"`
	Suites   []xSuite `xml:"testsuite"`
}

type xSuite struct {
	Name       string  `xml:"name,attr"`
	ID         string  `xml:"id,attr"`
	Tests      int     `xml:"tests,attr"`
	Failures   int     `xml:"failures,attr"`
	Errors     int     `xml:"errors,attr"`
	Properties []xProp `xml:"properties>property"`
	Cases      []xCase `xml:"testcase"`
}

type xProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type xCase struct {
	Name      string `xml:"name,attr"`
	Classname string `xml:"classname,attr"`
	Failure   *struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Body    string `xml:",chardata"`
	} `xml:"failure"`
	Error *struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
	} `xml:"error"`
	SystemOut string `xml:"system-out"`
}

func junitOf(t *testing.T, simulated bool) xSuites {
	t.Helper()
	b, err := JUnit(fxLoad(t, simulated))
	require.NoError(t, err)
	var s xSuites
	require.NoError(t, xml.Unmarshal(b, &s))
	return s
}

func suiteOf(t *testing.T, s xSuites, id string) xSuite {
	t.Helper()
	for _, x := range s.Suites {
		if x.ID == id {
			return x
		}
	}
	t.Fatalf("no testsuite for cell %s", id)
	return xSuite{}
}

func TestJUnitHasASuitePerCellAndACasePerProbePerTry(t *testing.T) {
	s := junitOf(t, true)
	require.Len(t, s.Suites, 4)
	assert.Contains(t, s.Name, "SIMULATED")

	fail := suiteOf(t, s, fxFail.id)
	assert.Equal(t, 9, fail.Tests, "3 probes x 3 repeats")
	assert.Equal(t, 6, fail.Failures, "mach-endpoint and xpc failed in each repeat")
	assert.Contains(t, fail.Properties, xProp{Name: "macos", Value: "macos-15.3"})
	assert.Contains(t, fail.Properties, xProp{Name: "path", Value: "2->3"})
	assert.Contains(t, fail.Properties, xProp{Name: "vpn", Value: "running"})
	for _, c := range fail.Cases {
		assert.Equal(t, "upgrade.macos-15_3.2->3", c.Classname)
	}
	c := fail.Cases[1]
	assert.Equal(t, "mach-endpoint [vpn=running r1 simulated]", c.Name)
	require.NotNil(t, c.Failure)
	assert.Equal(t, "mach-endpoint: connection invalidated", c.Failure.Message)
	assert.Equal(t, fxFinding, c.Failure.Type)
	assert.Contains(t, c.Failure.Body, fxEvidence, "the finding's evidence line")
	assert.Nil(t, fail.Cases[0].Failure, "extension-state held")

	// Names are distinct per classname across cells, repeats and tries, so
	// consumers that key tests by classname and name see each once.
	seen := map[string]bool{}
	for _, x := range s.Suites {
		for _, c := range x.Cases {
			key := c.Classname + "\x00" + c.Name
			assert.False(t, seen[key], "duplicate test %s %s", c.Classname, c.Name)
			seen[key] = true
		}
	}
	assert.Equal(t, 9+9+9+2, len(seen))
	assert.Equal(t, len(seen), s.Tests)
	assert.Equal(t, 6+3*0+2, s.Failures, "fail cell 6, flaky cell 2 (its r2), pass and error cells none")
	assert.Equal(t, 2, s.Errors)
}

func TestJUnitReportsInfrastructureErrorsApart(t *testing.T) {
	s := junitOf(t, true)
	errs := suiteOf(t, s, fxErrors.id)
	require.Len(t, errs.Cases, 2, "one test case per errored try, none per probe")
	assert.Equal(t, 0, errs.Failures)
	assert.Equal(t, 2, errs.Errors)
	assert.Equal(t, "attempt [vpn=stopped r1 simulated]", errs.Cases[0].Name)
	assert.Equal(t, "attempt [vpn=stopped r1 try2 simulated]", errs.Cases[1].Name)
	for _, c := range errs.Cases {
		require.NotNil(t, c.Error)
		assert.Nil(t, c.Failure)
		assert.Equal(t, "infrastructure", c.Error.Type)
		assert.Contains(t, c.Error.Message, "sshd never answered")
	}
}

func TestJUnitAttachesTheSysdiagnoseAndLogsThatExist(t *testing.T) {
	s := junitOf(t, true)
	fail := suiteOf(t, s, fxFail.id)
	r1 := fail.Cases[1].SystemOut
	assert.Contains(t, r1, "[[ATTACHMENT|cells/"+fxFail.id+"/1/sysdiagnose_r1.tar.gz]]")
	assert.Contains(t, r1, "[[ATTACHMENT|cells/"+fxFail.id+"/1/logs.ndjson]]")
	assert.NotContains(t, fail.Cases[4].SystemOut, "ATTACHMENT", "r2 has no sysdiagnose or logs on disk")
}

func TestJUnitOfARealRunIsNotLabelledSimulated(t *testing.T) {
	s := junitOf(t, false)
	assert.NotContains(t, s.Name, "SIMULATED")
	for _, x := range s.Suites {
		assert.NotContains(t, x.Name, "SIMULATED")
		assert.Contains(t, x.Properties, xProp{Name: "simulated", Value: "false"})
		for _, c := range x.Cases {
			assert.False(t, strings.Contains(c.Name, "simulated"), c.Name)
		}
	}
}

// jenkinsSplit is how Jenkins's junit plugin files a test case:
// package up to the classname's last dot, class after it
// (CaseResult.getPackageName and getSimpleName).
func jenkinsSplit(classname string) (pkg, class string) {
	i := strings.LastIndex(classname, ".")
	if i < 0 {
		return "(root)", classname
	}
	return classname[:i], classname[i+1:]
}

func TestJUnitClassnameGroupsByMacOSAndPathInJenkins(t *testing.T) {
	s := junitOf(t, true)
	pkg, class := jenkinsSplit(suiteOf(t, s, fxFail.id).Cases[0].Classname)
	assert.Equal(t, "upgrade.macos-15_3", pkg, "one package per macOS, its version whole")
	assert.Equal(t, "2->3", class, "one class per upgrade path")

	// Dotted versions on both axes stay whole parts.
	got := classname(map[string]string{"macos": "macos-15.3.2", "path": "1.9->2.0"}, "macos", "path")
	pkg, class = jenkinsSplit(got)
	assert.Equal(t, "upgrade.macos-15_3_2", pkg)
	assert.Equal(t, "1_9->2_0", class)
	assert.Equal(t, "upgrade._.x", classname(map[string]string{"macos": "", "path": "x"}, "macos", "path"),
		"an empty value keeps its place")
}

// A try the interrupt cut short is run again by the resume: its failing
// probes are not a product failure of their own.
func TestJUnitReportsATryCutShortAsInterrupted(t *testing.T) {
	rec := fxRecord(fxFail, 1, 1, false, lab.Fail, true)
	rec.Interrupted = true
	cases := junitCasesOf(Attempt{Record: rec}, "upgrade.macos-15.3.2->3", "r1")
	require.NotEmpty(t, cases)
	errs := 0
	for _, c := range cases {
		assert.Nil(t, c.Failure, c.Name)
		if c.Error != nil {
			errs++
			assert.Equal(t, "interrupted", c.Error.Type)
		}
	}
	assert.Equal(t, 2, errs, "mach-endpoint and xpc did not hold")
}
