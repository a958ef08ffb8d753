package sim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/vm"
)

// BenchmarkMachineAttempt is one simulated Mac's share of an attempt of
// the demo: clone, boot, upload two packages over SFTP, install, launch,
// approve, upgrade, probe, take the state snapshot and a sysdiagnose,
// download it, stop and delete. It is what the sim's file tree costs an
// attempt (run it under strace -c to count the system calls; see
// bench/README.md).
func BenchmarkMachineAttempt(b *testing.B) {
	pkg1, err := os.ReadFile(filepath.Join("macos", "testdata", "simpkg", "example-vpn-1.simpkg.json"))
	if err != nil {
		b.Fatal(err)
	}
	pkg2, err := os.ReadFile(filepath.Join("macos", "testdata", "simpkg", "example-vpn-2.simpkg.json"))
	if err != nil {
		b.Fatal(err)
	}
	p := NewProvider(Options{BaseDir: b.TempDir(), TimeScale: 0, Seed: 1})
	img := vm.Image{Name: "bench", Sim: &vm.SimImage{ProductVersion: "15.3", Build: "24D60"}}
	ctx := context.Background()
	const asUser = "sudo launchctl asuser $(id -u admin) sudo -u admin "
	lines := []string{
		"sw_vers",
		"sudo installer -pkg /Users/admin/v1.simpkg.json -target /",
		asUser + `open -a "/Applications/Example VPN.app"`,
		asUser + `open x-apple.systempreferences:com.apple.LoginItems-Settings.extension`,
		asUser + `osascript -e 'tell application "System Events" to tell process "System Settings" to click checkbox "Example VPN" of window 1'`,
		asUser + `osascript -e 'tell application "System Events"' -e 'tell process "System Settings"' -e 'set value of text field 1 of sheet 1 of window 1 to "admin"' -e 'click button "OK" of sheet 1 of window 1' -e 'end tell' -e 'end tell'`,
		"systemextensionsctl list",
		"sudo sysdiagnose -u -f /tmp -A state-before",
		asUser + `osascript -e 'quit app id "com.example.vpn"'`,
		"sudo installer -pkg /Users/admin/v2.simpkg.json -target /",
		asUser + `open -a "/Applications/Example VPN.app"`,
		"systemextensionsctl list",
		`scutil --nc list`,
		"sudo launchctl list",
		"sudo sysdiagnose -u -f /tmp -A sysdiagnose",
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := p.NewMachine(ctx, img, "bench-mac")
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			b.Fatal(err)
		}
		ep, err := m.Endpoint(ctx)
		if err != nil {
			b.Fatal(err)
		}
		hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(ep.HostKey))
		if err != nil {
			b.Fatal(err)
		}
		c, err := ssh.Dial("tcp", ep.Addr, &ssh.ClientConfig{User: ep.User, Auth: []ssh.AuthMethod{ssh.Password(ep.Password)}, HostKeyCallback: ssh.FixedHostKey(hk)})
		if err != nil {
			b.Fatal(err)
		}
		sc, err := sftp.NewClient(c)
		if err != nil {
			b.Fatal(err)
		}
		for name, data := range map[string][]byte{"v1.simpkg.json": pkg1, "v2.simpkg.json": pkg2} {
			f, err := sc.Create("/Users/admin/" + name)
			if err == nil {
				_, err = f.Write(data)
			}
			if err == nil {
				err = f.Close()
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		for _, line := range lines {
			s, err := c.NewSession()
			if err != nil {
				b.Fatal(err)
			}
			var out bytes.Buffer
			s.Stdout, s.Stderr = &out, &out
			err = s.Run(line)
			var ee *ssh.ExitError
			if err != nil && !errors.As(err, &ee) {
				b.Fatal(err)
			}
			if ee != nil {
				b.Fatalf("%s: exit %d: %s", line, ee.ExitStatus(), out.String())
			}
			s.Close()
		}
		r, err := sc.Open("/tmp/sysdiagnose.tar.gz")
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(r); err != nil {
			b.Fatal(err)
		}
		r.Close()
		sc.Close()
		c.Close()
		if err := m.Delete(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
