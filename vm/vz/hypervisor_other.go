//go:build !(darwin && arm64 && cgo)

package vz

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrUnsupportedHost is what NewHypervisor returns off Apple Silicon Macs.
var ErrUnsupportedHost = errors.New("vz needs macOS on Apple Silicon")

// NewHypervisor returns Virtualization.framework on an Apple Silicon Mac;
// here it explains why there is none.
func NewHypervisor() (Hypervisor, error) {
	if runtime.GOOS == "darwin" && runtime.GOARCH == "arm64" {
		return nil, fmt.Errorf("%w: this binary was built without cgo (build with CGO_ENABLED=1, see scripts/sign.sh)", ErrUnsupportedHost)
	}
	return nil, fmt.Errorf("%w (this is %s/%s); the sim and ssh providers work here", ErrUnsupportedHost, runtime.GOOS, runtime.GOARCH)
}
