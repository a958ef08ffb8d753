//go:build cgo

package vz

// The installer's mapping onto Virtualization.framework: the choices
// (sizes, names, the folder dance) are made in install.go.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	vzf "github.com/Code-Hex/vz/v3"
)

// installPollEvery is how often the installation's progress is read.
const installPollEvery = 500 * time.Millisecond

// NewInstaller returns Virtualization.framework's macOS installer.
func NewInstaller() Installer { return frameworkInstaller{} }

type frameworkInstaller struct{}

func (frameworkInstaller) LatestURL(ctx context.Context) (string, error) {
	type answer struct {
		url string
		err error
	}
	// The framework's fetch takes no context; a cancelled caller leaves it
	// to finish on its own into the buffered channel.
	ch := make(chan answer, 1)
	go func() {
		u, err := vzf.GetLatestSupportedMacOSRestoreImageURL()
		ch <- answer{u, err}
	}()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case a := <-ch:
		if a.err != nil {
			return "", frameworkError("ask Apple for the latest restore image this host supports", a.err)
		}
		if a.url == "" {
			return "", &VMError{Msg: "ask Apple for the latest restore image this host supports: the framework gave no URL"}
		}
		return a.url, nil
	}
}

func (frameworkInstaller) Requirements(ctx context.Context, ipsw string) (Requirements, error) {
	if err := ctx.Err(); err != nil {
		return Requirements{}, err
	}
	img, err := vzf.LoadMacOSRestoreImageFromPath(ipsw)
	if err != nil {
		return Requirements{}, frameworkError("load the restore image", err)
	}
	r := Requirements{OSVersion: img.OperatingSystemVersion().String(), Build: img.BuildVersion()}
	unsupported := func() error {
		v, _ := hostMacOSVersion()
		return &VMError{Kind: KindUnsupportedModel, Msg: fmt.Sprintf(
			"the restore image (macOS %s, build %s) has no hardware model that macOS %s on this host supports: the host macOS is too old for this image; update the host, or use an older restore image", r.OSVersion, r.Build, v)}
	}
	// The framework has no configuration for a too-new image; the binding
	// then reads zeros rather than giving nil.
	req := img.MostFeaturefulSupportedConfiguration()
	if req == nil || req.MinimumSupportedCPUCount() == 0 {
		return r, unsupported()
	}
	hw := req.HardwareModel()
	if hw == nil || !hw.Supported() || len(hw.DataRepresentation()) == 0 {
		return r, unsupported()
	}
	r.HardwareModel = bytes.Clone(hw.DataRepresentation())
	r.MinCPUCount = int(req.MinimumSupportedCPUCount())
	r.MinMemorySize = req.MinimumSupportedMemorySize()
	return r, nil
}

func (frameworkInstaller) NewMachineIdentifier() ([]byte, error) {
	id, err := vzf.NewMacMachineIdentifier()
	if err != nil {
		return nil, frameworkError("make a machine identifier", err)
	}
	return bytes.Clone(id.DataRepresentation()), nil
}

func (frameworkInstaller) Install(ctx context.Context, dir, ipsw string, progress func(float64)) error {
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return fmt.Errorf("read %s: %w", ConfigFile, err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return err
	}
	hw, err := vzf.NewMacHardwareModelWithData(c.HardwareModel)
	if err != nil {
		return frameworkError("read config.json hardwareModel", err)
	}
	if _, err := vzf.NewMacAuxiliaryStorage(filepath.Join(dir, NVRAMFile), vzf.WithCreatingMacAuxiliaryStorage(hw)); err != nil {
		return frameworkError("create "+NVRAMFile, err)
	}
	b, err := LoadBundle(dir)
	if err != nil {
		return err
	}
	cfg, err := configure(b, false)
	if err != nil {
		return err
	}
	if _, err := cfg.Validate(); err != nil {
		return frameworkError("the VM configuration is invalid", err)
	}
	m, err := vzf.NewVirtualMachine(cfg)
	if err != nil {
		return frameworkError("create the VM", err)
	}
	inst, err := vzf.NewMacOSInstaller(m, ipsw)
	if err != nil {
		return frameworkError("start the installer", err)
	}
	// Install cancels the installation when ctx ends, but returns then
	// without waiting for the installer's completion handler (vz v3.7.1's
	// MacOSInstaller.Install): wait for Done too, so no installer still
	// writes into dir once this returns and dir is removed.
	done := make(chan error, 1)
	go func() { done <- inst.Install(ctx) }()
	tick := time.NewTicker(installPollEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			switch {
			case ctx.Err() != nil:
				if !waitCancelled(inst.Done(), installCancelWait) {
					return fmt.Errorf("%w (the installer had not finished %s after being cancelled; unverified on macOS)", ctx.Err(), installCancelWait)
				}
				return ctx.Err()
			case err != nil:
				return frameworkError("install macOS", err)
			}
			progress(1)
			return nil
		case <-tick.C:
			progress(inst.FractionCompleted())
		}
	}
}
