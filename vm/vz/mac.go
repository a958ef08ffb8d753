package vz

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/sxlab/sxlab/guest"
)

// ParseMAC reads a guest MAC address as tart writes it ("7a:47:bb:5f:97:c9")
// or bootpd prints it (unpadded octets, "1," prefix). The guest's NIC needs
// a unicast address.
func ParseMAC(s string) (net.HardwareAddr, error) {
	norm := guest.NormaliseMAC(s)
	hw, err := net.ParseMAC(norm)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("%q is not a MAC address (six hex octets joined by colons)", s)
	}
	if hw[0]&0x01 != 0 {
		return nil, fmt.Errorf("%q is a multicast address; a guest NIC needs a unicast one", s)
	}
	return hw, nil
}

// FormatMAC writes a MAC address the way tart does: lowercase, two digits
// per octet.
func FormatMAC(hw net.HardwareAddr) string { return strings.ToLower(hw.String()) }

// IsLocallyAdministered reports whether the address is one nobody's
// hardware was assigned (bit 1 of the first octet).
func IsLocallyAdministered(hw net.HardwareAddr) bool { return len(hw) > 0 && hw[0]&0x02 != 0 }

// RandomMAC draws a locally administered unicast address, as Virtualization
// framework's randomLocallyAdministered does, from r (crypto/rand in use).
func RandomMAC(r io.Reader) (string, error) {
	b := make([]byte, 6)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("draw a MAC address: %w", err)
	}
	b[0] = (b[0] | 0x02) &^ 0x01
	return FormatMAC(b), nil
}

// CloneMAC is the MAC address a clone of a golden with MAC golden gets. A
// clone that restores the golden's saved state keeps the golden's address,
// since the framework restores a state only onto the device set, MAC
// included, that it was saved with; any other clone gets a fresh random
// address, so clones running side by side get their own DHCP leases.
func CloneMAC(golden string, restore bool, r io.Reader) (string, error) {
	g, err := ParseMAC(golden)
	if err != nil {
		return "", fmt.Errorf("golden's macAddress: %w", err)
	}
	if restore {
		return FormatMAC(g), nil
	}
	for range 4 {
		mac, err := RandomMAC(r)
		if err != nil {
			return "", err
		}
		if mac != FormatMAC(g) {
			return mac, nil
		}
	}
	return "", errors.New("draw a MAC address: the random source keeps repeating the golden's address")
}
