package vz

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stubInstaller stands in for Virtualization.framework's installer.
type stubInstaller struct {
	req       Requirements
	reqErr    error
	latest    string
	latestErr error
	// install runs as the installation, after nvram.bin is written; nil
	// reports three fractions and succeeds.
	install func(ctx context.Context, dir string, progress func(float64)) error

	mu       sync.Mutex
	ipsws    []string // the restore images Requirements and Install were given
	installs []string // the dirs Install was called on
	sawFiles []string // what the bundle held when Install was called
}

func (s *stubInstaller) LatestURL(context.Context) (string, error) { return s.latest, s.latestErr }

func (s *stubInstaller) Requirements(_ context.Context, ipsw string) (Requirements, error) {
	s.mu.Lock()
	s.ipsws = append(s.ipsws, ipsw)
	s.mu.Unlock()
	if _, err := os.Stat(ipsw); err != nil {
		return Requirements{}, err
	}
	return s.req, s.reqErr
}

func (s *stubInstaller) NewMachineIdentifier() ([]byte, error) { return []byte("stub-ecid"), nil }

func (s *stubInstaller) Install(ctx context.Context, dir, ipsw string, progress func(float64)) error {
	s.mu.Lock()
	s.installs = append(s.installs, dir)
	s.ipsws = append(s.ipsws, ipsw)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		s.sawFiles = append(s.sawFiles, e.Name())
	}
	s.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, NVRAMFile), []byte("stub nvram"), 0o644); err != nil {
		return err
	}
	if s.install != nil {
		return s.install(ctx, dir, progress)
	}
	for _, f := range []float64{0.1, 0.5, 1} {
		progress(f)
	}
	return nil
}

var stubRequirements = Requirements{
	HardwareModel: []byte("stub-hardware-model"),
	MinCPUCount:   2,
	MinMemorySize: 4 << 30,
	OSVersion:     "15.3.1",
	Build:         "24D70",
}

// createSetup is a store and a restore image file.
func createSetup(t *testing.T) (store, ipsw string) {
	t.Helper()
	dir := t.TempDir()
	ipsw = filepath.Join(dir, "UniversalMac_15.3.1_24D70_Restore.ipsw")
	require.NoError(t, os.WriteFile(ipsw, []byte("not really a restore image"), 0o644))
	return filepath.Join(dir, "store"), ipsw
}

// storeNames lists what the store folder holds, hidden folders included.
func storeNames(t *testing.T, store string) []string {
	t.Helper()
	entries, err := os.ReadDir(store)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestCreateMakesABootableBundle(t *testing.T) {
	store, ipsw := createSetup(t)
	inst := &stubInstaller{req: stubRequirements}
	res, err := Create(context.Background(), CreateOptions{
		Store: store, Name: "sequoia", IPSW: ipsw, Installer: inst,
		Random: bytes.NewReader([]byte{0x01, 0x11, 0x22, 0x33, 0x44, 0x55}),
	})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(store, "sequoia"), res.Dir)
	assert.Equal(t, []string{"sequoia"}, storeNames(t, store), "the hidden build folder is renamed into place")
	assert.Equal(t, "15.3.1", res.OSVersion)
	assert.Equal(t, "24D70", res.Build)
	assert.Empty(t, res.Raised)

	require.Len(t, inst.installs, 1)
	assert.True(t, strings.HasPrefix(filepath.Base(inst.installs[0]), "."), "installs into a hidden folder, not yet listed: %s", inst.installs[0])
	assert.ElementsMatch(t, []string{ConfigFile, DiskFile}, inst.sawFiles, "Install gets config.json and disk.img, and makes nvram.bin")

	b, err := LoadBundle(res.Dir)
	require.NoError(t, err)
	require.NoError(t, b.CheckBootable())
	assert.Equal(t, []byte("stub-hardware-model"), b.Config.HardwareModel)
	assert.Equal(t, []byte("stub-ecid"), b.Config.MachineIdentifier)
	assert.Equal(t, 2, b.Config.CPUCountMin)
	assert.Equal(t, uint64(4<<30), b.Config.MemorySizeMin)

	in, err := Inspect(res.Dir)
	require.NoError(t, err)
	assert.Equal(t, 4, in.CPUCount)
	assert.Equal(t, uint64(8<<30), in.MemorySize)
	assert.Equal(t, int64(80<<30), in.DiskBytes)
	assert.Equal(t, Display{Width: 1920, Height: 1200}, in.Display)
	assert.Equal(t, "02:11:22:33:44:55", in.MACAddress, "locally administered unicast, from the random source")
	assert.Equal(t, "raw", in.DiskFormat)

	entries, err := ListBundles(store)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.NoError(t, entries[0].Err)
}

func TestCreateTakesSizesAskedFor(t *testing.T) {
	store, ipsw := createSetup(t)
	res, err := Create(context.Background(), CreateOptions{
		Store: store, Name: "big", IPSW: ipsw, Installer: &stubInstaller{req: stubRequirements},
		CPUCount: 8, MemorySize: 16 << 30, DiskSize: 120 << 30,
	})
	require.NoError(t, err)
	in, err := Inspect(res.Dir)
	require.NoError(t, err)
	assert.Equal(t, 8, in.CPUCount)
	assert.Equal(t, uint64(16<<30), in.MemorySize)
	assert.Equal(t, int64(120<<30), in.DiskBytes)
}

func TestCreateImageMinimumsWinOverSmallerRequests(t *testing.T) {
	store, ipsw := createSetup(t)
	req := stubRequirements
	req.MinCPUCount, req.MinMemorySize = 6, 12<<30
	res, err := Create(context.Background(), CreateOptions{
		Store: store, Name: "small", IPSW: ipsw, Installer: &stubInstaller{req: req},
		CPUCount: 2, MemorySize: 4 << 30,
	})
	require.NoError(t, err)
	in, err := Inspect(res.Dir)
	require.NoError(t, err)
	assert.Equal(t, 6, in.CPUCount)
	assert.Equal(t, uint64(12<<30), in.MemorySize)
	assert.Len(t, res.Raised, 2)
	assert.Contains(t, res.Raised[0], "CPUs raised to 6")
}

func TestCreateFailingInstallLeavesNothing(t *testing.T) {
	store, ipsw := createSetup(t)
	inst := &stubInstaller{req: stubRequirements, install: func(_ context.Context, _ string, progress func(float64)) error {
		progress(0.3)
		return errors.New("the restore image is damaged")
	}}
	_, err := Create(context.Background(), CreateOptions{Store: store, Name: "broken", IPSW: ipsw, Installer: inst})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "create image broken: install macOS from "+ipsw+": the restore image is damaged")
	assert.Empty(t, storeNames(t, store), "no bundle and no hidden partial folder")
}

func TestCreateCancelledLeavesNothing(t *testing.T) {
	store, ipsw := createSetup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inst := &stubInstaller{req: stubRequirements, install: func(ctx context.Context, _ string, _ func(float64)) error {
		cancel() // the user pressed ^C halfway
		<-ctx.Done()
		return ctx.Err()
	}}
	_, err := Create(ctx, CreateOptions{Store: store, Name: "stopped", IPSW: ipsw, Installer: inst})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "partial bundle was removed")
	assert.Empty(t, storeNames(t, store))
}

func TestCreateUnusableInstallResultLeavesNothing(t *testing.T) {
	store, ipsw := createSetup(t)
	inst := &stubInstaller{req: stubRequirements, install: func(_ context.Context, dir string, _ func(float64)) error {
		return os.Remove(filepath.Join(dir, NVRAMFile))
	}}
	_, err := Create(context.Background(), CreateOptions{Store: store, Name: "half", IPSW: ipsw, Installer: inst})
	require.ErrorIs(t, err, ErrMissingFile)
	assert.Contains(t, err.Error(), "nvram.bin")
	assert.Empty(t, storeNames(t, store))
}

func TestCreateRefusesAnExistingName(t *testing.T) {
	store, ipsw := createSetup(t)
	require.NoError(t, os.MkdirAll(filepath.Join(store, "taken"), 0o755))
	inst := &stubInstaller{req: stubRequirements}
	_, err := Create(context.Background(), CreateOptions{Store: store, Name: "taken", IPSW: ipsw, Installer: inst})
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(store, "taken")+" exists already")
	assert.Empty(t, inst.installs)
	assert.Equal(t, []string{"taken"}, storeNames(t, store))
}

func TestCreateRefusesBadNames(t *testing.T) {
	store, ipsw := createSetup(t)
	for _, name := range []string{"", ".hidden", "a/b", "../up", ClonesDir, IPSWDir, "with space"} {
		inst := &stubInstaller{req: stubRequirements}
		_, err := Create(context.Background(), CreateOptions{Store: store, Name: name, IPSW: ipsw, Installer: inst})
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "not a usable bundle name", name)
		assert.Empty(t, inst.installs, name)
	}
	assert.Empty(t, storeNames(t, store))
}

func TestCreateRefusesSmallOrOddSizes(t *testing.T) {
	store, ipsw := createSetup(t)
	cases := map[string]struct {
		o    CreateOptions
		want string
	}{
		"disk below 32 GiB":    {CreateOptions{DiskSize: 16 << 30}, "disk size 16384 MiB is below the 32 GiB minimum"},
		"memory not whole MiB": {CreateOptions{MemorySize: 8<<30 + 1}, "give whole MiB"},
		"negative CPUs":        {CreateOptions{CPUCount: -1}, "CPU count -1"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			inst := &stubInstaller{req: stubRequirements}
			o := c.o
			o.Store, o.Name, o.IPSW, o.Installer = store, "x", ipsw, inst
			_, err := Create(context.Background(), o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Empty(t, inst.installs)
			assert.Empty(t, storeNames(t, store))
		})
	}
}

func TestCreateSaysWhenTheImageCannotBeRead(t *testing.T) {
	store, ipsw := createSetup(t)
	inst := &stubInstaller{reqErr: &VMError{Kind: KindUnsupportedModel, Msg: "the host macOS is too old for this image"}}
	_, err := Create(context.Background(), CreateOptions{Store: store, Name: "new", IPSW: ipsw, Installer: inst})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read the restore image "+ipsw+": the host macOS is too old")
	var ve *VMError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, KindUnsupportedModel, ve.Kind)
	assert.Empty(t, storeNames(t, store))
}

func TestCreateForwardsInstallProgress(t *testing.T) {
	store, ipsw := createSetup(t)
	var got []float64
	_, err := Create(context.Background(), CreateOptions{
		Store: store, Name: "p", IPSW: ipsw, Installer: &stubInstaller{req: stubRequirements},
		Progress: func(f float64) { got = append(got, f) },
	})
	require.NoError(t, err)
	assert.Equal(t, []float64{0.1, 0.5, 1}, got)
}

// TestCreateResolvesSymlinksInTheRestoreImagePath: /tmp and /var/folders
// are symlinks on macOS, which the framework does not follow.
func TestCreateResolvesSymlinksInTheRestoreImagePath(t *testing.T) {
	store, ipsw := createSetup(t)
	link := filepath.Join(t.TempDir(), "downloads")
	require.NoError(t, os.Symlink(filepath.Dir(ipsw), link))
	inst := &stubInstaller{req: stubRequirements}
	_, err := Create(context.Background(), CreateOptions{Store: store, Name: "sequoia",
		IPSW: filepath.Join(link, filepath.Base(ipsw)), Installer: inst})
	require.NoError(t, err)
	real, err := filepath.EvalSymlinks(ipsw)
	require.NoError(t, err)
	require.Len(t, inst.ipsws, 2)
	for _, got := range inst.ipsws {
		assert.Equal(t, real, got, "the framework gets the path without symlinks")
	}
}

func TestWaitCancelledWaitsForTheCompletionHandler(t *testing.T) {
	done := make(chan struct{})
	go close(done)
	assert.True(t, waitCancelled(done, time.Minute), "a handler that runs is waited for")
	assert.False(t, waitCancelled(make(chan struct{}), time.Millisecond), "one that never runs is given up on")
}
