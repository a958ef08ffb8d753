package lab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/golden"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/vm/sim"
)

// preflightConfig is simLabConfig with UI approval, on a golden edited
// by the test.
func preflightConfig(goldenYAML string) string {
	cfg := strings.Replace(simLabConfig, "  - approve: mdm\n", "  - approve: ui\n", 1)
	// The ui cells need a plain golden: an MDM policy would approve
	// them at once, so the base config's MDM golden goes.
	const mdm = "      golden: {mdm: {system_extension_policies: [{team: ABCDE12345}]}}\n"
	repl := ""
	if goldenYAML != "" {
		repl = "      golden: " + goldenYAML + "\n"
	}
	return strings.Replace(cfg, mdm, repl, 1)
}

func TestImageNeedsFollowTheStepsEachImageRuns(t *testing.T) {
	cfg := &Config{Matrix: Matrix{ImageAxis: "macos"}, Scenario: []Step{
		{Approve: &ApproveStep{Strategy: "mdm"}, When: map[string][]string{"approval": {"approved"}}},
		{Approve: &ApproveStep{Strategy: "ui"}, When: map[string][]string{"approval": {"pending"}}},
	}}
	cells := []matrices.Cell{
		{Values: map[string]string{"macos": "mdm-golden", "approval": "approved"}},
		{Values: map[string]string{"macos": "plain", "approval": "pending"}},
	}
	got := cfg.ImageNeeds(cells, nil)
	assert.Equal(t, golden.Needs{MDM: true}, got["mdm-golden"])
	assert.Equal(t, golden.Needs{UI: true}, got["plain"])
}

func TestRunChecksEachImageOnceBeforeItsFirstAttempt(t *testing.T) {
	o, sl := simRunOptions(t, preflightConfig(""), nil)
	o.CheckImages = true
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Len(t, res.Records, 2)
	var checks int
	for _, m := range sl.Machines() {
		if strings.HasPrefix(m.Name(), "sxlab-check-macos-15-3-") {
			checks++
		}
	}
	assert.Equal(t, 1, checks, "one check boot for the one image")
	sl.assertNothingLeft(t)
}

func TestRunStopsWithOneErrorOnAGoldenWithoutAutomaticLogin(t *testing.T) {
	o, sl := simRunOptions(t, preflightConfig("{auto_login: false, tcc: {accessibility: []}}"), nil)
	o.CheckImages = true
	res, err := Run(context.Background(), o)
	require.ErrorIs(t, err, ErrImageUnfit)
	assert.Nil(t, res)
	assert.Contains(t, err.Error(), "image macos-15.3: console user (automatic login): nobody is logged in on the console")
	assert.Contains(t, err.Error(), "fix: turn on automatic login for admin")
	assert.Contains(t, err.Error(), "image macos-15.3: TCC grants for UI scripting:")
	for _, m := range sl.Machines() {
		assert.True(t, strings.HasPrefix(m.Name(), "sxlab-check-"), "no attempt ran, yet %s was cloned", m.Name())
	}
	sl.assertNothingLeft(t)
}

func TestAnImageThatWillNotAnswerIsLeftToTheAttempts(t *testing.T) {
	o, sl := simRunOptions(t, preflightConfig(""), func(machine string) sim.Sabotage {
		return sim.Sabotage{NoSSHD: strings.HasPrefix(machine, "sxlab-check-")}
	})
	o.CheckImages = true
	var notes []string
	o.Note = func(n string) { notes = append(notes, n) }
	// The check's wait for sshd is bounded by lab.timeouts.boot (1m);
	// a short one keeps the test quick.
	o.Loaded.Config.Lab.Timeouts.Boot = Duration(500 * time.Millisecond)
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Len(t, res.Records, 2, "the attempts ran")
	require.Len(t, notes, 2)
	assert.Contains(t, notes[0], "checking image macos-15.3's golden")
	assert.Contains(t, notes[1], "could not check image macos-15.3 before the first attempt")
	sl.assertNothingLeft(t)
}
