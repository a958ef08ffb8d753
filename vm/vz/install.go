package vz

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Installer installs macOS from a restore image; the darwin mapping is
// Virtualization.framework's, elsewhere every method explains that it
// needs a Mac.
type Installer interface {
	// LatestURL is the URL of the newest restore image this host supports.
	LatestURL(ctx context.Context) (string, error)
	// Requirements reads what the restore image at ipsw needs of a VM on
	// this host.
	Requirements(ctx context.Context, ipsw string) (Requirements, error)
	// NewMachineIdentifier is a fresh machine identifier's data
	// representation (config.json ecid).
	NewMachineIdentifier() ([]byte, error)
	// Install creates nvram.bin in the bundle in dir, whose config.json
	// and disk.img exist, and installs macOS from ipsw onto it, reporting
	// the fraction done through progress.
	Install(ctx context.Context, dir, ipsw string, progress func(fraction float64)) error
}

// Requirements is what a restore image needs of a VM on this host.
type Requirements struct {
	HardwareModel []byte // the data representation (config.json hardwareModel)
	MinCPUCount   int
	MinMemorySize uint64
	OSVersion     string // "15.3.1"
	Build         string // "24D70"
}

// Sizes of a new image when the caller does not choose.
const (
	DefaultCPUCount   = 4
	DefaultMemorySize = 8 << 30
	DefaultDiskSize   = 80 << 30
	// MinDiskSize: macOS needs about this much to install and then to
	// apply one update.
	MinDiskSize = 32 << 30
)

// newImageDisplay is the display of a new image: tart's default for macOS.
var newImageDisplay = Display{Width: 1920, Height: 1200}

// sizeUnit: the framework wants memory in whole MiB, and a raw disk of
// whole sectors; whole MiB keep both simple.
const sizeUnit = 1 << 20

// CreateOptions describe the image Create makes. Zero sizes take the
// defaults; the image's minimums win over smaller ones.
type CreateOptions struct {
	Store      string
	Name       string
	IPSW       string // a restore image on this machine (see ResolveIPSW)
	CPUCount   int
	MemorySize uint64
	DiskSize   int64
	Installer  Installer
	Random     io.Reader // draws the MAC address; nil: crypto/rand
	// Progress, if set, gets the fraction of the installation done.
	Progress func(fraction float64)
}

// CreateResult is the image Create made.
type CreateResult struct {
	Dir        string
	CPUCount   int
	MemorySize uint64
	DiskSize   int64
	MACAddress string
	OSVersion  string
	Build      string
	// Raised says which requests the image's minimums overrode.
	Raised []string
}

// CheckNewBundle says whether name can be a new bundle in store and
// returns its folder; callers check before fetching a restore image of
// many gigabytes.
func CheckNewBundle(store, name string) (string, error) {
	if !namePart.MatchString(name) || name == ClonesDir || name == IPSWDir {
		return "", fmt.Errorf("%q is not a usable bundle name (letters, digits, dots, dashes, underscores, starting with a letter or digit; not %q or %q, which the store uses)", name, ClonesDir, IPSWDir)
	}
	dir := filepath.Join(store, name)
	if _, err := os.Lstat(dir); err == nil {
		return "", fmt.Errorf("%s exists already (choose another name, or delete it)", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("check %s: %w", dir, err)
	}
	return dir, nil
}

// Create makes the golden bundle o.Name in o.Store by installing macOS
// from o.IPSW. It builds in a hidden folder and renames it into place only
// when the installation succeeded: on failure or cancel nothing is left.
func Create(ctx context.Context, o CreateOptions) (res CreateResult, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("create image %s: %w", o.Name, err)
		}
	}()
	if res, err = o.Check(); err != nil {
		return res, err
	}
	dst := res.Dir
	if o.Installer == nil {
		return res, errors.New("no installer")
	}

	// The framework does not follow symlinks in a restore image's path,
	// and /tmp and /var/folders are symlinks on macOS (tart resolves them
	// before loading too). Unverified on macOS.
	real, err := filepath.EvalSymlinks(o.IPSW)
	if err != nil {
		return res, fmt.Errorf("restore image %s: %w", o.IPSW, err)
	}
	o.IPSW = real

	req, err := o.Installer.Requirements(ctx, o.IPSW)
	if err != nil {
		return res, fmt.Errorf("read the restore image %s: %w", o.IPSW, err)
	}
	if len(req.HardwareModel) == 0 {
		return res, fmt.Errorf("read the restore image %s: it names no hardware model", o.IPSW)
	}
	res.OSVersion, res.Build = req.OSVersion, req.Build
	if req.MinCPUCount > res.CPUCount {
		res.CPUCount = req.MinCPUCount
		res.Raised = append(res.Raised, fmt.Sprintf("CPUs raised to %d, the image's minimum", req.MinCPUCount))
	}
	if req.MinMemorySize > res.MemorySize {
		res.MemorySize = roundUp(req.MinMemorySize, sizeUnit)
		res.Raised = append(res.Raised, fmt.Sprintf("memory raised to %d MiB, the image's minimum", res.MemorySize/sizeUnit))
	}

	random := o.Random
	if random == nil {
		random = rand.Reader
	}
	if res.MACAddress, err = RandomMAC(random); err != nil {
		return res, err
	}
	ecid, err := o.Installer.NewMachineIdentifier()
	if err != nil {
		return res, fmt.Errorf("make a machine identifier: %w", err)
	}
	config, err := newConfigJSON(res, req, ecid)
	if err != nil {
		return res, err
	}

	progress := o.Progress
	if progress == nil {
		progress = func(float64) {}
	}
	err = buildBundle(dst, func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, ConfigFile), config, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", ConfigFile, err)
		}
		if err := makeDisk(filepath.Join(tmp, DiskFile), res.DiskSize); err != nil {
			return err
		}
		if err := o.Installer.Install(ctx, tmp, o.IPSW, progress); err != nil {
			return fmt.Errorf("install macOS from %s: %w (the partial bundle was removed)", o.IPSW, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("install macOS from %s: %w (the partial bundle was removed)", o.IPSW, err)
		}
		b, err := LoadBundle(tmp)
		if err == nil {
			err = b.CheckBootable()
		}
		if err != nil {
			return fmt.Errorf("the installer finished but left an unusable bundle: %w", err)
		}
		return nil
	})
	return res, err
}

// Check says whether Create can make the image o describes, before any
// restore image is fetched, and returns its folder and sizes (before the
// image's minimums apply). Create checks again.
func (o CreateOptions) Check() (CreateResult, error) {
	dst, err := CheckNewBundle(o.Store, o.Name)
	if err != nil {
		return CreateResult{}, err
	}
	res := CreateResult{Dir: dst, CPUCount: o.CPUCount, MemorySize: o.MemorySize, DiskSize: o.DiskSize}
	return res, res.defaults()
}

// defaults fills in and checks the sizes asked for.
func (r *CreateResult) defaults() error {
	if r.CPUCount == 0 {
		r.CPUCount = DefaultCPUCount
	}
	if r.MemorySize == 0 {
		r.MemorySize = DefaultMemorySize
	}
	if r.DiskSize == 0 {
		r.DiskSize = DefaultDiskSize
	}
	switch {
	case r.CPUCount < 0:
		return fmt.Errorf("CPU count %d: give at least 1", r.CPUCount)
	case r.MemorySize%sizeUnit != 0:
		return fmt.Errorf("memory size %d bytes: give whole MiB (Virtualization.framework wants a multiple of 1 MiB)", r.MemorySize)
	case r.DiskSize < MinDiskSize:
		return fmt.Errorf("disk size %d MiB is below the %d GiB minimum (macOS needs that room to install, and to apply updates later)", r.DiskSize/sizeUnit, MinDiskSize>>30)
	case r.DiskSize%sizeUnit != 0:
		return fmt.Errorf("disk size %d bytes: give whole MiB", r.DiskSize)
	}
	return nil
}

func roundUp(n, unit uint64) uint64 { return (n + unit - 1) / unit * unit }

// newConfig is config.json as tart writes it, keys in tart's order.
type newConfig struct {
	Version       int     `json:"version"`
	OS            string  `json:"os"`
	Arch          string  `json:"arch"`
	CPUCountMin   int     `json:"cpuCountMin"`
	CPUCount      int     `json:"cpuCount"`
	MemorySizeMin uint64  `json:"memorySizeMin"`
	MemorySize    uint64  `json:"memorySize"`
	MACAddress    string  `json:"macAddress"`
	Display       Display `json:"display"`
	DiskFormat    string  `json:"diskFormat"`
	HardwareModel string  `json:"hardwareModel"`
	ECID          string  `json:"ecid"`
}

// newConfigJSON encodes the new bundle's config.json and reads it back,
// so that a mistake here shows before the long installation.
func newConfigJSON(res CreateResult, req Requirements, ecid []byte) ([]byte, error) {
	if len(ecid) == 0 {
		return nil, errors.New("make a machine identifier: the framework gave an empty one")
	}
	c := newConfig{
		Version: 1, OS: defaultOS, Arch: defaultArch,
		CPUCountMin: req.MinCPUCount, CPUCount: res.CPUCount,
		MemorySizeMin: req.MinMemorySize, MemorySize: res.MemorySize,
		MACAddress: res.MACAddress, Display: newImageDisplay, DiskFormat: defaultDiskFormat,
		HardwareModel: base64.StdEncoding.EncodeToString(req.HardwareModel),
		ECID:          base64.StdEncoding.EncodeToString(ecid),
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ConfigFile, err)
	}
	if _, err := ParseConfig(data); err != nil {
		return nil, fmt.Errorf("encode %s: %w", ConfigFile, err)
	}
	return append(data, '\n'), nil
}

// makeDisk makes an empty raw disk of size bytes, sparse: it takes no
// room until macOS writes to it.
func makeDisk(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("make the disk %s: %w", DiskFile, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("make the disk %s (%d GiB, sparse): %w", DiskFile, size>>30, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("make the disk %s: %w", DiskFile, err)
	}
	return nil
}

// installCancelWait bounds the wait for a cancelled installer to run its
// completion handler.
const installCancelWait = 2 * time.Minute

// waitCancelled waits until done is closed or limit passes; it reports
// whether done closed.
func waitCancelled(done <-chan struct{}, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
