//go:build !(darwin && arm64 && cgo)

package vz

import (
	"context"
	"fmt"
	"runtime"
)

// NewInstaller returns Virtualization.framework's installer on an Apple
// Silicon Mac; here one that explains why there is none.
func NewInstaller() Installer { return noInstaller{} }

type noInstaller struct{}

// err says what creating an image needs and what works on this host.
func (noInstaller) err() error {
	why := fmt.Sprintf("this is %s/%s", runtime.GOOS, runtime.GOARCH)
	if runtime.GOOS == "darwin" && runtime.GOARCH == "arm64" {
		why = "this binary was built without cgo (build with CGO_ENABLED=1, see scripts/sign.sh)"
	}
	return fmt.Errorf("%w (creating an image needs macOS 13 or later there; %s). Here, `sxlab image import-tart` brings in a bundle made on a Mac, and the sim provider runs labs without one", ErrUnsupportedHost, why)
}

func (i noInstaller) LatestURL(context.Context) (string, error) { return "", i.err() }

func (i noInstaller) Requirements(context.Context, string) (Requirements, error) {
	return Requirements{}, i.err()
}

func (i noInstaller) NewMachineIdentifier() ([]byte, error) { return nil, i.err() }

func (i noInstaller) Install(context.Context, string, string, func(float64)) error { return i.err() }
