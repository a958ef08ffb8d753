//go:build cgo

package vz

// The mapping: a Bundle onto Virtualization.framework through
// github.com/Code-Hex/vz/v3. Kept thin on purpose; every decision that
// can be made in pure Go is made elsewhere in this package and tested on
// Linux. The darwin check (internal/darwincheck) type-checks this file.

import (
	"context"
	"errors"
	"fmt"
	"net"

	vzf "github.com/Code-Hex/vz/v3"
)

// pixelsPerInch of the guest's display when no host screen is there to
// take it from (headless Mac minis): the classic screen density.
const pixelsPerInch = 72

// NewHypervisor returns Virtualization.framework.
func NewHypervisor() (Hypervisor, error) { return framework{}, nil }

type framework struct{}

func (framework) CanRestore() bool { return HostCanRestore() }

// New builds the VM configuration of b, validates it and makes the VM.
func (framework) New(b *Bundle, forRestore bool) (VM, error) {
	if err := b.CheckBootable(); err != nil {
		return nil, err
	}
	cfg, err := configure(b, forRestore)
	if err != nil {
		return nil, err
	}
	if _, err := cfg.Validate(); err != nil {
		return nil, frameworkError("the VM configuration is invalid", err)
	}
	if forRestore {
		if _, err := cfg.ValidateSaveRestoreSupport(); err != nil {
			return nil, frameworkError("the VM configuration cannot restore a saved state", err)
		}
	}
	m, err := vzf.NewVirtualMachine(cfg)
	if err != nil {
		return nil, frameworkError("create the VM", err)
	}
	return &machine{vm: m}, nil
}

// configure maps the bundle onto a configuration: Mac platform, macOS boot
// loader, one virtio disk, NAT networking with the bundle's MAC, one
// display, Mac keyboard and trackpad, and entropy unless restoring (the
// saved state has none).
func configure(b *Bundle, forRestore bool) (*vzf.VirtualMachineConfiguration, error) {
	c := b.Config
	hw, err := vzf.NewMacHardwareModelWithData(c.HardwareModel)
	if err != nil {
		return nil, frameworkError("read config.json hardwareModel", err)
	}
	if !hw.Supported() {
		v, _ := hostMacOSVersion()
		return nil, &VMError{Kind: KindUnsupportedModel, Msg: fmt.Sprintf("hardwareModel of %s is not supported on macOS %s", b.Dir, v)}
	}
	id, err := vzf.NewMacMachineIdentifierWithData(c.MachineIdentifier)
	if err != nil {
		return nil, frameworkError("read config.json ecid", err)
	}
	aux, err := vzf.NewMacAuxiliaryStorage(b.Path(NVRAMFile))
	if err != nil {
		return nil, frameworkError("open nvram.bin", err)
	}
	platform, err := vzf.NewMacPlatformConfiguration(
		vzf.WithMacHardwareModel(hw),
		vzf.WithMacMachineIdentifier(id),
		vzf.WithMacAuxiliaryStorage(aux),
	)
	if err != nil {
		return nil, frameworkError("configure the Mac platform", err)
	}
	boot, err := vzf.NewMacOSBootLoader()
	if err != nil {
		return nil, frameworkError("configure the macOS boot loader", err)
	}
	cfg, err := vzf.NewVirtualMachineConfiguration(boot, uint(c.CPUCount), c.MemorySize)
	if err != nil {
		return nil, frameworkError("configure the VM", err)
	}
	cfg.SetPlatformVirtualMachineConfiguration(platform)

	disk, err := vzf.NewDiskImageStorageDeviceAttachment(b.Path(DiskFile), false)
	if err != nil {
		return nil, frameworkError("open disk.img", err)
	}
	block, err := vzf.NewVirtioBlockDeviceConfiguration(disk)
	if err != nil {
		return nil, frameworkError("configure the disk", err)
	}
	cfg.SetStorageDevicesVirtualMachineConfiguration([]vzf.StorageDeviceConfiguration{block})

	hwAddr, err := ParseMAC(c.MACAddress)
	if err != nil {
		return nil, fmt.Errorf("config.json macAddress: %w", err)
	}
	nic, err := natNIC(hwAddr)
	if err != nil {
		return nil, err
	}
	cfg.SetNetworkDevicesVirtualMachineConfiguration([]*vzf.VirtioNetworkDeviceConfiguration{nic})

	gfx, err := vzf.NewMacGraphicsDeviceConfiguration()
	if err != nil {
		return nil, frameworkError("configure the graphics device", err)
	}
	display, err := vzf.NewMacGraphicsDisplayConfiguration(int64(c.Display.Width), int64(c.Display.Height), pixelsPerInch)
	if err != nil {
		return nil, frameworkError("configure the display", err)
	}
	gfx.SetDisplays(display)
	cfg.SetGraphicsDevicesVirtualMachineConfiguration([]vzf.GraphicsDeviceConfiguration{gfx})

	kbd, err := keyboard()
	if err != nil {
		return nil, err
	}
	cfg.SetKeyboardsVirtualMachineConfiguration([]vzf.KeyboardConfiguration{kbd})
	ptr, err := pointer()
	if err != nil {
		return nil, err
	}
	cfg.SetPointingDevicesVirtualMachineConfiguration([]vzf.PointingDeviceConfiguration{ptr})

	// One virtio-socket device in every configuration, cold boot, warm
	// and restore alike: a saved state restores only into the device set
	// it was saved with. The guest agent listens on it (vm.AgentPort).
	sock, err := vzf.NewVirtioSocketDeviceConfiguration()
	if err != nil {
		return nil, frameworkError("configure the virtio-socket device", err)
	}
	cfg.SetSocketDevicesVirtualMachineConfiguration([]vzf.SocketDeviceConfiguration{sock})

	if !forRestore {
		entropy, err := vzf.NewVirtioEntropyDeviceConfiguration()
		if err != nil {
			return nil, frameworkError("configure the entropy device", err)
		}
		cfg.SetEntropyDevicesVirtualMachineConfiguration([]*vzf.VirtioEntropyDeviceConfiguration{entropy})
	}
	return cfg, nil
}

func natNIC(hw net.HardwareAddr) (*vzf.VirtioNetworkDeviceConfiguration, error) {
	nat, err := vzf.NewNATNetworkDeviceAttachment()
	if err != nil {
		return nil, frameworkError("configure NAT networking", err)
	}
	nic, err := vzf.NewVirtioNetworkDeviceConfiguration(nat)
	if err != nil {
		return nil, frameworkError("configure the network device", err)
	}
	mac, err := vzf.NewMACAddress(hw)
	if err != nil {
		return nil, frameworkError("set the MAC address", err)
	}
	nic.SetMACAddress(mac)
	return nic, nil
}

// keyboard is the Mac keyboard (macOS 14+ hosts), else a USB one.
func keyboard() (vzf.KeyboardConfiguration, error) {
	if k, err := vzf.NewMacKeyboardConfiguration(); err == nil {
		return k, nil
	}
	k, err := vzf.NewUSBKeyboardConfiguration()
	if err != nil {
		return nil, frameworkError("configure the keyboard", err)
	}
	return k, nil
}

// pointer is the Mac trackpad (macOS 13+ hosts), else a USB pointer.
func pointer() (vzf.PointingDeviceConfiguration, error) {
	if t, err := vzf.NewMacTrackpadConfiguration(); err == nil {
		return t, nil
	}
	p, err := vzf.NewUSBScreenCoordinatePointingDeviceConfiguration()
	if err != nil {
		return nil, frameworkError("configure the pointing device", err)
	}
	return p, nil
}

// frameworkError sorts a framework error into a *VMError a user can act
// on, keeping what was being done.
func frameworkError(doing string, err error) error {
	var ns *vzf.NSError
	if errors.As(err, &ns) {
		// Every field survives: the cause is often in user-info only.
		return NewFrameworkError(doing, NSErrorInfo{Domain: ns.Domain, Code: ns.Code,
			Description: ns.LocalizedDescription, UserInfo: ns.UserInfo})
	}
	if errors.Is(err, vzf.ErrUnsupportedOSVersion) {
		v, _ := hostMacOSVersion()
		return &VMError{Msg: fmt.Sprintf("%s: needs a newer macOS than %s on this host", doing, v)}
	}
	return &VMError{Kind: ClassifyFrameworkError("", 0, err.Error()), Msg: doing + ": " + err.Error()}
}

// machine is a framework VM behind the VM interface.
type machine struct{ vm *vzf.VirtualMachine }

func (m *machine) Start(context.Context) error {
	if err := m.vm.Start(); err != nil {
		return frameworkError("start", err)
	}
	return nil
}

func (m *machine) Restore(_ context.Context, path string) error {
	if err := m.vm.RestoreMachineStateFromURL(path); err != nil {
		return frameworkError("restore "+path, err)
	}
	if err := m.vm.Resume(); err != nil {
		return frameworkError("resume after restoring "+path, err)
	}
	return nil
}

func (m *machine) Stop(context.Context) error {
	if !m.vm.CanStop() {
		return &VMError{Msg: fmt.Sprintf("the VM cannot be stopped in state %s", m.State())}
	}
	if err := m.vm.Stop(); err != nil {
		return frameworkError("stop", err)
	}
	return nil
}

func (m *machine) RequestStop(context.Context) error {
	if _, err := m.vm.RequestStop(); err != nil {
		return frameworkError("request stop", err)
	}
	return nil
}

func (m *machine) Save(_ context.Context, path string) error {
	if m.vm.State() == vzf.VirtualMachineStateRunning {
		if err := m.vm.Pause(); err != nil {
			return frameworkError("pause", err)
		}
	}
	if err := m.vm.SaveMachineStateToPath(path); err != nil {
		return frameworkError("save "+path, err)
	}
	return nil
}

// Connect opens a stream to a guest vsock port. The framework documents
// that a connect to a port nobody listens on "does nothing", so ctx bounds
// the wait; a connection that arrives after it is closed.
func (m *machine) Connect(ctx context.Context, port uint32) (net.Conn, error) {
	devs := m.vm.SocketDevices()
	if len(devs) == 0 {
		return nil, &VMError{Msg: "the VM has no virtio-socket device (a golden warmed by an older sxlab? warm it again)"}
	}
	type result struct {
		c   *vzf.VirtioSocketConnection
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := devs[0].Connect(port)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, frameworkError(fmt.Sprintf("connect to guest vsock port %d", port), r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("connect to guest vsock port %d: no answer: %w (is sxlab-agent running in the guest?)", port, ctx.Err())
	}
}

func (m *machine) State() State { return stateOf(m.vm.State()) }

func (m *machine) StateChanges() <-chan State {
	in := m.vm.StateChangedNotify()
	out := make(chan State, 16)
	go func() {
		defer close(out)
		for s := range in {
			out <- stateOf(s)
		}
	}()
	return out
}

func stateOf(s vzf.VirtualMachineState) State {
	switch s {
	case vzf.VirtualMachineStateStopped:
		return StateStopped
	case vzf.VirtualMachineStateRunning:
		return StateRunning
	case vzf.VirtualMachineStatePaused:
		return StatePaused
	case vzf.VirtualMachineStateError:
		return StateError
	case vzf.VirtualMachineStateStarting:
		return StateStarting
	case vzf.VirtualMachineStatePausing:
		return StatePausing
	case vzf.VirtualMachineStateResuming:
		return StateResuming
	case vzf.VirtualMachineStateStopping:
		return StateStopping
	case vzf.VirtualMachineStateSaving:
		return StateSaving
	case vzf.VirtualMachineStateRestoring:
		return StateRestoring
	}
	return State(fmt.Sprintf("unknown(%d)", int(s)))
}
