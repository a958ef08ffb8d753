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
	"sync"
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
// in runDir from its journal. It reads the cells' attempt folders and
// renders their pages on cellWorkers goroutines, a cell each, and writes
// their JUnit suites in order, letting each cell go once its suite is
// written: its memory follows the largest cells in flight, not the run.
// Each file is replaced atomically: a reader (a CI step, a browser) sees
// the old file or the new one, never half of one.
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
	if err := eachCellInOrder(r.Cells, cellWorkers, func(c Cell) (Cell, error) {
		full, err := fillCell(runDir, c)
		if err != nil {
			return c, err
		}
		if p, ok := cellPagePath(c.Cell); ok {
			if err := writeFile(runDir, p, func(w io.Writer) error { return writeCellHTML(w, r, full) }); err != nil {
				return c, err
			}
		}
		return full, nil
	}, jw.suite); err != nil {
		return err
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

// cellWorkers is how many cells Write reads and renders at once: the
// report is written as the run ends, on a host whose cores the run has
// just let go (two on the smallest CI machines).
const cellWorkers = 2

// eachCellInOrder runs fill on up to workers cells at once and hands
// each result to use in the cells' order. A cell waits for use while
// later ones are filled, but no more than workers cells are filled and
// not yet used at any time. The first error (of fill, or of use) stops
// what has not started; Write returns after every started fill ended.
func eachCellInOrder(cells []Cell, workers int, fill func(Cell) (Cell, error), use func(Cell) error) error {
	type result struct {
		cell Cell
		err  error
		done chan struct{}
	}
	results := make([]result, len(cells))
	for i := range results {
		results[i].done = make(chan struct{})
	}
	slots := make(chan struct{}, max(workers, 1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // starts the fills, each once a slot is free
		defer wg.Done()
		for i := range cells {
			stopped := false
			select {
			case slots <- struct{}{}:
				select {
				case <-stop: // both were ready: stopping wins
					stopped = true
				default:
				}
			case <-stop:
				stopped = true
			}
			if stopped {
				for j := i; j < len(cells); j++ {
					close(results[j].done)
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(results[i].done)
				results[i].cell, results[i].err = fill(cells[i])
			}()
		}
	}()
	var err error
	for i := range results {
		<-results[i].done
		if err == nil {
			err = results[i].err
			if err == nil {
				err = use(results[i].cell)
			}
			if err != nil {
				close(stop)
			}
		}
		results[i].cell = Cell{} // let it go
		select {
		case <-slots:
		default: // a cell stop kept from starting took no slot
		}
	}
	wg.Wait()
	return err
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
