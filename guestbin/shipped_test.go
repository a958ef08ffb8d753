package guestbin

import (
	"bytes"
	"crypto/sha256"
	"debug/gosym"
	"debug/macho"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blacktop/go-macho/pkg/codesign"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const lcCodeSignature = 0x1d // LC_CODE_SIGNATURE, <mach-o/loader.h>

// requireShippable checks what BuildFlags promise of a built guest
// program: a Mac runs it (it carries an ad-hoc signature whose page hashes
// match its bytes, which is what the kernel checks on Apple silicon), a
// panic in it still names functions, files and lines (the pclntab is
// there), and what -s -w drop (the symbol table, DWARF) is gone.
func requireShippable(t *testing.T, path, mainFile string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)

	f, err := macho.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var sig []byte
	for _, l := range f.Loads {
		raw := l.Raw()
		// linkedit_data_command: cmd, cmdsize, dataoff, datasize.
		if len(raw) >= 16 && f.ByteOrder.Uint32(raw) == lcCodeSignature {
			off, size := f.ByteOrder.Uint32(raw[8:]), f.ByteOrder.Uint32(raw[12:])
			require.LessOrEqual(t, uint64(off)+uint64(size), uint64(len(data)))
			sig = data[off : off+size]
		}
	}
	require.NotNil(t, sig, "LC_CODE_SIGNATURE: Apple silicon kills unsigned code")
	cs, err := codesign.ParseCodeSignature(sig)
	require.NoError(t, err)
	require.NotEmpty(t, cs.CodeDirectories)
	cd := cs.CodeDirectories[0]
	const csAdHoc = 0x2 // CS_ADHOC, xnu's cs_blobs.h
	assert.NotZero(t, uint32(cd.Header.Flags)&csAdHoc, "an ad-hoc signature, as the Go linker makes")
	require.Equal(t, sha256.Size, int(cd.Header.HashSize), "sha256 page hashes")
	page := 1 << cd.Header.PageSize
	limit := int(cd.Header.CodeLimit)
	require.Positive(t, limit)
	require.LessOrEqual(t, limit, len(data))
	require.Len(t, cd.CodeSlots, (limit+page-1)/page)
	for i, slot := range cd.CodeSlots {
		end := min((i+1)*page, limit)
		sum := sha256.Sum256(data[i*page : end])
		require.True(t, bytes.Equal(sum[:], slot.Hash), "page %d's hash does not match the signed bytes: the kernel would refuse the file", i)
	}

	pcln, text := f.Section("__gopclntab"), f.Section("__text")
	require.NotNil(t, pcln, "the pclntab, from which a panic's trace names functions")
	require.NotNil(t, text)
	b, err := pcln.Data()
	require.NoError(t, err)
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(b, text.Addr))
	require.NoError(t, err)
	fn := tab.LookupFunc("main.main")
	require.NotNil(t, fn, "main.main is named in the pclntab")
	file, _, _ := tab.PCToLine(fn.Entry)
	assert.Equal(t, mainFile, file, "a trace shows the file (module-relative, -trimpath)")

	// -s drops the symbol table; what is left are the undefined symbols
	// dyld binds (libSystem's, which purego's fakecgo calls).
	if f.Symtab != nil {
		for _, s := range f.Symtab.Syms {
			const nType, nUndf = 0x0e, 0x0 // <mach-o/nlist.h>
			require.Equal(t, nUndf, int(s.Type&nType), "-s keeps no defined symbol, yet %s is there", s.Name)
		}
	}
	_, err = f.DWARF()
	assert.Error(t, err, "-w drops DWARF: only a debugger misses it")
}

// TestCIBuildsWhatIsShipped keeps .ci/run's cross-build, whose printed
// sizes are the files the lab uploads, on guestbin's flags.
func TestCIBuildsWhatIsShipped(t *testing.T) {
	ci, err := os.ReadFile(filepath.Join(root(t), ".ci", "run"))
	require.NoError(t, err)
	flags := BuildFlags()
	for i, f := range flags {
		if k, v, ok := strings.Cut(f, "="); ok && strings.Contains(v, " ") {
			flags[i] = k + `="` + v + `"` // as a shell line writes it
		}
	}
	assert.Contains(t, string(ci), "CGO_ENABLED=0 go build "+strings.Join(flags, " ")+" -o ")
}
