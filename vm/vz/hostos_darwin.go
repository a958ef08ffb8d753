//go:build darwin

package vz

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// hostMacOSVersion is the host's macOS product version, e.g. "15.3.1".
func hostMacOSVersion() (string, error) {
	v, err := unix.Sysctl("kern.osproductversion")
	if err != nil {
		return "", fmt.Errorf("read the host's macOS version: %w", err)
	}
	return v, nil
}
