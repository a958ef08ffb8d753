package steps_test

// Goldens that lack what a step needs, against the simulated Mac: the
// step is the lab's error, naming what the golden lacks, never the
// product's failure.

import (
	"context"
	"strings"
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

// TestSimUIScriptPerVersion approves a pending upgrade through each
// built-in script against the simulated Mac of that version: Allow in
// Privacy & Security on 13 and 14, the switch in Login Items &
// Extensions on 15 and 26. (The sim follows macos-behaviour.md rules 13
// and 14; no Mac has run these scripts.)
func TestSimUIScriptPerVersion(t *testing.T) {
	simNoLeaks(t)
	for _, v := range []struct{ version, build, control string }{
		{"13.7.4", "22H420", `button "Allow"`}, {"14.7.4", "23H420", `button "Allow"`},
		{"15.6", "24G84", `checkbox "Example VPN"`}, {"26.0", "25A354", `checkbox "Example VPN"`},
	} {
		t.Run(v.version, func(t *testing.T) {
			img := vm.Image{Name: "macos-" + v.version, User: "admin", Password: "admin", Sim: &vm.SimImage{ProductVersion: v.version, Build: v.build}}
			c := cell{from: "2", to: "3", vpn: "stopped", approval: "pending"}
			l := bootImage(t, img, img.Name, 1, "ui-"+v.version, exampleApp(t, nil), c)
			l.do(scenario(c)...)
			assert.Contains(t, l.notes(), "approved com.example.vpn.tunnel 3.0/300 through System Settings")
			assert.Contains(t, l.notes(), "unverified on macOS "+strings.SplitN(v.version, ".", 2)[0])
			clicked := false
			for _, line := range l.ran() {
				clicked = clicked || strings.Contains(line, "click "+v.control+" of window 1")
			}
			assert.True(t, clicked, "clicked %s", v.control)
			l.requireEndpointWorks(l.lastProbes(), "3.0", "300", machService)
		})
	}
}
