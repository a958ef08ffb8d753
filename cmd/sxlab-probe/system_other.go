//go:build !darwin

package main

import (
	"errors"
	"runtime"
)

// openSystem fails off macOS: there is no launchd or libxpc to ask.
func openSystem() (system, error) {
	return nil, errors.New("sxlab-probe needs macOS (launchd and libxpc); this is " + runtime.GOOS + "/" + runtime.GOARCH)
}
