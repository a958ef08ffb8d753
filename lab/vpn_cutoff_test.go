package lab

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/steps"
	"github.com/sxlab/sxlab/vm"
)

func TestVPNCutOffIsOnlyALostTCPConnectionWhileTheVPNIsUp(t *testing.T) {
	lost := fmt.Errorf("6 upgrade: run \"true\": %w: no keepalive reply within 5s", guest.ErrConnectionLost)
	start := steps.VPN{Label: "5 vpn", Action: "start"}
	upgrade := steps.Upgrade{Label: "6 upgrade"}
	tcp := &Record{Channel: ChannelTCP}
	img := vm.Image{Name: "macos-15.4-tunnel"}
	cutOff := func(ctx context.Context, st steps.Step, vpnUp string, err error, img vm.Image, rec *Record) string {
		return vpnCutOff(ctx, st, vpnUp, err, "Example VPN", img.Name, img, rec)
	}
	ctx := context.Background()

	why := cutOff(ctx, upgrade, "5 vpn", lost, img, tcp)
	assert.Contains(t, why, `guest unreachable right after step "5 vpn" connected VPN "Example VPN"`)
	assert.Contains(t, why, "no keepalive reply within 5s", "the lost connection's own words are kept")
	assert.Contains(t, why, "Every retry on image macos-15.4-tunnel meets it again: it has no guest agent")

	why = cutOff(ctx, start, "", lost, img, tcp)
	assert.Contains(t, why, `guest unreachable while step "5 vpn" connected VPN "Example VPN"`, "the vpn step itself lost the guest")

	withAgent := vm.Image{Name: "macos-15.4-tunnel", Agent: true}
	fellBack := &Record{Channel: ChannelTCP, ChannelNote: "the guest agent's vsock port 7022 did not answer (EOF); over TCP instead"}
	why = cutOff(ctx, upgrade, "5 vpn", lost, withAgent, fellBack)
	assert.Contains(t, why, "it has the guest agent, but this try fell back to TCP (the guest agent's vsock port 7022 did not answer")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for name, none := range map[string]string{
		"no VPN started":       cutOff(ctx, upgrade, "", lost, img, tcp),
		"over the agent":       cutOff(ctx, upgrade, "5 vpn", lost, withAgent, &Record{Channel: ChannelVsock}),
		"another error":        cutOff(ctx, upgrade, "5 vpn", errors.New("disk full"), img, tcp),
		"a command timeout":    cutOff(ctx, upgrade, "5 vpn", fmt.Errorf("run: %w after 30m", guest.ErrCommandTimeout), img, tcp),
		"the run interrupted":  cutOff(cancelled, upgrade, "5 vpn", lost, img, tcp),
		"a vpn stop step lost": cutOff(ctx, steps.VPN{Label: "7 vpn", Action: "stop"}, "", lost, img, tcp),
	} {
		assert.Empty(t, none, name)
	}
}
