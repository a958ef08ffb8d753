package vm

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
// no com.apple.Virtualization.VirtualMachine process left). A provider
// that sees it returns a HostFault, so the lab quarantines the host, and
// records it in its folder (the vz store, tart's lock folder) as LeakFile
// for `sxlab doctor`.

// LeakFile records the last time the framework refused a VM while fewer
// than two ran.
const LeakFile = "leaked-vm-slot.json"

// Leak is LeakFile's content.
type Leak struct {
	At time.Time `json:"at"`
	// VMProcesses is how many framework VM processes ran then; Running how
	// many VMs the provider knew of (the refused one not counted).
	VMProcesses int    `json:"vm_processes"`
	Running     int    `json:"running"`
	Message     string `json:"message"`
}

// RecordLeak writes LeakFile in dir.
func RecordLeak(dir string, l Leak) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+LeakFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("record the leaked VM slot: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, LeakFile)); err != nil {
		return fmt.Errorf("record the leaked VM slot: %w", err)
	}
	return nil
}

// ParseLeak reads LeakFile's content.
func ParseLeak(data []byte) (Leak, error) {
	var l Leak
	if err := json.Unmarshal(data, &l); err != nil {
		return Leak{}, fmt.Errorf("%s: %w", LeakFile, err)
	}
	return l, nil
}
