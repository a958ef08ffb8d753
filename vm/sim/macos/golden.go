package macos

import (
	"context"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"

	"github.com/sxlab/sxlab/vm/sim/shell"
)

// Golden is how the image's golden was prepared, as macOS keeps it: who
// is logged in on the console, SIP, FileVault, the TCC grants, and the
// MDM enrolment with what it installed. docs/macos-behaviour.md lists
// the rules the model applies with them, each with its source.
type Golden struct {
	AutoLogin bool // the image user is logged in at boot (automatic login)
	SIP       bool // System Integrity Protection enabled
	FileVault bool // FileVault on: macOS turns automatic login off
	// Accessibility and AppleEvents are the TCC clients (paths or bundle
	// IDs) granted kTCCServiceAccessibility and kTCCServiceAppleEvents.
	Accessibility []string
	AppleEvents   []string
	MDMEnrolled   bool // a user-approved MDM enrolment
	Policies      []Policy
	VPNs          []VPNPayload
	// NEDebugLogging: the golden persisted debug logging for
	// com.apple.networkextension (log config --mode level:debug,persist:debug).
	NEDebugLogging bool
}

// Policy is an installed com.apple.system-extension-policy payload: the
// team's extensions are allowed (all, or the bundle IDs listed).
type Policy struct {
	Team      string
	BundleIDs []string
}

// VPNPayload is an MDM-installed VPN configuration (com.apple.vpn.managed).
type VPNPayload struct {
	Name     string
	Provider string // the extension's bundle ID
}

// TCC clients of the lab's commands. Over SSH the process TCC holds
// responsible is sshd-keygen-wrapper (the parent of every session on
// macOS 13+), so that is the client that needs the grant; tart's base
// images grant it and osascript both.
const (
	tccSSHClient       = "/usr/libexec/sshd-keygen-wrapper"
	tccOsascriptClient = "/usr/bin/osascript"
)

// DefaultGolden is a well-prepared golden, like tart's base images:
// automatic login, SIP on, FileVault off, Accessibility and Apple Events
// for sshd-keygen-wrapper and osascript, no MDM.
func DefaultGolden() Golden {
	return Golden{
		AutoLogin: true, SIP: true,
		Accessibility: []string{tccSSHClient, tccOsascriptClient},
		AppleEvents:   []string{tccSSHClient, tccOsascriptClient},
	}
}

// consoleUser is who owns the console: the image user when automatic
// login logged them in, "" at the login window. FileVault turns
// automatic login off.
func (m *Mac) consoleUser() string {
	if m.golden.AutoLogin && !m.golden.FileVault {
		return m.cfg.User
	}
	return ""
}

// granted says whether the SSH session's responsible client holds a TCC
// grant in list.
func granted(list []string) bool { return slices.Contains(list, tccSSHClient) }

// Owner says who owns the device files the model knows: /dev/console
// belongs to the console user, to root at the login window.
func (m *Mac) Owner(guestPath string) (user, group string, ok bool) {
	if guestPath != "/dev/console" {
		return "", "", false
	}
	if u := m.consoleUser(); u != "" {
		return u, "staff", true
	}
	return "root", "wheel", true
}

// noSessionOpen is LaunchServices' answer when there is no GUI session
// to open an application in: procNotFound (-600).
func noSessionOpen(p *shell.Proc, what string) int {
	fmt.Fprintf(stderr(p), "_LSOpenURLsWithCompletionHandler() failed for the application %s with error -600.\n", what)
	return exitFailure
}

// cmdCsrutil is `csrutil status`; changing SIP needs recoveryOS.
func (m *Mac) cmdCsrutil(_ context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 1 && args[0] == "status" {
		state := "disabled"
		if m.golden.SIP {
			state = "enabled"
		}
		fmt.Fprintf(stdout(p), "System Integrity Protection status: %s.\n", state)
		return exitOK
	}
	if len(args) >= 1 && (args[0] == "enable" || args[0] == "disable") {
		fmt.Fprintf(stderr(p), "csrutil: failed to modify system integrity configuration. This tool needs to be executed from Recovery OS.\n")
		return exitFailure
	}
	fmt.Fprintln(stderr(p), "usage: csrutil <command>\nModify the System Integrity Protection configuration. All configuration changes apply to the entire machine.\nAvailable commands:\n\n    status\n        Display the current configuration.")
	return exitUsage
}

// cmdFdesetup is `fdesetup status`.
func (m *Mac) cmdFdesetup(_ context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 1 && args[0] == "status" {
		if m.golden.FileVault {
			fmt.Fprintln(stdout(p), "FileVault is On.")
		} else {
			fmt.Fprintln(stdout(p), "FileVault is Off.")
		}
		return exitOK
	}
	fmt.Fprintln(stderr(p), "Usage: fdesetup status (the simulated Mac reports FileVault's status only)")
	return exitUsage
}

// cmdProfiles is profiles(1) for what the lab reads: the enrolment and
// the installed configuration profiles.
//
//	profiles status -type enrollment
//	profiles show [-type configuration] -output stdout-xml   (root: computer level)
//	profiles -C -o stdout-xml                                (the older spelling)
//	profiles list | profiles -C                              (text)
func (m *Mac) cmdProfiles(_ context.Context, p *shell.Proc) int {
	args := cmdArgs(p)
	if len(args) == 0 {
		return profilesUsage(p)
	}
	verb := args[0]
	var xml, bad bool
	typ := ""
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "-output" || a == "-o") && i+1 < len(args):
			i++
			xml = args[i] == "stdout-xml"
			bad = bad || (args[i] != "stdout-xml" && args[i] != "stdout")
		case a == "-type" && i+1 < len(args):
			i++
			typ = args[i]
		case a == "-all" || a == "-verbose" || a == "-v":
		default:
			bad = true
		}
	}
	if bad {
		return profilesUsage(p)
	}
	m.begin()
	defer m.mu.Unlock()
	switch {
	case verb == "status" && typ == "enrollment":
		fmt.Fprintln(stdout(p), "Enrolled via DEP: No")
		if m.golden.MDMEnrolled {
			fmt.Fprintln(stdout(p), "MDM enrollment: Yes (User Approved)")
			fmt.Fprintln(stdout(p), "MDM server: https://mdm.sxlab.invalid/mdm")
		} else {
			fmt.Fprintln(stdout(p), "MDM enrollment: No")
		}
		return exitOK
	case (verb == "show" || verb == "-C") && (typ == "" || typ == "configuration"):
	case verb == "list" && !xml:
	default:
		return profilesUsage(p)
	}
	profs := m.profiles()
	if !p.Root {
		profs = nil // computer-level profiles are root's to read; the user has none
	}
	if xml {
		fmt.Fprint(stdout(p), profilesXML(profs))
		return exitOK
	}
	for i, pr := range profs {
		fmt.Fprintf(stdout(p), "_computerlevel[%d] attribute: profileIdentifier: %s\n", i+1, pr.identifier)
	}
	if len(profs) == 0 {
		fmt.Fprintln(stdout(p), "There are no configuration profiles installed")
	}
	return exitOK
}

func profilesUsage(p *shell.Proc) int {
	fmt.Fprintln(stderr(p), "usage: profiles status -type enrollment | profiles show [-type configuration] [-output stdout-xml] | profiles list\n(the simulated Mac answers these verbs only)")
	return exitUsage
}

// profile is one installed configuration profile and its payloads.
type profile struct {
	identifier, name string
	installed        time.Time
	payloads         []payload
}

type payload struct {
	typ, identifier string
	content         string // the PayloadContent dict's inner XML
}

// profiles lists what the enrolment installed: the MDM profile, one
// profile per system extension policy, one per VPN payload. Callers hold mu.
func (m *Mac) profiles() []profile {
	if !m.golden.MDMEnrolled {
		return nil
	}
	at := m.golden0
	out := []profile{{identifier: "com.sxlab.sim.mdm", name: "MDM Profile", installed: at,
		payloads: []payload{{typ: "com.apple.mdm", identifier: "com.sxlab.sim.mdm.payload", content: "\t\t\t\t\t\t<key>AccessRights</key>\n\t\t\t\t\t\t<integer>8191</integer>\n"}}}}
	for _, pol := range m.golden.Policies {
		var c strings.Builder
		if len(pol.BundleIDs) == 0 {
			c.WriteString("\t\t\t\t\t\t<key>AllowedTeamIdentifiers</key>\n\t\t\t\t\t\t<array>\n")
			fmt.Fprintf(&c, "\t\t\t\t\t\t\t<string>%s</string>\n", html.EscapeString(pol.Team))
			c.WriteString("\t\t\t\t\t\t</array>\n")
		} else {
			c.WriteString("\t\t\t\t\t\t<key>AllowedSystemExtensions</key>\n\t\t\t\t\t\t<dict>\n")
			fmt.Fprintf(&c, "\t\t\t\t\t\t\t<key>%s</key>\n\t\t\t\t\t\t\t<array>\n", html.EscapeString(pol.Team))
			for _, id := range pol.BundleIDs {
				fmt.Fprintf(&c, "\t\t\t\t\t\t\t\t<string>%s</string>\n", html.EscapeString(id))
			}
			c.WriteString("\t\t\t\t\t\t\t</array>\n\t\t\t\t\t\t</dict>\n")
		}
		id := "com.sxlab.sim.sysext-policy." + pol.Team
		out = append(out, profile{identifier: id, name: "System Extension Policy", installed: at,
			payloads: []payload{{typ: "com.apple.system-extension-policy", identifier: id + ".payload", content: c.String()}}})
	}
	for _, v := range m.golden.VPNs {
		c := fmt.Sprintf("\t\t\t\t\t\t<key>UserDefinedName</key>\n\t\t\t\t\t\t<string>%s</string>\n\t\t\t\t\t\t<key>VPNType</key>\n\t\t\t\t\t\t<string>VPN</string>\n\t\t\t\t\t\t<key>VPNSubType</key>\n\t\t\t\t\t\t<string>%s</string>\n",
			html.EscapeString(v.Name), html.EscapeString(v.Provider))
		id := "com.sxlab.sim.vpn." + v.Provider
		out = append(out, profile{identifier: id, name: "VPN " + v.Name, installed: at,
			payloads: []payload{{typ: "com.apple.vpn.managed", identifier: id + ".payload", content: c}}})
	}
	return out
}

// profilesXML is `profiles show -output stdout-xml`: a plist whose
// _computerlevel array holds one dict per profile with its ProfileItems
// (the layout macadmins/osquery-extension's macos_profiles table reads).
func profilesXML(profs []profile) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	if len(profs) > 0 {
		b.WriteString("\t<key>_computerlevel</key>\n\t<array>\n")
		for _, pr := range profs {
			b.WriteString("\t\t<dict>\n")
			str := func(k, v string) {
				fmt.Fprintf(&b, "\t\t\t<key>%s</key>\n\t\t\t<string>%s</string>\n", k, html.EscapeString(v))
			}
			str("ProfileDisplayName", pr.name)
			str("ProfileIdentifier", pr.identifier)
			str("ProfileInstallDate", pr.installed.UTC().Format("2006-01-02 15:04:05 +0000"))
			b.WriteString("\t\t\t<key>ProfileItems</key>\n\t\t\t<array>\n")
			for _, pl := range pr.payloads {
				b.WriteString("\t\t\t\t<dict>\n\t\t\t\t\t<key>PayloadContent</key>\n\t\t\t\t\t<dict>\n")
				b.WriteString(pl.content)
				b.WriteString("\t\t\t\t\t</dict>\n")
				fmt.Fprintf(&b, "\t\t\t\t\t<key>PayloadIdentifier</key>\n\t\t\t\t\t<string>%s</string>\n", html.EscapeString(pl.identifier))
				fmt.Fprintf(&b, "\t\t\t\t\t<key>PayloadType</key>\n\t\t\t\t\t<string>%s</string>\n", html.EscapeString(pl.typ))
				fmt.Fprintf(&b, "\t\t\t\t\t<key>PayloadUUID</key>\n\t\t\t\t\t<string>%s</string>\n", hashUUID(pl.identifier))
				b.WriteString("\t\t\t\t\t<key>PayloadVersion</key>\n\t\t\t\t\t<integer>1</integer>\n\t\t\t\t</dict>\n")
			}
			b.WriteString("\t\t\t</array>\n")
			str("ProfileOrganization", "sxlab simulated MDM")
			str("ProfileType", "Configuration")
			str("ProfileUUID", hashUUID(pr.identifier))
			str("ProfileVerificationState", "verified")
			b.WriteString("\t\t</dict>\n")
		}
		b.WriteString("\t</array>\n")
	}
	b.WriteString("</dict>\n</plist>\n")
	return b.String()
}
