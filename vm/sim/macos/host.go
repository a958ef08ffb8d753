// Package macos is the model of macOS behind the simulated guest's shell:
// sysextd, launchd's Network Extension jobs and Mach endpoints, NE VPN
// configurations (scutil), the unified log, installer and pkgutil,
// sysdiagnose, and the field reports as named faults. It provides the
// shell's Programs and keeps macOS's rules; model.go says how it behaves.
package macos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sxlab/sxlab/vm"
)

// Host is what the Mac model needs from the machine it runs in.
type Host interface {
	// Now is the guest's clock.
	Now() time.Time
	// Sleep waits d of simulated time (scaled by the host's time_scale);
	// it returns ctx's error when cancelled first.
	Sleep(ctx context.Context, d time.Duration) error
	// Reboot drops every SSH connection at once; sshd answers again, with
	// the same host key, after the model's boot delay, and the model's
	// Boot is called before it does.
	Reboot()
}

// Network is a Host whose guest network the model can change. Optional:
// the sim's machines have it; without it the model's network faults have
// no effect beyond the model.
type Network interface {
	// CaptureHostRoute sends (true) the guest's traffic to the host side
	// of its NAT network into a VPN tunnel, where the host never sees it,
	// or gives the route back (false). The model calls it with its own
	// lock held; it must not call back into the model.
	CaptureHostRoute(captured bool)
}

// Config is what a simulated Mac is made from.
type Config struct {
	Name           string // machine name; the guest's hostname derives from it
	User           string // login user, "admin" by default
	ProductVersion string // "15.3"
	Build          string // "24D60"
	Faults         []vm.Fault
	Seed           int64 // with Name, makes every random choice reproducible
	// Password is the image user's password, which System Settings'
	// authorization sheet asks for.
	Password string
	// Golden is how the golden was prepared; nil: DefaultGolden.
	Golden *Golden
	// Packages, when set, keeps what installer read of a package for the
	// other Macs of one provider; nil reads every package afresh.
	Packages *PackageCache
}

// KernelRelease maps a macOS product version to its kernel release:
// 15.3 → 24.3.0, 26.x → 25.x.0, 10.15.x → 19.x.0.
func KernelRelease(product string) string {
	parts := strings.Split(product, ".")
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return "24.0.0"
	}
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	switch {
	case major == 10 && len(parts) > 1:
		return fmt.Sprintf("%d.0.0", minor+4)
	case major >= 26:
		return fmt.Sprintf("%d.%d.0", major-1, minor)
	case major >= 11:
		return fmt.Sprintf("%d.%d.0", major+9, minor)
	}
	return "24.0.0"
}
