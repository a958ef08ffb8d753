package steps_test

// Goldens that lack what a step needs, against the simulated Mac: the
// step is the lab's error, naming what the golden lacks, never the
// product's failure.

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/steps"
	"github.com/sxlab/sxlab/vm"
)

// run runs ss in order and returns the first error.
func (l *simLab) run(ss ...steps.Step) error {
	for _, s := range ss {
		if err := s.Run(context.Background(), l.env); err != nil {
			return err
		}
	}
	return nil
}

func golden(img vm.Image, edit func(g *vm.SimGolden)) vm.Image {
	sim := *img.Sim
	edit(&sim.Golden)
	img.Sim = &sim
	return img
}

func TestSimMDMWithoutPolicyIsAnError(t *testing.T) {
	simNoLeaks(t)
	c := cell{from: "2", to: "3", vpn: "stopped", approval: "approved"}
	l := bootImage(t, image154(), "macos-15.4", 1, "mdm-no-policy", exampleApp(t, nil), c)
	err := l.run(steps.SessionCheck{Label: "0 session"}, steps.Install{Label: "1 install", Version: "{{.From}}"},
		steps.Launch{Label: "2 launch"}, steps.Approve{Label: "3 approve", Strategy: "mdm"})
	require.Error(t, err)
	assert.False(t, steps.IsProductFailure(err), "%v", err)
	assert.ErrorContains(t, err, "system extension policy (com.apple.system-extension-policy) allowing team ABCDE12345")
	assert.ErrorContains(t, err, "image macos-15.4 has 0 profiles")
	assert.Equal(t, []string{"2.0/200 activated waiting for user"}, l.rows(), "nothing approved it")

	l = bootLab(t, image154(), 1, "mdm-policy", exampleApp(t, nil), c)
	require.NoError(t, l.run(steps.Install{Label: "1 install", Version: "{{.From}}"}, steps.Launch{Label: "2 launch"}, steps.Approve{Label: "3 approve", Strategy: "mdm"}))
	assert.Contains(t, l.notes(), "mdm: profile com.sxlab.sim.sysext-policy.ABCDE12345 allows team ABCDE12345")
	assert.Equal(t, []string{"2.0/200 activated enabled"}, l.rows(), "the policy approved the activation at once")
}

func TestSimUIWithoutAccessibilityIsAnError(t *testing.T) {
	simNoLeaks(t)
	c := cell{from: "2", to: "3", vpn: "stopped", approval: "pending"}
	img := golden(image154(), func(g *vm.SimGolden) { g.Accessibility = &[]string{"/usr/bin/osascript"} })
	l := bootImage(t, img, "macos-15.4", 1, "ui-no-ax", exampleApp(t, nil), c)
	err := l.run(scenario(c)...)
	require.Error(t, err)
	assert.False(t, steps.IsProductFailure(err), "%v", err)
	assert.ErrorContains(t, err, "8 approve")
	assert.ErrorContains(t, err, "/usr/libexec/sshd-keygen-wrapper, needs the Accessibility grant", "granting osascript alone does not help over SSH")
}

func TestSimWithoutAutomaticLoginIsAnError(t *testing.T) {
	simNoLeaks(t)
	c := cell{from: "2", to: "3", vpn: "stopped", approval: "pending"}
	off := false
	img := golden(image154(), func(g *vm.SimGolden) { g.AutoLogin = &off })
	l := bootImage(t, img, "macos-15.4", 1, "no-autologin", exampleApp(t, nil), c)
	err := l.run(scenario(c)...)
	require.Error(t, err)
	assert.False(t, steps.IsProductFailure(err))
	assert.ErrorContains(t, err, "0 session: nobody is logged in to the GUI")
	assert.ErrorContains(t, err, "automatic login is off")

	// Without the check first, the launch still says so: an open nobody
	// could see is not an app that would not launch.
	err = l.run(steps.Install{Label: "1 install", Version: "{{.From}}"}, steps.Launch{Label: "2 launch"})
	require.Error(t, err)
	assert.False(t, steps.IsProductFailure(err), "%v", err)
	assert.ErrorContains(t, err, "automatic login is off")
}
