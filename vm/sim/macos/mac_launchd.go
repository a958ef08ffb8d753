package macos

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// systemJobs are a few of the daemons a real `sudo launchctl list` shows
// besides the NE providers, so a grep has something to skip.
var systemJobs = []string{
	"com.apple.sysextd", "com.apple.nesessionmanager", "com.apple.logd",
	"com.apple.installd", "com.apple.mdmclient.daemon", "com.openssh.sshd",
	"com.apple.nehelper", "com.apple.configd",
}

// cmdLaunchctl implements list, print, asuser and kickstart.
func (m *Mac) cmdLaunchctl(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 0 {
		fmt.Fprintln(stderr(p), "Usage: launchctl <subcommand> ... | help [subcommand]")
		return exitFailure
	}
	switch args[0] {
	case "asuser":
		return m.launchctlAsUser(ctx, p, args[1:])
	case "list":
		return m.launchctlList(p, args[1:])
	case "print":
		return m.launchctlPrint(p, args[1:])
	case "kickstart":
		return m.launchctlKickstart(p, args[1:])
	}
	fmt.Fprintf(stderr(p), "Unrecognized subcommand: %s\n", args[0])
	fmt.Fprintln(stderr(p), "Usage: launchctl <subcommand> ... | help [subcommand]")
	return exitFailure
}

// launchctlAsUser runs a command in a user's login session: as that
// user, without root.
func (m *Mac) launchctlAsUser(ctx context.Context, p *shell.Proc, args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr(p), "Usage: launchctl asuser <UID> <command> [args...]")
		return exitUsage
	}
	uid, err := strconv.Atoi(args[0])
	if err != nil || uid < 0 {
		fmt.Fprintln(stderr(p), "Usage: launchctl asuser <UID> <command> [args...]")
		return exitUsage
	}
	if !p.Root && uid != m.userUID() {
		fmt.Fprintln(stderr(p), "launchctl asuser: Operation not permitted (run it with sudo)")
		return exitFailure
	}
	// The command runs in the user's bootstrap (their session) but keeps
	// the caller's credentials: launchctl(1) says asuser "does not modify
	// the process' credentials (UID, GID, etc.)". Root stays root, whose
	// Apple events the user's apps refuse; hence the usual
	// `launchctl asuser UID sudo -u USER …`, which goes through the shell
	// when it offers, else straight to the model's program.
	if p.Exec != nil {
		return p.Exec(ctx, args[1:], p.Root)
	}
	name := args[1]
	var cmd shell.Command
	if strings.HasPrefix(name, "/") {
		cmd, _ = m.Program(name)
	} else {
		cmd = m.Commands()[name]
	}
	if cmd == nil {
		fmt.Fprintf(stderr(p), "launchctl asuser: %s: No such file or directory (the simulated Mac runs its own commands only)\n", name)
		return exitFailure
	}
	inner := *p
	inner.Args = args[1:]
	return cmd(ctx, &inner)
}

// launchctlList is `launchctl list [LABEL]`: the system domain for root,
// the user's GUI domain otherwise.
func (m *Mac) launchctlList(p *shell.Proc, args []string) int {
	m.begin()
	defer m.mu.Unlock()
	type job struct {
		pid   string
		label string
	}
	var jobs []job
	if p.Root {
		pids := []int{m.daemons.sysextd.pid, m.daemons.nesm.pid, 0, m.daemons.installd.pid, m.daemons.mdm.pid, 0, 0, 0}
		for i, label := range systemJobs {
			pid := "-"
			if pids[i] > 0 {
				pid = strconv.Itoa(pids[i])
			}
			jobs = append(jobs, job{pid, label})
		}
		for _, row := range m.exts {
			if row.state != stateEnabled {
				continue
			}
			pid := "-"
			if row.provider != nil {
				pid = strconv.Itoa(row.provider.pid)
			}
			jobs = append(jobs, job{pid, row.label()})
		}
	} else {
		jobs = append(jobs, job{"-", "com.apple.SafariHistoryServiceAgent"}, job{"-", "com.apple.UserNotificationCenterAgent"})
		for _, id := range sortedKeys(m.running) {
			app := m.running[id]
			jobs = append(jobs, job{strconv.Itoa(app.proc.pid), fmt.Sprintf("application.%s.%d.%d", id, 1000000+app.proc.pid, 1000000+app.proc.pid*7)})
		}
	}
	if len(args) > 0 {
		for _, j := range jobs {
			if j.label == args[0] {
				fmt.Fprintf(stdout(p), "{\n\t\"LimitLoadToSessionType\" = \"System\";\n\t\"Label\" = \"%s\";\n\t\"OnDemand\" = true;\n\t\"LastExitStatus\" = 0;\n", j.label)
				if j.pid != "-" {
					fmt.Fprintf(stdout(p), "\t\"PID\" = %s;\n", j.pid)
				}
				fmt.Fprintln(stdout(p), "};")
				return exitOK
			}
		}
		fmt.Fprintf(stderr(p), "Could not find service \"%s\" in domain for port\n", args[0])
		return 113
	}
	var b strings.Builder
	b.WriteString("PID\tStatus\tLabel\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "%s\t0\t%s\n", j.pid, j.label)
	}
	fmt.Fprint(stdout(p), b.String())
	return exitOK
}

// splitTarget splits system/LABEL, gui/501/LABEL, user/501/LABEL.
func splitTarget(target string) (domain, label string) {
	i := strings.LastIndex(target, "/")
	if i < 0 {
		return target, ""
	}
	return target[:i], target[i+1:]
}

func domainName(domain string) string {
	if domain == "system" {
		return "system"
	}
	if uid, ok := strings.CutPrefix(domain, "gui/"); ok {
		return "user gui: " + uid
	}
	return domain
}

func (m *Mac) launchctlPrint(p *shell.Proc, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr(p), "Usage: launchctl print <domain-target> | <service-target>")
		return exitUsage
	}
	domain, label := splitTarget(args[0])
	if label == "" {
		fmt.Fprintf(stderr(p), "launchctl print %s: printing a whole domain is not supported by the simulated Mac; print %s/LABEL\n", args[0], args[0])
		return exitFailure
	}
	m.begin()
	defer m.mu.Unlock()
	if domain == "system" {
		for _, row := range m.exts {
			if row.state == stateEnabled && row.label() == label {
				fmt.Fprint(stdout(p), m.renderJob(row))
				return exitOK
			}
		}
	}
	fmt.Fprintf(stderr(p), "Could not find service \"%s\" in domain for %s\n", label, domainName(domain))
	return 113
}

func (m *Mac) launchctlKickstart(p *shell.Proc, args []string) int {
	var target string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			target = a
		}
	}
	if target == "" {
		fmt.Fprintln(stderr(p), "Usage: launchctl kickstart [-kp] <service-target>")
		return exitUsage
	}
	if !p.Root {
		fmt.Fprintln(stderr(p), "Could not kickstart service: 1: Operation not permitted")
		return exitFailure
	}
	domain, label := splitTarget(target)
	m.begin()
	defer m.mu.Unlock()
	for _, row := range m.exts {
		if domain == "system" && row.state == stateEnabled && row.label() == label {
			if row.provider != nil {
				m.stopProvider(row)
			}
			m.startProvider(row)
			fmt.Fprintf(stdout(p), "service spawned with pid: %d\n", row.provider.pid)
			return exitOK
		}
	}
	fmt.Fprintf(stderr(p), "Could not find service \"%s\" in domain for %s\n", label, domainName(domain))
	return 113
}

// renderJob is `launchctl print system/LABEL` of a provider's job. The
// endpoints block is there only when the Mach service registered.
func (m *Mac) renderJob(row *extRow) string {
	running := row.provider != nil
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("system/%s = {", row.label())
	if running {
		w("\tactive count = 1")
	} else {
		w("\tactive count = 0")
	}
	w("\tpath = (submitted by nesessionmanager)")
	w("\ttype = Daemon")
	if running {
		w("\tstate = running")
	} else {
		w("\tstate = not running")
	}
	w("")
	w("\tprogram identifier = %s (mode: 1)", row.ext.BundleID)
	w("\targuments = {")
	w("\t\t%s", row.execPath())
	w("\t}")
	w("")
	w("\tdefault environment = {")
	w("\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin")
	w("\t}")
	w("")
	w("\tenvironment = {")
	w("\t\tXPC_SERVICE_NAME => %s", row.label())
	w("\t}")
	w("")
	w("\tdomain = system")
	w("\tusername = root")
	w("\tminimum runtime = 10")
	w("\texit timeout = 5")
	w("\truns = %d", row.runs)
	if running {
		w("\tpid = %d", row.provider.pid)
		w("\timmediate reason = ipc (mach)")
	}
	w("\tforks = 0")
	w("\texecs = %d", row.runs)
	w("\tinitialized = 1")
	w("\ttrampolined = 1")
	w("\tstarted suspended = 0")
	w("\tproxy started suspended = 0")
	if row.exited {
		w("\tlast exit code = 0")
	} else {
		w("\tlast exit code = (never exited)")
	}
	w("")
	if row.lost == lossNone {
		active, watching := 0, 1
		if running {
			active, watching = 1, 0
		}
		w("\tendpoints = {")
		w("\t\t\"%s\" = {", row.ext.MachService)
		w("\t\t\tport = 0x%x", row.port)
		w("\t\t\tactive = %d", active)
		w("\t\t\tmanaged = 1")
		w("\t\t\treset = 0")
		w("\t\t\thide = 0")
		w("\t\t\twatching = %d", watching)
		w("\t\t}")
		w("\t}")
		w("")
	}
	if running {
		for _, kind := range []string{"resource", "jetsam"} {
			w("\t%s coalition = {", kind)
			w("\t\tID = %d", 1000+row.provider.pid%900)
			w("\t\ttype = %s", kind)
			w("\t\tstate = active")
			w("\t\tactive count = 1")
			w("\t\tname = %s", row.label())
			w("\t}")
			w("")
		}
	}
	w("\tspawn type = daemon (3)")
	w("\tjetsam priority = 40")
	w("\tjetsam memory limit (active) = (unlimited)")
	w("\tjetsam memory limit (inactive) = (unlimited)")
	w("\tjetsamproperties category = daemon")
	w("\tjetsam thread limit = 32")
	w("\tcpumon = default")
	if running {
		w("\tjob state = running")
	}
	w("")
	w("\tproperties = inferred program | system service | exponential throttling")
	w("}")
	return b.String()
}
