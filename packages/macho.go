package packages

import (
	"bytes"
	"debug/macho"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/blacktop/go-macho/pkg/codesign"
	"howett.net/plist"
)

// Executable is a bundle's main executable.
type Executable struct {
	Path   string  `json:"path"`
	Fat    bool    `json:"fat"`
	Slices []Slice `json:"slices"`
}

// Slice is one architecture of a Mach-O file.
type Slice struct {
	Arch string `json:"arch"` // arm64, arm64e, x86_64
	// UUID is LC_UUID in the usual upper-case hyphenated form; "" when the
	// slice has none (TN3178: every image should have one).
	UUID string `json:"uuid"`
	// MinOS is LC_BUILD_VERSION's minos (or LC_VERSION_MIN_MACOSX's), e.g. "13.0".
	MinOS     string     `json:"min_os,omitempty"`
	Signature *Signature `json:"signature,omitempty"`
}

// Signature is what a slice's code signature says about who built it.
type Signature struct {
	Identifier string `json:"identifier"`
	TeamID     string `json:"team_id,omitempty"`
	// Flags are the CodeDirectory's flags by name (adhoc, runtime, ...).
	Flags           []string `json:"flags,omitempty"`
	AdHoc           bool     `json:"adhoc"`
	HardenedRuntime bool     `json:"hardened_runtime"`
	// CMS is true when a CMS signature blob (a certificate signature) is
	// present; an ad-hoc signature has none.
	CMS          bool           `json:"cms"`
	Entitlements map[string]any `json:"entitlements,omitempty"`
}

// Arches lists the slices' architectures.
func (e *Executable) Arches() []string {
	var out []string
	for _, s := range e.Slices {
		out = append(out, s.Arch)
	}
	return out
}

// Slice returns the slice of an architecture, or nil.
func (e *Executable) Slice(arch string) *Slice {
	for i := range e.Slices {
		if e.Slices[i].Arch == arch {
			return &e.Slices[i]
		}
	}
	return nil
}

// Load command numbers (mach-o/loader.h).
const (
	lcCodeSignature  = 0x1d
	lcUUID           = 0x1b
	lcVersionMinOSX  = 0x24
	lcBuildVersion   = 0x32
	csAdHoc          = 0x2
	csRuntime        = 0x10000
	maxSignatureSize = 64 << 20
)

// parseExecutable reads a thin or fat Mach-O file.
func parseExecutable(b []byte, lim Limits) (exe *Executable, err error) {
	// The standard library's and go-macho's parsers should not panic, but
	// this is hostile input: a panic in them becomes an error here.
	defer func() {
		if r := recover(); r != nil {
			exe, err = nil, fmt.Errorf("malformed Mach-O (parser panicked: %v)", r)
		}
	}()
	if len(b) < 4 {
		return nil, errors.New("not a Mach-O file (too short)")
	}
	switch binary.BigEndian.Uint32(b) {
	case 0xcafebabe: // fat
	case 0xcafebabf:
		return nil, errors.New("64-bit fat Mach-O files are not supported")
	case 0xfeedfacf, 0xcffaedfe, 0xfeedface, 0xcefaedfe: // thin
	default:
		return nil, fmt.Errorf("not a Mach-O file (starts with \"%s\")", printable(b[:4]))
	}
	if ff, ferr := macho.NewFatFile(bytes.NewReader(b)); ferr == nil {
		exe := &Executable{Fat: true}
		for _, a := range ff.Arches {
			if uint64(a.Offset)+uint64(a.Size) > uint64(len(b)) {
				return nil, fmt.Errorf("fat slice %s runs past the end of the file", arch(a.Cpu, a.SubCpu))
			}
			s, err := parseSlice(a.File, b[a.Offset:a.Offset+a.Size], lim)
			if err != nil {
				return nil, fmt.Errorf("slice %s: %w", arch(a.Cpu, a.SubCpu), err)
			}
			exe.Slices = append(exe.Slices, s)
		}
		if len(exe.Slices) == 0 {
			return nil, errors.New("fat Mach-O file with no slices")
		}
		return exe, nil
	} else if !errors.Is(ferr, macho.ErrNotFat) {
		return nil, fmt.Errorf("malformed fat Mach-O: %w", ferr)
	}
	f, err := macho.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a Mach-O file: %w", err)
	}
	s, err := parseSlice(f, b, lim)
	if err != nil {
		return nil, err
	}
	return &Executable{Slices: []Slice{s}}, nil
}

func arch(cpu macho.Cpu, sub uint32) string {
	switch cpu {
	case macho.CpuArm64:
		if sub&0xff == 2 {
			return "arm64e"
		}
		return "arm64"
	case macho.CpuAmd64:
		return "x86_64"
	case macho.CpuArm:
		return "arm"
	case macho.Cpu386:
		return "i386"
	}
	return strings.ToLower(cpu.String())
}

// parseSlice reads the load commands of one slice; data is the slice's
// bytes, which the code signature's offsets are relative to.
func parseSlice(f *macho.File, data []byte, lim Limits) (Slice, error) {
	s := Slice{Arch: arch(f.Cpu, f.SubCpu)}
	bo := f.ByteOrder
	for _, l := range f.Loads {
		raw := l.Raw()
		if len(raw) < 8 {
			continue
		}
		switch bo.Uint32(raw) {
		case lcUUID:
			if len(raw) < 24 {
				return s, errors.New("LC_UUID is shorter than 24 bytes")
			}
			s.UUID = formatUUID(raw[8:24])
		case lcBuildVersion:
			if len(raw) < 16 {
				return s, errors.New("LC_BUILD_VERSION is shorter than 16 bytes")
			}
			s.MinOS = formatVersion(bo.Uint32(raw[12:]))
		case lcVersionMinOSX:
			if len(raw) < 16 {
				return s, errors.New("LC_VERSION_MIN_MACOSX is shorter than 16 bytes")
			}
			if s.MinOS == "" {
				s.MinOS = formatVersion(bo.Uint32(raw[8:]))
			}
		case lcCodeSignature:
			if len(raw) < 16 {
				return s, errors.New("LC_CODE_SIGNATURE is shorter than 16 bytes")
			}
			off, size := uint64(bo.Uint32(raw[8:])), uint64(bo.Uint32(raw[12:]))
			if off+size > uint64(len(data)) {
				return s, fmt.Errorf("LC_CODE_SIGNATURE (offset %d, size %d) runs past the end of the slice (%d bytes)", off, size, len(data))
			}
			if size > maxSignatureSize {
				return s, &LimitError{What: "code signature", Limit: maxSignatureSize}
			}
			sig, err := parseSignature(data[off:off+size], lim)
			if err != nil {
				return s, fmt.Errorf("code signature: %w", err)
			}
			s.Signature = sig
		}
	}
	return s, nil
}

func formatUUID(b []byte) string {
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// formatVersion renders a packed xxxx.yy.zz version, dropping a zero patch.
func formatVersion(v uint32) string {
	if v&0xff == 0 {
		return fmt.Sprintf("%d.%d", v>>16, (v>>8)&0xff)
	}
	return fmt.Sprintf("%d.%d.%d", v>>16, (v>>8)&0xff, v&0xff)
}

// parseSignature reads the embedded signature through go-macho's parser,
// after checking the counts it would otherwise trust: a blob count or a
// code directory's slot count large enough to exhaust memory.
func parseSignature(b []byte, lim Limits) (*Signature, error) {
	if err := checkSuperBlob(b); err != nil {
		return nil, err
	}
	cs, err := codesign.ParseCodeSignature(b)
	if err != nil {
		return nil, err
	}
	if len(cs.CodeDirectories) == 0 {
		return nil, errors.New("no code directory")
	}
	cd := cs.CodeDirectories[0]
	sig := &Signature{
		Identifier:      cd.ID,
		TeamID:          cd.TeamID,
		AdHoc:           uint32(cd.Header.Flags)&csAdHoc != 0,
		HardenedRuntime: uint32(cd.Header.Flags)&csRuntime != 0,
		CMS:             len(cs.CMSSignature) > 0,
	}
	if fl := cd.Header.Flags.String(); fl != "" && fl != "none" {
		sig.Flags = strings.Split(fl, ", ")
	}
	if cs.Entitlements != "" {
		if int64(len(cs.Entitlements)) > lim.Plist {
			return nil, &LimitError{What: "entitlements", Limit: lim.Plist}
		}
		var ents map[string]any
		if _, err := plist.Unmarshal([]byte(cs.Entitlements), &ents); err != nil {
			return nil, fmt.Errorf("entitlements are not a property list: %w", err)
		}
		sig.Entitlements = ents
	}
	return sig, nil
}

// checkSuperBlob bounds the counts of an embedded signature (the layout
// of cs_blobs.h: a big-endian SuperBlob of indexed blobs, each code
// directory with its slot counts and hash size).
func checkSuperBlob(b []byte) error {
	be := binary.BigEndian
	if len(b) < 12 {
		return errors.New("code signature is shorter than its header")
	}
	if m := be.Uint32(b); m != 0xfade0cc0 {
		return fmt.Errorf("code signature magic %#x is not an embedded signature (0xfade0cc0)", m)
	}
	count := uint64(be.Uint32(b[8:]))
	if 12+count*8 > uint64(len(b)) {
		return fmt.Errorf("code signature claims %d blobs, more than fit in %d bytes", count, len(b))
	}
	for i := uint64(0); i < count; i++ {
		typ, off := be.Uint32(b[12+i*8:]), uint64(be.Uint32(b[16+i*8:]))
		if typ != 0 && (typ < 0x1000 || typ > 0x1004) {
			continue // not a code directory
		}
		if off+44 > uint64(len(b)) {
			return fmt.Errorf("code directory %d runs past the signature", i)
		}
		cd := b[off:]
		nSpecial, nCode, hashSize := uint64(be.Uint32(cd[24:])), uint64(be.Uint32(cd[28:])), uint64(cd[36])
		if hashSize == 0 || hashSize > 64 {
			return fmt.Errorf("code directory %d: hash size %d is not a hash size", i, hashSize)
		}
		if (nSpecial+nCode)*hashSize > uint64(len(b)) {
			return fmt.Errorf("code directory %d claims %d slots, more than fit in the signature", i, nSpecial+nCode)
		}
		// go-macho prints (to stdout) on versions it does not know.
		if version := be.Uint32(cd[8:]); version < 0x20001 || version > 0x2f000 {
			return fmt.Errorf("code directory %d: version %#x is not one Apple defines", i, version)
		}
		// From version 0x20600 the directory names a linkage blob whose
		// size go-macho allocates as given.
		if version := be.Uint32(cd[8:]); version >= 0x20600 {
			if off+108 > uint64(len(b)) {
				return fmt.Errorf("code directory %d is shorter than its version %#x header", i, version)
			}
			if size := uint64(be.Uint32(cd[104:])); size > uint64(len(b)) {
				return fmt.Errorf("code directory %d claims a %d-byte linkage blob, more than fit in the signature", i, size)
			}
		}
	}
	return nil
}
