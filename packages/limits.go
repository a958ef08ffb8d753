// Package packages reads what a team ships — a flat installer package
// (.pkg: xar with a cpio Payload), a .zip of the app, or a .dmg — on any
// OS, and answers what the upgrade hazards need: the app bundle, its
// system extensions, their Info.plists, their executables' Mach-O
// identities (architectures, LC_UUID, minimum OS) and code signatures.
// It also holds preflight's checks, which compare two builds.
//
// Everything here treats its input as hostile: every size read from a
// file, and every decompressed stream, is bounded by Limits, and passing
// a bound is a *LimitError naming what overflowed rather than memory
// running out.
package packages

import (
	"errors"
	"fmt"
	"io"
)

// Limits bound what one read may cost. The defaults are far above any
// real app (Xcode's own .xip payload is ~10 GB; we keep it to 8) and far
// below what a bomb would take.
type Limits struct {
	// TOC bounds a xar table of contents, compressed and inflated.
	TOC int64
	// Plist bounds one Info.plist, PackageInfo, Distribution file or
	// entitlements blob. Real ones are a few KB; 1 MiB of nested <array>
	// costs the XML decoder ~50 MB and half a second, the worst we allow.
	Plist int64
	// Stream bounds every decompressed stream: a Payload, a xar member,
	// a zip entry.
	Stream int64
	// Kept bounds the bytes kept in memory (Info.plists and the bundles'
	// executables) across one package.
	Kept int64
	// Entries bounds the number of files in a payload or archive.
	Entries int
}

// DefaultLimits are the limits Open uses when given none.
func DefaultLimits() Limits {
	return Limits{
		TOC:     16 << 20,
		Plist:   1 << 20,
		Stream:  8 << 30,
		Kept:    1 << 30,
		Entries: 2_000_000,
	}
}

func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.TOC <= 0 {
		l.TOC = d.TOC
	}
	if l.Plist <= 0 {
		l.Plist = d.Plist
	}
	if l.Stream <= 0 {
		l.Stream = d.Stream
	}
	if l.Kept <= 0 {
		l.Kept = d.Kept
	}
	if l.Entries <= 0 {
		l.Entries = d.Entries
	}
	return l
}

// LimitError is returned when input passes one of the Limits: a
// decompression bomb, or a file claiming an absurd size.
type LimitError struct {
	What  string // e.g. "Payload (decompressed)"
	Limit int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s exceeds the limit of %d bytes (refused: a decompression bomb or a corrupt size)", e.What, e.Limit)
}

// ErrSimulated is returned for a .simpkg.json: a manifest of the
// simulated Mac, not a package, so nothing in it can be checked.
var ErrSimulated = errors.New("a simulated package manifest (.simpkg.json), not a real package: it describes a build to the simulated Mac and has no Info.plist, Mach-O or signature to check")

// boundedReader fails with a *LimitError once more than limit bytes are
// read, instead of silently truncating (a truncated stream would be a
// partial answer presented as whole).
type boundedReader struct {
	r     io.Reader
	left  int64
	what  string
	limit int64
}

func bounded(r io.Reader, limit int64, what string) *boundedReader {
	return &boundedReader{r: r, left: limit, what: what, limit: limit}
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a stream that ends exactly at the limit
		// from one that goes past it.
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			return 0, &LimitError{What: b.what, Limit: b.limit}
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// readAllBounded reads r to its end, or fails past limit.
func readAllBounded(r io.Reader, limit int64, what string) ([]byte, error) {
	return io.ReadAll(bounded(r, limit, what))
}
