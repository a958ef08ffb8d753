//go:build !darwin

package vz

import (
	"fmt"
	"runtime"
)

func hostMacOSVersion() (string, error) {
	return "", fmt.Errorf("this host runs %s, not macOS", runtime.GOOS)
}
