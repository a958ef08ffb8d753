package sim

import (
	"slices"

	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/macos"
)

// goldenOf is the image's golden as the macOS model takes it: every key
// the image leaves unset keeps the well-prepared default.
func goldenOf(g vm.SimGolden) *macos.Golden {
	out := macos.DefaultGolden()
	set := func(dst *bool, src *bool) {
		if src != nil {
			*dst = *src
		}
	}
	set(&out.AutoLogin, g.AutoLogin)
	set(&out.SIP, g.SIP)
	set(&out.FileVault, g.FileVault)
	set(&out.NEDebugLogging, g.NEDebugLogging)
	if g.Accessibility != nil {
		out.Accessibility = slices.Clone(*g.Accessibility)
	}
	if g.AppleEvents != nil {
		out.AppleEvents = slices.Clone(*g.AppleEvents)
	}
	if g.MDM != nil {
		out.MDMEnrolled = true
		for _, p := range g.MDM.SystemExtensionPolicies {
			out.Policies = append(out.Policies, macos.Policy{Team: p.Team, BundleIDs: slices.Clone(p.BundleIDs)})
		}
		for _, v := range g.MDM.VPNs {
			out.VPNs = append(out.VPNs, macos.VPNPayload{Name: v.Name, Provider: v.Provider})
		}
	}
	return &out
}
