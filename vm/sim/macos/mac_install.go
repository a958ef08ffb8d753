package macos

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sxlab/sxlab/packages"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

// receipt is what pkgutil knows of an installed component package.
type receipt struct {
	id, version string
	location    string   // pkgutil's location: "Applications", or "/"
	files       []string // what --files lists, relative to the volume
	appName     string
	installed   time.Time
}

// cmdInstaller is `installer -pkg PATH -target /`. A flat package is
// read with the packages reader, the same code preflight uses; what it
// refuses, installer refuses the way macOS does for a file that is not a
// flat package. A *.simpkg.json manifest still installs, as a test
// helper for app behaviours a real package cannot express.
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
	pl, err := m.readPackage(gp)
	if err != nil && strings.HasSuffix(gp, ".simpkg.json") && !errors.Is(err, fs.ErrNotExist) {
		// A test manifest's error names its field: it helps whoever
		// writes the test, and no Mac ever sees a manifest.
		fmt.Fprintf(stderr(p), "installer: Error - The package \"%s\" is damaged or incomplete: %v\n", path.Base(gp), err)
		return exitFailure
	}
	if err != nil {
		// macOS's installer says no more than this for a file that is
		// missing or not a flat package (e.g. a tar named .pkg:
		// cloudfoundry/cli#274; davidteren/lpx_links#14 for the "Error -"
		// spelling of current releases), exit 1. The reader's reason
		// goes to install.log, where installer writes its details.
		fmt.Fprintf(stderr(p), "installer: Error - the package path specified was invalid: '%s'.\n", pkgPath)
		m.begin()
		m.installLog(process{path: imageInstaller, pid: m.newPID()}, "Package "+gp+" could not be read: "+err.Error())
		m.mu.Unlock()
		return exitFailure
	}

	m.begin()
	upgrade := false
	for _, c := range pl.components {
		if _, ok := m.receipts[c.ID]; ok {
			upgrade = true
		}
	}
	gen := m.bootGen
	installerProc := process{path: imageInstaller, pid: m.newPID(), thread: m.threadID(), uuid: m.imageUUID(imageInstaller)}
	m.logf(installerProc, "", typeDefault, "com.apple.install", "installer", "Package name is %{public}@", pl.pkg.App.Name)
	m.mu.Unlock()

	verb := "Installing"
	if upgrade {
		verb = "Upgrading"
	}
	fmt.Fprintf(stdout(p), "installer: Package name is %s\n", pl.pkg.App.Name)
	fmt.Fprintf(stdout(p), "installer: %s at base path /\n", verb)
	if !m.lockedAfter(ctx, m.dur.install, gen) {
		return exitInterrupted
	}
	err = m.installPayload(pl, installerProc, gp, upgrade, true)
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

// readPackage reads the package at guest path gp.
func (m *Mac) readPackage(gp string) (pkgPayload, error) {
	if _, err := m.fs.Stat(gp); err != nil {
		return pkgPayload{}, fmt.Errorf("read package %s: %w", gp, fs.ErrNotExist)
	}
	if strings.HasSuffix(gp, ".simpkg.json") {
		pkg, err := m.readManifest(gp)
		if err != nil {
			return pkgPayload{}, err
		}
		return payloadFromManifest(pkg), nil
	}
	return m.readReal(gp, "pkg")
}

// readReal reads a real package of the given kind at guest path gp with
// the packages reader; its errors name the guest path, never the
// host's. A flat .pkg is read from the tree's memory; the reader opens
// a .zip or .dmg by host path (7-Zip reads the image), so those are
// copied to a host file for the read.
func (m *Mac) readReal(gp, kind string) (pkgPayload, error) {
	var key packageKey
	if m.cfg.Packages != nil {
		if sum, err := m.packageSum(gp); err == nil {
			key = packageKey{kind: kind, path: gp, sum: sum}
			if pl, ok := m.cfg.Packages.get(key); ok {
				return pl, nil
			}
		}
	}
	pkg, err := m.openReal(gp, kind)
	if err != nil {
		return pkgPayload{}, err
	}
	pl, err := payloadFromPackage(pkg)
	if err != nil {
		return pkgPayload{}, fmt.Errorf("%s: %s", gp, err.Error())
	}
	if key.kind != "" {
		m.cfg.Packages.put(key, pl)
	}
	return pl, nil
}

// packageSum is the sha256 of the package at gp, through the tree's own
// digest (kept with bytes shared between Macs), without a copy of it.
func (m *Mac) packageSum(gp string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := m.fs.Open(gp)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	b, err := f.Sum("256", sha256.New)
	if err != nil {
		return sum, err
	}
	copy(sum[:], b)
	return sum, nil
}

// PackageCache keeps what the Macs of one provider read of their
// packages: every attempt of a night uploads the same few packages to
// a fresh Mac, and reading one (xar, payload, Mach-O, signatures) was 5 %
// of a 2,400-attempt run. The key is the bytes' sha256 with the guest
// path (which the payload's messages name) and the kind, so a changed
// package is read again. Safe for concurrent use.
type PackageCache struct {
	mu sync.Mutex
	m  map[packageKey]pkgPayload
}

type packageKey struct {
	kind, path string
	sum        [sha256.Size]byte
}

// maxCachedPackages bounds the cache: a lab has a few versions.
const maxCachedPackages = 64

// NewPackageCache returns an empty cache.
func NewPackageCache() *PackageCache {
	return &PackageCache{m: map[packageKey]pkgPayload{}}
}

func (c *PackageCache) get(k packageKey) (pkgPayload, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pl, ok := c.m[k]
	return pl, ok
}

// put keeps pl, whose slices and strings the installer only reads.
func (c *PackageCache) put(k packageKey, pl pkgPayload) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedPackages {
		clear(c.m)
	}
	c.m[k] = pl
}

func (m *Mac) openReal(gp, kind string) (*packages.Package, error) {
	if kind == "pkg" {
		f, err := m.fs.Open(gp)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", gp, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", gp, err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("%s: is a directory (a bundle-style .pkg is not supported; flat packages only)", gp)
		}
		pkg, err := packages.ReadPkg(f, fi.Size(), packages.Limits{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", gp, err)
		}
		pkg.File = gp
		return pkg, nil
	}
	data, err := m.fs.ReadFile(gp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gp, err)
	}
	tmp, err := os.MkdirTemp("", "sxlab-sim-read-")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gp, err)
	}
	defer os.RemoveAll(tmp)
	host := filepath.Join(tmp, path.Base(gp))
	if err := os.WriteFile(host, data, 0o600); err != nil {
		return nil, fmt.Errorf("%s: %w", gp, err)
	}
	pkg, err := packages.OpenAs(host, kind, packages.Limits{})
	if err != nil {
		return nil, errors.New(strings.ReplaceAll(err.Error(), host, gp))
	}
	pkg.File = gp
	return pkg, nil
}

// maxManifestSize bounds what installer reads of a test manifest.
const maxManifestSize = 1 << 20

func (m *Mac) readManifest(gp string) (SimPkg, error) {
	info, err := m.fs.Stat(gp)
	if err != nil {
		return SimPkg{}, fmt.Errorf("read package %s: %w", gp, err)
	}
	if info.IsDir() || info.Size() > maxManifestSize {
		return SimPkg{}, fmt.Errorf("read package %s: not a simulated package manifest", gp)
	}
	data, err := m.fs.ReadFile(gp)
	if err != nil {
		return SimPkg{}, fmt.Errorf("read package %s: %w", gp, err)
	}
	return ParseSimPkg(data)
}

// installLog appends installer lines to /var/log/install.log. The log is
// evidence, not state: a failure to append must not fail the install.
// Callers hold mu.
func (m *Mac) installLog(proc process, lines ...string) {
	stamp := m.host.Now().Format("2006-01-02 15:04:05-07")
	var b strings.Builder
	for _, line := range lines {
		fmt.Fprintf(&b, "%s %s installer[%d]: %s\n", stamp, m.hostname(), proc.pid, line)
	}
	_ = m.appendFile("/var/log/install.log", b.String())
}

// installPayload lays the app bundle down and registers it; with
// receipts (installer), it records them and the install log. A running
// copy of the app keeps running the old version. Callers hold mu.
func (m *Mac) installPayload(pl pkgPayload, installerProc process, source string, upgrade, receipts bool) error {
	// The payload is laid over what is there, as installer does: files a
	// preinstall script did not delete stay.
	pkg := pl.pkg
	for _, f := range pl.files {
		if err := m.writeFile(f.path, f.content); err != nil {
			return fmt.Errorf("install %s: %w", pkg.PackageID, err)
		}
	}
	for id, app := range m.apps {
		if app.dir == pl.appDir && id != pkg.App.BundleID {
			delete(m.apps, id) // another app's bundle was overwritten
		}
	}
	m.apps[pkg.App.BundleID] = &installedApp{pkg: pkg, dir: pl.appDir, exec: pl.appExec}
	if !receipts {
		return nil
	}
	now := m.host.Now()
	var installed []string
	for _, c := range pl.components {
		r := &receipt{id: c.ID, version: c.Version, location: receiptLocation(c.InstallLocation), appName: pkg.App.Name, installed: now}
		loc := strings.TrimSuffix(c.InstallLocation, "/") + "/"
		for _, f := range pl.files {
			if rel, ok := strings.CutPrefix(f.path, loc); ok {
				r.files = append(r.files, rel)
			}
		}
		m.receipts[c.ID] = r
		_ = m.writeFile("/var/db/receipts/"+c.ID+".plist", plistDict(
			"PackageIdentifier", c.ID,
			"PackageVersion", c.Version,
			"InstallPrefixPath", r.location,
			"InstallDate", now.UTC().Format(time.RFC3339),
		))
		m.logf(m.daemons.installd, "", typeDefault, "com.apple.install", "installd", "PackageKit: Installed \"%{public}@\" (%{public}@)", pkg.App.Name, c.ID)
		installed = append(installed, "PackageKit: Installed \""+pkg.App.Name+"\" ("+c.ID+", version "+c.Version+")")
	}

	verb, done := "Installing", "The install was successful."
	if upgrade {
		verb, done = "Upgrading", "The upgrade was successful."
	}
	lines := []string{
		"Starting installation:",
		"Configuring volume \"Macintosh HD\"",
		"Preparing disk for local booted install.",
		"Free space on \"Macintosh HD\": 40.5 GB (40500000000 bytes).",
		"Product archive " + source + " trustLevel=350",
		"Package name is " + pkg.App.Name,
		verb + " at base path /",
	}
	lines = append(lines, installed...)
	m.installLog(installerProc, append(lines, done)...)
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
			for _, f := range receiptFiles(r.files) {
				fmt.Fprintln(stdout(p), f)
			}
			return exitOK
		}
		// PackageInfo's identifier and version, and its install
		// location relative to the volume (GUEST-REFERENCE.md).
		fmt.Fprintf(stdout(p), "package-id: %s\nversion: %s\nvolume: /\nlocation: %s\ninstall-time: %d\n", r.id, r.version, r.location, r.installed.Unix())
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

// receiptFiles lists the files of a receipt with every folder above
// them, sorted, as pkgutil --files does.
func receiptFiles(files []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		for d := f; d != "." && d != "/" && d != ""; d = path.Dir(d) {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	slices.Sort(out)
	return out
}
