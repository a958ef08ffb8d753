package golden

import (
	"fmt"
	"slices"
	"strings"

	"howett.net/plist"
)

// parseEnrollment reads `profiles status -type enrollment`:
// "MDM enrollment: Yes (User Approved)" / "MDM enrollment: No"
// (usnistgov/macos_security issue 45).
func parseEnrollment(out string) (enrolled, userApproved bool) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "MDM enrollment" {
			continue
		}
		v = strings.TrimSpace(v)
		enrolled = strings.HasPrefix(v, "Yes")
		userApproved = enrolled && strings.Contains(v, "User Approved")
	}
	return enrolled, userApproved
}

// sysextPolicy is one com.apple.system-extension-policy payload.
type sysextPolicy struct {
	Teams      []string            // AllowedTeamIdentifiers
	Extensions map[string][]string // AllowedSystemExtensions: team → bundle IDs
}

// allows says whether the policy lets team's extension load without a
// prompt (Apple DeviceManagement, SystemExtensions payload).
func (p sysextPolicy) allows(team, bundleID string) bool {
	if slices.Contains(p.Teams, team) {
		return true
	}
	return slices.Contains(p.Extensions[team], bundleID)
}

// profilesShow is the part of `profiles show -output stdout-xml` read
// here: computer-level profiles and their payloads (the layout
// macadmins/osquery-extension's macos_profiles table reads).
type profilesShow struct {
	Computer []struct {
		Identifier string `plist:"ProfileIdentifier"`
		Items      []struct {
			Type    string `plist:"PayloadType"`
			Content struct {
				Teams      []string            `plist:"AllowedTeamIdentifiers"`
				Extensions map[string][]string `plist:"AllowedSystemExtensions"`
			} `plist:"PayloadContent"`
		} `plist:"ProfileItems"`
	} `plist:"_computerlevel"`
}

// parseSysextPolicies returns the installed system extension policies.
func parseSysextPolicies(out string) ([]sysextPolicy, error) {
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	var doc profilesShow
	if _, err := plist.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("profiles show output is not a plist: %w", err)
	}
	var out2 []sysextPolicy
	for _, pr := range doc.Computer {
		for _, it := range pr.Items {
			if it.Type == "com.apple.system-extension-policy" {
				out2 = append(out2, sysextPolicy{Teams: it.Content.Teams, Extensions: it.Content.Extensions})
			}
		}
	}
	return out2, nil
}
