package vz

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files of a tart-compatible bundle.
const (
	ConfigFile = "config.json"
	DiskFile   = "disk.img"
	NVRAMFile  = "nvram.bin"
	StateFile  = "state.vzvmsave"
)

// What a bundle can get wrong; every *BundleError wraps one of these, so
// callers (and tests) can tell the cases apart with errors.Is.
var (
	ErrMissingFile  = errors.New("missing")
	ErrTruncated    = errors.New("truncated")
	ErrNotJSON      = errors.New("not JSON")
	ErrMissingField = errors.New("missing")
	ErrBadBase64    = errors.New("not base64")
	ErrBadValue     = errors.New("bad value")
)

// BundleError names the bundle, the file and, for config.json, the field
// that is wrong.
type BundleError struct {
	Bundle string // the bundle folder
	File   string // config.json, disk.img, ...; empty for the folder itself
	Field  string // a config.json key; empty for file-level problems
	Err    error  // wraps one of the Err* values above
}

func (e *BundleError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bundle %s: ", e.Bundle)
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Field != "" {
		b.WriteString("field " + e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *BundleError) Unwrap() error { return e.Err }

// Display is the guest's one screen, in pixels.
type Display struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// Defaults tart applies to keys it treats as optional.
const (
	defaultOS         = "darwin"
	defaultArch       = "arm64"
	defaultDiskFormat = "raw"
	defaultWidth      = 1024
	defaultHeight     = 768
)

// Config is a bundle's config.json as tart writes it. HardwareModel and
// MachineIdentifier are the decoded "hardwareModel" and "ecid" values: the
// framework's opaque data representations, nil when the key is absent.
type Config struct {
	Version           int
	OS                string
	Arch              string
	CPUCountMin       int
	CPUCount          int
	MemorySizeMin     uint64
	MemorySize        uint64
	MACAddress        string
	Display           Display
	DiskFormat        string
	HardwareModel     []byte
	MachineIdentifier []byte

	// raw keeps every key, also those sxlab does not know (tart adds keys
	// over time), so a clone's config.json differs from the golden's only
	// in what sxlab changes.
	raw map[string]json.RawMessage
}

// ParseConfig decodes config.json. Errors are *BundleError with File set to
// config.json and Bundle left for the caller to fill in.
func ParseConfig(data []byte) (Config, error) {
	fail := func(field string, err error) (Config, error) {
		return Config{}, &BundleError{File: ConfigFile, Field: field, Err: err}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fail("", jsonProblem(data, err))
	}
	if raw == nil {
		return fail("", fmt.Errorf("%w: the file holds null, not an object", ErrNotJSON))
	}
	c := Config{raw: raw, OS: defaultOS, Arch: defaultArch, DiskFormat: defaultDiskFormat,
		Display: Display{Width: defaultWidth, Height: defaultHeight}}

	type field struct {
		key      string
		dst      any
		required bool
	}
	var hwB64, ecidB64 string
	fields := []field{
		{"version", &c.Version, true},
		{"os", &c.OS, false},
		{"arch", &c.Arch, false},
		{"cpuCountMin", &c.CPUCountMin, true},
		{"cpuCount", &c.CPUCount, true},
		{"memorySizeMin", &c.MemorySizeMin, true},
		{"memorySize", &c.MemorySize, true},
		{"macAddress", &c.MACAddress, true},
		{"display", &c.Display, false},
		{"diskFormat", &c.DiskFormat, false},
		{"hardwareModel", &hwB64, false},
		{"ecid", &ecidB64, false},
	}
	for _, f := range fields {
		v, ok := raw[f.key]
		if !ok || string(v) == "null" {
			if f.required {
				return fail(f.key, ErrMissingField)
			}
			continue
		}
		if err := decodeStrict(v, f.dst); err != nil {
			return fail(f.key, fmt.Errorf("%w: %s", ErrBadValue, typeProblem(v, err)))
		}
	}

	var err error
	if c.HardwareModel, err = decodeBase64(hwB64, raw["hardwareModel"]); err != nil {
		return fail("hardwareModel", err)
	}
	if c.MachineIdentifier, err = decodeBase64(ecidB64, raw["ecid"]); err != nil {
		return fail("ecid", err)
	}

	switch {
	case c.Version != 1:
		return fail("version", fmt.Errorf("%w: %d (sxlab reads version 1 of tart's format)", ErrBadValue, c.Version))
	case c.CPUCount < 1:
		return fail("cpuCount", fmt.Errorf("%w: %d (at least 1)", ErrBadValue, c.CPUCount))
	case c.CPUCount < c.CPUCountMin:
		return fail("cpuCount", fmt.Errorf("%w: %d is below cpuCountMin %d", ErrBadValue, c.CPUCount, c.CPUCountMin))
	case c.MemorySize == 0:
		return fail("memorySize", fmt.Errorf("%w: 0 bytes", ErrBadValue))
	case c.MemorySize < c.MemorySizeMin:
		return fail("memorySize", fmt.Errorf("%w: %d bytes is below memorySizeMin %d", ErrBadValue, c.MemorySize, c.MemorySizeMin))
	case c.Display.Width <= 0 || c.Display.Height <= 0:
		return fail("display", fmt.Errorf("%w: %dx%d (width and height must be positive pixel counts)", ErrBadValue, c.Display.Width, c.Display.Height))
	}
	if _, err := ParseMAC(c.MACAddress); err != nil {
		return fail("macAddress", fmt.Errorf("%w: %v", ErrBadValue, err))
	}
	return c, nil
}

// decodeStrict decodes one value, refusing a fraction where an integer is
// wanted (json would say so too, but with Go type names).
func decodeStrict(v json.RawMessage, dst any) error {
	d := json.NewDecoder(bytes.NewReader(v))
	return d.Decode(dst)
}

// typeProblem words a decoding error for a person: what was wanted, what
// the file has.
func typeProblem(v json.RawMessage, err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a " + te.Type.Kind().String()
		switch te.Type.Kind().String() {
		case "int", "int64", "uint64", "uint":
			want = "a whole number"
		case "string":
			want = "a string"
		case "struct":
			want = "an object"
		}
		if te.Field != "" {
			return fmt.Sprintf("%s: want %s, got %s", te.Field, want, te.Value)
		}
		return fmt.Sprintf("want %s, got %s", want, abbreviate(v))
	}
	return err.Error()
}

func abbreviate(v json.RawMessage) string {
	s := string(v)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

// jsonProblem tells a truncated file (an interrupted copy, a full disk)
// from one that is not JSON at all.
func jsonProblem(data []byte, err error) error {
	var se *json.SyntaxError
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return fmt.Errorf("%w: the file is empty", ErrTruncated)
	case errors.As(err, &se) && se.Error() == "unexpected end of JSON input":
		return fmt.Errorf("%w after %d bytes: the file ends inside a JSON value (was a copy interrupted?)", ErrTruncated, len(data))
	case errors.As(err, &se):
		line, col := position(data, se.Offset)
		return fmt.Errorf("%w: %v at line %d, column %d", ErrNotJSON, err, line, col)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%w: the file holds a JSON %s, not an object", ErrNotJSON, te.Value)
	}
	return fmt.Errorf("%w: %v", ErrNotJSON, err)
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:max(offset-1, 0)]
	line = bytes.Count(before, []byte("\n")) + 1
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// decodeBase64 decodes tart's base64 of a data representation; present is
// the raw JSON value, nil when the key is absent.
func decodeBase64(s string, present json.RawMessage) ([]byte, error) {
	if present == nil || string(present) == "null" {
		return nil, nil
	}
	if s == "" {
		return nil, fmt.Errorf("%w: empty string (the framework needs its data representation here)", ErrBadValue)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBase64, err)
	}
	return b, nil
}

// WithMAC returns config.json with macAddress replaced and every other key
// as it was.
func (c Config) WithMAC(mac string) ([]byte, error) {
	raw := make(map[string]json.RawMessage, len(c.raw)+1)
	for k, v := range c.raw {
		raw[k] = v
	}
	v, err := json.Marshal(mac)
	if err != nil {
		return nil, fmt.Errorf("encode macAddress: %w", err)
	}
	raw["macAddress"] = v
	out, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode config.json: %w", err)
	}
	return append(out, '\n'), nil
}

// Bundle is a machine on disk: a folder with config.json, disk.img,
// nvram.bin and, while suspended, state.vzvmsave.
type Bundle struct {
	Dir           string
	Config        Config
	DiskBytes     int64 // disk.img's size: the guest's disk
	HasSavedState bool
}

// runBy is the PID of the process that runs the bundle in dir (a worker,
// or tart, both of which lock its config.json), or 0 when none does.
func runBy(dir string) int {
	pid, err := lockHolder(filepath.Join(dir, ConfigFile))
	if err != nil || pid < 0 {
		return 0
	}
	return pid
}

// Path is the path of one of the bundle's files.
func (b *Bundle) Path(file string) string { return filepath.Join(b.Dir, file) }

// What each required file is, for the error when it is missing.
var requiredFiles = []struct{ name, what string }{
	{ConfigFile, "the machine description"},
	{DiskFile, "the guest's disk"},
	{NVRAMFile, "the guest's NVRAM (auxiliary storage), without which macOS cannot boot"},
}

// LoadBundle reads and checks the bundle in dir. Problems are *BundleError
// values naming the file and field.
func LoadBundle(dir string) (*Bundle, error) {
	fail := func(file string, err error) (*Bundle, error) {
		return nil, &BundleError{Bundle: dir, File: file, Err: err}
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail("", fmt.Errorf("%w: no such folder", ErrMissingFile))
	case err != nil:
		return fail("", err)
	case !st.IsDir():
		return fail("", fmt.Errorf("%w: not a folder (a bundle is a folder with %s, %s and %s)", ErrBadValue, ConfigFile, DiskFile, NVRAMFile))
	}
	b := &Bundle{Dir: dir}
	for _, f := range requiredFiles {
		fi, err := os.Stat(b.Path(f.name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fail(f.name, fmt.Errorf("%w: %s", ErrMissingFile, f.what))
		case err != nil:
			return fail(f.name, err)
		case !fi.Mode().IsRegular():
			return fail(f.name, fmt.Errorf("%w: not a regular file", ErrBadValue))
		case fi.Size() == 0:
			return fail(f.name, fmt.Errorf("%w: the file is empty", ErrTruncated))
		}
		if f.name == DiskFile {
			b.DiskBytes = fi.Size()
		}
	}
	data, err := os.ReadFile(b.Path(ConfigFile))
	if err != nil {
		return fail(ConfigFile, err)
	}
	if b.Config, err = ParseConfig(data); err != nil {
		var be *BundleError
		if errors.As(err, &be) {
			be.Bundle = dir
		}
		return nil, err
	}
	if fi, err := os.Stat(b.Path(StateFile)); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		b.HasSavedState = true
	}
	return b, nil
}

// Disk formats Virtualization.framework opens: raw images, and ASIF
// (Apple sparse image format, macOS 26 hosts).
var diskFormats = []string{"raw", "asif"}

// CheckBootable says why sxlab cannot boot the bundle as a macOS guest on
// Apple Silicon, or nil.
func (b *Bundle) CheckBootable() error {
	fail := func(field string, format string, args ...any) error {
		return &BundleError{Bundle: b.Dir, File: ConfigFile, Field: field, Err: fmt.Errorf("%w: "+format, append([]any{ErrBadValue}, args...)...)}
	}
	c := b.Config
	switch {
	case c.OS != "darwin":
		return fail("os", "%q: sxlab runs macOS guests only", c.OS)
	case c.Arch != "arm64":
		return fail("arch", "%q: Virtualization.framework runs arm64 macOS guests only", c.Arch)
	case c.HardwareModel == nil:
		return &BundleError{Bundle: b.Dir, File: ConfigFile, Field: "hardwareModel", Err: fmt.Errorf("%w: a macOS guest needs its hardware model", ErrMissingField)}
	case c.MachineIdentifier == nil:
		return &BundleError{Bundle: b.Dir, File: ConfigFile, Field: "ecid", Err: fmt.Errorf("%w: a macOS guest needs its machine identifier", ErrMissingField)}
	}
	for _, f := range diskFormats {
		if c.DiskFormat == f {
			return nil
		}
	}
	return fail("diskFormat", "%q: sxlab opens %s disks", c.DiskFormat, strings.Join(diskFormats, " or "))
}
