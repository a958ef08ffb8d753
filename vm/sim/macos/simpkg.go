package macos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// SimPkgFormat is the format tag every simulated package carries.
const SimPkgFormat = "sxlab-simpkg/1"

// SimPkg is a simulated installer package (a *.simpkg.json manifest): what
// `installer -pkg` puts on the simulated Mac, and how the app in it
// behaves. Real .pkg files cannot be installed on a simulated Mac; the
// manifest stands for one and names the facts the model needs.
type SimPkg struct {
	Format    string `json:"format"`
	PackageID string `json:"package_id"`
	// PackageVersion is what pkgutil reports; the app's short version
	// when empty.
	PackageVersion string       `json:"package_version,omitempty"`
	App            SimApp       `json:"app"`
	Extension      SimExtension `json:"extension"`
	// VPNService is the name of the VPN configuration the app creates once
	// its extension is enabled; empty for an app without one.
	VPNService string `json:"vpn_service,omitempty"`
	// Developer names the signing identity in spctl's output; the app's
	// name when empty.
	Developer string `json:"developer,omitempty"`
	Notes     string `json:"notes,omitempty"`
}

// SimApp is the app bundle of a simulated package.
type SimApp struct {
	Name         string `json:"name"` // installed as /Applications/<Name>.app
	BundleID     string `json:"bundle_id"`
	ShortVersion string `json:"short_version"` // CFBundleShortVersionString
	Build        string `json:"build"`         // CFBundleVersion
	// RetainsActivationDelegate: false reproduces delegate-no-callback:
	// the app holds its OSSystemExtensionRequest delegate weakly, so the
	// delegate is gone before sysextd calls back. Absent means true.
	RetainsActivationDelegate *bool `json:"retains_activation_delegate,omitempty"`
}

// RetainsDelegate reports whether the app keeps its activation request's
// delegate alive (the default).
func (a SimApp) RetainsDelegate() bool {
	return a.RetainsActivationDelegate == nil || *a.RetainsActivationDelegate
}

// SimExtension is the system extension bundled in the app.
type SimExtension struct {
	BundleID     string `json:"bundle_id"`
	Name         string `json:"name"`
	TeamID       string `json:"team_id"`
	ShortVersion string `json:"short_version"`
	Build        string `json:"build"`
	// Category defaults to com.apple.system_extension.network_extension.
	Category string `json:"category,omitempty"`
	// MachService is the provider's NEMachServiceName, which must start
	// with the team ID (an app group of the team). A name that contains
	// the version is immune to endpoint-lost-on-replace-while-running.
	MachService string `json:"mach_service"`
	// LCUUIDs maps an architecture (arm64, x86_64) to the LC_UUID of the
	// extension's executable slice.
	LCUUIDs map[string]string `json:"lc_uuids"`
}

// Extension categories systemextensionsctl groups rows by.
const (
	categoryNetwork  = "com.apple.system_extension.network_extension"
	categoryEndpoint = "com.apple.system_extension.endpoint_security"
	categoryDriver   = "com.apple.system_extension.driver_extension"
)

var (
	teamIDPattern   = regexp.MustCompile(`^[A-Z0-9]{10}$`)
	bundleIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
	versionPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	uuidPattern     = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	archPattern     = regexp.MustCompile(`^[a-z0-9_]+$`)
)

// ParseSimPkg reads and validates a manifest. Errors name the offending
// field ("simpkg: extension.team_id: …"); unknown fields are errors too,
// so a typo never silently turns a flag off.
func ParseSimPkg(data []byte) (SimPkg, error) {
	var pkg SimPkg
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pkg); err != nil {
		return SimPkg{}, fmt.Errorf("simpkg: %w", describeJSONError(err))
	}
	if dec.More() {
		return SimPkg{}, errors.New("simpkg: trailing data after the manifest object")
	}
	if err := pkg.validate(); err != nil {
		return SimPkg{}, fmt.Errorf("simpkg: %w", err)
	}
	if pkg.Extension.Category == "" {
		pkg.Extension.Category = categoryNetwork
	}
	return pkg, nil
}

// describeJSONError turns decoder errors into messages that name the field.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Errorf("%s: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

func (p SimPkg) validate() error {
	if p.Format != SimPkgFormat {
		return fmt.Errorf("format: %q is not %q", p.Format, SimPkgFormat)
	}
	checks := []struct {
		field, value string
		pattern      *regexp.Regexp
		what         string
	}{
		{"package_id", p.PackageID, bundleIDPattern, "a reverse-DNS identifier"},
		{"app.bundle_id", p.App.BundleID, bundleIDPattern, "a bundle identifier"},
		{"app.short_version", p.App.ShortVersion, versionPattern, "a version such as 3.0"},
		{"app.build", p.App.Build, versionPattern, "a build number such as 300"},
		{"extension.bundle_id", p.Extension.BundleID, bundleIDPattern, "a bundle identifier"},
		{"extension.team_id", p.Extension.TeamID, teamIDPattern, "10 uppercase letters or digits"},
		{"extension.short_version", p.Extension.ShortVersion, versionPattern, "a version such as 3.0"},
		{"extension.build", p.Extension.Build, versionPattern, "a build number such as 300"},
		{"extension.mach_service", p.Extension.MachService, bundleIDPattern, "a Mach service name"},
	}
	for _, c := range checks {
		if c.value == "" {
			return fmt.Errorf("%s: missing", c.field)
		}
		if !c.pattern.MatchString(c.value) {
			return fmt.Errorf("%s: %q is not %s", c.field, c.value, c.what)
		}
	}
	if p.PackageVersion != "" && !versionPattern.MatchString(p.PackageVersion) {
		return fmt.Errorf("package_version: %q is not a version", p.PackageVersion)
	}
	// Names become guest paths (/Applications/<name>.app) and log fields.
	if err := checkName("app.name", p.App.Name, true); err != nil {
		return err
	}
	if err := checkName("extension.name", p.Extension.Name, true); err != nil {
		return err
	}
	if err := checkName("vpn_service", p.VPNService, false); err != nil {
		return err
	}
	if err := checkName("developer", p.Developer, false); err != nil {
		return err
	}
	if !strings.HasPrefix(p.Extension.MachService, p.Extension.TeamID+".") {
		return fmt.Errorf("extension.mach_service: %q must start with the team ID %q and a dot (NEMachServiceName is prefixed with an app group of the team)", p.Extension.MachService, p.Extension.TeamID+".")
	}
	switch p.Extension.Category {
	case "", categoryNetwork, categoryEndpoint, categoryDriver:
	default:
		return fmt.Errorf("extension.category: %q is not one of %s, %s, %s", p.Extension.Category, categoryNetwork, categoryEndpoint, categoryDriver)
	}
	if len(p.Extension.LCUUIDs) == 0 {
		return errors.New("extension.lc_uuids: missing (one LC_UUID per architecture, e.g. arm64)")
	}
	seen := map[string]string{}
	for _, arch := range sortedKeys(p.Extension.LCUUIDs) {
		id := p.Extension.LCUUIDs[arch]
		if !archPattern.MatchString(arch) {
			return fmt.Errorf("extension.lc_uuids: %q is not an architecture name", arch)
		}
		if !uuidPattern.MatchString(id) {
			return fmt.Errorf("extension.lc_uuids.%s: %q is not a UUID", arch, id)
		}
		if other, dup := seen[strings.ToUpper(id)]; dup {
			return fmt.Errorf("extension.lc_uuids.%s: same UUID as %s; every slice has its own", arch, other)
		}
		seen[strings.ToUpper(id)] = arch
	}
	return nil
}

// checkName accepts printable text without path separators or quotes.
func checkName(field, value string, required bool) error {
	if value == "" {
		if required {
			return fmt.Errorf("%s: missing", field)
		}
		return nil
	}
	if strings.TrimSpace(value) != value || value == "." || value == ".." {
		return fmt.Errorf("%s: %q has leading or trailing spaces or is a dot name", field, value)
	}
	if len(value) > 200 {
		return fmt.Errorf("%s: longer than 200 bytes", field)
	}
	for _, r := range value {
		if r < 0x20 || r == 0x7f || r == '/' || r == '"' || r == '\\' || r == ':' {
			return fmt.Errorf("%s: %q contains %q, which is not allowed", field, value, r)
		}
	}
	return nil
}

// version is "short/build", the way systemextensionsctl prints it.
func (e SimExtension) version() string { return e.ShortVersion + "/" + e.Build }

// arm64UUID is the LC_UUID of the slice a simulated Apple-silicon Mac runs.
func (e SimExtension) arm64UUID() string {
	if id, ok := e.LCUUIDs["arm64"]; ok {
		return strings.ToUpper(id)
	}
	keys := sortedKeys(e.LCUUIDs)
	if len(keys) == 0 {
		return ""
	}
	return strings.ToUpper(e.LCUUIDs[keys[0]])
}

// pkgVersion is what pkgutil reports.
func (p SimPkg) pkgVersion() string {
	if p.PackageVersion != "" {
		return p.PackageVersion
	}
	return p.App.ShortVersion
}

func (p SimPkg) developer() string {
	if p.Developer != "" {
		return p.Developer
	}
	return p.App.Name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
