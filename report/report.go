// Package report renders a run folder for people and for CI — report.html,
// junit.xml, summary.md — and merges and compares run folders. It reads
// the journal and what the attempts left in their folders; it never
// re-runs or re-judges anything.
package report

import (
	"fmt"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Files Write makes in the run folder.
const (
	HTMLFile    = "report.html"
	JUnitFile   = "junit.xml"
	SummaryFile = "summary.md"
)

// Write rebuilds report.html, junit.xml and summary.md in runDir from its
// journal. Each file is replaced atomically: a reader (a CI step, a
// browser) sees the old file or the new one, never half of one.
func Write(runDir string) error {
	r, err := Load(runDir)
	if err != nil {
		return err
	}
	page, err := HTML(r)
	if err != nil {
		return err
	}
	junit, err := JUnit(r)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{HTMLFile, page}, {JUnitFile, junit}, {SummaryFile, Markdown(r)}} {
		if err := renameio.WriteFile(filepath.Join(runDir, f.name), f.data, 0o644, renameio.WithTempDir(runDir)); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}
