// Package report renders a run folder for people and for CI — report.html,
// junit.xml, summary.md — and merges and compares run folders. It reads
// the journal and what the attempts left in their folders; it never
// re-runs or re-judges anything.
package report

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Files Write makes in the run folder.
const (
	HTMLFile    = "report.html"
	JUnitFile   = "junit.xml"
	SummaryFile = "summary.md"
	// CellPageFile is each cell's page, in the cell's folder
	// (cells/<cell-id>/), beside its attempt folders.
	CellPageFile = "index.html"
)

// Write rebuilds report.html, a page per cell, junit.xml and summary.md
// in runDir from its journal. It reads one cell's attempt folders at a
// time, renders that cell's page and JUnit suite, and lets them go, so
// that its memory follows the largest cell, not the run. Each file is
// replaced atomically: a reader (a CI step, a browser) sees the old file
// or the new one, never half of one.
func Write(runDir string) error {
	r, err := loadIndex(runDir)
	if err != nil {
		return err
	}
	junit, err := newPending(runDir, JUnitFile)
	if err != nil {
		return err
	}
	defer junit.cleanup()
	jw, err := newJUnitWriter(junit.w, r)
	if err != nil {
		return err
	}
	for _, c := range r.Cells {
		full, err := fillCell(runDir, c)
		if err != nil {
			return err
		}
		if err := jw.suite(full); err != nil {
			return err
		}
		if p, ok := cellPagePath(c.Cell); ok {
			if err := writeFile(runDir, p, func(w io.Writer) error { return writeCellHTML(w, r, full) }); err != nil {
				return err
			}
		}
	}
	if err := jw.close(); err != nil {
		return err
	}
	if err := junit.replace(); err != nil {
		return err
	}
	if err := writeFile(runDir, HTMLFile, func(w io.Writer) error { return writeHTML(w, r) }); err != nil {
		return err
	}
	return writeFile(runDir, SummaryFile, func(w io.Writer) error {
		_, err := w.Write(Markdown(r))
		return err
	})
}

// writeFile replaces runDir/rel atomically with what render writes.
func writeFile(runDir, rel string, render func(io.Writer) error) error {
	f, err := newPending(runDir, rel)
	if err != nil {
		return err
	}
	defer f.cleanup()
	if err := render(f.w); err != nil {
		return err
	}
	return f.replace()
}

// pending is a file being written beside the one it will replace. It is
// renamed over it but not synced: every file Write makes is rebuilt from
// the journal by `sxlab report`, so a crash costs a rebuild, not data,
// and a sync per cell page would make a run's syncs grow with its cells.
type pending struct {
	f    *os.File
	w    *bufio.Writer
	rel  string
	path string
	done bool
}

func newPending(runDir, rel string) (*pending, error) {
	p := filepath.Join(runDir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("write %s: %w", rel, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", rel, err)
	}
	return &pending{f: f, w: bufio.NewWriterSize(f, 64<<10), rel: rel, path: p}, nil
}

func (p *pending) replace() error {
	err := p.w.Flush()
	if err == nil {
		err = p.f.Chmod(0o644)
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p.f.Name(), p.path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p.rel, err)
	}
	p.done = true
	return nil
}

func (p *pending) cleanup() {
	if !p.done {
		p.f.Close()
		os.Remove(p.f.Name())
	}
}
