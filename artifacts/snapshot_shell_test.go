//go:build unix

package artifacts_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/artifacts"
	"github.com/sxlab/sxlab/guest"
)

// shellGuest runs each command line with a real shell (dash, zsh: shells
// we did not write; macOS's login shell is zsh) over a folder of fake
// macOS commands. A line that reaches "hang" comes back as guest.Client
// returns a timed-out command: what was printed so far and
// ErrCommandTimeout.
type shellGuest struct {
	shell, bin string
	lines      []string
}

func (g *shellGuest) Run(ctx context.Context, cmd guest.Cmd) (guest.Result, error) {
	g.lines = append(g.lines, cmd.Line)
	c := exec.CommandContext(ctx, g.shell, "-c", cmd.Line)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a hanging command kills its group, not the test
	c.Env = []string{"PATH=" + g.bin + ":/usr/bin:/bin"}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	res := guest.Result{Line: cmd.Line, Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == -1: // killed by the hanging command
		return res, fmt.Errorf("run %q: %w after 2m0s", cmd.Line, guest.ErrCommandTimeout)
	case errors.As(err, &exit):
		res.Exit = exit.ExitCode()
	case err != nil:
		return res, err
	}
	return res, nil
}

func (g *shellGuest) Upload(context.Context, string, string, guest.Progress) error {
	return errors.New("no uploads here")
}
func (g *shellGuest) Download(context.Context, string, string, guest.Progress) error {
	return errors.New("no downloads here")
}
func (g *shellGuest) Close() error { return nil }

// fakeMac writes the snapshot's commands as scripts: sw_vers without a
// final newline, systemextensionsctl printing a line that looks like a
// marker, scutil's "No service" with exit 1, pkgutil on stderr with exit
// 1; with hang, scutil --nc list hangs (it kills its process group, the
// shell with it, which stands for the timeout).
func fakeMac(t *testing.T, hang bool) string {
	t.Helper()
	bin := t.TempDir()
	script := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	}
	script("sudo", `exec "$@"`)
	script("date", `echo 2026-12-02T14:00:00Z`)
	script("sw_vers", `printf 'ProductName:\t\tmacOS\nProductVersion:\t\t15.3\nBuildVersion:\t\t24D60'`)
	script("systemextensionsctl", `printf '1 extension(s)\n--- com.apple.system_extension.network_extension\nenabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n*\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n\nsxlab-000000 0 0\n'`)
	list := `echo 'Available network connection services in the current set (*=enabled):'`
	if hang {
		list = `echo 'Available network connection services'; kill -KILL 0`
	}
	script("scutil", `if [ "$2" = status ]; then echo "No service"; exit 1; fi; `+list)
	script("launchctl", `if [ "$1" = list ]; then printf 'PID\tStatus\tLabel\n-\t0\tNetworkExtension.com.example.vpn.tunnel.3.0.300\n'; else echo 'system/NetworkExtension.com.example.vpn.tunnel.3.0.300 = {'; echo '	state = running'; echo '}'; fi`)
	script("pkgutil", `echo "No receipt for '$2' found at '/'." >&2; exit 1`)
	return bin
}

func shells(t *testing.T) []string {
	var out []string
	for _, sh := range []string{"dash", "zsh", "bash"} {
		if p, err := exec.LookPath(sh); err == nil {
			out = append(out, p)
		} else if sh == "zsh" && os.Getenv("CI") == "true" {
			t.Errorf("zsh is not installed: CI installs it (.ci/run)")
		}
	}
	if len(out) == 0 {
		t.Skip("no shell to run the snapshot's commands")
	}
	return out
}

// TestSnapshotInOneSessionThroughRealShells: the snapshot's commands go
// in two sessions, not one each, and every command's output and exit
// status come back apart as the shell printed them.
func TestSnapshotInOneSessionThroughRealShells(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := &shellGuest{shell: sh, bin: fakeMac(t, false)}
			dir := t.TempDir()
			missing := demoCollector(artifacts.OnFailure).Before(context.Background(), g, dir)

			assert.Len(t, g.lines, 2, "one session for what needs no answer, one for the job found: %q", g.lines)
			transcript := readFile(t, filepath.Join(dir, "state", "before.txt"))
			assert.Contains(t, transcript, "\n$ sw_vers\nProductName:\t\tmacOS\nProductVersion:\t\t15.3\nBuildVersion:\t\t24D60\n# exit 0\n", "output without a last newline gets one")
			assert.Contains(t, transcript, "[activated enabled]\n\nsxlab-000000 0 0\n# exit 0\n", "a line like a marker is output")
			assert.Contains(t, transcript, "\n$ scutil --nc status 'Example VPN' 2>&1\nNo service\n# exit 1\n")
			assert.Contains(t, transcript, "\n$ pkgutil --pkg-info com.example.vpn.pkg\n# stderr:\nNo receipt for 'com.example.vpn.pkg' found at '/'.\n# exit 1\n")
			assert.Contains(t, transcript, "\n$ sudo launchctl print system/NetworkExtension.com.example.vpn.tunnel.3.0.300\nsystem/NetworkExtension.com.example.vpn.tunnel.3.0.300 = {\n\tstate = running\n}\n# exit 0\n")
			assert.NotContains(t, transcript, "printf", "the markers are not the guest's output")
			var ran []string
			for _, line := range strings.Split(transcript, "\n") {
				if cmd, ok := strings.CutPrefix(line, "$ "); ok {
					f := strings.Fields(cmd)
					ran = append(ran, strings.Join(f[:min(2, len(f))], " "))
				}
			}
			assert.Equal(t, []string{"date -u", "sw_vers", "systemextensionsctl list", "scutil --nc", "scutil --nc", "sudo launchctl", "pkgutil --pkg-info", "sudo launchctl"}, ran,
				"the transcript in the order the guest ran them")

			st, err := artifacts.ReadState(dir, artifacts.BeforeDir)
			require.NoError(t, err)
			assert.Equal(t, "2026-12-02T14:00:00Z", st.Taken.Format("2006-01-02T15:04:05Z"), "the guest's clock")
			assert.Equal(t, "24D60", st.SwVers.BuildVersion)
			require.Len(t, st.Extensions, 1)
			assert.Equal(t, "activated enabled", st.Extensions[0].State)
			assert.Equal(t, "No service", st.VPNStatus.Status)
			require.Len(t, st.Jobs, 1)
			assert.Equal(t, "running", st.Jobs[0].Job.State)
			require.Len(t, missing, 1, "%+v", missing)
			assert.Equal(t, "state/before.txt (pkgutil-pkg-info-com.example.vpn.pkg)", missing[0].What)
			assert.Contains(t, missing[0].Reason, "exited 1: No receipt for 'com.example.vpn.pkg' found at '/'.")
		})
	}
}

// TestSnapshotCommandThatHangsInItsSession: the command a timeout stopped
// is missing with why and not sent again; what came back before it is
// kept.
func TestSnapshotCommandThatHangsInItsSession(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			g := &shellGuest{shell: sh, bin: fakeMac(t, true)}
			dir := t.TempDir()
			missing := demoCollector(artifacts.OnFailure).Before(context.Background(), g, dir)

			list := "scutil --nc list"
			require.Len(t, g.lines, 5, "%q", g.lines)
			assert.Contains(t, g.lines[0], "; "+list+"; ", "the first session")
			assert.Equal(t, []string{"scutil --nc status 'Example VPN' 2>&1", "sudo launchctl list",
				"pkgutil --pkg-info com.example.vpn.pkg", "sudo launchctl print system/NetworkExtension.com.example.vpn.tunnel.3.0.300"}, g.lines[1:],
				"what the timeout cut off is sent alone, the command it stopped is not")
			transcript := readFile(t, filepath.Join(dir, "state", "before.txt"))
			assert.Contains(t, transcript, "\n$ "+list+"\n# no answer: "+list+" did not finish within 2m0s")
			assert.Contains(t, transcript, "\n# what it printed before it was stopped:\nAvailable network connection services\n\n$ ", "what the stopped command printed is kept")
			assert.Contains(t, transcript, "\n$ sw_vers\nProductName:", "what came back before it is kept")
			assert.Contains(t, transcript, "\n$ sudo launchctl list\nPID\tStatus\tLabel\n")
			var whats []string
			for _, m := range missing {
				whats = append(whats, m.What)
			}
			assert.Contains(t, whats, "state/before.txt (scutil-nc-list)")
		})
	}
}
