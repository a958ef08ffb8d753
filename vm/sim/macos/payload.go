package macos

import (
	"fmt"
	"path"
	"strings"

	"github.com/sxlab/sxlab/packages"
)

// pkgPayload is what an install lays down on the simulated Mac and what the
// model learns from it: the files, where the app landed, the receipts.
type pkgPayload struct {
	pkg        SimPkg
	appDir     string // e.g. /Applications/Example VPN.app
	appExec    string // appDir/Contents/MacOS/<CFBundleExecutable>
	extExec    string // the extension's CFBundleExecutable
	files      []pkgFile
	components []packages.Component
}

type pkgFile struct {
	path, content string
}

// payloadFromPackage turns a package read by the packages reader into
// what the model installs. Identity, versions and the Mach service come
// from the bundles' Info.plists, team and LC_UUIDs from their Mach-O
// files. The reader keeps only each bundle's Info.plist and main
// executable, so those are the files laid down: the Info.plist as an XML
// rendering of the keys read, the executable as a stand-in that names
// its real LC_UUIDs (the simulated Mac never runs a product binary).
//
// What a package cannot say is the sim's convention, documented in
// model.go: the extension's name in systemextensionsctl is the app's
// name, and an app with a packet-tunnel or app-proxy provider creates a
// VPN configuration named after itself.
func payloadFromPackage(p *packages.Package) (pkgPayload, error) {
	app, err := p.App("")
	if err != nil {
		return pkgPayload{}, err
	}
	if len(app.Extensions) != 1 {
		return pkgPayload{}, fmt.Errorf("%s has %d system extensions; the simulated Mac models an app with exactly one", app.Path, len(app.Extensions))
	}
	ext := app.Extensions[0]
	id, err := packages.IdentityOf(p, app.BundleID, ext.BundleID)
	if err != nil {
		return pkgPayload{}, err
	}
	name := strings.TrimSuffix(path.Base(app.Path), ".app")
	pl := pkgPayload{appDir: app.Path, appExec: app.Executable.Path, extExec: path.Base(ext.Executable.Path), components: p.Components}
	pl.pkg = SimPkg{
		Format: SimPkgFormat,
		App:    SimApp{Name: name, BundleID: app.BundleID, ShortVersion: app.ShortVersion, Build: app.Version},
		Extension: SimExtension{
			BundleID: ext.BundleID, Name: name, TeamID: id.Extension.TeamID,
			ShortVersion: ext.ShortVersion, Build: ext.Version,
			Category: categoryOf(ext), MachService: ext.NEMachServiceName, LCUUIDs: id.Extension.UUIDs,
		},
	}
	if len(p.Components) > 0 {
		// The component that installs the app names the package, as
		// installer's receipt does.
		c := componentFor(p.Components, app.Path)
		pl.pkg.PackageID, pl.pkg.PackageVersion = c.ID, c.Version
	}
	if pl.pkg.PackageID == "" {
		pl.pkg.PackageID = app.BundleID // a .zip or .dmg has no receipt; the model keys by bundle
	}
	for class := range ext.NEProviderClasses {
		if class == "com.apple.networkextension.packet-tunnel" || class == "com.apple.networkextension.app-proxy" {
			pl.pkg.VPNService = name
		}
	}
	pl.files = []pkgFile{
		{app.Path + "/Contents/Info.plist", appInfoPlist(pl.pkg.App, path.Base(app.Executable.Path))},
		{app.Executable.Path, simulatedExecutable(name, app.ShortVersion+"/"+app.Version, id.App.UUIDs)},
		{ext.Path + "/Contents/Info.plist", extensionInfoPlist(pl.pkg.Extension, pl.extExec)},
		{ext.Executable.Path, simulatedExecutable(name, pl.pkg.Extension.version(), id.Extension.UUIDs)},
	}
	return pl, nil
}

// payloadFromManifest is the same for a *.simpkg.json test manifest.
func payloadFromManifest(pkg SimPkg) pkgPayload {
	dir := "/Applications/" + pkg.App.Name + ".app"
	exec := dir + "/Contents/MacOS/" + pkg.App.Name
	extDir := dir + "/Contents/Library/SystemExtensions/" + pkg.Extension.BundleID + ".systemextension"
	return pkgPayload{
		pkg: pkg, appDir: dir, appExec: exec, extExec: pkg.Extension.BundleID,
		components: []packages.Component{{ID: pkg.PackageID, Version: pkg.pkgVersion(), InstallLocation: "/"}},
		files: []pkgFile{
			{dir + "/Contents/Info.plist", appInfoPlist(pkg.App, pkg.App.Name)},
			{exec, simulatedExecutable(pkg.App.Name, pkg.App.ShortVersion+"/"+pkg.App.Build, nil)},
			{extDir + "/Contents/Info.plist", extensionInfoPlist(pkg.Extension, pkg.Extension.BundleID)},
			{extDir + "/Contents/MacOS/" + pkg.Extension.BundleID, simulatedExecutable(pkg.Extension.Name, pkg.Extension.version(), pkg.Extension.LCUUIDs)},
		},
	}
}

// relocated is the pkgPayload with the app moved to dir (ditto to a chosen
// destination).
func (pl pkgPayload) relocated(dir string) pkgPayload {
	if dir == pl.appDir {
		return pl
	}
	out := pl
	out.files = nil
	for _, f := range pl.files {
		out.files = append(out.files, pkgFile{dir + strings.TrimPrefix(f.path, pl.appDir), f.content})
	}
	out.appExec = dir + strings.TrimPrefix(pl.appExec, pl.appDir)
	out.appDir = dir
	return out
}

// componentFor is the component whose install location holds the app;
// the first one otherwise.
func componentFor(cs []packages.Component, appPath string) packages.Component {
	for _, c := range cs {
		loc := strings.TrimSuffix(c.InstallLocation, "/")
		if strings.HasPrefix(appPath, loc+"/") && c.ID != "" {
			return c
		}
	}
	return cs[0]
}

// categoryOf is systemextensionsctl's category for an extension: an
// Endpoint Security client by its entitlement, a network extension by
// its NetworkExtension keys (the default: this lab's subject).
func categoryOf(ext *packages.Bundle) string {
	for _, s := range ext.Executable.Slices {
		if s.Signature != nil && s.Signature.Entitlements["com.apple.developer.endpoint-security.client"] == true {
			return categoryEndpoint
		}
	}
	return categoryNetwork
}

// receiptLocation is pkgutil's "location:" for an install location:
// relative to the volume ("Applications"), "/" for the root.
// Unverified on macOS beyond pkgutil output users have posted.
func receiptLocation(loc string) string {
	if l := strings.Trim(loc, "/"); l != "" {
		return l
	}
	return "/"
}
