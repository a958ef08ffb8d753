package packages

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"howett.net/plist"
)

// Bundle is an app or a system extension as installed.
type Bundle struct {
	// Path is where it installs, e.g. "/Applications/Example VPN.app".
	Path         string `json:"path"`
	BundleID     string `json:"bundle_id"`
	ShortVersion string `json:"short_version"` // CFBundleShortVersionString
	Version      string `json:"version"`       // CFBundleVersion
	// MinimumSystemVersion is LSMinimumSystemVersion ("" when unset).
	MinimumSystemVersion string `json:"minimum_system_version,omitempty"`
	// NEMachServiceName and NEProviderClasses are the NetworkExtension
	// keys of a network extension's Info.plist.
	NEMachServiceName string            `json:"ne_mach_service_name,omitempty"`
	NEProviderClasses map[string]string `json:"ne_provider_classes,omitempty"`
	// InfoFormat is how the Info.plist was written: "xml" or "binary".
	InfoFormat string      `json:"info_format"`
	Executable *Executable `json:"executable"`
	// Extensions are the *.systemextension bundles under an app's
	// Contents/Library/SystemExtensions/ (none for an extension).
	Extensions []*Bundle `json:"extensions,omitempty"`
}

// infoPlist is the part of an Info.plist this reader uses.
type infoPlist struct {
	ID               string `plist:"CFBundleIdentifier"`
	Short            string `plist:"CFBundleShortVersionString"`
	Version          string `plist:"CFBundleVersion"`
	Executable       string `plist:"CFBundleExecutable"`
	MinimumOS        string `plist:"LSMinimumSystemVersion"`
	NetworkExtension *struct {
		MachService string            `plist:"NEMachServiceName"`
		Providers   map[string]string `plist:"NEProviderClasses"`
	} `plist:"NetworkExtension"`
}

var plistFormats = map[int]string{plist.XMLFormat: "xml", plist.BinaryFormat: "binary", plist.OpenStepFormat: "openstep", plist.GNUStepFormat: "gnustep"}

// parseInfoPlist decodes an Info.plist in any of its formats.
func parseInfoPlist(b []byte, lim Limits) (infoPlist, string, error) {
	var info infoPlist
	if int64(len(b)) > lim.Plist {
		return info, "", &LimitError{What: "Info.plist", Limit: lim.Plist}
	}
	f, err := plist.Unmarshal(b, &info)
	if err != nil {
		return info, "", fmt.Errorf("not a property list: %w", err)
	}
	return info, plistFormats[f], nil
}

// describe reads the bundle at p from the tree.
func (t *tree) describe(p string) (*Bundle, error) {
	infoPath := p + "/Contents/Info.plist"
	raw, ok := t.files[infoPath]
	if !ok {
		return nil, fmt.Errorf("%s: bundle %s has no Contents/Info.plist", t.what, p)
	}
	info, format, err := parseInfoPlist(raw, t.limits)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", t.what, infoPath, err)
	}
	b := &Bundle{Path: p, BundleID: info.ID, ShortVersion: info.Short, Version: info.Version, MinimumSystemVersion: info.MinimumOS, InfoFormat: format}
	if ne := info.NetworkExtension; ne != nil {
		b.NEMachServiceName, b.NEProviderClasses = ne.MachService, ne.Providers
	}
	if info.ID == "" {
		return nil, fmt.Errorf("%s: %s: no CFBundleIdentifier", t.what, infoPath)
	}
	if info.Executable == "" {
		return nil, fmt.Errorf("%s: %s: no CFBundleExecutable", t.what, infoPath)
	}
	if strings.Contains(info.Executable, "/") {
		return nil, fmt.Errorf("%s: %s: CFBundleExecutable %q is not a file name", t.what, infoPath, info.Executable)
	}
	exePath := p + "/Contents/MacOS/" + info.Executable
	exe, ok := t.files[exePath]
	if !ok {
		return nil, fmt.Errorf("%s: %s: CFBundleExecutable %q is missing from Contents/MacOS", t.what, infoPath, info.Executable)
	}
	b.Executable, err = parseExecutable(exe, t.limits)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", t.what, exePath, err)
	}
	b.Executable.Path = exePath
	return b, nil
}

// apps describes every top-level app in the tree with its extensions.
// Extensions found outside any app are an error: sysextd only activates
// extensions from inside the app that requests them.
func (t *tree) apps() ([]*Bundle, error) {
	appPaths, loose := t.bundles()
	if len(loose) > 0 {
		return nil, fmt.Errorf("%s: system extension %s is not inside an app's Contents/Library/SystemExtensions/", t.what, loose[0])
	}
	var out []*Bundle
	for _, a := range appPaths {
		app, err := t.describe(a)
		if err != nil {
			return nil, err
		}
		for _, e := range t.extensions(a) {
			ext, err := t.describe(e)
			if err != nil {
				return nil, err
			}
			app.Extensions = append(app.Extensions, ext)
		}
		out = append(out, app)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// installPath joins an install location and a payload path into an
// absolute, cleaned path; ok is false for paths escaping the root.
func installPath(location, name string) (string, bool) {
	name = strings.TrimPrefix(name, "./")
	if name == "." || name == "" {
		return "", false
	}
	if location == "" {
		location = "/"
	}
	p := path.Clean("/" + strings.TrimPrefix(location, "/") + "/" + name)
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return "", false
		}
	}
	return p, true
}
