package macos

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// receipt is what pkgutil knows of an installed package.
type receipt struct {
	pkg       SimPkg
	installed time.Time
}

// maxPackageSize bounds what installer reads: manifests are small, and
// a path argument can name any file a client uploaded.
const maxPackageSize = 1 << 20

// cmdInstaller is `installer -pkg PATH -target /`. Only sxlab-simpkg/1
// manifests install; anything else is refused like a damaged package.
func (m *Mac) cmdInstaller(ctx context.Context, p *shell.Proc) int {
	var pkgPath, target string
	args := cmdArgs(p)
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-pkg", "-package", "-target", "-tgt":
			if i+1 >= len(args) {
				fmt.Fprintf(stderr(p), "installer: Error - option %s needs a value.\n", a)
				return exitFailure
			}
			i++
			if a == "-pkg" || a == "-package" {
				pkgPath = args[i]
			} else {
				target = args[i]
			}
		case "-verbose", "-verboseR", "-dumplog", "-allowUntrusted", "-vers", "-store":
		default:
			fmt.Fprintf(stderr(p), "installer: Error - unrecognized option %q.\n", a)
			return exitFailure
		}
	}
	if pkgPath == "" || target == "" {
		fmt.Fprint(stderr(p), "Usage: installer [-help] [-dominfo] [-volinfo] [-pkginfo] [-allowUntrusted] [-dumplog]\n               [-verbose | -verboseR] [-vers] [-config] [-plist]\n               [[-file <pathToFile>] [-lang <ISOLanguageCode>] [-listiso] [-showChoiceChangesXML] [-applyChoiceChangesXML <pathToFile>]]\n               -pkg <pathToPackage>\n               -target <[DomainKey|MountPoint|DiskIdentifier|DeviceNode]>\n")
		return exitFailure
	}
	if !p.Root {
		fmt.Fprintln(stderr(p), "installer: Must be run as root to install this package.")
		return exitFailure
	}
	if target != "/" && target != "LocalSystem" {
		fmt.Fprintf(stderr(p), "installer: Error - the target %q is not a volume the simulated Mac has (use /).\n", target)
		return exitFailure
	}
	gp := guestPath(p, pkgPath)
	pkg, err := m.readPackage(gp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr(p), "installer: Error - the package path specified was invalid: '%s'.\n", pkgPath)
		} else {
			fmt.Fprintf(stderr(p), "installer: Error - The package \"%s\" is damaged or incomplete: %v\n", path.Base(gp), err)
		}
		return exitFailure
	}

	m.begin()
	_, upgrade := m.receipts[pkg.PackageID]
	gen := m.bootGen
	installerProc := process{path: imageInstaller, pid: m.newPID(), thread: m.threadID(), uuid: m.imageUUID(imageInstaller)}
	m.logf(installerProc, "", typeDefault, "com.apple.install", "installer", "Package name is %{public}@", pkg.App.Name)
	m.mu.Unlock()

	verb := "Installing"
	if upgrade {
		verb = "Upgrading"
	}
	fmt.Fprintf(stdout(p), "installer: Package name is %s\n", pkg.App.Name)
	fmt.Fprintf(stdout(p), "installer: %s at base path /\n", verb)
	if !m.lockedAfter(ctx, m.dur.install, gen) {
		return exitInterrupted
	}
	err = m.installPackage(pkg, installerProc, gp, upgrade)
	m.mu.Unlock()
	if err != nil {
		fmt.Fprintf(stdout(p), "installer: The install failed. (%v)\n", err)
		return exitFailure
	}
	if upgrade {
		fmt.Fprintln(stdout(p), "installer: The upgrade was successful.")
	} else {
		fmt.Fprintln(stdout(p), "installer: The install was successful.")
	}
	return exitOK
}

func (m *Mac) readPackage(gp string) (SimPkg, error) {
	host := m.fs.Path("/", gp)
	info, err := os.Stat(host)
	if err != nil {
		return SimPkg{}, fmt.Errorf("read package %s: %w", gp, err)
	}
	if info.IsDir() {
		return SimPkg{}, fmt.Errorf("read package %s: a directory (bundle packages are not supported)", gp)
	}
	if info.Size() > maxPackageSize {
		return SimPkg{}, fmt.Errorf("read package %s: %d bytes is not a simulated package manifest", gp, info.Size())
	}
	if !strings.HasSuffix(gp, ".simpkg.json") {
		return SimPkg{}, fmt.Errorf("%s is not a *.simpkg.json manifest; the simulated Mac cannot install real packages", path.Base(gp))
	}
	data, err := os.ReadFile(host)
	if err != nil {
		return SimPkg{}, fmt.Errorf("read package %s: %w", gp, err)
	}
	return ParseSimPkg(data)
}

// installPackage lays the app bundle down, records the receipt and the
// install log. A running copy of the app keeps running the old version.
// Callers hold mu.
func (m *Mac) installPackage(pkg SimPkg, installerProc process, source string, upgrade bool) error {
	// The payload is laid over what is there, as installer does: files a
	// preinstall script did not delete stay.
	dir := "/Applications/" + pkg.App.Name + ".app"
	exec := dir + "/Contents/MacOS/" + pkg.App.Name
	extDir := dir + "/Contents/Library/SystemExtensions/" + pkg.Extension.BundleID + ".systemextension"
	files := []struct{ path, content string }{
		{dir + "/Contents/Info.plist", appInfoPlist(pkg.App)},
		{exec, simulatedExecutable(pkg.App.Name, pkg.App.ShortVersion+"/"+pkg.App.Build, nil)},
		{extDir + "/Contents/Info.plist", extensionInfoPlist(pkg.Extension)},
		{extDir + "/Contents/MacOS/" + pkg.Extension.BundleID, simulatedExecutable(pkg.Extension.Name, pkg.Extension.version(), pkg.Extension.LCUUIDs)},
	}
	for _, f := range files {
		if err := m.writeFile(f.path, f.content); err != nil {
			return fmt.Errorf("install %s: %w", pkg.PackageID, err)
		}
	}
	for id, app := range m.apps {
		if app.dir == dir && id != pkg.App.BundleID {
			delete(m.apps, id) // another app's bundle was overwritten
		}
	}
	m.apps[pkg.App.BundleID] = &installedApp{pkg: pkg, dir: dir, exec: exec}
	now := m.host.Now()
	m.receipts[pkg.PackageID] = &receipt{pkg: pkg, installed: now}
	_ = m.writeFile("/var/db/receipts/"+pkg.PackageID+".plist", plistDict(
		"PackageIdentifier", pkg.PackageID,
		"PackageVersion", pkg.pkgVersion(),
		"InstallPrefixPath", "/",
		"InstallDate", now.UTC().Format(time.RFC3339),
	))
	m.logf(m.daemons.installd, "", typeDefault, "com.apple.install", "installd", "PackageKit: Installed \"%{public}@\" (%{public}@)", pkg.App.Name, pkg.PackageID)

	verb, done := "Installing", "The install was successful."
	if upgrade {
		verb, done = "Upgrading", "The upgrade was successful."
	}
	stamp := now.Format("2006-01-02 15:04:05-07")
	var b strings.Builder
	for _, line := range []string{
		"Starting installation:",
		"Configuring volume \"Macintosh HD\"",
		"Preparing disk for local booted install.",
		"Free space on \"Macintosh HD\": 40.5 GB (40500000000 bytes).",
		"Product archive " + source + " trustLevel=350",
		"Package name is " + pkg.App.Name,
		verb + " at base path /",
		"PackageKit: Installed \"" + pkg.App.Name + "\" (" + pkg.PackageID + ", version " + pkg.pkgVersion() + ")",
		done,
	} {
		fmt.Fprintf(&b, "%s %s installer[%d]: %s\n", stamp, m.hostname(), installerProc.pid, line)
	}
	// The install log is evidence, not state: a failure to append must
	// not fail the install.
	_ = m.appendFile("/var/log/install.log", b.String())
	return nil
}

// cmdPkgutil answers --pkgs, --pkg-info and --files from the receipts.
func (m *Mac) cmdPkgutil(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 0 {
		fmt.Fprintln(stderr(p), "Usage: pkgutil [options] [commands]")
		return exitFailure
	}
	m.begin()
	defer m.mu.Unlock()
	switch {
	case args[0] == "--pkgs" || strings.HasPrefix(args[0], "--pkgs="):
		var filter *regexp.Regexp
		if pattern, ok := strings.CutPrefix(args[0], "--pkgs="); ok {
			re, err := regexp.Compile(pattern)
			if err != nil {
				fmt.Fprintf(stderr(p), "Invalid regular expression: %s\n", pattern)
				return exitFailure
			}
			filter = re
		}
		for _, id := range sortedKeys(m.receipts) {
			if filter == nil || filter.MatchString(id) {
				fmt.Fprintln(stdout(p), id)
			}
		}
		return exitOK
	case args[0] == "--pkg-info" || args[0] == "--files":
		if len(args) < 2 {
			fmt.Fprintf(stderr(p), "Error: %s requires a package identifier\n", args[0])
			return exitFailure
		}
		r, ok := m.receipts[args[1]]
		if !ok {
			fmt.Fprintf(stderr(p), "No receipt for '%s' found at '/'.\n", args[1])
			return exitFailure
		}
		if args[0] == "--files" {
			dir := "Applications/" + r.pkg.App.Name + ".app"
			for _, f := range []string{dir, dir + "/Contents", dir + "/Contents/Info.plist", dir + "/Contents/Library", dir + "/Contents/Library/SystemExtensions", dir + "/Contents/MacOS", dir + "/Contents/MacOS/" + r.pkg.App.Name} {
				fmt.Fprintln(stdout(p), f)
			}
			return exitOK
		}
		fmt.Fprintf(stdout(p), "package-id: %s\nversion: %s\nvolume: /\nlocation: /\ninstall-time: %d\n", r.pkg.PackageID, r.pkg.pkgVersion(), r.installed.Unix())
		return exitOK
	}
	fmt.Fprintf(stderr(p), "pkgutil: unrecognized option '%s' (the simulated Mac knows --pkgs, --pkg-info and --files)\n", args[0])
	return exitFailure
}

// cmdSpctl is Gatekeeper's assessment: every installed simulated bundle
// is notarized. Like spctl, it reports on stderr.
func (m *Mac) cmdSpctl(ctx context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	var targets []string
	assess := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--status":
			fmt.Fprintln(stdout(p), "assessments enabled")
			return exitOK
		case a == "--assess" || (strings.HasPrefix(a, "-a") && strings.Trim(a[2:], "v") == ""):
			assess = true // -a, -avvv
		case a == "--verbose" || (strings.HasPrefix(a, "-v") && strings.Trim(a[1:], "v") == ""):
		case a == "-t" || a == "--type":
			i++ // the type (execute, install, open) does not change the answer
		case strings.HasPrefix(a, "--type="):
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr(p), "spctl: unrecognized option `%s'\n", a)
			return exitUsage
		default:
			targets = append(targets, a)
		}
	}
	if !assess || len(targets) == 0 {
		fmt.Fprintln(stderr(p), "System Policy Basic Usage:\n       spctl --assess [--type type] [-v] path ... # assessment\n       spctl --status # query global status")
		return exitUsage
	}
	m.begin()
	defer m.mu.Unlock()
	status := exitOK
	for _, t := range targets {
		gp := guestPath(p, t)
		if !m.exists(gp) {
			fmt.Fprintf(stderr(p), "%s: No such file or directory\n", t)
			status = exitFailure
			continue
		}
		pkg, ok := m.packageOwning(gp)
		if !ok {
			fmt.Fprintf(stderr(p), "%s: rejected\nsource=no usable signature\n", t)
			status = 3
			continue
		}
		fmt.Fprintf(stderr(p), "%s: accepted\nsource=Notarized Developer ID\norigin=Developer ID Application: %s (%s)\n", t, pkg.developer(), pkg.Extension.TeamID)
	}
	return status
}

// packageOwning finds the installed app or staged extension a path is in.
func (m *Mac) packageOwning(gp string) (SimPkg, bool) {
	for _, app := range m.apps {
		if gp == app.dir || strings.HasPrefix(gp, app.dir+"/") {
			return app.pkg, true
		}
	}
	for _, row := range m.exts {
		if gp == row.bundlePath() || strings.HasPrefix(gp, row.bundlePath()+"/") || gp == row.stagedDir() {
			for _, app := range m.apps {
				if app.pkg.Extension.BundleID == row.ext.BundleID {
					return app.pkg, true
				}
			}
		}
	}
	return SimPkg{}, false
}
