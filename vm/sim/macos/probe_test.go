package macos

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// machoHeader is a Mach-O 64-bit header with no load commands: enough
// for debug/macho to read its CPU and file type.
func machoHeader(cpu uint32, fileType uint32) []byte {
	b := make([]byte, 32)
	binary.LittleEndian.PutUint32(b[0:], 0xfeedfacf) // MH_MAGIC_64
	binary.LittleEndian.PutUint32(b[4:], cpu)
	binary.LittleEndian.PutUint32(b[12:], fileType)
	return b
}

const (
	cpuArm64  = 0x0100000c
	cpuAmd64  = 0x01000007
	mhExecute = 2
	mhDylib   = 6
	probePath = "/tmp/sxlab/sxlab-probe"
	asAdmin   = "sudo launchctl asuser $(id -u admin) sudo -u admin "
)

func (s *simMac) probe(data []byte, args string) result {
	s.t.Helper()
	s.put(probePath, data)
	require.Equal(s.t, 0, s.shellRun("chmod 755 "+probePath).code)
	return s.shellRun(asAdmin + probePath + " " + args)
}

func decodeProbe(t *testing.T, out string) map[string]any {
	t.Helper()
	var rep map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	return rep
}

func TestTheProbeRunsOnlyAsAnArm64MachO(t *testing.T) {
	s := newSimMac(t)
	for name, data := range map[string][]byte{
		"a Linux ELF":      append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 57)...),
		"an x86_64 Mach-O": machoHeader(cpuAmd64, mhExecute),
		"an arm64 dylib":   machoHeader(cpuArm64, mhDylib),
	} {
		r := s.probe(data, "mach-lookup ABCDE12345.com.example.vpn.tunnel")
		assert.Equal(t, result{"", "sudo: unable to execute " + probePath + ": Exec format error\n", 126}, r, name)
	}
	r := s.shellRun(asAdmin + "/tmp/sxlab/none mach-lookup X")
	assert.Equal(t, result{"", "sudo: /tmp/sxlab/none: command not found\n", 1}, r)
}

func TestTheProbeAnswersFromTheModel(t *testing.T) {
	s := newSimMac(t)
	const service = "ABCDE12345.com.example.vpn.tunnel"
	exe := machoHeader(cpuArm64, mhExecute)

	r := s.probe(exe, "mach-lookup "+service)
	assert.Equal(t, 1, r.code, "nothing installed: not registered")
	rep := decodeProbe(t, r.out)
	assert.Equal(t, "lookup-failed", rep["outcome"])
	assert.Equal(t, float64(501), rep["uid"], "sudo -u admin inside the session")
	assert.Equal(t, "BOOTSTRAP_UNKNOWN_SERVICE", rep["lookup"].(map[string]any)["name"])

	s.install(1)
	s.launch()
	s.approve()
	require.Equal(t, []string{"1.0/100 activated enabled"}, s.extStates())
	r = s.probe(exe, "mach-lookup "+service)
	assert.Equal(t, 0, r.code, r.err)
	assert.Equal(t, "found", decodeProbe(t, r.out)["outcome"])

	r = s.probe(exe, "xpc-connect "+service+" --timeout 2s")
	assert.Equal(t, 0, r.code, r.err)
	rep = decodeProbe(t, r.out)
	assert.Equal(t, "rejected", rep["outcome"], "an NSXPC provider closes a raw connection: reachable")
	xpc := rep["xpc"].(map[string]any)
	assert.Equal(t, "connection-invalid", xpc["event"])
	assert.Equal(t, float64(2000), xpc["timeout_ms"])

	for _, bad := range []string{"", "mach-lookup", "xpc-connect " + service + " --timeout 0", "ping " + service} {
		r = s.probe(exe, bad)
		assert.Equal(t, 64, r.code, bad)
		assert.Empty(t, r.out, "no report on a bad command line: %q", bad)
		assert.Contains(t, r.err, "sxlab-probe: ")
	}
}

// TestAGoBuiltDarwinProgramIsAnArm64MachO checks the rule on a binary the
// Go linker made, as the lab's probe is made.
func TestAGoBuiltDarwinProgramIsAnArm64MachO(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds a program")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module probeprobe\n\ngo 1.22\n"), 0o644))
	for _, target := range []struct {
		goarch string
		want   bool
	}{{"arm64", true}} { // other architectures: the hand-made headers above
		out := filepath.Join(dir, "prog-"+target.goarch)
		cmd := exec.Command(goBin, "build", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH="+target.goarch, "CGO_ENABLED=0", "GOFLAGS=")
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", b)
		f, err := os.Open(out)
		require.NoError(t, err)
		assert.Equal(t, target.want, isArm64Executable(f), target.goarch)
		f.Close()
	}
}
