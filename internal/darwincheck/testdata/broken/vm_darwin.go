//go:build darwin && arm64

package broken

import "github.com/Code-Hex/vz/v3"

// NewConfig exercises vz, including an arm64-only method, to prove that the
// checker sees the darwin/arm64 file set.
func NewConfig(kernel string) (*vz.VirtualMachineConfiguration, error) {
	boot, err := vz.NewLinuxBootLoader(kernel)
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
	return cfg, nil
}
