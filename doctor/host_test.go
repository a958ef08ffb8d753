package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm"
)

// withLeak makes the store hold what the vz provider writes when the
// framework refused a VM at at with vmProcs VM processes running.
func withLeak(t *testing.T, sys *System, store string, at time.Time, vmProcs int) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, vm.RecordLeak(dir, vm.Leak{At: at, VMProcesses: vmProcs, Message: "start: The number of virtual machines exceeds the limit."}))
	data, err := os.ReadFile(filepath.Join(dir, vm.LeakFile))
	require.NoError(t, err)
	read := sys.ReadFile
	sys.ReadFile = func(p string) ([]byte, error) {
		if p == filepath.Join(store, vm.LeakFile) {
			return data, nil
		}
		return read(p)
	}
}

const store = "/Users/ci/sxlab-store"

func TestDoctorFindsALeakedVMSlot(t *testing.T) {
	sys, c := healthyMac()
	c["ps -A -o comm="] = Output{Stdout: "/sbin/launchd\n"} // no VM runs
	withLeak(t, &sys, store, now.Add(-time.Hour), 0)        // since the boot, 6 h ago
	r := Check(t.Context(), sys, Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "mini", Provider: "vz", Slots: 2, Store: store}}})
	f := find(t, r, "vm-slots")
	assert.Equal(t, Failure, f.Level)
	assert.Equal(t, "host mini (vz)", f.Subject)
	assert.Contains(t, f.Message, "refused a VM with its two-VM limit at 2025-03-01T11:00:00Z while 0 VM process(es) ran, and the host has not rebooted since; 0 run now")
	assert.Contains(t, f.Fix, "reboot this Mac")
	assert.False(t, r.OK())
}

func TestDoctorSaysARebootFreedTheSlot(t *testing.T) {
	sys, _ := healthyMac()
	withLeak(t, &sys, store, now.Add(-24*time.Hour), 0) // before the boot
	r := Check(t.Context(), sys, Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "mini", Provider: "vz", Slots: 1, Store: store}}})
	f := find(t, r, "vm-slots")
	assert.Equal(t, OK, f.Level)
	assert.Contains(t, f.Message, "was freed by the reboot at 2025-03-01T06:00:00Z")
}

func TestDoctorLeakWithVMsRunningNowIsOnlyAWarning(t *testing.T) {
	sys, c := healthyMac()
	vmLine := "/System/Library/Frameworks/Virtualization.framework/Versions/A/XPCServices/com.apple.Virtualization.VirtualMachine.xpc/Contents/MacOS/com.apple.Virtualization.VirtualMachine\n"
	c["ps -A -o comm="] = Output{Stdout: strings.Repeat(vmLine, 2)}
	withLeak(t, &sys, store, now.Add(-time.Hour), 1)
	r := Check(t.Context(), sys, Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "mini", Provider: "vz", Slots: 1, Store: store}}})
	assert.Equal(t, Warning, find(t, r, "vm-slots").Level, "two VMs run now: the limit may be real")
}

func TestDoctorChecksTheConsoleUser(t *testing.T) {
	cfg := Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "mini", Provider: "vz", Slots: 1, Store: store}}}
	sys, _ := healthyMac()
	assert.Equal(t, OK, find(t, Check(t.Context(), sys, cfg), "console-user").Level)

	sys, c := healthyMac()
	c["stat -f %Su /dev/console"] = Output{Stdout: "root\n"} // the login window
	f := find(t, Check(t.Context(), sys, cfg), "console-user")
	assert.Equal(t, Note, f.Level, "an unlocked keychain should do")
	assert.Contains(t, f.Message, "ci is not logged in graphically (the console belongs to root)")

	c["security show-keychain-info"] = Output{Stderr: "User interaction is not allowed.\n", Exit: 36}
	f = find(t, Check(t.Context(), sys, cfg), "console-user")
	assert.Equal(t, Warning, f.Level)
	assert.Contains(t, f.Message, "macOS 15.2 and later")
	assert.Contains(t, f.Message, "tart issues 1025, 1075")
	assert.Contains(t, f.Fix, "enable automatic login for ci")
}

func TestDoctorFindsALeakedVMSlotOfTart(t *testing.T) {
	sys, c := healthyMac()
	c["ps -A -o comm="] = Output{Stdout: "/sbin/launchd\n"}
	c["tart list --format json"] = Output{Stdout: "[]"}
	withLeak(t, &sys, "/Users/ci/.tart/sxlab-locks", now.Add(-time.Hour), 0)
	r := Check(t.Context(), sys, Config{RunsDir: "/r", MinFree: gib, Hosts: []Host{{Name: "t", Provider: "tart", Slots: 1}}})
	f := find(t, r, "vm-slots")
	assert.Equal(t, Failure, f.Level)
	assert.Equal(t, "host t (tart)", f.Subject)
}
