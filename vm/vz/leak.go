package vz

import "fmt"

// The framework's leaked VM slot (see vm.LeakFile): the vz provider
// reports it as a vm.HostFault and records it in its store.

// leakedSlot reports whether a VM-limit refusal came while fewer than two
// VMs ran. The refused VM's own process, if the framework made one, may
// be among vmProcs, so two processes are not taken for a leak: only what
// is sure quarantines a host. An unknown count (ps failed) is not a leak.
func leakedSlot(f hostFacts) bool {
	return f.vmProcs >= 0 && f.vmProcs < 2 && len(f.clones) < 2
}

// leakReason is what the run's summary says of a host that leaked a slot.
func leakReason(f hostFacts) string {
	return fmt.Sprintf("Virtualization.framework refused a VM with its two-VM limit (VZErrorVirtualMachineLimitExceeded) while %d VM process(es) ran: the host leaked a VM slot, which only a reboot frees (tart issues 445, 1217; UTM 5563); reboot it", f.vmProcs)
}
