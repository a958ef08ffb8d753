package macos

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// Members of a simulated sysdiagnose archive, under its top folder NAME/.
// A real one holds a system_logs.logarchive bundle that only Apple's
// tools read; the simulated one holds the same log as ndjson inside a
// folder of that name, plus the state commands' outputs and a JSON dump
// of the model.
const (
	sysdiagLogs       = "system_logs.logarchive/logs.ndjson"
	sysdiagExtensions = "systemextensionsctl_list.txt"
	sysdiagVPNs       = "scutil_nc_list.txt"
	sysdiagJobs       = "launchctl_list.txt"
	sysdiagSwVers     = "sw_vers.txt"
	sysdiagState      = "sxlab-sim-state.json"
	sysdiagReadme     = "README-SIMULATED.txt"
	sysdiagInstallLog = "logs/install.log"
)

// cmdSysdiagnose is `sysdiagnose -u -b -Q -f DIR -A NAME`: it takes the
// image's sysdiagnose time, then writes DIR/NAME.tar.gz.
func (m *Mac) cmdSysdiagnose(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	dir, name := "/var/tmp", ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-f", "-A":
			if i+1 >= len(args) {
				fmt.Fprintf(stderr(p), "sysdiagnose: option %s requires an argument\n", a)
				return exitUsage
			}
			i++
			if a == "-f" {
				dir = guestPath(p, args[i])
			} else {
				name = args[i]
			}
		case "-u", "-b", "-Q", "-n", "-q", "-v", "-V", "-l", "-G", "-P", "-g", "-r":
		case "-h":
			fmt.Fprintln(stdout(p), "usage: sysdiagnose [-h] [-f results_directory] [-A archive_name] [-u] [-b] [-Q] [-n]\n(simulated Mac: the archive holds the log as ndjson, not a logarchive)")
			return exitOK
		default:
			fmt.Fprintf(stderr(p), "sysdiagnose: unrecognized option %s\n", a)
			return exitUsage
		}
	}
	if !p.Root {
		fmt.Fprintln(stderr(p), "sysdiagnose: must be run as root")
		return exitFailure
	}
	if name != "" && (strings.Contains(name, "/") || name == "." || name == "..") {
		fmt.Fprintf(stderr(p), "sysdiagnose: invalid archive name %q\n", name)
		return exitUsage
	}

	m.begin()
	gen := m.bootGen
	started := m.host.Now()
	proc := process{path: imageSysdiag, pid: m.newPID(), thread: m.threadID(), uuid: m.imageUUID(imageSysdiag)}
	m.logf(proc, "", typeDefault, "com.apple.sysdiagnose", "sysdiagnose", "sysdiagnose (full) requested by sysdiagnose command line")
	m.mu.Unlock()
	if name == "" {
		name = fmt.Sprintf("sysdiagnose_%s_macOS_VirtualMac2-1_%s", started.Format("2006.01.02_15-04-05-0700"), m.cfg.Build)
	}
	fmt.Fprintln(stdout(p), "This diagnostic tool generates files that allow Apple to investigate issues with your\ncomputer and help improve Apple products. (simulated Mac)")
	fmt.Fprintln(stdout(p), "Progress:")
	if !m.lockedAfter(ctx, m.dur.sysdiagnose, gen) {
		return exitInterrupted
	}
	members, err := m.sysdiagnoseMembers()
	m.mu.Unlock()
	if err != nil {
		fmt.Fprintf(stderr(p), "sysdiagnose: %v\n", err)
		return exitFailure
	}
	archive := path.Join(dir, name+".tar.gz")
	if err := m.writeTarGz(archive, name, members); err != nil {
		fmt.Fprintf(stderr(p), "sysdiagnose: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout(p), "Output available at '%s'.\n", archive)
	return exitOK
}

type tarMember struct {
	name string
	data []byte
}

// sysdiagnoseMembers renders the archive's files. Callers hold mu.
func (m *Mac) sysdiagnoseMembers() ([]tarMember, error) {
	var logs bytes.Buffer
	for i := range m.logs {
		writeJSONObject(&logs, &m.logs[i], false, "")
		logs.WriteByte('\n')
	}
	var jobs strings.Builder
	jobs.WriteString("PID\tStatus\tLabel\n")
	for _, row := range m.exts {
		if row.state != stateEnabled {
			continue
		}
		pid := "-"
		if row.provider != nil {
			pid = fmt.Sprint(row.provider.pid)
		}
		fmt.Fprintf(&jobs, "%s\t0\t%s\n", pid, row.label())
	}
	state, err := json.MarshalIndent(m.snapshot(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode the model state: %w", err)
	}
	installLog, err := m.fs.ReadFile("/var/log/install.log")
	if err != nil {
		installLog = nil // no install yet
	}
	members := []tarMember{
		{sysdiagReadme, []byte("Simulated Mac (sxlab). Not a real sysdiagnose: " + sysdiagLogs + " is the unified log as `log show --style ndjson --info --debug` prints it; " + sysdiagState + " is the simulation's own state.\n")},
		{sysdiagLogs, logs.Bytes()},
		{sysdiagExtensions, []byte(m.renderExtensionList(""))},
		{sysdiagVPNs, []byte(m.renderVPNList())},
		{sysdiagJobs, []byte(jobs.String())},
		{sysdiagSwVers, []byte(fmt.Sprintf("ProductName:\t\tmacOS\nProductVersion:\t\t%s\nBuildVersion:\t\t%s\n", m.cfg.ProductVersion, m.cfg.Build))},
		{sysdiagState, state},
	}
	for _, row := range m.exts {
		if row.state == stateEnabled {
			members = append(members, tarMember{"launchctl_print_" + row.label() + ".txt", []byte(m.renderJob(row))})
		}
	}
	if installLog != nil {
		members = append(members, tarMember{sysdiagInstallLog, installLog})
	}
	return members, nil
}

func (m *Mac) writeTarGz(guestFile, top string, members []tarMember) error {
	var buf bytes.Buffer
	// The fastest level: a failing attempt's archive is made on the
	// lab's own cores, and how hard it is squeezed is nobody's evidence.
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	tw := tar.NewWriter(gz)
	mtime := m.host.Now()
	dirs := map[string]bool{}
	addDir := func(d string) error {
		if dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime})
	}
	if err := addDir(top); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	for _, mem := range members {
		full := top + "/" + mem.name
		if d := path.Dir(full); d != top {
			if err := addDir(d); err != nil {
				return fmt.Errorf("write archive: %w", err)
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: full, Mode: 0o644, Size: int64(len(mem.data)), ModTime: mtime}); err != nil {
			return fmt.Errorf("write archive member %s: %w", full, err)
		}
		if _, err := tw.Write(mem.data); err != nil {
			return fmt.Errorf("write archive member %s: %w", full, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return m.writeFile(guestFile, buf.String())
}

// stateSnapshot is the model as JSON, for sysdiagnose and debugging.
type stateSnapshot struct {
	Machine        string              `json:"machine"`
	ProductVersion string              `json:"product_version"`
	Build          string              `json:"build"`
	Boot           int                 `json:"boot"`
	BootUUID       string              `json:"boot_uuid"`
	Faults         map[string]float64  `json:"faults"`
	IgnoredFaults  []string            `json:"ignored_faults,omitempty"`
	Packages       []snapshotPackage   `json:"packages"`
	RunningApps    []snapshotApp       `json:"running_apps"`
	Extensions     []snapshotExtension `json:"extensions"`
	Prompt         string              `json:"approval_prompt_for,omitempty"`
	Policies       []sysextPolicy      `json:"policies"`
	VPNs           []snapshotVPN       `json:"vpns"`
	StagedVersions []string            `json:"staged_versions"`
	Time           time.Time           `json:"time"`
	Durations      map[string]string   `json:"durations"`
}

type snapshotPackage struct {
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	App       string    `json:"app"`
	Installed time.Time `json:"installed"`
}

type snapshotApp struct {
	BundleID string `json:"bundle_id"`
	Version  string `json:"version"`
	PID      int    `json:"pid"`
	XPC      bool   `json:"xpc_connected"`
}

type snapshotExtension struct {
	BundleID     string `json:"bundle_id"`
	Version      string `json:"version"`
	UUID         string `json:"uuid"`
	State        string `json:"state"`
	MachService  string `json:"mach_service"`
	EndpointLost string `json:"endpoint_lost"`
	PromptLost   bool   `json:"prompt_lost"`
	ProviderPID  int    `json:"provider_pid,omitempty"`
}

type snapshotVPN struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Provider string `json:"provider"`
	Status   string `json:"status"`
}

// snapshot copies the model's state. Callers hold mu.
func (m *Mac) snapshot() stateSnapshot {
	s := stateSnapshot{
		Machine: m.cfg.Name, ProductVersion: m.cfg.ProductVersion, Build: m.cfg.Build,
		Boot: m.bootGen, BootUUID: m.bootUUID, Faults: m.faults.p, IgnoredFaults: m.faults.ignored,
		Policies: m.policies, Time: m.host.Now(),
		Packages: []snapshotPackage{}, RunningApps: []snapshotApp{}, Extensions: []snapshotExtension{}, VPNs: []snapshotVPN{},
		StagedVersions: sortedKeys(m.staged),
		Durations: map[string]string{
			"boot": m.dur.boot.String(), "install": m.dur.install.String(), "launch": m.dur.launch.String(),
			"activation": m.dur.activation.String(), "approval": m.dur.approval.String(), "mdm": m.dur.mdm.String(),
			"vpn_connect": m.dur.vpnConnect.String(), "sysdiagnose": m.dur.sysdiagnose.String(),
		},
	}
	if s.Policies == nil {
		s.Policies = []sysextPolicy{}
	}
	for _, id := range sortedKeys(m.receipts) {
		r := m.receipts[id]
		s.Packages = append(s.Packages, snapshotPackage{id, r.version, r.appName, r.installed})
	}
	for _, id := range sortedKeys(m.running) {
		a := m.running[id]
		s.RunningApps = append(s.RunningApps, snapshotApp{id, a.pkg.App.ShortVersion + "/" + a.pkg.App.Build, a.proc.pid, a.xpcRow != nil})
	}
	for _, row := range m.exts {
		e := snapshotExtension{row.ext.BundleID, row.ext.version(), row.uuid, row.state, row.ext.MachService, row.lost.String(), row.promptLost, 0}
		if row.provider != nil {
			e.ProviderPID = row.provider.pid
		}
		s.Extensions = append(s.Extensions, e)
	}
	if m.prompt != nil {
		s.Prompt = m.prompt.describe()
	}
	for _, v := range m.vpns {
		s.VPNs = append(s.VPNs, snapshotVPN{v.name, v.id, v.provider, v.status.String()})
	}
	return s
}
