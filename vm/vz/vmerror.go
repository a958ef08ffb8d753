package vz

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrorKind sorts the framework's failures into the few a user can act on.
type ErrorKind string

const (
	KindOther ErrorKind = ""
	// KindVMLimit: VZErrorVirtualMachineLimitExceeded, two macOS guests
	// already run on this host.
	KindVMLimit ErrorKind = "vm-limit"
	// KindEntitlement: the binary lacks com.apple.security.virtualization.
	KindEntitlement ErrorKind = "entitlement"
	// KindUnsupportedModel: the image's hardware model is newer than what
	// the host's macOS supports.
	KindUnsupportedModel ErrorKind = "unsupported-hardware-model"
)

// The framework's error domain and the code of
// VZErrorVirtualMachineLimitExceeded.
const (
	frameworkDomain = "VZErrorDomain"
	codeVMLimit     = 6
)

// Entitlement is the one a binary needs to create VMs.
const Entitlement = "com.apple.security.virtualization"

// ClassifyFrameworkError sorts an NSError from the framework.
func ClassifyFrameworkError(domain string, code int, description string) ErrorKind {
	switch {
	case domain == frameworkDomain && code == codeVMLimit:
		return KindVMLimit
	case strings.Contains(description, Entitlement), strings.Contains(strings.ToLower(description), "entitlement"):
		return KindEntitlement
	}
	return KindOther
}

// VMError is a failure of the VM behind a worker, sorted by kind; the
// mapping makes them from the framework's errors, and they travel the
// worker protocol as Response.Kind/Code/Domain/Error.
type VMError struct {
	Kind ErrorKind
	Code int    // the framework's error code, 0 when unknown
	Msg  string // what was being done and the framework's description
	// Domain and UserInfo are the NSError's; the real cause often lives in
	// user-info only (tart issue 1137: "Failed to get current host key"
	// under a generic "Internal Virtualization error").
	Domain   string
	UserInfo string
}

func (e *VMError) Error() string {
	var extra []string
	switch {
	case e.Domain != "":
		extra = append(extra, fmt.Sprintf("%s code %d", e.Domain, e.Code))
	case e.Code != 0:
		extra = append(extra, fmt.Sprintf("code %d", e.Code))
	}
	if e.UserInfo != "" {
		extra = append(extra, "user info: "+e.UserInfo)
	}
	if len(extra) == 0 {
		return e.Msg
	}
	return e.Msg + " (" + strings.Join(extra, "; ") + ")"
}

// NSErrorInfo is what an NSError from the framework carries, as
// github.com/Code-Hex/vz/v3 hands it over: UserInfo is the dictionary's
// description ("%@" of NSDictionary), not the dictionary itself. Pure Go,
// so its rendering is tested off macOS.
type NSErrorInfo struct {
	Domain      string
	Code        int
	Description string
	UserInfo    string
}

// NewFrameworkError sorts an NSError into a *VMError that keeps every
// field of it, with doing (what was being done) in front.
func NewFrameworkError(doing string, ns NSErrorInfo) *VMError {
	return &VMError{
		Kind:     ClassifyFrameworkError(ns.Domain, ns.Code, ns.Description+" "+ns.UserInfo),
		Code:     ns.Code,
		Domain:   ns.Domain,
		Msg:      doing + ": " + ns.Description,
		UserInfo: compactUserInfo(ns.UserInfo),
	}
}

// compactUserInfo puts an NSDictionary description on one line (it spans
// several, indented) and drops an empty one.
func compactUserInfo(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	switch s {
	case "", "{}", "{ }", "(null)":
		return ""
	}
	return s
}

// RunningClone is a clone whose worker holds its lock.
type RunningClone struct {
	Name string
	PID  int
}

// RunningClones lists the clones in store with a live worker.
func RunningClones(store string) []RunningClone {
	entries, err := os.ReadDir(filepath.Join(store, ClonesDir))
	if err != nil {
		return nil
	}
	var out []RunningClone
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), ClonePrefix) {
			continue
		}
		if pid := runBy(filepath.Join(store, ClonesDir, e.Name())); pid > 0 {
			out = append(out, RunningClone{Name: e.Name(), PID: pid})
		}
	}
	return out
}

// hostFacts is what explain adds to a message: the VMs running, the binary.
type hostFacts struct {
	clones    []RunningClone
	vmProcs   int // framework VM processes on the host, -1 when unknown
	binary    string
	hostMacOS string
}

// explain words a worker's failure so the user knows what to do.
func explain(kind ErrorKind, msg string, f hostFacts) string {
	switch kind {
	case KindVMLimit:
		var b strings.Builder
		b.WriteString("at most two macOS VMs run per host (Virtualization.framework refused a third: VZErrorVirtualMachineLimitExceeded); running: ")
		var names []string
		for _, c := range f.clones {
			names = append(names, c.Name+" (worker pid "+strconv.Itoa(c.PID)+")")
		}
		if len(names) == 0 {
			names = append(names, "no sxlab clone")
		}
		b.WriteString(strings.Join(names, ", "))
		if f.vmProcs >= 0 {
			fmt.Fprintf(&b, "; %d Virtualization.framework VM process(es) on the host in all (tart, UTM and other runs count too)", f.vmProcs)
		}
		b.WriteString(". Stop one (tart stop NAME, or end the other run), or set hosts[].slots to what is free")
		return b.String()
	case KindEntitlement:
		bin := f.binary
		if bin == "" {
			bin = "sxlab"
		}
		return fmt.Sprintf("%s lacks the %s entitlement, so Virtualization.framework refuses to create VMs: sign it with scripts/sign.sh, or: codesign --force --entitlements sxlab.entitlements -s - %s (%s)", bin, Entitlement, bin, msg)
	case KindUnsupportedModel:
		host := f.hostMacOS
		if host == "" {
			host = "this host's macOS"
		} else {
			host = "macOS " + host + " on this host"
		}
		return fmt.Sprintf("the image's hardware model is not supported by %s: the host macOS is too old for the image; update the host, or use an image installed from an older restore image (%s)", host, msg)
	}
	return msg
}

// parseMacOSVersion reads "14.5" or "15.0.1".
func parseMacOSVersion(s string) (major, minor int, err error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	major, err = strconv.Atoi(parts[0])
	if err != nil {
		return 0, 0, fmt.Errorf("macOS version %q: %w", s, err)
	}
	if len(parts) > 1 {
		if minor, err = strconv.Atoi(parts[1]); err != nil {
			return 0, 0, fmt.Errorf("macOS version %q: %w", s, err)
		}
	}
	return major, minor, nil
}

// restoreNeedsMajor is the first macOS whose framework saves and restores
// VM state.
const restoreNeedsMajor = 14

// HostCanRestore reports whether this host restores saved VM states.
func HostCanRestore() bool {
	v, err := hostMacOSVersion()
	if err != nil {
		return false
	}
	major, _, err := parseMacOSVersion(v)
	return err == nil && major >= restoreNeedsMajor
}
