//go:build darwin && arm64

package fine

import "github.com/Code-Hex/vz/v3"

// NewMachine uses vz, including ValidateSaveRestoreSupport, which vz only
// defines on arm64.
func NewMachine(kernel string) (*vz.VirtualMachine, error) {
	boot, err := vz.NewLinuxBootLoader(kernel, vz.WithCommandLine("console=hvc0"))
	if err != nil {
		return nil, err
	}
	cfg, err := vz.NewVirtualMachineConfiguration(boot, 2, 1<<30)
	if err != nil {
		return nil, err
	}
	if _, err := cfg.ValidateSaveRestoreSupport(); err != nil {
		return nil, err
	}
	return vz.NewVirtualMachine(cfg)
}
