package guest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sample reads guest/testdata/parse/NAME.
func sample(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "parse", name))
	require.NoError(t, err)
	return string(data)
}

// tabsTo replaces every tab with n spaces: what a paste through a tool
// that expands tabs to a fixed width gives.
func tabsTo(s string, n int) string {
	return strings.ReplaceAll(s, "\t", strings.Repeat(" ", n))
}

var tabRuns = regexp.MustCompile(`\t+`)

// squeezeTabs turns every run of tabs into one space, like tr -s '\t' ' '.
func squeezeTabs(s string) string { return tabRuns.ReplaceAllString(s, " ") }

// stripIndent drops each line's leading whitespace, as some forums do.
func stripIndent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, " \t")
	}
	return strings.Join(lines, "\n")
}

// expandTabStops expands tabs to 8-column tab stops, as copying from
// Terminal does.
func expandTabStops(s string) string {
	var b strings.Builder
	col := 0
	for _, r := range s {
		switch r {
		case '\t':
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
		case '\n':
			b.WriteRune(r)
			col = 0
		default:
			b.WriteRune(r)
			col++
		}
	}
	return b.String()
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
