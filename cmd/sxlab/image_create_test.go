package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm/vz"
)

// imageCreate runs `image create args...` under a root of its own (image.go
// registers the command; this test does not depend on that).
func imageCreate(t *testing.T, cmd *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := &cobra.Command{Use: "sxlab", SilenceUsage: true, SilenceErrors: true}
	image := &cobra.Command{Use: "image"}
	image.AddCommand(cmd)
	root.AddCommand(image)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"image", "create"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func storeEntries(t *testing.T, store string) []string {
	t.Helper()
	entries, err := os.ReadDir(store)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestImageCreateLatestNeedsAMacHere(t *testing.T) {
	if runtime.GOOS == "darwin" && runtime.GOARCH == "arm64" {
		t.Skip("on an Apple Silicon Mac, latest asks Apple's servers")
	}
	store := filepath.Join(t.TempDir(), "store")
	_, _, err := imageCreate(t, newImageCreateCmd(), "x", "--ipsw", "latest", "--store", store)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs macOS on Apple Silicon")
	assert.Contains(t, err.Error(), "import-tart", "it says what works here")
	assert.Empty(t, storeEntries(t, store))
}

func TestImageCreateNamesAMissingRestoreImage(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	_, _, err := imageCreate(t, newImageCreateCmd(), "x", "--ipsw", "/nonexistent/restore.ipsw", "--store", store)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/nonexistent/restore.ipsw: no such file")
	assert.Empty(t, storeEntries(t, store))
}

func TestImageCreateNamesABadSizeFlag(t *testing.T) {
	store := t.TempDir()
	for flag, value := range map[string]string{"--memory": "lots", "--disk-size": "1.5TB"} {
		_, _, err := imageCreate(t, newImageCreateCmd(), "x", "--ipsw", "latest", "--store", store, flag, value)
		require.Error(t, err, flag)
		assert.Contains(t, err.Error(), flag+` "`+value+`"`)
		var ee *exitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, exitUsage, ee.code)
	}
	assert.Empty(t, storeEntries(t, store))
}

func TestImageCreateRefusesATakenNameBeforeDownloading(t *testing.T) {
	store := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(store, "taken"), 0o755))
	_, _, err := imageCreate(t, newImageCreateCmd(), "taken", "--ipsw", "https://127.0.0.1:1/x.ipsw", "--store", store)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(store, "taken")+" exists already")
	assert.Equal(t, []string{"taken"}, storeEntries(t, store), "nothing was downloaded")
}

func TestParseSizeForCreate(t *testing.T) {
	good := map[string]uint64{
		"8GiB": 8 << 30, "8G": 8 << 30, "8192MiB": 8 << 30, "8192M": 8 << 30, "8.5G": 17 << 29,
		"80 GiB": 80 << 30, "1T": 1 << 40, "8589934592": 8 << 30, "": 0,
	}
	for in, want := range good {
		got, err := parseSize("memory", in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"G", "-1G", "0", "eight", "8XB", "99999999999T", "8GB", "512KiB"} {
		_, err := parseSize("memory", in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), `--memory`, in)
		assert.Contains(t, err.Error(), `"`+in+`"`, in)
	}
}

// cmdInstaller installs nothing but what a bundle needs to load.
type cmdInstaller struct{}

func (cmdInstaller) LatestURL(context.Context) (string, error) { return "", os.ErrNotExist }

func (cmdInstaller) Requirements(context.Context, string) (vz.Requirements, error) {
	return vz.Requirements{HardwareModel: []byte("hw"), MinCPUCount: 2, MinMemorySize: 4 << 30, OSVersion: "15.3.1", Build: "24D70"}, nil
}

func (cmdInstaller) NewMachineIdentifier() ([]byte, error) { return []byte("ecid"), nil }

func (cmdInstaller) Install(_ context.Context, dir, _ string, progress func(float64)) error {
	for _, f := range []float64{0, 0.05, 0.5, 1} {
		progress(f)
	}
	return os.WriteFile(filepath.Join(dir, vz.NVRAMFile), []byte("nvram"), 0o644)
}

func TestImageCreatePrintsTheManualSteps(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	ipsw := filepath.Join(dir, "restore.ipsw")
	require.NoError(t, os.WriteFile(ipsw, []byte("image"), 0o644))

	out, errs, err := imageCreate(t, imageCreateCmd(cmdInstaller{}), "sequoia", "--ipsw", ipsw, "--store", store,
		"--cpus", "6", "--memory", "12GiB", "--disk-size", "100G")
	require.NoError(t, err, errs)
	bundle := filepath.Join(store, "sequoia")
	in, err := vz.Inspect(bundle)
	require.NoError(t, err)
	assert.Equal(t, 6, in.CPUCount)
	assert.Equal(t, uint64(12<<30), in.MemorySize)
	assert.Equal(t, int64(100<<30), in.DiskBytes)

	assert.Contains(t, errs, "using restore image "+ipsw)
	assert.Contains(t, errs, "install 0%\ninstall 50%\ninstall 100%\n", "plain lines when stderr is not a terminal")
	for _, want := range []string{
		"created image sequoia: " + bundle,
		"macOS 15.3.1 (24D70), 6 CPUs, 12.0 GiB memory, 100.0 GiB disk",
		"tart run sequoia",
		"create the user admin",
		"sudo systemsetup -setremotelogin on",
		"echo 'admin ALL=(ALL) NOPASSWD: ALL' | sudo tee /etc/sudoers.d/admin",
		`sudo log config --mode "level:debug,persist:debug" --subsystem com.apple.networkextension`,
		"sudo pmset -a sleep 0 displaysleep 0",
		"sxlab image import-tart sequoia --store " + store,
		"images:\n  sequoia:\n    vz: {bundle: sequoia}\n    user: admin\n    auth: {password_env: SXLAB_GUEST_PASSWORD}\n",
		"sxlab image warm sequoia",
		// What issue 11 adds: a golden the GUI steps can run in.
		"sudo fdesetup disable",
		"Automatically log in as: admin",
		"Grant /usr/libexec/sshd-keygen-wrapper",
		"Accessibility, Apple Events and\n    Full Disk Access",
		"scripts/update-tcc-database.sh",
		"DEBUG PERSIST_DEBUG",
		"sxlab image check sequoia",
	} {
		assert.Contains(t, out, want)
	}
}

func TestImageCreateRefusesASmallDiskBeforeDownloading(t *testing.T) {
	store := t.TempDir()
	_, _, err := imageCreate(t, newImageCreateCmd(), "x", "--ipsw", "https://127.0.0.1:1/x.ipsw", "--store", store, "--disk-size", "16GiB")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "below the 32 GiB minimum")
	assert.Empty(t, storeEntries(t, store), "nothing was downloaded")
}
