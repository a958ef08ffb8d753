//go:build !darwin

package main

import (
	"errors"
	"net"
	"runtime"
)

// listenVsock exists only in a macOS guest here; Linux tests give run a
// TCP or unix listener instead.
func listenVsock(port uint32) (net.Listener, error) {
	return nil, errors.New("sxlab-agent listens on vsock only on macOS; this is " + runtime.GOOS)
}
