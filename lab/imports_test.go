package lab

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLabAndReportDoNotImportTheSim: only cmd/sxlab and tests know a
// provider sub-package; lab and report read packages through the
// packages reader like everyone else.
func TestLabAndReportDoNotImportTheSim(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	for _, dir := range []string{".", filepath.Join("..", "report")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			parsed, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
			require.NoError(t, err)
			checked++
			for _, imp := range parsed.Imports {
				p, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				assert.False(t, p == "github.com/sxlab/sxlab/vm/sim" || strings.HasPrefix(p, "github.com/sxlab/sxlab/vm/sim/"),
					"%s imports %s: lab and report must not know the simulated Mac", f, p)
			}
		}
	}
	assert.Greater(t, checked, 10, "the files of lab and report were found")
}
