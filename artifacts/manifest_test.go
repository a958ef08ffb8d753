package artifacts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/artifacts"
)

// requireSha256sum checks the manifest with coreutils' sha256sum, the
// tool a person would use.
func requireSha256sum(t *testing.T, dir string, m artifacts.Manifest) {
	t.Helper()
	bin, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Log("sha256sum not installed: checked with VerifyManifest only")
		require.NoError(t, artifacts.VerifyManifest(dir))
		return
	}
	var sums strings.Builder
	for _, e := range m.Files {
		sums.WriteString(e.SHA256 + "  " + e.Path + "\n")
	}
	cmd := exec.Command(bin, "--check", "--strict", "-")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(sums.String())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "sha256sum: %s", out)
	for _, e := range m.Files {
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(e.Path)))
		require.NoError(t, err)
		assert.Equal(t, info.Size(), e.Size, e.Path)
	}
}

func TestManifestListsEveryFile(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"steps.jsonl":                      "{}\n",
		"logs.ndjson":                      "",
		"state/after/sw_vers.txt":          "ProductName:\t\tmacOS\n",
		"state/before/name with space.txt": "x",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	m, err := artifacts.WriteManifest(dir, nil)
	require.NoError(t, err)
	var paths []string
	for _, e := range m.Files {
		paths = append(paths, e.Path)
	}
	assert.Equal(t, []string{"logs.ndjson", "state/after/sw_vers.txt", "state/before/name with space.txt", "steps.jsonl"}, paths)
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", m.Files[0].SHA256, "sha256 of nothing")
	requireSha256sum(t, dir, m)

	// Written again, the manifest does not list itself.
	m2, err := artifacts.WriteManifest(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, m, m2)
	require.NoError(t, artifacts.VerifyManifest(dir))
}

// The sums of files written through Written are the files' own, as a
// manifest that reads everything (and sha256sum) finds them; a file
// changed behind its back is read again.
func TestManifestTakesWrittenSums(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "state", "before"), 0o755))
	w := &artifacts.Written{}
	require.NoError(t, w.WriteFile(dir, "state/before/sw_vers.txt", []byte("ProductVersion:\t15.3.2\n")))
	require.NoError(t, w.WriteFile(dir, "empty.json", nil))
	steps, err := os.Create(filepath.Join(dir, "steps.jsonl"))
	require.NoError(t, err)
	defer steps.Close()
	for _, line := range []string{`{"step":"install"}` + "\n", `{"step":"upgrade"}` + "\n"} {
		_, err := steps.WriteString(line)
		require.NoError(t, err)
		w.Appended("steps.jsonl", []byte(line))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "logs.ndjson"), []byte("{}\n"), 0o644)) // not through w

	m, err := artifacts.WriteManifest(dir, w)
	require.NoError(t, err)
	read, err := artifacts.WriteManifest(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, read, m)
	assert.Len(t, m.Files, 4)
	requireSha256sum(t, dir, m)

	// A line appended without telling w changes the size: read again.
	_, err = steps.WriteString(`{"step":"probe"}` + "\n")
	require.NoError(t, err)
	m, err = artifacts.WriteManifest(dir, w)
	require.NoError(t, err)
	requireSha256sum(t, dir, m)

	// A write that failed leaves nothing known: what is on disk is read.
	require.Error(t, w.WriteFile(dir, "no/such/folder.txt", []byte("x")))

	// Only manifest.json is left of the writes: no temporary file.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"empty.json", "logs.ndjson", artifacts.ManifestFile, "state", "steps.jsonl"}, names)
	info, err := os.Stat(filepath.Join(dir, artifacts.ManifestFile))
	require.NoError(t, err)
	plain, err := os.Stat(filepath.Join(dir, "logs.ndjson"))
	require.NoError(t, err)
	assert.Equal(t, plain.Mode().Perm(), info.Mode().Perm(), "as readable as a file os.WriteFile made")
}

func TestVerifyManifestNamesWhatChanged(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.txt"), []byte("two"), 0o644))
	_, err := artifacts.WriteManifest(dir, nil)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("ONE"), 0o644))
	require.NoError(t, os.Remove(filepath.Join(dir, "b.txt")))
	err = artifacts.VerifyManifest(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a.txt: 3 bytes, sha256")
	assert.Contains(t, err.Error(), "b.txt:")
}

func TestVerifyManifestRefusesPathsOutside(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, artifacts.ManifestFile), []byte(`{"files":[{"path":"../etc/passwd","size":1,"sha256":"00"}]}`), 0o644))
	err := artifacts.VerifyManifest(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a path inside the folder")
}

func TestCheckFree(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, artifacts.CheckFree(dir, 1))
	require.NoError(t, artifacts.CheckFree(filepath.Join(dir, "runs", "not-yet"), 1), "a runs_dir not made yet is measured at its parent")

	err := artifacts.CheckFree(dir, 1<<50)
	var low *artifacts.LowSpaceError
	require.ErrorAs(t, err, &low)
	assert.Positive(t, low.Free)
	assert.Equal(t, int64(1<<50), low.Need)
	assert.Contains(t, err.Error(), "free under "+dir)
	assert.Contains(t, err.Error(), "needs at least 1024.0 TiB")
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB", 3 << 40: "3.0 TiB"} {
		assert.Equal(t, want, artifacts.FormatBytes(n))
	}
}
