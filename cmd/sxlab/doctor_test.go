package main

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func appleSilicon() bool { return runtime.GOOS == "darwin" && runtime.GOARCH == "arm64" }

func TestDoctorOnTheDemoConfig(t *testing.T) {
	code, out, errs := sxlab(t, "doctor", "--config", demoConfig)
	require.Equal(t, exitOK, code, "the demo uses only sim, which runs anywhere\n%s%s", out, errs)
	assert.Contains(t, out, "host local (sim)")
	assert.Contains(t, out, "every result from them is labelled simulated")
	assert.Contains(t, out, "ok: the configured providers can run here")
	if !appleSilicon() {
		assert.Contains(t, out, "the sim and ssh providers run here; vz and tart need macOS on Apple Silicon")
		assert.Contains(t, out, "vz and tart hosts would need:")
		assert.Contains(t, out, "com.apple.security.virtualization")
	}
}

const doctorConfig = `
hosts:
  - {name: mini, provider: vz, slots: 2, vz: {store: ./store}}
  - {name: spare, provider: ssh, ssh: {address: "ADDR", reset: "sudo /usr/local/bin/reset-baseline"}}
images:
  macos-15: {vz: {bundle: sequoia}, auth: {password: admin}}
app:
  name: Example VPN
  bundle_id: com.example.vpn
  extension: {bundle_id: com.example.vpn.tunnel, team_id: ABCDE12345, mach_service: ABCDE12345.com.example.vpn.tunnel}
  versions:
    "1": {package: a.pkg}
    "2": {package: b.pkg}
matrix:
  axes:
    macos: [macos-15]
    path: ["1->2"]
scenario:
  - install: "{{.From}}"
  - upgrade: "{{.To}}"
`

func TestDoctorNamesWhatAMacHostNeeds(t *testing.T) {
	if appleSilicon() {
		t.Skip("checks this machine's own Mac setup, which varies")
	}
	// The spare Mac's sshd: anything that accepts TCP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dir := t.TempDir()
	cfg := []byte(strings.ReplaceAll(doctorConfig, "ADDR", ln.Addr().String()))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), cfg, 0o644))
	for _, f := range []string{"a.pkg", "b.pkg"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
	}
	t.Setenv("SXLAB_LAB_RUNS_DIR", filepath.Join(dir, "runs"))

	code, out, errs := sxlab(t, "doctor", "--config", filepath.Join(dir, "config.yaml"))
	assert.Equal(t, exitFindings, code, out)
	assert.Contains(t, out, "host mini (vz)\n  FAILURE  platform      vz needs macOS on Apple Silicon (darwin/arm64)")
	assert.Contains(t, out, "host spare (ssh)\n  ok       reach         sshd answers at "+ln.Addr().String())
	assert.Contains(t, out, "not ready")
	assert.Contains(t, errs, "doctor: 1 check(s) failed")
}
