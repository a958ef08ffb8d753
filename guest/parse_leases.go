package guest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Lease is one block of the host's /var/db/dhcpd_leases (bootpd).
type Lease struct {
	Name      string `json:"name"`
	IPAddress string `json:"ip_address"`
	// HWAddress is normalised: the "1," hardware-type prefix dropped and
	// every octet two lowercase hex digits, so it compares equal to the
	// MAC address in a tart config (1,6:e8:… → 06:e8:…). A value that is
	// not a MAC address is kept as printed.
	HWAddress string `json:"hw_address"`
	// Identifier is the DHCP client identifier, normalised like HWAddress
	// when it is "1,<mac>", verbatim otherwise.
	Identifier string `json:"identifier"`
	Lease      string `json:"lease"` // as printed, e.g. 0x66f1a2b3
	// Expires is Lease read as Unix seconds (bootpd stores the expiry
	// time), 0 when Lease is not a number. LeaseTime gives it as a
	// time.Time with an error instead.
	Expires int64 `json:"expires"`
}

// LeaseTime returns when the lease expires.
func (l Lease) LeaseTime() (time.Time, error) {
	secs, err := parseLeaseHex(l.Lease)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(secs, 0).UTC(), nil
}

// parseLeaseHex reads bootpd's "0x…" Unix time; a value without the 0x is
// taken as decimal rather than guessed at.
func parseLeaseHex(s string) (int64, error) {
	s = strings.TrimSpace(s)
	digits, base := s, 10
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		digits, base = rest, 16
	}
	secs, err := strconv.ParseInt(digits, base, 64)
	if err != nil {
		return 0, fmt.Errorf("lease %q: not a Unix time: %w", s, err)
	}
	return secs, nil
}

// NewestLease returns the lease for hwAddress (any spelling
// NormaliseMAC accepts) that expires last: bootpd keeps old blocks for a
// MAC address and the newest one wins.
func NewestLease(leases []Lease, hwAddress string) (Lease, bool) {
	want := NormaliseMAC(hwAddress)
	var best Lease
	found := false
	for _, l := range leases {
		if l.HWAddress == want && (!found || l.Expires > best.Expires) {
			best, found = l, true
		}
	}
	return best, found
}

// NormaliseMAC turns "1,6:e8:a3:b0:23:b4" or "6:E8:A3:B0:23:B4" into
// "06:e8:a3:b0:23:b4". Anything that is not six hex octets after the
// optional "type," prefix is returned unchanged.
func NormaliseMAC(s string) string {
	s = strings.TrimSpace(s)
	mac := s
	if prefix, rest, ok := strings.Cut(s, ","); ok {
		if _, err := strconv.ParseUint(prefix, 16, 8); err != nil {
			return s
		}
		mac = rest
	}
	octets := strings.Split(mac, ":")
	if len(octets) != 6 {
		return s
	}
	for i, o := range octets {
		n, err := strconv.ParseUint(o, 16, 8)
		if err != nil || o == "" || len(o) > 2 {
			return s
		}
		octets[i] = fmt.Sprintf("%02x", n)
	}
	return strings.Join(octets, ":")
}

const leasesExpected = `"{" blocks of "name=", "ip_address=", "hw_address=", "identifier=", "lease=" lines`

// ParseLeases parses /var/db/dhcpd_leases. Blocks come out in file order.
// Key lines outside braces (a paste that lost them) start a block of their
// own; a block counts only when it has an IP or hardware address. An
// existing file with no blocks is an empty list.
func ParseLeases(r io.Reader) ([]Lease, error) {
	const kind = "leases"
	lines, err := readLines(kind, leasesExpected, r)
	if err != nil {
		return nil, err
	}
	leases := []Lease{}
	var (
		cur        *Lease
		recognised bool
	)
	flush := func() {
		if cur != nil && (cur.IPAddress != "" || cur.HWAddress != "") {
			leases = append(leases, *cur)
		}
		cur = nil
	}
	for _, l := range lines {
		trimmed := strings.TrimSpace(l.text)
		switch trimmed {
		case "{":
			flush()
			cur = &Lease{}
			recognised = true
			continue
		case "}":
			flush()
			recognised = true
			continue
		}
		key, value, ok := strings.Cut(trimmed, "=")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !isLeaseKey(key) {
			continue
		}
		if cur == nil {
			cur = &Lease{}
		}
		recognised = true
		switch key {
		case "name":
			cur.Name = value
		case "ip_address":
			cur.IPAddress = value
		case "hw_address":
			cur.HWAddress = NormaliseMAC(value)
		case "identifier":
			cur.Identifier = NormaliseMAC(value)
		case "lease":
			cur.Lease = value
			cur.Expires, _ = parseLeaseHex(value)
		}
	}
	flush()
	if !recognised {
		return nil, unrecognised(kind, leasesExpected, lines)
	}
	return leases, nil
}

func isLeaseKey(key string) bool {
	switch key {
	case "name", "ip_address", "hw_address", "identifier", "lease":
		return true
	}
	return false
}
