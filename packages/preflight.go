package packages

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// Preflight compares the packages of an upgrade path before anything
// boots: half of the field reports' failures are visible in the
// packages themselves.

// Status of one check.
type Status string

const (
	OK      Status = "ok"
	Warning Status = "warning"
	Error   Status = "error"
)

func (s Status) rank() int { return map[Status]int{OK: 0, Warning: 1, Error: 2}[s] }

// Row is one check of one upgrade path.
type Row struct {
	Path   string `json:"path"`  // "2->3"
	Check  string `json:"check"` // a stable id, e.g. "extension-uuid-changes"
	Status Status `json:"status"`
	// From and To are the evidence: the value in each build.
	From string `json:"from"`
	To   string `json:"to"`
	// Message says what the status means for the upgrade.
	Message string `json:"message"`
	// Source is where the rule comes from: a field report, a tech note,
	// Apple documentation.
	Source string `json:"source"`
}

// Expect is what the configuration says the product is.
type Expect struct {
	AppBundleID string // app.bundle_id
	ExtBundleID string // app.extension.bundle_id
	TeamID      string // app.extension.team_id
	// MachService is app.extension.mach_service, a template over
	// {{.Version}} (CFBundleShortVersionString) and {{.Build}}
	// (CFBundleVersion) of the extension.
	MachService string
	// Images are the macOS versions of the images the path runs on, by
	// image name; "" when the configuration does not say (vz, tart).
	Images map[string]string
}

// Build is one version of the product as its package holds it.
type Build struct {
	Version string // the configuration's key, e.g. "3"
	Package *Package
}

// Sources of the rules.
const (
	srcTN3178        = "TN3178 (every build has its own LC_UUID; GUEST-REFERENCE.md \"Build identity\")"
	srcSameVersion   = "field report approval-dialog-missing (sysextd: \"found existing entry of same version\" → coalesce); Apple: OSSystemExtensionRequest replacement by CFBundleVersion"
	srcEndpointLost  = "field report xpc-invalidated-on-upgrade (fault endpoint-lost-on-replace-while-running)"
	srcNEMachService = "Apple DTS (developer.apple.com/forums/thread/708017): a system extension's Mach service name descends from one of its app groups (com.apple.security.application-groups)"
	srcConfig        = "config.yaml (app.bundle_id, app.extension.bundle_id, app.extension.team_id)"
	srcBundleID      = "Apple: System Extensions, an extension's bundle ID is prefixed by its app's"
	srcTeam          = "Apple: System Extensions, the replacement must come from the same team (OSSystemExtensionRequest replaces by team and bundle ID)"
	srcEntInstall    = "Apple: com.apple.developer.system-extension.install entitlement"
	srcEntNE         = "Apple: com.apple.developer.networking.networkextension, Developer ID uses the -systemextension values"
	srcApplications  = "Apple: OSSystemExtensionError.unsupportedParentBundleLocation, the app must be in /Applications"
	srcArm64         = "Apple Silicon hosts run arm64 macOS guests (Virtualization.framework)"
	srcMinOS         = "Apple: LSMinimumSystemVersion and LC_BUILD_VERSION minos"
	srcTemplate      = "config.yaml app.extension.mach_service (its template decides the Mach service the probes look for)"
	srcPkgSign       = "Apple: Developer ID Installer signing of distributed packages (productsign); notarization"
	srcSigning       = "Apple: Developer ID signing, hardened runtime and notarization of system extensions; Debugging and testing system extensions (SIP off, systemextensionsctl developer on)"
)

// Preflight checks the upgrade from one build to the next. A build
// without the expected app or extension gives an error row, never a
// partial result presented as whole.
func Preflight(path string, from, to Build, e Expect) []Row {
	var rows []Row
	add := func(check string, st Status, f, t, msg, src string) {
		rows = append(rows, Row{Path: path, Check: check, Status: st, From: f, To: t, Message: msg, Source: src})
	}
	fa, fe, ferr := pick(from, e)
	ta, te, terr := pick(to, e)
	if ferr != nil || terr != nil {
		add("bundles", Error, errText(ferr), errText(terr), "the app or its system extension is missing from a package", srcConfig)
		return rows
	}
	fv, tv := from.Version, to.Version

	// Versions: sysextd replaces an extension only by a higher
	// CFBundleVersion; the same version coalesces with the old one.
	if c := compareVersions(fe.Version, te.Version); c < 0 {
		add("extension-version-increases", OK, fe.Version, te.Version, "CFBundleVersion increases", srcSameVersion)
	} else {
		add("extension-version-increases", Error, fe.Version, te.Version,
			fmt.Sprintf("the extension's CFBundleVersion does not increase from %s to %s: sysextd treats %s as the build it already has", fe.Version, te.Version, tv), srcSameVersion)
	}
	if c := compareVersions(fe.ShortVersion, te.ShortVersion); c < 0 {
		add("extension-short-version-increases", OK, fe.ShortVersion, te.ShortVersion, "CFBundleShortVersionString increases", srcSameVersion)
	} else {
		add("extension-short-version-increases", Error, fe.ShortVersion, te.ShortVersion,
			"the extension's CFBundleShortVersionString does not increase", srcSameVersion)
	}

	// Build identity (TN3178).
	for _, b := range []struct {
		check, what string
		f, t        *Bundle
	}{{"extension-uuid-changes", "extension", fe, te}, {"app-uuid-changes", "app", fa, ta}} {
		fu, tu := uuids(b.f.Executable), uuids(b.t.Executable)
		shared := sharedUUIDs(b.f.Executable, b.t.Executable)
		switch {
		case len(shared) > 0 && b.f.Version != b.t.Version:
			add(b.check, Error, fu, tu, fmt.Sprintf("the %s's LC_UUID %s is the same in %s and %s while its version changes (%s → %s): parts of the system will treat the new build as the old one", b.what, strings.Join(shared, ", "), fv, tv, b.f.Version, b.t.Version), srcTN3178)
		case len(shared) > 0:
			add(b.check, Warning, fu, tu, fmt.Sprintf("the %s is the same build in %s and %s (same LC_UUID, same version)", b.what, fv, tv), srcTN3178)
		default:
			add(b.check, OK, fu, tu, "every slice's LC_UUID differs", srcTN3178)
		}
	}

	// The Mach service across the upgrade.
	if fe.NEMachServiceName != "" && fe.NEMachServiceName == te.NEMachServiceName {
		add("mach-service-versioned", Warning, fe.NEMachServiceName, te.NEMachServiceName,
			"NEMachServiceName is unchanged: replacing the extension while its VPN runs can leave the new provider without its Mach endpoint (endpoint lost, app XPC invalidated); the cure is a versioned name, e.g. mach_service: \"TEAM.id.{{.Version}}\"", srcEndpointLost)
	} else {
		add("mach-service-versioned", OK, fe.NEMachServiceName, te.NEMachServiceName, "NEMachServiceName changes with the version", srcEndpointLost)
	}
	per := func(check, src string, f func(a, x *Bundle) (Status, string, string)) {
		s1, v1, m1 := f(fa, fe)
		s2, v2, m2 := f(ta, te)
		st := s1
		if s2.rank() > st.rank() {
			st = s2
		}
		var msgs []string
		if s1 != OK {
			msgs = append(msgs, fv+": "+m1)
		}
		switch {
		case s1 != OK && s2 != OK && m1 == m2:
			msgs = []string{fv + ", " + tv + ": " + m1}
		case s2 != OK:
			msgs = append(msgs, tv+": "+m2)
		}
		msg := m2
		if len(msgs) > 0 {
			msg = strings.Join(msgs, "; ")
		}
		add(check, st, v1, v2, msg, src)
	}
	per("mach-service-app-group", srcNEMachService, func(_, x *Bundle) (Status, string, string) {
		if x.NEMachServiceName == "" {
			if len(x.NEProviderClasses) > 0 {
				return Error, "(none)", "a network extension without NEMachServiceName"
			}
			return OK, "(not a network extension)", "not a network extension"
		}
		groups := stringList(entitlement(x, "com.apple.security.application-groups"))
		for _, g := range groups {
			if x.NEMachServiceName == g || strings.HasPrefix(x.NEMachServiceName, g+".") {
				return OK, x.NEMachServiceName, "prefixed by app group " + g
			}
		}
		return Error, x.NEMachServiceName + " (groups: " + strings.Join(groups, ", ") + ")", "NEMachServiceName is not prefixed by any of the extension's app groups"
	})
	per("mach-service-template", srcTemplate, func(_, x *Bundle) (Status, string, string) {
		want, err := renderMachService(e.MachService, x.ShortVersion, x.Version)
		if err != nil {
			return Error, x.NEMachServiceName, err.Error()
		}
		if want != x.NEMachServiceName {
			return Error, x.NEMachServiceName, fmt.Sprintf("app.extension.mach_service renders to %q but the package's NEMachServiceName is %q: the probes would look for a service the extension never registers", want, x.NEMachServiceName)
		}
		return OK, x.NEMachServiceName, "app.extension.mach_service renders to the package's NEMachServiceName"
	})

	// Identity against the configuration and each other.
	per("app-bundle-id", srcConfig, func(a, _ *Bundle) (Status, string, string) {
		if e.AppBundleID != "" && a.BundleID != e.AppBundleID {
			return Error, a.BundleID, "app.bundle_id is " + e.AppBundleID
		}
		return OK, a.BundleID, "matches app.bundle_id"
	})
	per("extension-bundle-id", srcBundleID, func(a, x *Bundle) (Status, string, string) {
		if e.ExtBundleID != "" && x.BundleID != e.ExtBundleID {
			return Error, x.BundleID, "app.extension.bundle_id is " + e.ExtBundleID
		}
		if !strings.HasPrefix(x.BundleID, a.BundleID+".") {
			return Error, x.BundleID, "the extension's bundle ID is not prefixed by the app's (" + a.BundleID + ")"
		}
		return OK, x.BundleID, "matches app.extension.bundle_id and is prefixed by the app's"
	})
	per("team-id", srcConfig, func(a, x *Bundle) (Status, string, string) {
		at, xt := teamOf(a.Executable), teamOf(x.Executable)
		switch {
		case xt == "":
			return Error, "(none)", "the extension's signature has no team ID"
		case at != xt:
			return Error, "app " + at + ", extension " + xt, "the app and the extension are signed by different teams"
		case e.TeamID != "" && xt != e.TeamID:
			return Error, xt, "app.extension.team_id is " + e.TeamID
		}
		return OK, xt, "matches app.extension.team_id"
	})
	if ft, tt := teamOf(fe.Executable), teamOf(te.Executable); ft == tt {
		add("same-team", OK, ft, tt, "the same team signs both builds", srcTeam)
	} else {
		add("same-team", Error, ft, tt, "a different team signs the new build: sysextd will not replace the extension with it", srcTeam)
	}
	per("signature", srcSigning, func(a, x *Bundle) (Status, string, string) {
		for _, b := range []*Bundle{a, x} {
			for _, s := range b.Executable.Slices {
				if s.Signature == nil {
					return Error, "unsigned " + s.Arch, b.Path + " is not signed"
				}
			}
		}
		s := x.Executable.Slices[0].Signature
		desc := strings.Join(s.Flags, ",")
		if desc == "" {
			desc = "no flags"
		}
		if !s.HardenedRuntime {
			return Warning, desc, "the extension is signed without the hardened runtime: notarization refuses it"
		}
		if s.AdHoc || !s.CMS {
			return Warning, desc, "signed ad hoc (no Developer ID certificate): macOS loads such a system extension only on a Mac set up for extension development (SIP off, systemextensionsctl developer on; unverified on macOS); the certificate chain is never checked here"
		}
		return OK, desc, "signed with a certificate and the hardened runtime (chain not verified)"
	})

	// The installer package's own signature (presence only).
	if from.Package.Kind == "pkg" || to.Package.Kind == "pkg" {
		fs, ts := sigText(from.Package), sigText(to.Package)
		if to.Package.Kind == "pkg" && to.Package.Signature == "" {
			add("package-signature", Warning, fs, ts, "the new build's .pkg is not signed: Gatekeeper refuses it when opened from a download (installer -pkg from a shell is expected to install it anyway; unverified on macOS); the signature's certificate is never verified here", srcPkgSign)
		} else {
			add("package-signature", OK, fs, ts, "the .pkg carries a signature (its certificate is not verified here)", srcPkgSign)
		}
	}

	// Entitlements.
	per("entitlement-system-extension-install", srcEntInstall, func(a, _ *Bundle) (Status, string, string) {
		v, _ := entitlement(a, "com.apple.developer.system-extension.install").(bool)
		if !v {
			return Error, fmt.Sprint(v), "the app lacks com.apple.developer.system-extension.install: activation requests fail"
		}
		return OK, "true", "the app may install system extensions"
	})
	per("entitlement-networkextension", srcEntNE, func(_, x *Bundle) (Status, string, string) {
		vals := stringList(entitlement(x, "com.apple.developer.networking.networkextension"))
		if len(x.NEProviderClasses) == 0 && len(vals) == 0 {
			return OK, "(not a network extension)", "not a network extension"
		}
		if len(vals) == 0 {
			return Error, "(none)", "a network extension without com.apple.developer.networking.networkextension"
		}
		for _, v := range vals {
			if !strings.HasSuffix(v, "-systemextension") {
				return Error, strings.Join(vals, ","), fmt.Sprintf("%q is not a -systemextension value: a Developer ID system extension needs those", v)
			}
		}
		return OK, strings.Join(vals, ","), "Developer ID (-systemextension) values"
	})

	// Where and on what it runs.
	per("installs-into-applications", srcApplications, func(a, _ *Bundle) (Status, string, string) {
		if !strings.HasPrefix(a.Path, "/Applications/") {
			return Error, a.Path, "the app does not install into /Applications: sysextd refuses to activate its extension"
		}
		return OK, a.Path, "installs into /Applications"
	})
	per("arm64", srcArm64, func(a, x *Bundle) (Status, string, string) {
		for _, b := range []*Bundle{a, x} {
			if b.Executable.Slice("arm64") == nil && b.Executable.Slice("arm64e") == nil {
				return Error, strings.Join(b.Executable.Arches(), ","), b.Path + " has no arm64 slice"
			}
		}
		return OK, strings.Join(x.Executable.Arches(), ","), "arm64 present"
	})
	per("minimum-os", srcMinOS, func(a, x *Bundle) (Status, string, string) {
		need := minimumOS(a, x)
		if need == "" {
			return OK, "(unset)", "no minimum OS"
		}
		var unknown, tooOld []string
		names := make([]string, 0, len(e.Images))
		for n := range e.Images {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v := e.Images[n]
			switch {
			case v == "":
				unknown = append(unknown, n)
			case compareVersions(need, v) > 0:
				tooOld = append(tooOld, n+" ("+v+")")
			}
		}
		if len(tooOld) > 0 {
			return Error, need, "needs macOS " + need + ", above image " + strings.Join(tooOld, ", ")
		}
		if len(unknown) > 0 {
			return OK, need, "needs macOS " + need + "; the macOS version of " + strings.Join(unknown, ", ") + " is not in the configuration"
		}
		return OK, need, "every image runs macOS " + need + " or later"
	})
	return rows
}

func sigText(p *Package) string {
	switch {
	case p.Kind != "pkg":
		return "(" + p.Kind + ")"
	case p.Signature == "":
		return "unsigned"
	}
	return p.Signature
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// pick finds the configured app and its extension in a build.
func pick(b Build, e Expect) (*Bundle, *Bundle, error) {
	if b.Package == nil {
		return nil, nil, fmt.Errorf("version %s: no package", b.Version)
	}
	app, err := b.Package.App(e.AppBundleID)
	if err != nil && e.AppBundleID != "" {
		// Fall back to the only app so the bundle ID check can name it.
		if a2, err2 := b.Package.App(""); err2 == nil {
			app, err = a2, nil
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("version %s: %w", b.Version, err)
	}
	if len(app.Extensions) == 0 {
		return nil, nil, fmt.Errorf("version %s: %s: no system extension under Contents/Library/SystemExtensions", b.Version, app.Path)
	}
	for _, x := range app.Extensions {
		if x.BundleID == e.ExtBundleID {
			return app, x, nil
		}
	}
	if len(app.Extensions) == 1 {
		return app, app.Extensions[0], nil
	}
	var ids []string
	for _, x := range app.Extensions {
		ids = append(ids, x.BundleID)
	}
	return nil, nil, fmt.Errorf("version %s: no extension %s among %s", b.Version, e.ExtBundleID, strings.Join(ids, ", "))
}

func uuids(x *Executable) string {
	var parts []string
	for _, s := range x.Slices {
		u := s.UUID
		if u == "" {
			u = "(no LC_UUID)"
		}
		parts = append(parts, s.Arch+" "+u)
	}
	return strings.Join(parts, ", ")
}

func sharedUUIDs(a, b *Executable) []string {
	var out []string
	for _, s := range a.Slices {
		for _, t := range b.Slices {
			if s.UUID != "" && s.UUID == t.UUID && !slices.Contains(out, s.UUID) {
				out = append(out, s.UUID)
			}
		}
	}
	return out
}

func teamOf(x *Executable) string {
	for _, s := range x.Slices {
		if s.Signature != nil && s.Signature.TeamID != "" {
			return s.Signature.TeamID
		}
	}
	return ""
}

func entitlement(b *Bundle, key string) any {
	for _, s := range b.Executable.Slices {
		if s.Signature != nil {
			if v, ok := s.Signature.Entitlements[key]; ok {
				return v
			}
		}
	}
	return nil
}

func stringList(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// minimumOS is the highest of the bundles' LSMinimumSystemVersion and
// their slices' LC_BUILD_VERSION minos.
func minimumOS(bs ...*Bundle) string {
	best := ""
	for _, b := range bs {
		vs := []string{b.MinimumSystemVersion}
		for _, s := range b.Executable.Slices {
			if s.Arch == "arm64" || s.Arch == "arm64e" {
				vs = append(vs, s.MinOS)
			}
		}
		for _, v := range vs {
			if v != "" && (best == "" || compareVersions(v, best) > 0) {
				best = v
			}
		}
	}
	return best
}

// renderMachService renders app.extension.mach_service as steps does:
// {{.Version}} is CFBundleShortVersionString, {{.Build}} CFBundleVersion.
func renderMachService(tmpl, short, build string) (string, error) {
	if !strings.Contains(tmpl, "{{") {
		return tmpl, nil
	}
	t, err := template.New("").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("app.extension.mach_service %q: %w", tmpl, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, struct{ Version, Build string }{short, build}); err != nil {
		return "", fmt.Errorf("app.extension.mach_service %q: %w", tmpl, err)
	}
	return b.String(), nil
}

// compareVersions compares dotted versions numerically by component
// ("1.10" > "1.9"; "2" == "2.0"), falling back to text for components
// that are not numbers.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		x, y := "0", "0"
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xn, xerr := strconv.ParseUint(x, 10, 64)
		yn, yerr := strconv.ParseUint(y, 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if xn != yn {
				if xn < yn {
					return -1
				}
				return 1
			}
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
		}
	}
	return 0
}
