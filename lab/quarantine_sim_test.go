package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm"
)

// leakedSlotProvider is a host whose Virtualization.framework leaked a VM
// slot: every Start is refused with the VM limit while none of our VMs
// runs, which the vz provider reports as a vm.HostFault.
type leakedSlotProvider struct{ vm.Provider }

func (p leakedSlotProvider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	m, err := p.Provider.Clone(ctx, img, name)
	if err != nil {
		return nil, err
	}
	return leakedSlotMachine{m}, nil
}

type leakedSlotMachine struct{ vm.Machine }

func (leakedSlotMachine) Start(context.Context) error {
	return &vm.HostFault{Reason: "Virtualization.framework refused a VM (VZErrorVirtualMachineLimitExceeded) with none of ours running: the host leaked a VM slot; reboot it",
		Err: errors.New("start: at most two macOS VMs run per host (VZErrorDomain code 6)")}
}

func TestRunQuarantinesAHostThatLeakedAVMSlot(t *testing.T) {
	cfg := strings.Replace(simLabConfig, `  - name: local
    provider: sim
    slots: 2
    sim: {time_scale: 0}
`, `  - name: mini-2
    provider: sim
    slots: 2
    sim: {time_scale: 0}
  - name: local
    provider: sim
    slots: 2
    sim: {time_scale: 0}
`, 1)
	cfg = strings.Replace(cfg, "  repeat: 1\n", "  repeat: 3\n", 1)
	cfg = strings.Replace(cfg, "retry:\n  max: 1\n", "retry:\n  max: 0\n", 1) // a quarantine uses up no retry
	o, sl := simRunOptions(t, cfg, nil)
	newSim := o.NewProvider
	o.NewProvider = func(h Host, seed int64) (vm.Provider, error) {
		p, err := newSim(h, seed)
		if h.Name == "mini-2" {
			return leakedSlotProvider{p}, err
		}
		return p, err
	}
	var notes []string
	o.Note = func(n string) { notes = append(notes, n) }
	res, err := Run(context.Background(), o)
	require.NoError(t, err, "the other host finished the plan")
	sl.assertNothingLeft(t)

	require.Len(t, res.Records, 6)
	for _, r := range res.Records {
		assert.Equal(t, "local", r.Host, "%s: every verdict comes from the good host", r.AttemptKey())
	}
	for _, c := range res.Cells {
		// vpn=running fails on the good host by the image's fault: that
		// is the product; the leaky host adds no fail and no error.
		assert.Equal(t, 3, c.Attempts, "%s", c.Label)
		assert.Zero(t, c.Errors, "%s: nothing of the leaky host counts", c.Label)
	}

	var info RunInfo
	require.NoError(t, ReadJSON(res.Dir, RunFile, &info))
	require.Len(t, info.Quarantined, 1)
	assert.Equal(t, "mini-2", info.Quarantined[0].Host)
	assert.Contains(t, info.Quarantined[0].Reason, "reboot it")
	require.NotEmpty(t, notes)
	assert.Contains(t, notes[len(notes)-1], "host mini-2 is out of this run")

	// The journal keeps the quarantined tries, none final, none a fail.
	f, err := os.Open(filepath.Join(res.Dir, JournalFile))
	require.NoError(t, err)
	defer f.Close()
	recs, damage, err := ReadJournal(f)
	require.NoError(t, err)
	require.Empty(t, damage)
	var leaky int
	for _, r := range recs {
		if r.Host == "mini-2" {
			leaky++
			assert.Equal(t, Error, r.Verdict)
			assert.False(t, r.Final)
			assert.NotEmpty(t, r.Quarantine)
		}
	}
	assert.Positive(t, leaky, "the leaky host took attempts before it was out")
	assert.LessOrEqual(t, leaky, 2, "one per slot at most")
}
