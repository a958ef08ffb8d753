package macos

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sxlab/sxlab/vm/sim/shell"
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
