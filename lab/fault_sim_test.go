package lab

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/vm/sim"
)

// TestInfrastructureFaultsAreRetriedErrors breaks the machines of one
// cell in the ways real labs break — a guest wedged in a command, the
// connection dropped in the middle of an upload, a machine that never
// boots, a wrong password — and checks that each try of that cell ends
// error with a reason naming the cause, that it is retried per retry.max,
// and that the other cell runs as if nothing happened.
func TestInfrastructureFaultsAreRetriedErrors(t *testing.T) {
	cases := []struct {
		name     string
		timeouts string // replaces the configuration's lab.timeouts
		sabotage sim.Sabotage
		reason   []string // what the reason must name
	}{
		{
			name:     "guest hangs in the installer",
			timeouts: "{boot: 1m, command: 500ms}",
			sabotage: sim.Sabotage{Hang: regexp.MustCompile(`installer -pkg`)},
			reason:   []string{"install", "installer -pkg", "timed out after 500ms", "lab.timeouts.command"},
		},
		{
			name:     "connection dropped during the upload",
			timeouts: "{boot: 1m, command: 1m}",
			sabotage: sim.Sabotage{CutSFTPAfter: 100},
			reason:   []string{"install", "upload", "example-vpn-2.pkg", "connection lost"},
		},
		{
			name:     "machine never boots",
			timeouts: "{boot: 500ms, command: 1m}",
			sabotage: sim.Sabotage{NoSSHD: true},
			reason:   []string{"connect to", "sshd did not answer within 500ms", "lab.timeouts.boot"},
		},
		{
			name:     "wrong password",
			timeouts: "{boot: 1m, command: 1m}",
			sabotage: sim.Sabotage{Password: "not-the-image-password"},
			reason:   []string{"connect to", "authentication failed"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := strings.Replace(simLabConfig, "timeouts: {boot: 1m, command: 1m}", "timeouts: "+tc.timeouts, 1)
			require.Contains(t, cfg, "timeouts: "+tc.timeouts)
			// The victim is the vpn=running cell (which would otherwise
			// fail at mach-endpoint: a sabotaged try must read error, not
			// fail); the plan names its ID, which its machines carry.
			probe, _ := simRunOptions(t, cfg, nil)
			plan, _, err := probe.Loaded.Config.Plan(PlanOptions{})
			require.NoError(t, err)
			var victim string
			for _, a := range plan.Attempts {
				if a.Cell.Values["vpn"] == "running" {
					victim = a.Cell.ID
				}
			}
			require.NotEmpty(t, victim)

			o, sl := simRunOptions(t, cfg, func(machine string) sim.Sabotage {
				if strings.Contains(machine, "-"+victim+"-") {
					return tc.sabotage
				}
				return sim.Sabotage{}
			})
			res, err := Run(context.Background(), o)
			require.NoError(t, err)
			sl.assertNothingLeft(t)

			var broken, other []Record
			for _, r := range readRecords(t, res.Dir) {
				if r.Cell == victim {
					broken = append(broken, r)
				} else {
					other = append(other, r)
				}
			}
			maxRetries := o.Loaded.Config.Retry.Max
			require.Len(t, broken, maxRetries+1, "one journal line per try: the first and %d retries", maxRetries)
			for i, r := range broken {
				assert.Equal(t, i+1, r.Try)
				assert.Equal(t, Error, r.Verdict, "try %d", r.Try)
				assert.Equal(t, i == maxRetries, r.Final, "only the last try is final")
				for _, want := range tc.reason {
					assert.Contains(t, r.Reason, want, "try %d", r.Try)
				}
			}
			require.Len(t, other, 1, "the other cell is not retried")
			assert.Equal(t, Pass, other[0].Verdict, other[0].Reason)
			assert.True(t, other[0].Final)

			totals := cellTotals(res.Records)
			assert.Equal(t, CellIncomplete, totals["macos=macos-15.3 path=2->3 vpn=running"].Verdict,
				"errors are not product failures: the cell has no verdict")
			assert.Equal(t, 1, totals["macos=macos-15.3 path=2->3 vpn=running"].Errors)
			assert.Equal(t, CellPass, totals["macos=macos-15.3 path=2->3 vpn=stopped"].Verdict)
			assert.Equal(t, 0, res.Remaining, "an attempt out of retries has its final line")
		})
	}
}
