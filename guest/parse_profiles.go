package guest

import (
	"bytes"
	"fmt"
	"io"
	"slices"

	"howett.net/plist"
)

// Profile is one configuration profile of `sudo profiles show -output
// stdout-xml` (also `profiles -C -o stdout-xml`): the plist's
// _computerlevel array holds one dict per profile, each with its
// ProfileItems (the layout macadmins/osquery-extension's macos_profiles
// table reads from real output).
type Profile struct {
	Identifier  string           `plist:"ProfileIdentifier" json:"identifier"`
	DisplayName string           `plist:"ProfileDisplayName" json:"display_name,omitempty"`
	Items       []ProfilePayload `plist:"ProfileItems" json:"items"`
}

// ProfilePayload is one payload of a profile. Only the keys of the
// system extension policy payload (com.apple.system-extension-policy) are
// read out of PayloadContent.
type ProfilePayload struct {
	Type       string        `plist:"PayloadType" json:"type"`
	Identifier string        `plist:"PayloadIdentifier" json:"identifier,omitempty"`
	Content    PolicyContent `plist:"PayloadContent" json:"content"`
}

// PolicyContent is the part of a SystemExtensions payload that allows
// extensions (Apple DeviceManagement, SystemExtensions): a whole team by
// AllowedTeamIdentifiers, or some bundle IDs of a team by
// AllowedSystemExtensions (team ID to bundle IDs).
type PolicyContent struct {
	AllowedTeamIdentifiers  []string            `plist:"AllowedTeamIdentifiers" json:"allowed_team_identifiers,omitempty"`
	AllowedSystemExtensions map[string][]string `plist:"AllowedSystemExtensions" json:"allowed_system_extensions,omitempty"`
}

// SystemExtensionPolicyType is the PayloadType of a system extension policy.
const SystemExtensionPolicyType = "com.apple.system-extension-policy"

// Profiles is the computer-level profiles of the output.
type Profiles struct {
	Computer []Profile `plist:"_computerlevel" json:"computer_level"`
}

// Allows names the profile whose system extension policy allows the
// extension bundleID of team, "" when none does.
func (ps Profiles) Allows(team, bundleID string) string {
	for _, p := range ps.Computer {
		for _, it := range p.Items {
			if it.Type != SystemExtensionPolicyType {
				continue
			}
			if slices.Contains(it.Content.AllowedTeamIdentifiers, team) ||
				slices.Contains(it.Content.AllowedSystemExtensions[team], bundleID) {
				return p.Identifier
			}
		}
	}
	return ""
}

// Policies counts the system extension policy payloads.
func (ps Profiles) Policies() int {
	n := 0
	for _, p := range ps.Computer {
		for _, it := range p.Items {
			if it.Type == SystemExtensionPolicyType {
				n++
			}
		}
	}
	return n
}

const profilesExpected = "a property list (profiles show -output stdout-xml)"

// ParseProfiles parses `sudo profiles show -output stdout-xml`. A plist
// without _computerlevel (no profile installed, or read without root) is
// no profiles, not an error.
func ParseProfiles(r io.Reader) (Profiles, error) {
	const kind = "profiles"
	data, err := io.ReadAll(r)
	if err != nil {
		return Profiles{}, fmt.Errorf("parse %s: %w", kind, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Profiles{}, emptyError(kind, profilesExpected)
	}
	var ps Profiles
	if _, err := plist.Unmarshal(data, &ps); err != nil {
		return Profiles{}, fmt.Errorf("parse %s: expected %s: %w", kind, profilesExpected, err)
	}
	return ps, nil
}
