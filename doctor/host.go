package doctor

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sxlab/sxlab/vm"
)

var bootSecRE = regexp.MustCompile(`sec\s*=\s*(\d+)`)

// bootTime reads `sysctl -n kern.boottime` ("{ sec = 1733100000, usec = 0 } Mon Dec ...").
func (d *doctor) bootTime(ctx context.Context) (time.Time, bool) {
	out, err := d.sys.Run(ctx, "sysctl", "-n", "kern.boottime")
	if err != nil || out.Exit != 0 {
		return time.Time{}, false
	}
	m := bootSecRE.FindStringSubmatch(out.Stdout)
	if m == nil {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0).UTC(), true
}

// leakedSlot reports a VM slot the framework leaked, from the provider's
// vm.LeakFile in dir (the vz store, tart's lock folder): a refusal recorded
// since the last boot, with fewer than two VMs running then and now, stays
// until the host reboots (tart issues 445 and 1217; UTM issue 5563).
func (d *doctor) leakedSlot(ctx context.Context, subj, store string) {
	if store == "" {
		return
	}
	path := filepath.Join(store, vm.LeakFile)
	data, err := d.sys.ReadFile(path)
	if err != nil {
		d.add(subj, "vm-slots", OK, "no refused VM recorded in "+store, "")
		return
	}
	l, err := vm.ParseLeak(data)
	if err != nil {
		d.add(subj, "vm-slots", Warning, fmt.Sprintf("%s is unreadable: %v", path, err), "delete it; the next refusal writes it again")
		return
	}
	at := l.At.UTC().Format(time.RFC3339)
	boot, known := d.bootTime(ctx)
	if known && l.At.Before(boot) {
		d.add(subj, "vm-slots", OK, fmt.Sprintf("the VM slot Virtualization.framework leaked at %s was freed by the reboot at %s", at, boot.Format(time.RFC3339)), "")
		return
	}
	since := "and the host has not rebooted since"
	if !known {
		since = "and the boot time is unknown (sysctl kern.boottime)"
	}
	msg := fmt.Sprintf("Virtualization.framework refused a VM with its two-VM limit at %s while %d VM process(es) ran, %s", at, l.VMProcesses, since)
	fix := "reboot this Mac: only a reboot frees a leaked slot (tart issues 445, 1217; UTM 5563); a run quarantines a host in this state"
	switch {
	case d.vmProcs >= 0 && d.vmProcs < 2 && known:
		d.add(subj, "vm-slots", Failure, msg+fmt.Sprintf("; %d run now: the framework leaked a VM slot and keeps refusing VMs", d.vmProcs), fix)
	default:
		d.add(subj, "vm-slots", Warning, msg+"; it may still count a VM that is gone", fix)
	}
}

// consoleUser checks for a graphical login of the user running sxlab:
// guests of macOS 15.2 and later fail to start ("The virtual machine
// failed to start", errSecInteractionNotAllowed in the log) unless the
// host user is logged in graphically or the login keychain is unlocked
// (tart issues 1025 and 1075).
func (d *doctor) consoleUser(ctx context.Context, subj string) {
	me := d.sys.Getenv("USER")
	if me == "" {
		if out, err := d.sys.Run(ctx, "id", "-un"); err == nil && out.Exit == 0 {
			me = strings.TrimSpace(out.Stdout)
		}
	}
	out, err := d.sys.Run(ctx, "stat", "-f", "%Su", "/dev/console")
	if err != nil || out.Exit != 0 {
		d.add(subj, "console-user", Warning, fmt.Sprintf("cannot tell who is logged in graphically (stat /dev/console: %v %s)", err, strings.TrimSpace(out.Stderr)), "")
		return
	}
	console := strings.TrimSpace(out.Stdout)
	why := "guests of macOS 15.2 and later start only while the host user is logged in graphically or the login keychain is unlocked (tart issues 1025, 1075)"
	fix := "enable automatic login for " + orUnknown(me) + " (System Settings > Users & Groups > Automatically log in as), or unlock the login keychain before sxlab runs"
	switch {
	case me != "" && console == me:
		d.add(subj, "console-user", OK, me+" is logged in graphically", "")
	case d.keychainUnlocked:
		d.add(subj, "console-user", Note, fmt.Sprintf("%s is not logged in graphically (the console belongs to %s); the unlocked keychain should do: %s", orUnknown(me), console, why), fix)
	default:
		d.add(subj, "console-user", Warning, fmt.Sprintf("%s is not logged in graphically (the console belongs to %s) and the login keychain is locked: %s", orUnknown(me), console, why), fix)
	}
}

func orUnknown(user string) string {
	if user == "" {
		return "the user running sxlab"
	}
	return user
}
