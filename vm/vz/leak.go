package vz

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Virtualization.framework sometimes keeps counting a VM that is gone:
// VZErrorVirtualMachineLimitExceeded then arrives with fewer than two VMs
// running, and keeps arriving until the host reboots, whoever asks (tart
// issues 445 and 1217; UTM issue 5563; s-u/macosvm issue 16 saw it with
// no com.apple.Virtualization.VirtualMachine process left). The provider
// reports such a host as a vm.HostFault, so the lab quarantines it, and
// records it in the store for `sxlab doctor`.

// LeakFile, in the store, records the last time the framework refused a
// VM while fewer than two ran.
const LeakFile = "leaked-vm-slot.json"

// Leak is LeakFile's content.
type Leak struct {
	At time.Time `json:"at"`
	// VMProcesses is how many framework VM processes ran then; Clones how
	// many of the store's clones had a live worker (the refused one not
	// counted).
	VMProcesses int    `json:"vm_processes"`
	Clones      int    `json:"clones"`
	Message     string `json:"message"`
}

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

// RecordLeak writes LeakFile; a failure to write it only loses doctor's
// hint, so it is returned for the log, not the verdict.
func RecordLeak(store string, l Leak) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(store, "."+LeakFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(store, LeakFile))
}

// ReadLeak reads the store's LeakFile; ok is false when there is none.
func ReadLeak(store string) (l Leak, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(store, LeakFile))
	if os.IsNotExist(err) {
		return Leak{}, false, nil
	}
	if err != nil {
		return Leak{}, false, err
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return Leak{}, false, fmt.Errorf("%s: %w", filepath.Join(store, LeakFile), err)
	}
	return l, true, nil
}
