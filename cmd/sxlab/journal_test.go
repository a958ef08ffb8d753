package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/lab"
)

func TestJournalCheckAndRepair(t *testing.T) {
	// A run folder of the sxlab before checksums, then damaged.
	dir := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.CopyFS(dir, os.DirFS("../../lab/testdata/v1/complete")))
	code, out, _ := sxlab(t, "journal", "check", dir)
	assert.Equal(t, exitOK, code, out)
	assert.Contains(t, out, "12 good line(s), 0 left out; written by sxlab before journal checksums")

	path := filepath.Join(dir, lab.JournalFile)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("garbage\n{\"cell\":\"6a7099a0711a\",\"repeat\":1,\"try\":9,\"final\":true,\"verdict\":\"bogus\"}\n{\"cell\":\"0f6d")
	require.NoError(t, err)
	require.NoError(t, f.Close())

	code, out, errs := sxlab(t, "journal", "check", dir)
	assert.Equal(t, exitFindings, code)
	assert.Contains(t, out, "12 good line(s), 3 left out")
	assert.Contains(t, out, path+":13: not a journal record")
	assert.Contains(t, out, path+`:14: unknown verdict "bogus"`)
	assert.Contains(t, out, path+":15: torn")
	assert.Contains(t, errs, "--repair")

	code, _, errs = sxlab(t, "report", dir)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, errs, "results.jsonl:14: unknown verdict", "report names what it leaves out")

	code, out, _ = sxlab(t, "journal", "check", "--repair", dir)
	assert.Equal(t, exitOK, code, out)
	assert.Contains(t, out, "repaired: "+path+" now holds the 12 good line(s)")
	code, out, _ = sxlab(t, "journal", "check", dir)
	assert.Equal(t, exitOK, code, out)
	origs, err := filepath.Glob(path + ".orig-*")
	require.NoError(t, err)
	require.Len(t, origs, 1, "the original is kept beside it")
	b, err := os.ReadFile(origs[0])
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(b), `{"cell":"0f6d`))
	var info lab.RunInfo
	require.NoError(t, lab.ReadJSON(dir, lab.RunFile, &info))
	require.Len(t, info.Repairs, 1)
	assert.Contains(t, info.Repairs[0], "left out 3")

	code, _, errs = sxlab(t, "journal", "check", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "not a run folder")
}
