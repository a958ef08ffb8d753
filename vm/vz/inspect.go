package vz

// Inspection is what `sxlab image inspect` prints about a bundle.
type Inspection struct {
	Path                 string  `json:"path"`
	OS                   string  `json:"os"`
	Arch                 string  `json:"arch"`
	CPUCount             int     `json:"cpu_count"`
	MemorySize           uint64  `json:"memory_size"`
	MACAddress           string  `json:"mac_address"`
	Display              Display `json:"display"`
	DiskFormat           string  `json:"disk_format"`
	HasHardwareModel     bool    `json:"has_hardware_model"`
	HasMachineIdentifier bool    `json:"has_machine_identifier"`
	HasSavedState        bool    `json:"has_saved_state"`
	DiskBytes            int64   `json:"disk_bytes"`
	// Unbootable is empty when sxlab can boot the bundle, else says why not.
	Unbootable string `json:"unbootable,omitempty"`
}

// Inspect loads the bundle in dir and describes it. A malformed or partial
// bundle is an error naming the file and field; a well-formed one sxlab
// cannot boot (a Linux guest, no hardware model) is described, with why in
// Unbootable.
func Inspect(dir string) (Inspection, error) {
	b, err := LoadBundle(dir)
	if err != nil {
		return Inspection{}, err
	}
	c := b.Config
	in := Inspection{
		Path: b.Dir, OS: c.OS, Arch: c.Arch, CPUCount: c.CPUCount, MemorySize: c.MemorySize,
		MACAddress: c.MACAddress, Display: c.Display, DiskFormat: c.DiskFormat,
		HasHardwareModel: c.HardwareModel != nil, HasMachineIdentifier: c.MachineIdentifier != nil,
		HasSavedState: b.HasSavedState, DiskBytes: b.DiskBytes,
	}
	if err := b.CheckBootable(); err != nil {
		in.Unbootable = err.Error()
	}
	return in, nil
}
