package macos

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// Sim-only commands. Real Macs have no command for either: MDM payloads
// arrive from an MDM server (`profiles` cannot install a system extension
// policy) and removing an extension takes System Settings. The lab uses
// them on simulated guests only, for `approve: mdm` and to cure
// endpoint-lost-on-replace-while-running.
const (
	simMDMCommand      = "sxlab-sim-mdm"
	simSettingsCommand = "sxlab-sim-settings"
)

// cmdArgs is the arguments after the command name (none for an empty Args).
func cmdArgs(p *shell.Proc) []string {
	if p == nil || len(p.Args) < 2 {
		return nil
	}
	return p.Args[1:]
}

// cmdSwVers is sw_vers: two tabs after each key on macOS 11 and later.
func (m *Mac) cmdSwVers(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 0 {
		sep := "\t\t"
		if m.majorVersion() > 0 && m.majorVersion() < 11 {
			sep = "\t"
		}
		fmt.Fprintf(stdout(p), "ProductName:%smacOS\nProductVersion:%s%s\nBuildVersion:%s%s\n", sep, sep, m.cfg.ProductVersion, sep, m.cfg.Build)
		return exitOK
	}
	if len(args) == 1 {
		switch strings.TrimLeft(args[0], "-") {
		case "productName":
			fmt.Fprintln(stdout(p), "macOS")
			return exitOK
		case "productVersion":
			fmt.Fprintln(stdout(p), m.cfg.ProductVersion)
			return exitOK
		case "buildVersion":
			fmt.Fprintln(stdout(p), m.cfg.Build)
			return exitOK
		case "productVersionExtra":
			return exitOK
		}
	}
	fmt.Fprintln(stderr(p), "Usage: sw_vers [-productName|-productVersion|-productVersionExtra|-buildVersion]")
	return exitFailure
}

// cmdSystemExtensionsCtl: list works; developer, uninstall and reset
// refuse while SIP is on, which it always is on the simulated Mac.
func (m *Mac) cmdSystemExtensionsCtl(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 0 {
		fmt.Fprint(stderr(p), systemExtensionsUsage)
		return exitFailure
	}
	switch args[0] {
	case "list":
		if len(args) > 2 {
			break
		}
		category := ""
		if len(args) == 2 {
			category = args[1]
		}
		m.begin()
		out := m.renderExtensionList(category)
		m.mu.Unlock()
		fmt.Fprint(stdout(p), out)
		return exitOK
	case "developer", "uninstall", "reset":
		fmt.Fprint(stderr(p), sipRefusal)
		return exitFailure
	}
	fmt.Fprint(stderr(p), systemExtensionsUsage)
	return exitFailure
}

// cmdShutdown supports restarting (-r); the machine owns power-off.
func (m *Mac) cmdShutdown(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if !p.Root {
		fmt.Fprintln(stderr(p), "shutdown: NOT super-user")
		return exitFailure
	}
	restart := slices.Contains(args, "-r")
	when := ""
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			when = a
		}
	}
	if !restart || when != "now" {
		fmt.Fprintln(stderr(p), "usage: shutdown -r now  (the simulated Mac restarts only, and only now)")
		return exitUsage
	}
	fmt.Fprintln(stdout(p), "Shutdown NOW!")
	return m.restart(p, "shutdown")
}

func (m *Mac) cmdReboot(ctx context.Context, p *shell.Proc) int {
	if !p.Root {
		fmt.Fprintln(stderr(p), "reboot: Operation not permitted")
		return exitFailure
	}
	if len(cmdArgs(p)) > 0 && !slices.Contains([]string{"-q", "-l", "-n"}, cmdArgs(p)[0]) {
		fmt.Fprintln(stderr(p), "usage: reboot [-lnq]")
		return exitUsage
	}
	return m.restart(p, "reboot")
}

// restart logs the shutdown and asks the machine to reboot; the machine
// drops every connection (this one too) and calls Boot.
func (m *Mac) restart(p *shell.Proc, how string) int {
	m.begin()
	proc := process{path: imageShutdown, pid: m.newPID(), thread: m.threadID(), uuid: m.imageUUID(imageShutdown)}
	if how == "reboot" {
		proc.path = "/sbin/reboot"
	}
	user := "root"
	if p.User != "" {
		user = p.User
	}
	m.logf(proc, "", typeDefault, "", "", "reboot by %{public}@: ", user)
	m.logf(m.daemons.launchd, "", typeDefault, "", "", "system shutdown initiated by: %{public}@.%d<-sshd", how, proc.pid)
	m.mu.Unlock()
	m.host.Reboot()
	return exitOK
}

// cmdSimMDM delivers what an MDM server would: a system extension policy
// (com.apple.system-extension-policy, AllowedSystemExtensions).
//
//	sxlab-sim-mdm approve TEAMID [BUNDLEID...]   allow the team's extensions (all, or the ones named)
//	sxlab-sim-mdm list                           print the installed policies
//
// Installing a policy completes pending activations it covers — even one
// whose prompt never appeared (approval-coalesced) — and approves future
// activations of those extensions without a prompt.
func (m *Mac) cmdSimMDM(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	usage := func() int {
		fmt.Fprintf(stderr(p), "usage: %s approve TEAMID [BUNDLEID...]\n       %s list\n(simulated Macs only: stands for an MDM system extension policy)\n", simMDMCommand, simMDMCommand)
		return exitUsage
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "list":
		if len(args) != 1 {
			return usage()
		}
		m.begin()
		var b strings.Builder
		for _, pol := range m.policies {
			ids := "all bundle IDs"
			if len(pol.BundleIDs) > 0 {
				ids = strings.Join(pol.BundleIDs, ", ")
			}
			fmt.Fprintf(&b, "system extension policy: team %s: %s\n", pol.TeamID, ids)
		}
		m.mu.Unlock()
		fmt.Fprint(stdout(p), b.String())
		return exitOK
	case "approve":
	default:
		return usage()
	}
	if len(args) < 2 {
		return usage()
	}
	team, bundles := args[1], args[2:]
	if !teamIDPattern.MatchString(team) {
		fmt.Fprintf(stderr(p), "%s: %q is not a team ID (10 uppercase letters or digits)\n", simMDMCommand, team)
		return exitFailure
	}
	for _, b := range bundles {
		if !bundleIDPattern.MatchString(b) {
			fmt.Fprintf(stderr(p), "%s: %q is not a bundle identifier\n", simMDMCommand, b)
			return exitFailure
		}
	}
	m.begin()
	gen := m.bootGen
	m.mu.Unlock()
	if !m.lockedAfter(ctx, m.dur.mdm, gen) {
		return exitInterrupted
	}
	policy := sysextPolicy{TeamID: team, BundleIDs: slices.Clone(bundles)}
	m.policies = append(m.policies, policy)
	m.logf(m.daemons.mdm, "", typeDefault, "com.apple.ManagedClient", "MDMDaemon", "Installed configuration profile: System Extension Policy (com.sxlab.sim.sysext-policy.%{public}@)", team)
	m.sx(sxCatXPC, "system extension policy changed")
	approved := 0
	for _, row := range slices.Clone(m.exts) {
		if row.state == stateWaiting && policy.allows(row.ext) {
			m.approve(row)
			approved++
		}
	}
	m.mu.Unlock()
	fmt.Fprintf(stdout(p), "%s: installed system extension policy for team %s; approved %d waiting extension(s)\n", simMDMCommand, team, approved)
	return exitOK
}

// cmdSimSettings does what a person does in System Settings > General >
// Login Items & Extensions:
//
//	sxlab-sim-settings remove-extension BUNDLEID   delete the extension (every copy, at once)
//	sxlab-sim-settings allow-extension BUNDLEID    approve a waiting extension, prompt or not
func (m *Mac) cmdSimSettings(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) != 2 || (args[0] != "remove-extension" && args[0] != "allow-extension") {
		fmt.Fprintf(stderr(p), "usage: %s remove-extension BUNDLEID\n       %s allow-extension BUNDLEID\n(simulated Macs only: stands for System Settings > General > Login Items & Extensions)\n", simSettingsCommand, simSettingsCommand)
		return exitUsage
	}
	bundleID := args[1]
	m.begin()
	gen := m.bootGen
	m.mu.Unlock()
	if !m.lockedAfter(ctx, m.dur.settings, gen) {
		return exitInterrupted
	}
	defer m.mu.Unlock()
	settings := process{path: imageSettings, pid: m.newPID(), thread: m.threadID(), uuid: m.imageUUID(imageSettings)}
	if args[0] == "remove-extension" {
		m.logf(settings, libSysExt, typeDefault, sxSubsystem, "Settings", "user requested removal of %{public}@", bundleID)
		if n := m.removeExtension(bundleID); n == 0 {
			fmt.Fprintf(stderr(p), "%s: no extension %s\n", simSettingsCommand, bundleID)
			return exitFailure
		}
		fmt.Fprintf(stdout(p), "%s: removed %s\n", simSettingsCommand, bundleID)
		return exitOK
	}
	for i := len(m.exts) - 1; i >= 0; i-- {
		row := m.exts[i]
		if row.ext.BundleID == bundleID && row.state == stateWaiting {
			m.logf(settings, libSysExt, typeDefault, sxSubsystem, "Settings", "user allowed %{public}@", bundleID)
			m.approve(row)
			fmt.Fprintf(stdout(p), "%s: allowed %s\n", simSettingsCommand, bundleID)
			return exitOK
		}
	}
	fmt.Fprintf(stderr(p), "%s: no extension %s is waiting for approval\n", simSettingsCommand, bundleID)
	return exitFailure
}
