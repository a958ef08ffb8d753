package macos

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

// TestOutputsThroughGuestParsers feeds what the model prints to the
// parsers the lab uses on real Macs.
func TestOutputsThroughGuestParsers(t *testing.T) {
	s := newSimMac(t)
	s.upgradeWithVPN(2, 3, true)

	sw, err := guest.ParseSwVers(strings.NewReader(s.ok(false, "sw_vers")))
	require.NoError(t, err)
	assert.Equal(t, guest.SwVers{ProductName: "macOS", ProductVersion: "15.3", BuildVersion: "24D60"}, sw)

	exts := s.extensions()
	require.Len(t, exts, 2)
	assert.Equal(t, guest.Extension{Category: categoryNetwork, Enabled: true, Active: true, TeamID: "ABCDE12345", BundleID: extBundle, ShortVersion: "3.0", Build: "300", Name: "Example VPN", State: "activated enabled"}, exts[0])
	assert.Equal(t, guest.Extension{Category: categoryNetwork, TeamID: "ABCDE12345", BundleID: extBundle, ShortVersion: "2.0", Build: "200", Name: "Example VPN", State: "terminated waiting to uninstall on reboot"}, exts[1])

	vpns, err := guest.ParseVPNList(strings.NewReader(s.ok(false, "scutil --nc list")))
	require.NoError(t, err)
	require.Len(t, vpns, 1)
	assert.True(t, vpns[0].Enabled)
	assert.Equal(t, "Connected", vpns[0].Status)
	assert.Equal(t, "com.example.vpn", vpns[0].Provider)
	assert.Equal(t, "Example VPN", vpns[0].Name)
	assert.Equal(t, "VPN:com.example.vpn", vpns[0].Kind)
	assert.Regexp(t, `^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`, vpns[0].ID)

	st, err := guest.ParseVPNStatus(strings.NewReader(s.ok(false, "scutil --nc status "+vpns[0].ID)))
	require.NoError(t, err)
	assert.Equal(t, "Connected", st.Status)
	assert.Equal(t, "2", st.Extended["Status"])

	job := s.job("3.0.300")
	assert.Equal(t, jobLabel("3.0.300"), job.Label)
	assert.Equal(t, "running", job.State)
	assert.Positive(t, job.PID)
	require.Len(t, job.Endpoints, 1)
	assert.Equal(t, guest.LaunchdEndpoint{Name: service, Port: job.Endpoints[0].Port, Active: true}, job.Endpoints[0])

	info, err := guest.ParsePkgInfo(strings.NewReader(s.ok(false, "pkgutil --pkg-info com.example.vpn.pkg")))
	require.NoError(t, err)
	assert.Equal(t, guest.PkgInfo{PackageID: "com.example.vpn.pkg", Version: "3.0", Volume: "/", Location: "/", InstallTime: info.InstallTime}, info)
	assert.InDelta(t, testStart.Unix(), info.InstallTime, 600, "install-time is seconds since the epoch")

	inst, err := guest.ParseInstaller(strings.NewReader(s.install(3)))
	require.NoError(t, err)
	assert.Equal(t, guest.InstallerResult{PackageName: "Example VPN", BasePath: "/", Success: true, Errors: []string{}}, inst)

	for _, run := range []struct{ style, flags string }{
		{"ndjson", ""}, {"json", "--info"}, {"default", "--info --debug"}, {"compact", "--debug"},
	} {
		// Each level flag set makes log print its own "Skipping ..." banner.
		style := run.style
		entries, err := guest.ParseLog(strings.NewReader(s.ok(false, "log show "+run.flags+" --style "+style)))
		require.NoError(t, err, style)
		require.NotEmpty(t, entries, style)
		var conflict *guest.LogEntry
		for i := range entries {
			if entries[i].Message == "notifying client of activation conflict" {
				conflict = &entries[i]
			}
		}
		require.NotNil(t, conflict, style)
		assert.Equal(t, "sysextd", conflict.Process, style)
		assert.Equal(t, "com.apple.sx", conflict.Subsystem, style)
		assert.Equal(t, "XPC", conflict.Category, style)
		assert.Equal(t, "Default", conflict.Type, style)
		assert.Positive(t, conflict.PID, style)
		if style != "compact" {
			ts, err := conflict.Time()
			require.NoError(t, err)
			assert.WithinDuration(t, testStart, ts, 10*time.Minute)
		}
	}
}

func TestInstaller(t *testing.T) {
	s := newSimMac(t)
	t.Run("needs root", func(t *testing.T) {
		r := s.run("installer -pkg /Users/admin/example-vpn-3.simpkg.json -target /")
		assert.Equal(t, 1, r.code)
		assert.Equal(t, "installer: Must be run as root to install this package.\n", r.err)
	})
	t.Run("missing package", func(t *testing.T) {
		r := s.sudo("installer -pkg /Users/admin/nope.pkg -target /")
		assert.Equal(t, 1, r.code)
		assert.True(t, strings.HasPrefix(r.err, "installer: Error - "), r.err)
	})
	t.Run("a pkg the reader rejects is an invalid package path", func(t *testing.T) {
		s.put("/Users/admin/Example.pkg", []byte("xar!\x00\x1c\x00\x01"))
		r := s.sudo("installer -pkg Example.pkg -target /")
		assert.Equal(t, 1, r.code)
		assert.Equal(t, "installer: Error - the package path specified was invalid: 'Example.pkg'.\n", r.err)
		parsed, err := guest.ParseInstaller(strings.NewReader(r.out + r.err))
		require.NoError(t, err)
		assert.False(t, parsed.Success)
		assert.NotEmpty(t, parsed.Errors)
	})
	t.Run("an invalid manifest names the field", func(t *testing.T) {
		bad := s.variant(3, "bad-team", func(doc map[string]any) { doc["extension"].(map[string]any)["team_id"] = "abc" })
		r := s.sudo("installer -pkg " + bad + " -target /")
		assert.Equal(t, 1, r.code)
		assert.Contains(t, r.err, "extension.team_id")
	})
	t.Run("another target", func(t *testing.T) {
		r := s.sudo("installer -pkg /Users/admin/example-vpn-3.simpkg.json -target /Volumes/Other")
		assert.Equal(t, 1, r.code)
	})
	t.Run("install, then upgrade", func(t *testing.T) {
		assert.Equal(t, "installer: Package name is Example VPN\ninstaller: Installing at base path /\ninstaller: The install was successful.\n", s.install(2))
		assert.Equal(t, "installer: Package name is Example VPN\ninstaller: Upgrading at base path /\ninstaller: The upgrade was successful.\n", s.install(3))
		plist, err := s.fs.ReadFile(appPath + "/Contents/Info.plist")
		require.NoError(t, err)
		assert.Contains(t, string(plist), "<key>CFBundleShortVersionString</key>\n\t<string>3.0</string>")
		_, err = s.fs.Stat(appPath + "/Contents/Library/SystemExtensions/com.example.vpn.tunnel.systemextension/Contents/Info.plist")
		assert.NoError(t, err)
		logData, err := s.fs.ReadFile("/var/log/install.log")
		require.NoError(t, err)
		assert.Regexp(t, `(?m)^2025-07-27 \d\d:\d\d:\d\d-04 sim-test-1 installer\[\d+\]: Upgrading at base path /$`, string(logData))
		assert.Equal(t, "com.example.vpn.pkg\n", s.ok(false, "pkgutil --pkgs"))
		r := s.run("pkgutil --pkg-info com.example.nothing")
		assert.Equal(t, 1, r.code)
		assert.Equal(t, "No receipt for 'com.example.nothing' found at '/'.\n", r.err)
	})
	t.Run("Gatekeeper accepts the notarized bundle", func(t *testing.T) {
		r := s.run("spctl -avvv '" + appPath + "'")
		assert.Equal(t, 0, r.code)
		assert.Equal(t, appPath+": accepted\nsource=Notarized Developer ID\norigin=Developer ID Application: Example VPN (ABCDE12345)\n", r.err)
		assert.Equal(t, 1, s.run("spctl -avvv /Applications/Nothing.app").code)
	})
}

func TestOpenAndTheAppBinary(t *testing.T) {
	s := newSimMac(t)
	r := s.run(`open -a "Example VPN"`)
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "Unable to find application named 'Example VPN'\n", r.err)
	_, ok := s.m.Program(appExec)
	assert.False(t, ok, "nothing installed yet")

	s.install(3)
	s.ok(false, `open -a "Example VPN"`)
	assert.Equal(t, []string{"3.0/300 activated waiting for user"}, s.extStates())
	s.ok(false, `open -a "Example VPN"`) // already running: no second request
	assert.Equal(t, 1, countOf(s.messages(), "client activation request"))

	s.quitApp()
	r = s.execArgs(false, appExec)
	assert.Equal(t, 0, r.code, "running the binary launches the app")
	assert.Equal(t, 2, countOf(s.messages(), "client activation request"))

	r = s.execArgs(false, appExec, "--bogus")
	assert.Equal(t, exitUsage, r.code)

	// A deleted bundle is gone, as after the preinstall's rm -rf.
	require.NoError(t, s.fs.RemoveAll(appPath))
	_, ok = s.m.Program(appExec)
	assert.False(t, ok)
	s.quitApp()
	assert.Equal(t, 1, s.run(`open -a "`+appPath+`"`).code)

	r = s.run(`osascript -e 'quit app id "com.example.nothing"'`)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "(-1728)")
	r = s.run(`osascript -e 'display dialog "hi"'`)
	assert.Equal(t, 1, r.code)
}

func TestSysdiagnoseWritesAReadableArchive(t *testing.T) {
	s := newSimMac(t, faultEndpointLost)
	s.upgradeWithVPN(2, 3, true)
	before := s.host.Now()

	r := s.run("sysdiagnose -u -b -Q -f /var/tmp/diag -A sxlab-cell")
	assert.Equal(t, 1, r.code, "needs root")

	out := s.ok(true, "sysdiagnose -u -b -Q -f /var/tmp/diag -A sxlab-cell")
	assert.Contains(t, out, "Output available at '/var/tmp/diag/sxlab-cell.tar.gz'.")
	assert.GreaterOrEqual(t, s.host.Now().Sub(before), 3*time.Minute, "takes the image's sysdiagnose time")

	f, err := s.fs.Open("/var/tmp/diag/sxlab-cell.tar.gz")
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	members := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			members[h.Name] = string(data)
		}
	}
	for _, name := range []string{sysdiagLogs, sysdiagExtensions, sysdiagVPNs, sysdiagJobs, sysdiagSwVers, sysdiagState, sysdiagReadme, sysdiagInstallLog, "launchctl_print_" + jobLabel("3.0.300") + ".txt"} {
		assert.Contains(t, members, "sxlab-cell/"+name)
	}
	entries, err := guest.ParseLog(strings.NewReader(members["sxlab-cell/"+sysdiagLogs]))
	require.NoError(t, err)
	assert.NotEmpty(t, entries)
	exts, err := guest.ParseExtensions(strings.NewReader(members["sxlab-cell/"+sysdiagExtensions]))
	require.NoError(t, err)
	assert.Len(t, exts, 2)
	assert.NotContains(t, members["sxlab-cell/launchctl_print_"+jobLabel("3.0.300")+".txt"], "endpoints = {")

	var state stateSnapshot
	require.NoError(t, json.Unmarshal([]byte(members["sxlab-cell/"+sysdiagState]), &state))
	assert.Equal(t, "persistent", state.Extensions[len(state.Extensions)-1].EndpointLost)
	assert.Equal(t, map[string]float64{FaultEndpointLost: 1}, state.Faults)

	r = s.sudo("sysdiagnose -A ../escape")
	assert.Equal(t, exitUsage, r.code)
}

func TestCancelledCommandsLeaveTheMacConsistent(t *testing.T) {
	s := newSimMac(t)
	s.install(3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := &shell.Proc{Args: []string{"open", "-a", "Example VPN"}, Stdout: io.Discard, Stderr: io.Discard, FS: s.fs}
	assert.Equal(t, exitInterrupted, s.m.Commands()["open"](ctx, p))
	p = &shell.Proc{Args: []string{"sysdiagnose", "-f", "/tmp", "-A", "x"}, Root: true, Stdout: io.Discard, Stderr: io.Discard, FS: s.fs}
	assert.Equal(t, exitInterrupted, s.m.Commands()["sysdiagnose"](ctx, p))
	_, err := s.fs.Stat("/tmp/x.tar.gz")
	assert.True(t, os.IsNotExist(err))
	s.launch()
	assert.Equal(t, []string{"3.0/300 activated waiting for user"}, s.extStates())
}

// TestBadArgumentsNeverPanic throws junk at every command: they get their
// arguments from the network.
func TestBadArgumentsNeverPanic(t *testing.T) {
	s := newSimMac(t)
	s.upgradeWithVPN(2, 3, true)
	junk := []string{"", "-", "--", "-pkg", "-target", "--predicate", "--style", "--start", "--last", "-A", "-f", "-e",
		"list", "print", "status", "start", "stop", "asuser", "show", "collect", "config", "approve", "remove-extension",
		"system/", "system", "gui/501/", "/", "..", "../../etc/passwd", "\x00", "\xff\xfe", "ünïcødé", strings.Repeat("A", 10000),
		"9999999999999999999999", "-1", "501", "Example VPN", "com.example.vpn.tunnel", "ABCDE12345", `"`, `'`, "{", "(", ")",
		`process == "x"`, "quit app id", "click", "1m", "boot", "--info", "-r", "now", "-avvv", "--pkgs=(", "--pkg-info"}
	cmds := s.m.Commands()
	names := sortedKeys(cmds)
	rng := rand.New(rand.NewPCG(7, 11))
	for _, name := range names {
		for i := 0; i < 300; i++ {
			args := []string{name}
			for n := rng.IntN(5); n > 0; n-- {
				args = append(args, junk[rng.IntN(len(junk))])
			}
			if name == "shutdown" || name == "reboot" {
				continue // a successful reboot is fine, just slow to repeat
			}
			for _, root := range []bool{false, true} {
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("%q (root %v) panicked: %v", args, root, r)
						}
					}()
					r := s.execArgs(root, args...)
					assert.GreaterOrEqual(t, r.code, 0)
				}()
			}
		}
	}
	// Empty argument lists and nil writers too.
	for _, name := range names {
		assert.NotPanics(t, func() { cmds[name](context.Background(), &shell.Proc{FS: s.fs}) }, name)
	}
	cmd, ok := s.m.Program(appExec)
	require.True(t, ok)
	assert.NotPanics(t, func() { cmd(context.Background(), &shell.Proc{FS: s.fs}) })
}

func TestConcurrentCommands(t *testing.T) {
	s := newSimMac(t, withMDM)
	s.install(2)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var out bytes.Buffer
			lines := [][]string{
				{"systemextensionsctl", "list"}, {"scutil", "--nc", "list"}, {"log", "show", "--style", "ndjson"},
				{"launchctl", "list"}, {"open", "-a", "Example VPN"}, {"profiles", "show", "-output", "stdout-xml"},
				{"scutil", "--nc", "start", "Example VPN"}, {appExec, "--check-xpc"},
			}
			for j := 0; j < 20; j++ {
				args := lines[(i+j)%len(lines)]
				p := &shell.Proc{Args: args, Root: true, Stdout: &out, Stderr: &out, FS: s.fs}
				if strings.HasPrefix(args[0], "/") {
					if c, ok := s.m.Program(args[0]); ok {
						c(context.Background(), p)
					}
					continue
				}
				s.m.Commands()[args[0]](context.Background(), p)
			}
		}(i)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.m.Boot()
	}()
	wg.Wait()
	exts := s.extensions()
	require.Len(t, exts, 1)
	assert.Equal(t, "activated enabled", exts[0].State)
}

func TestSIPRefusals(t *testing.T) {
	s := newSimMac(t)
	for _, line := range []string{"systemextensionsctl developer on", "systemextensionsctl developer off", "systemextensionsctl uninstall - com.example.vpn.tunnel", "systemextensionsctl reset"} {
		r := s.sudo(line)
		assert.Equal(t, 1, r.code, line)
		assert.Equal(t, sipRefusal, r.err, line)
	}
	r := s.run("systemextensionsctl frobnicate")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "systemextensionsctl: usage:")
}

// The simulated Mac has no command of its own: MDM payloads come with
// the golden and extensions are approved in System Settings.
func TestNoSimOnlyCommands(t *testing.T) {
	s := newSimMac(t)
	for _, name := range []string{"sxlab-sim-mdm", "sxlab-sim-settings"} {
		_, ok := s.m.Commands()[name]
		assert.False(t, ok, name)
		_, ok = s.m.Program("/usr/local/bin/" + name)
		assert.False(t, ok, name)
	}
}

func TestBootDelayAndShutdown(t *testing.T) {
	s := newSimMac(t)
	assert.Equal(t, 30*time.Second, s.m.BootDelay())
	r := s.run("shutdown -r now")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "shutdown: NOT super-user\n", r.err)
	before := s.host.Now()
	s.ok(true, "shutdown -r now")
	assert.Equal(t, 1, s.host.reboots)
	assert.Equal(t, 30*time.Second, s.host.Now().Sub(before))
	assert.GreaterOrEqual(t, indexOf(s.messages(), 0, "reboot by admin"), 0, "the shutdown is in the log")
	assert.Equal(t, exitUsage, s.sudo("shutdown -h now").code)
}

func TestExamplePackagesAreValid(t *testing.T) {
	services := map[int]string{1: service, 2: service, 3: service, 4: service + ".4.0"}
	for n, svc := range services {
		data, err := os.ReadFile(fmt.Sprintf("testdata/simpkg/example-vpn-%d.simpkg.json", n))
		require.NoError(t, err)
		pkg, err := ParseSimPkg(data)
		require.NoError(t, err, n)
		assert.Equal(t, fmt.Sprintf("%d.0", n), pkg.Extension.ShortVersion)
		assert.Equal(t, svc, pkg.Extension.MachService)
		assert.True(t, pkg.App.RetainsDelegate())
		assert.Equal(t, "Example VPN", pkg.VPNService)
	}
}

func TestParseSimPkgErrorsNameTheField(t *testing.T) {
	base, err := os.ReadFile("testdata/simpkg/example-vpn-3.simpkg.json")
	require.NoError(t, err)
	edit := func(f func(map[string]any)) []byte {
		var doc map[string]any
		require.NoError(t, json.Unmarshal(base, &doc))
		f(doc)
		out, err := json.Marshal(doc)
		require.NoError(t, err)
		return out
	}
	ext := func(doc map[string]any) map[string]any { return doc["extension"].(map[string]any) }
	app := func(doc map[string]any) map[string]any { return doc["app"].(map[string]any) }
	for want, data := range map[string][]byte{
		"format":                 edit(func(d map[string]any) { d["format"] = "sxlab-simpkg/2" }),
		"package_id: missing":    edit(func(d map[string]any) { delete(d, "package_id") }),
		"app.name: missing":      edit(func(d map[string]any) { delete(app(d), "name") }),
		"app.name":               edit(func(d map[string]any) { app(d)["name"] = "../../etc" }),
		"app.bundle_id":          edit(func(d map[string]any) { app(d)["bundle_id"] = "has space" }),
		"extension.team_id":      edit(func(d map[string]any) { ext(d)["team_id"] = "abcde12345" }),
		"extension.mach_service": edit(func(d map[string]any) { ext(d)["mach_service"] = "com.example.vpn.tunnel" }),
		"extension.lc_uuids":     edit(func(d map[string]any) { ext(d)["lc_uuids"] = map[string]any{} }),
		"extension.lc_uuids.arm64": edit(func(d map[string]any) {
			ext(d)["lc_uuids"] = map[string]any{"arm64": "not-a-uuid"}
		}),
		"same UUID as arm64": edit(func(d map[string]any) {
			ext(d)["lc_uuids"] = map[string]any{"arm64": "E7692EDE-C2AA-5AD1-8A56-D951AAF5CD50", "x86_64": "e7692ede-c2aa-5ad1-8a56-d951aaf5cd50"}
		}),
		"extension.category":               edit(func(d map[string]any) { ext(d)["category"] = "com.apple.kext" }),
		`unknown field "retains_delegate"`: edit(func(d map[string]any) { app(d)["retains_delegate"] = false }),
		"app.retains_activation_delegate":  edit(func(d map[string]any) { app(d)["retains_activation_delegate"] = "no" }),
		"extension.short_version":          edit(func(d map[string]any) { ext(d)["short_version"] = "" }),
		"vpn_service":                      edit(func(d map[string]any) { d["vpn_service"] = "a\nb" }),
		"trailing data":                    append(append([]byte{}, base...), []byte(" {}")...),
		"unexpected EOF":                   base[:len(base)/2],
	} {
		_, err := ParseSimPkg(data)
		if assert.Error(t, err, want) {
			assert.Contains(t, err.Error(), want)
			assert.True(t, strings.HasPrefix(err.Error(), "simpkg: "), err.Error())
		}
	}
	pkg, err := ParseSimPkg(edit(func(d map[string]any) { delete(ext(d), "category"); delete(app(d), "retains_activation_delegate") }))
	require.NoError(t, err)
	assert.Equal(t, categoryNetwork, pkg.Extension.Category)
	assert.True(t, pkg.App.RetainsDelegate())
}
