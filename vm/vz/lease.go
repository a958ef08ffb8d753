package vz

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/sxlab/sxlab/guest"
)

// LeasesFile is where the host's bootpd records the addresses it gave NAT
// guests.
const LeasesFile = "/var/db/dhcpd_leases"

// ARPEntry is one line of `arp -an`.
type ARPEntry struct {
	IP        string
	MAC       string // normalised like guest.NormaliseMAC
	Interface string
}

// ParseARP reads `arp -an` output:
//
//	? (192.168.64.5) at 6:e8:a3:b0:23:b4 on bridge100 ifscope [ethernet]
//
// Incomplete entries and lines of another shape are skipped: the table is
// only a fallback for a lease bootpd has not written yet.
func ParseARP(r io.Reader) ([]ARPEntry, error) {
	var out []ARPEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// host (ip) at mac on iface ...
		if len(f) < 4 || f[2] != "at" || !strings.HasPrefix(f[1], "(") || !strings.HasSuffix(f[1], ")") {
			continue
		}
		ip := strings.Trim(f[1], "()")
		if net.ParseIP(ip) == nil {
			continue
		}
		mac := guest.NormaliseMAC(f[3])
		if _, err := net.ParseMAC(mac); err != nil {
			continue // "(incomplete)"
		}
		e := ARPEntry{IP: ip, MAC: mac}
		if len(f) >= 6 && f[4] == "on" {
			e.Interface = f[5]
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read arp table: %w", err)
	}
	return out, nil
}

// Where LookupIP found an address.
const (
	SourceLeases = "dhcpd_leases"
	SourceARP    = "arp"
)

// LookupIP finds the guest with MAC mac: the lease that expires last among
// those not expired at now wins (bootpd keeps old blocks for an address,
// and a restored clone reuses its golden's MAC); without one, the ARP
// table. source says which answered.
func LookupIP(leases []guest.Lease, arp []ARPEntry, mac string, now time.Time) (ip, source string, ok bool) {
	want := guest.NormaliseMAC(mac)
	live := make([]guest.Lease, 0, len(leases))
	for _, l := range leases {
		if l.Expires > now.Unix() && l.IPAddress != "" {
			live = append(live, l)
		}
	}
	if l, found := guest.NewestLease(live, want); found {
		return l.IPAddress, SourceLeases, true
	}
	for _, e := range arp {
		if e.MAC == want {
			return e.IP, SourceARP, true
		}
	}
	return "", "", false
}

// SourceExpiredLease: a restored clone's address, from the newest lease
// of its MAC though that lease has expired, confirmed by sshd answering.
const SourceExpiredLease = "dhcpd_leases (expired, restored clone)"

// RestoredIP is the address a restored clone most likely has: the newest
// lease for mac, expired or not. The guest resumes with the address it
// had at warm time and asks bootpd for nothing until its lease runs out,
// so no new lease appears; the caller confirms the address answers. An
// address that bootpd has since leased to another MAC, later than mac's
// lease, is not returned.
func RestoredIP(leases []guest.Lease, mac string) (string, bool) {
	l, found := guest.NewestLease(leases, mac)
	if !found || l.IPAddress == "" {
		return "", false
	}
	want := guest.NormaliseMAC(mac)
	for _, o := range leases {
		if o.IPAddress == l.IPAddress && o.HWAddress != want && o.Expires > l.Expires {
			return "", false
		}
	}
	return l.IPAddress, true
}

// vmProcessName is the XPC service every running Virtualization.framework
// VM has, whoever started it (sxlab, tart, UTM, ...).
const vmProcessName = "com.apple.Virtualization.VirtualMachine"

// CountVMProcesses counts the framework's VM processes in `ps -Ao
// pid,command` output: the number the two-VM limit counts.
func CountVMProcesses(ps string) int {
	n := 0
	for line := range strings.Lines(ps) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		cmd := f[1]
		if cmd == vmProcessName || strings.HasSuffix(cmd, "/"+vmProcessName) {
			n++
		}
	}
	return n
}
