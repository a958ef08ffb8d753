package vz

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassifyFrameworkError(t *testing.T) {
	assert.Equal(t, KindVMLimit, ClassifyFrameworkError("VZErrorDomain", 6, "The number of virtual machines exceeds the limit."))
	assert.Equal(t, KindOther, ClassifyFrameworkError("NSPOSIXErrorDomain", 6, "Device not configured"), "code 6 of another domain")
	assert.Equal(t, KindEntitlement, ClassifyFrameworkError("VZErrorDomain", 2,
		"Invalid virtual machine configuration. The process doesn’t have the “com.apple.security.virtualization” entitlement."))
	assert.Equal(t, KindOther, ClassifyFrameworkError("VZErrorDomain", 2, "Invalid virtual machine configuration."))
}

func TestExplain(t *testing.T) {
	limit := explain(KindVMLimit, "start: limit", hostFacts{
		clones:  []RunningClone{{Name: "sxlab-r1-a-r1-t1", PID: 41}, {Name: "sxlab-r1-b-r1-t1", PID: 42}},
		vmProcs: 2,
	})
	assert.Contains(t, limit, "at most two macOS VMs run per host")
	assert.Contains(t, limit, "running: sxlab-r1-a-r1-t1 (worker pid 41), sxlab-r1-b-r1-t1 (worker pid 42)")
	assert.Contains(t, limit, "2 Virtualization.framework VM process(es)")

	outside := explain(KindVMLimit, "start: limit", hostFacts{vmProcs: -1})
	assert.Contains(t, outside, "running: no sxlab clone")
	assert.NotContains(t, outside, "process(es)", "an unknown count is not printed")

	sign := explain(KindEntitlement, "invalid", hostFacts{binary: "/usr/local/bin/sxlab"})
	assert.Contains(t, sign, "/usr/local/bin/sxlab lacks the com.apple.security.virtualization entitlement")
	assert.Contains(t, sign, "codesign --force --entitlements sxlab.entitlements -s - /usr/local/bin/sxlab")

	old := explain(KindUnsupportedModel, "hardwareModel not supported", hostFacts{hostMacOS: "13.6"})
	assert.Contains(t, old, "not supported by macOS 13.6 on this host: the host macOS is too old for the image")

	assert.Equal(t, "plain", explain(KindOther, "plain", hostFacts{}))
}

func TestParseMacOSVersion(t *testing.T) {
	for in, want := range map[string][2]int{"14.5": {14, 5}, "15.0.1": {15, 0}, "26": {26, 0}, " 13.6\n": {13, 6}} {
		major, minor, err := parseMacOSVersion(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, [2]int{major, minor}, in)
	}
	_, _, err := parseMacOSVersion("Sonoma")
	assert.Error(t, err)
}

func TestHostCanRestoreOffMacOS(t *testing.T) {
	if _, err := hostMacOSVersion(); err == nil {
		t.Skip("this host is a Mac")
	}
	assert.False(t, HostCanRestore())
}

// TestFrameworkErrorKeepsEveryField uses the user-info of a real report
// (the shape NSDictionary's description has, as vz passes it on): the
// cause is there, not in the description.
func TestFrameworkErrorKeepsEveryField(t *testing.T) {
	err := NewFrameworkError("start", NSErrorInfo{
		Domain:      "VZErrorDomain",
		Code:        1,
		Description: "The virtual machine failed to start.",
		UserInfo: "{\n    NSLocalizedFailure = \"Internal Virtualization error.\";\n" +
			"    NSLocalizedFailureReason = \"Failed to get current host key\";\n}",
	})
	msg := err.Error()
	assert.Equal(t, `start: The virtual machine failed to start. (VZErrorDomain code 1; user info: { NSLocalizedFailure = "Internal Virtualization error."; NSLocalizedFailureReason = "Failed to get current host key"; })`, msg)
	assert.Equal(t, KindOther, err.Kind)
	assert.Equal(t, "VZErrorDomain", err.Domain)

	limit := NewFrameworkError("start", NSErrorInfo{Domain: "VZErrorDomain", Code: 6,
		Description: "The number of virtual machines exceeds the limit.", UserInfo: "{\n}"})
	assert.Equal(t, KindVMLimit, limit.Kind)
	assert.Equal(t, "start: The number of virtual machines exceeds the limit. (VZErrorDomain code 6)", limit.Error(), "an empty user-info is left out")

	// The entitlement is sometimes named only in user-info.
	ent := NewFrameworkError("validate", NSErrorInfo{Domain: "VZErrorDomain", Code: 2, Description: "Invalid virtual machine configuration.",
		UserInfo: `{NSLocalizedFailureReason = "The process doesn't have the com.apple.security.virtualization entitlement.";}`})
	assert.Equal(t, KindEntitlement, ent.Kind)

	plain := &VMError{Msg: "the VM cannot be stopped in state paused"}
	assert.Equal(t, "the VM cannot be stopped in state paused", plain.Error())
}

// TestWorkerReplyKeepsTheDomain: what the worker sends carries the domain
// and the whole rendering, so the orchestrator's message has user-info.
func TestWorkerReplyKeepsTheDomain(t *testing.T) {
	r := failed(fmt.Errorf("start the VM of /x: %w", NewFrameworkError("start", NSErrorInfo{Domain: "VZErrorDomain", Code: 6,
		Description: "limit", UserInfo: `{NSLocalizedFailure = "No value exists in nvram for the provided key.";}`})))
	assert.Equal(t, KindVMLimit, r.Kind)
	assert.Equal(t, 6, r.Code)
	assert.Equal(t, "VZErrorDomain", r.Domain)
	assert.Contains(t, r.Error, `user info: {NSLocalizedFailure = "No value exists in nvram for the provided key.";}`)
}
