package packages

import (
	"fmt"
	"strings"
)

// Identity is what a bug report needs of one build (FEEDBACK.md's "both
// builds"): read from the package itself, not from a manifest.
type Identity struct {
	Package   string         `json:"package"`
	App       BundleIdentity `json:"app"`
	Extension BundleIdentity `json:"extension"`
}

// BundleIdentity identifies one bundle of a build.
type BundleIdentity struct {
	BundleID     string `json:"bundle_id"`
	ShortVersion string `json:"short_version"`
	Version      string `json:"version"`
	// UUIDs are LC_UUID by architecture.
	UUIDs       map[string]string `json:"uuids"`
	TeamID      string            `json:"team_id,omitempty"`
	Signing     string            `json:"signing"` // e.g. "adhoc,runtime" or "unsigned"
	MachService string            `json:"mach_service,omitempty"`
}

// IdentityOf reads the identity of the app appID (or the only app) and
// its extension extID (or its only extension) from a package.
func IdentityOf(p *Package, appID, extID string) (Identity, error) {
	app, ext, err := pick(Build{Version: p.File, Package: p}, Expect{AppBundleID: appID, ExtBundleID: extID})
	if err != nil {
		return Identity{}, err
	}
	if appID != "" && app.BundleID != appID {
		return Identity{}, fmt.Errorf("%s: no app with bundle ID %s (it holds %s)", p.File, appID, app.BundleID)
	}
	if extID != "" && ext.BundleID != extID {
		return Identity{}, fmt.Errorf("%s: no extension %s (it holds %s)", p.File, extID, ext.BundleID)
	}
	return Identity{Package: p.File, App: bundleIdentity(app), Extension: bundleIdentity(ext)}, nil
}

func bundleIdentity(b *Bundle) BundleIdentity {
	id := BundleIdentity{BundleID: b.BundleID, ShortVersion: b.ShortVersion, Version: b.Version, UUIDs: map[string]string{}, TeamID: teamOf(b.Executable), MachService: b.NEMachServiceName, Signing: "unsigned"}
	for _, s := range b.Executable.Slices {
		id.UUIDs[s.Arch] = s.UUID
		if s.Signature != nil && id.Signing == "unsigned" {
			id.Signing = "signed"
			if len(s.Signature.Flags) > 0 {
				id.Signing = strings.Join(s.Signature.Flags, ",")
			}
			if s.Signature.CMS {
				id.Signing += " (certificate)"
			}
		}
	}
	return id
}
