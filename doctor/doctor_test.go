package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const gib = 1 << 30

// canned answers commands by their command line.
type canned map[string]Output

func (c canned) run(_ context.Context, name string, args ...string) (Output, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	out, ok := c[line]
	if !ok {
		return Output{}, fmt.Errorf("%s: %w", name, exec.ErrNotFound)
	}
	return out, nil
}

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// leaseBlock is one /var/db/dhcpd_leases entry expiring in d.
func leaseBlock(ip string, d time.Duration) string {
	return fmt.Sprintf("{\n\tname=admins-Virtual-Machine\n\tip_address=%s\n\thw_address=1,6:e8:a3:b0:23:b4\n\tidentifier=1,6:e8:a3:b0:23:b4\n\tlease=0x%x\n}\n", ip, now.Add(d).Unix())
}

const entitled = `Executable=/usr/local/bin/sxlab
[Dict]
	[Key] com.apple.security.virtualization
	[Value]
		[Bool] true
`

// healthyMac is an Apple Silicon Mac on which everything is right.
func healthyMac() (System, canned) {
	c := canned{
		"sw_vers -productVersion":                           {Stdout: "15.3.1\n"},
		"codesign -d --entitlements - /usr/local/bin/sxlab": {Stdout: entitled},
		"security show-keychain-info":                       {Stderr: "Keychain \"/Users/ci/Library/Keychains/login.keychain-db\" no-timeout\n"},
		"ps -A -o comm=": {Stdout: "/sbin/launchd\n/usr/libexec/logd\n" +
			"/System/Library/Frameworks/Virtualization.framework/Versions/A/XPCServices/com.apple.Virtualization.VirtualMachine.xpc/Contents/MacOS/com.apple.Virtualization.VirtualMachine\n"},
		"defaults read " + bootpdPlist + " bootpd": {Stdout: "{\n    DHCPLeaseTimeSecs = 600;\n}\n"},
		"/opt/homebrew/bin/tart --version":         {Stdout: "2.28.1\n"},
		"stat -f %Su /dev/console":                 {Stdout: "ci\n"},
		"sysctl -n kern.boottime":                  {Stdout: fmt.Sprintf("{ sec = %d, usec = 0 } Sat Mar  1 06:00:00 2025\n", now.Add(-6*time.Hour).Unix())},
		"tart list --format json":                  {Stdout: `[{"Source":"local","Name":"sequoia","Running":false,"State":"stopped"},{"Source":"local","Name":"sxlab-abc-r1-t1-0a1b2c","Running":true,"State":"running"}]`},
	}
	sys := System{
		GOOS: "darwin", GOARCH: "arm64",
		Run:        c.run,
		LookPath:   func(f string) (string, error) { return "/opt/homebrew/bin/" + f, nil },
		Executable: func() (string, error) { return "/usr/local/bin/sxlab", nil },
		FreeSpace:  func(string) (uint64, error) { return 200 * gib, nil },
		Stat:       func(string) (os.FileInfo, error) { return nil, nil },
		Dial:       func(context.Context, string) error { return nil },
		ReadFile: func(p string) ([]byte, error) {
			if p == leasesFile {
				return []byte(leaseBlock("192.168.64.3", -time.Hour) + leaseBlock("192.168.64.5", 5*time.Minute)), nil
			}
			return nil, os.ErrNotExist
		},
		UserHome: func() (string, error) { return "/Users/ci", nil },
		Getenv:   func(k string) string { return map[string]string{"USER": "ci"}[k] },
		Now:      func() time.Time { return now },
	}
	return sys, c
}

func find(t *testing.T, r *Report, check string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check {
			return f
		}
	}
	require.Failf(t, "no finding", "check %s: %+v", check, r.Findings)
	return Finding{}
}

func text(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, r.WriteText(&b))
	return b.String()
}

func TestLinuxWithTheDemoConfig(t *testing.T) {
	sys := System{GOOS: "linux", GOARCH: "amd64",
		FreeSpace: func(string) (uint64, error) { return 80 * gib, nil },
		Stat: func(p string) (os.FileInfo, error) {
			if p == "/work/runs" {
				return nil, os.ErrNotExist // made by the first run
			}
			return nil, nil
		}}
	r := Check(t.Context(), sys, Config{RunsDir: "/work/runs", MinFree: 5 * gib,
		Hosts: []Host{{Name: "local", Provider: "sim", Slots: 4}}})
	assert.True(t, r.OK())
	assert.Zero(t, r.Count(Warning))
	out := text(t, r)
	assert.Contains(t, out, "This is linux/amd64: the sim and ssh providers run here; vz and tart need macOS on Apple Silicon (darwin/arm64).")
	assert.Contains(t, out, "host local (sim)")
	assert.Contains(t, out, "80.0 GiB free at /work")
	assert.Contains(t, out, "vz and tart hosts would need:")
	assert.Contains(t, out, "com.apple.security.virtualization entitlement (`scripts/sign.sh`)")
	assert.Contains(t, out, "macOS 14 or later")
	assert.Contains(t, out, "ok: the configured providers can run here (0 failure(s), 0 warning(s))")
}

func TestLinuxWithMacHosts(t *testing.T) {
	sys := System{GOOS: "linux", GOARCH: "arm64", FreeSpace: func(string) (uint64, error) { return 80 * gib, nil },
		Stat: func(string) (os.FileInfo, error) { return nil, nil }}
	r := Check(t.Context(), sys, Config{RunsDir: "runs", MinFree: 5 * gib,
		Hosts: []Host{{Name: "mini", Provider: "vz", Slots: 2}, {Name: "t", Provider: "tart", Slots: 1}}})
	assert.False(t, r.OK())
	assert.Equal(t, 2, r.Count(Failure))
	f := find(t, r, "platform")
	assert.Equal(t, "host mini (vz)", f.Subject)
	assert.Contains(t, f.Message, "vz needs macOS on Apple Silicon (darwin/arm64); this is linux/arm64")
	assert.Contains(t, f.Fix, "provider: ssh")
	assert.NotContains(t, text(t, r), "this Mac", "no Mac checks where there is no Mac")
	assert.Contains(t, text(t, r), "not ready")
}

func TestHealthyMac(t *testing.T) {
	sys, _ := healthyMac()
	r := Check(t.Context(), sys, Config{RunsDir: "/Users/ci/runs", MinFree: 5 * gib,
		Hosts: []Host{{Name: "mini", Provider: "vz", Slots: 1, Store: "/Users/ci/sxlab-store"}}})
	for _, f := range r.Findings {
		assert.Equal(t, OK, f.Level, "%s %s: %s", f.Subject, f.Check, f.Message)
	}
	assert.Empty(t, r.Needs)
	assert.Contains(t, find(t, r, "macos").Message, "macOS 15.3.1: saved state can be restored")
	assert.Contains(t, find(t, r, "entitlement").Message, "/usr/local/bin/sxlab is signed with com.apple.security.virtualization")
	assert.Contains(t, find(t, r, "local-network").Message, "reached a guest at 192.168.64.5:22", "the live lease, not the expired one")
	assert.Contains(t, find(t, r, "running-vms").Message, "1 Virtualization.framework VM(s) running; the configured hosts use up to 1 at once")
	assert.Contains(t, find(t, r, "dhcp-leases").Message, "bootpd leases last 10 min ("+bootpdPlist+"); 1 of about 253")
	assert.Equal(t, "this Mac (for mini)", find(t, r, "keychain").Subject)
	assert.Contains(t, text(t, r), "every provider (sim, vz, tart, ssh) can run here")
}

func TestUnhealthyMac(t *testing.T) {
	sys, c := healthyMac()
	c["sw_vers -productVersion"] = Output{Stdout: "15.1\n"}
	c["codesign -d --entitlements - /usr/local/bin/sxlab"] = Output{Stderr: "/usr/local/bin/sxlab: code object is not signed at all\n", Exit: 1}
	c["security show-keychain-info"] = Output{Stderr: "security: SecKeychainCopySettings /Users/ci/Library/Keychains/login.keychain-db: User interaction is not allowed.\n", Exit: 36}
	c["ps -A -o comm="] = Output{Stdout: strings.Repeat("/System/Library/Frameworks/Virtualization.framework/Versions/A/XPCServices/com.apple.Virtualization.VirtualMachine.xpc/Contents/MacOS/com.apple.Virtualization.VirtualMachine\n", 2)}
	c["defaults read "+bootpdPlist+" bootpd"] = Output{Stderr: "Domain /Library/Preferences/SystemConfiguration/com.apple.InternetSharing.default.plist does not exist\n", Exit: 1}
	sys.Dial = func(_ context.Context, addr string) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}
	}
	sys.FreeSpace = func(p string) (uint64, error) {
		if p == "/Users/ci/sxlab-store" {
			return 3 * gib, nil
		}
		return 20 * gib, nil
	}
	r := Check(t.Context(), sys, Config{RunsDir: "/Users/ci/runs", MinFree: 5 * gib,
		Hosts: []Host{{Name: "mini", Provider: "vz", Slots: 2, Store: "/Users/ci/sxlab-store"}}})

	f := find(t, r, "entitlement")
	assert.Equal(t, Failure, f.Level)
	assert.Contains(t, f.Message, "is not signed")
	assert.Contains(t, f.Fix, "scripts/sign.sh")

	f = find(t, r, "keychain")
	assert.Equal(t, Warning, f.Level)
	assert.Contains(t, f.Message, "User interaction is not allowed")
	assert.Contains(t, f.Fix, "security unlock-keychain")

	f = find(t, r, "local-network")
	assert.Equal(t, Failure, f.Level)
	assert.Contains(t, f.Message, "no route to host")
	assert.Contains(t, f.Fix, "Privacy & Security > Local Network")

	f = find(t, r, "running-vms")
	assert.Equal(t, Warning, f.Level)
	assert.Contains(t, f.Message, "2 Virtualization.framework VM(s) running; the configured hosts use up to 2")
	assert.Contains(t, f.Fix, "lower hosts[].slots")

	f = find(t, r, "dhcp-leases")
	assert.Equal(t, Warning, f.Level)
	assert.Contains(t, f.Message, "24 h (the default)")
	assert.Contains(t, f.Message, "more than about 253 VMs a day exhaust the pool")
	assert.Equal(t, "sudo defaults write "+bootpdPlist+" bootpd -dict DHCPLeaseTimeSecs -int 600", f.Fix)

	f = find(t, r, "disk")
	assert.Equal(t, "host mini (vz)", f.Subject)
	assert.Equal(t, Failure, f.Level)
	assert.Contains(t, f.Message, "3.0 GiB free under the store /Users/ci/sxlab-store")
	assert.Contains(t, f.Message, "less than collect.min_free (5.0 GiB)")

	assert.Equal(t, 3, r.Count(Failure))
	out := text(t, r)
	assert.Contains(t, out, "fix: build and sign it: `scripts/sign.sh`")
	assert.Contains(t, out, "not ready")
}

func TestOldMacOS(t *testing.T) {
	for version, want := range map[string]Level{"12.7": Failure, "13.6.1": Warning, "14.0": OK, "26.1": OK} {
		sys, c := healthyMac()
		c["sw_vers -productVersion"] = Output{Stdout: version + "\n"}
		r := Check(t.Context(), sys, Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "m", Provider: "vz", Slots: 1}}})
		f := find(t, r, "macos")
		assert.Equal(t, want, f.Level, version)
		if want == Warning {
			assert.Contains(t, f.Message, "every attempt boots cold")
			assert.Equal(t, OK, find(t, r, "local-network").Level, "no Local Network privacy before 15")
		}
	}
}

func TestNoLeaseToTry(t *testing.T) {
	sys, _ := healthyMac()
	sys.ReadFile = func(string) ([]byte, error) { return []byte(leaseBlock("192.168.64.9", -time.Minute)), nil }
	r := Check(t.Context(), sys, Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "m", Provider: "vz", Slots: 1}}})
	f := find(t, r, "local-network")
	assert.Equal(t, Note, f.Level)
	assert.Contains(t, f.Message, "nothing to try")
}

func TestTartHosts(t *testing.T) {
	sys, _ := healthyMac()
	r := Check(t.Context(), sys, Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "t", Provider: "tart", Slots: 1}}})
	assert.True(t, r.OK())
	assert.Contains(t, find(t, r, "tart").Message, "tart 2.28.1 at /opt/homebrew/bin/tart")
	assert.Contains(t, find(t, r, "disk").Message, "tart's home /Users/ci/.tart")
	assert.Contains(t, find(t, r, "running-vms").Message, "(tart: sxlab-abc-r1-t1-0a1b2c)")
	for _, f := range r.Findings {
		assert.NotEqual(t, "entitlement", f.Check, "tart is signed by its makers")
	}

	sys.LookPath = func(string) (string, error) { return "", exec.ErrNotFound }
	sys.Getenv = func(k string) string { return map[string]string{"TART_HOME": "/Volumes/fast/tart"}[k] }
	r = Check(t.Context(), sys, Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "t", Provider: "tart", Slots: 3}}})
	f := find(t, r, "tart")
	assert.Equal(t, Failure, f.Level)
	assert.Contains(t, f.Fix, "brew install cirruslabs/cli/tart")
	assert.Contains(t, find(t, r, "disk").Message, "/Volumes/fast/tart")
	assert.Equal(t, Failure, find(t, r, "slots").Level)
}

func TestSSHHosts(t *testing.T) {
	var dialed []string
	sys := System{GOOS: "linux", GOARCH: "amd64", FreeSpace: func(string) (uint64, error) { return 80 * gib, nil },
		Stat: func(string) (os.FileInfo, error) { return nil, nil },
		Dial: func(_ context.Context, addr string) error {
			dialed = append(dialed, addr)
			if addr == "spare.local:22" {
				return nil
			}
			return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		}}
	r := Check(t.Context(), sys, Config{RunsDir: "runs", MinFree: gib, Hosts: []Host{
		{Name: "spare", Provider: "ssh", Slots: 1, SSH: "spare.local", Reset: "sudo /usr/local/bin/reset-baseline"},
		{Name: "off", Provider: "ssh", Slots: 2, SSH: "10.0.0.9:2222"},
	}})
	assert.Equal(t, []string{"spare.local:22", "10.0.0.9:2222"}, dialed)
	var spare, off []Finding
	for _, f := range r.Findings {
		switch f.Subject {
		case "host spare (ssh)":
			spare = append(spare, f)
		case "host off (ssh)":
			off = append(off, f)
		}
	}
	for _, f := range spare {
		assert.Equal(t, OK, f.Level, f.Message)
	}
	require.Len(t, off, 3)
	assert.Equal(t, Failure, off[0].Level)
	assert.Contains(t, off[0].Message, "cannot reach sshd at 10.0.0.9:2222")
	assert.Contains(t, off[0].Fix, "Remote Login")
	assert.Equal(t, Warning, off[1].Level)
	assert.Contains(t, off[1].Fix, "hosts[].ssh.reset")
	assert.Equal(t, Failure, off[2].Level)
	assert.Contains(t, off[2].Fix, "hosts[].slots to 1")

	// From a Mac, no route to host is most often Local Network privacy.
	sys.GOOS, sys.GOARCH = "darwin", "arm64"
	sys.Dial = func(context.Context, string) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}
	}
	r = Check(t.Context(), sys, Config{RunsDir: "runs", MinFree: gib, Hosts: []Host{{Name: "spare", Provider: "ssh", Slots: 1, SSH: "spare.local"}}})
	assert.Contains(t, find(t, r, "reach").Fix, "Local Network")
}

func TestRunsDirSpace(t *testing.T) {
	sys := System{GOOS: "linux", GOARCH: "amd64", FreeSpace: func(string) (uint64, error) { return 2 * gib, nil },
		Stat: func(string) (os.FileInfo, error) { return nil, nil },
		Dial: func(context.Context, string) error { return nil }}
	r := Check(t.Context(), sys, Config{RunsDir: "runs", MinFree: 5 * gib, Hosts: []Host{{Name: "local", Provider: "sim", Slots: 1}}})
	assert.Equal(t, Warning, find(t, r, "disk").Level, "the sim does not need min_free")
	r = Check(t.Context(), sys, Config{RunsDir: "runs", MinFree: 5 * gib, Hosts: []Host{{Name: "spare", Provider: "ssh", Slots: 1, SSH: "m", Reset: "true"}}})
	f := find(t, r, "disk")
	assert.Equal(t, Failure, f.Level, "attempts on real Macs are refused below min_free")
	assert.Contains(t, f.Fix, "lab.runs_dir")

	sys.FreeSpace = func(string) (uint64, error) { return 0, errors.New("statfs: input/output error") }
	r = Check(t.Context(), sys, Config{RunsDir: "runs", MinFree: 5 * gib, Hosts: []Host{{Name: "local", Provider: "sim", Slots: 1}}})
	assert.Contains(t, find(t, r, "disk").Message, "input/output error")
}

func TestLocalSystemMeasuresDisk(t *testing.T) {
	dir := t.TempDir()
	r := Check(t.Context(), Local(), Config{RunsDir: filepath.Join(dir, "not", "yet"), MinFree: 1,
		Hosts: []Host{{Name: "local", Provider: "sim", Slots: 1}}})
	f := find(t, r, "disk")
	assert.Equal(t, OK, f.Level, f.Message)
	assert.Contains(t, f.Message, "free at "+dir)
}

func TestLocalRunner(t *testing.T) {
	out, err := runCommand(t.Context(), "sh", "-c", "echo out; echo err >&2; exit 3")
	require.NoError(t, err)
	assert.Equal(t, Output{Stdout: "out\n", Stderr: "err\n", Exit: 3}, out)
	_, err = runCommand(t.Context(), "sxlab-no-such-command")
	assert.ErrorIs(t, err, exec.ErrNotFound)
}
