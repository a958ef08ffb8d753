package lab

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm"
)

// limitedProvider is the sim posing as a vz host with one warm golden per
// image: it restores into one clone at a time. It counts machines alive.
type limitedProvider struct {
	vm.Provider
	mu         sync.Mutex
	live, peak int
}

func (p *limitedProvider) MaxMachines(img vm.Image) (int, string) {
	return 1, "make another warm golden and list it in images." + img.Name + ".vz.bundles"
}

func (p *limitedProvider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	m, err := p.Provider.Clone(ctx, img, name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.live++
	p.peak = max(p.peak, p.live)
	p.mu.Unlock()
	return &countedMachine{Machine: m, p: p}, nil
}

type countedMachine struct {
	vm.Machine
	p    *limitedProvider
	once sync.Once
}

func (m *countedMachine) Delete(ctx context.Context) error {
	err := m.Machine.Delete(ctx)
	m.once.Do(func() {
		m.p.mu.Lock()
		m.p.live--
		m.p.mu.Unlock()
	})
	return err
}

func TestRunKeepsToAProvidersLimitAndSaysSo(t *testing.T) {
	cfg := strings.Replace(simLabConfig, "  repeat: 1\n", "  repeat: 3\n", 1)
	o, _ := simRunOptions(t, cfg, nil)
	var lp *limitedProvider
	newSim := o.NewProvider
	o.NewProvider = func(h Host, seed int64) (vm.Provider, error) {
		p, err := newSim(h, seed)
		lp = &limitedProvider{Provider: p}
		return lp, err
	}
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Len(t, res.Records, 6, "every attempt ran")
	assert.Equal(t, 1, lp.peak, "two slots, but one machine of the image at a time")

	var info RunInfo
	require.NoError(t, ReadJSON(res.Dir, RunFile, &info))
	require.Len(t, info.Notes, 1)
	assert.Contains(t, info.Notes[0], "host local restores image macos-15.3 into 1 clone(s) at a time")
	assert.Contains(t, info.Notes[0], "images.macos-15.3.vz.bundles")
}
