package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/lab"
)

// scriptedGuest answers commands from a script: line → result or error.
type scriptedGuest struct {
	guest.Guest
	answers map[string]guest.Result
	errs    map[string]error
	ran     []string
	opts    []guest.Cmd
	closed  bool
}

func (g *scriptedGuest) Run(_ context.Context, c guest.Cmd) (guest.Result, error) {
	g.ran = append(g.ran, c.Line)
	g.opts = append(g.opts, c)
	if err := g.errs[c.Line]; err != nil {
		return guest.Result{Line: c.Line, Exit: -1}, err
	}
	return g.answers[c.Line], nil
}

func (g *scriptedGuest) Reconnect(context.Context) error { return nil }
func (g *scriptedGuest) Close() error                    { g.closed = true; return nil }

func TestPrepareRunsTheImagesCommandsAndNamesTheOneThatFails(t *testing.T) {
	g := &scriptedGuest{answers: map[string]guest.Result{
		"mdutil -i off /":  {Exit: 0},
		"softwareupdate x": {Exit: 1, Stderr: "softwareupdate: unknown option x\n"},
	}}
	var dialled guest.Options
	prep := prepareGuest([]string{"mdutil -i off /", "softwareupdate x", "never"}, "macos-15", 7*time.Minute, 3*time.Minute, io.Discard,
		func(_ context.Context, ep guest.Endpoint, o guest.Options) (guest.Guest, error) {
			dialled = o
			return g, nil
		})
	err := prep(t.Context(), guest.Endpoint{Addr: "192.168.64.9:22", User: "admin"})
	require.Error(t, err)
	assert.Equal(t, "images.macos-15.prepare[1] (softwareupdate x): exit 1: softwareupdate: unknown option x", err.Error())
	assert.Equal(t, []string{"sw_vers", "sudo -n true", "mdutil -i off /", "softwareupdate x"}, g.ran, "stops at the first failure")
	assert.Equal(t, 7*time.Minute, dialled.ConnectTimeout, "sshd gets lab.timeouts.boot")
	assert.Equal(t, 3*time.Minute, g.opts[2].Timeout, "each command gets lab.timeouts.command")

	noSudo := &scriptedGuest{answers: map[string]guest.Result{"sudo -n true": {Exit: 1, Stderr: "sudo: a password is required\n"}}}
	err = prepareGuest(nil, "macos-15", time.Second, time.Second, io.Discard,
		func(context.Context, guest.Endpoint, guest.Options) (guest.Guest, error) { return noSudo, nil },
	)(t.Context(), guest.Endpoint{Addr: "192.168.64.9:22", User: "admin"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "passwordless sudo (sudo -n true): exit 1: sudo: a password is required")
	assert.Contains(t, err.Error(), "echo 'admin ALL=(ALL) NOPASSWD: ALL' | sudo tee /etc/sudoers.d/admin")
	assert.True(t, g.closed)

	failDial := prepareGuest(nil, "macos-15", time.Second, time.Second, io.Discard,
		func(context.Context, guest.Endpoint, guest.Options) (guest.Guest, error) {
			return nil, errors.New("authentication failed (password) after 3 tries")
		})
	err = failDial(t.Context(), guest.Endpoint{Addr: "192.168.64.9:22", User: "admin"})
	assert.EqualError(t, err, "log in as admin: authentication failed (password) after 3 tries")
}

func TestShutdownGuestPowersMacOSOffOverSSH(t *testing.T) {
	ep := guest.Endpoint{Addr: "192.168.64.9:22", User: "admin"}
	for _, tc := range []struct {
		name string
		g    *scriptedGuest
		want string
	}{
		{"exits 0", &scriptedGuest{answers: map[string]guest.Result{"sudo -n shutdown -h now": {Exit: 0}}}, ""},
		{"goes down under the command", &scriptedGuest{errs: map[string]error{"sudo -n shutdown -h now": fmt.Errorf("run: %w", guest.ErrConnectionLost)}}, ""},
		{"no passwordless sudo", &scriptedGuest{answers: map[string]guest.Result{"sudo -n shutdown -h now": {Exit: 1, Stderr: "sudo: a password is required\n"}}},
			"shut down admin@192.168.64.9:22: sudo -n shutdown -h now: exit 1: sudo: a password is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := shutdownGuest(func(context.Context, guest.Endpoint) (lab.Conn, error) { return tc.g, nil })(t.Context(), ep)
			if tc.want == "" {
				require.NoError(t, err)
			} else {
				assert.EqualError(t, err, tc.want)
			}
			assert.Equal(t, []string{"sudo -n shutdown -h now"}, tc.g.ran)
			assert.True(t, tc.g.closed)
		})
	}
}

// vzConfig is a lab with one vz host over store and an image of two
// goldens.
func vzConfig(t *testing.T, store string) string {
	t.Helper()
	demo, err := os.ReadFile(filepath.Join("..", "..", "config.yaml"))
	require.NoError(t, err)
	cfg := string(demo)
	i := strings.Index(cfg, "\nhosts:")
	require.Positive(t, i, "the demo config has a hosts section")
	j := strings.Index(cfg, "\napp:")
	require.Greater(t, j, i, "the demo config has an app section after hosts and images")
	vz := fmt.Sprintf(`
hosts:
  - name: mini
    provider: vz
    slots: 2
    vz: {store: %s}
images:
  macos-15.3:
    vz: {bundles: [golden-a, golden-b]}
    user: admin
    auth: {password: admin}
    prepare: ["sudo mdutil -i off /"]
  macos-15.4:
    vz: {bundle: golden-c}
    user: admin
    auth: {password: admin}
  macos-15.4-tunnel:
    vz: {bundle: golden-d}
    agent: true
    user: admin
    auth: {password: admin}
`, store)
	cfg = cfg[:i] + vz + cfg[j:]
	// The demo picks MDM-enrolled goldens by matrix.image; this lab has
	// one golden per macOS.
	cfg = regexp.MustCompile(`(?m)^  image: .*\n`).ReplaceAllString(cfg, "")
	pkgs, err := filepath.Abs(filepath.Join("..", "..", "examples", "pkg"))
	require.NoError(t, err)
	cfg = strings.ReplaceAll(cfg, "examples/pkg/", pkgs+"/")
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(cfg), 0o644))
	return file
}

func TestImageWarmOffAppleSiliconTouchesNothing(t *testing.T) {
	if runtime.GOOS == "darwin" && runtime.GOARCH == "arm64" {
		t.Skip("on Apple Silicon warm would really boot the fixture")
	}
	store := t.TempDir()
	dir := copyVZFixture(t, store, "golden-a")
	copyVZFixture(t, store, "golden-b")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state.vzvmsave"), []byte("saved"), 0o644))
	sum := func() [32]byte {
		data, err := os.ReadFile(filepath.Join(dir, "state.vzvmsave"))
		require.NoError(t, err)
		return sha256.Sum256(data)
	}
	before := sum()
	cfg := vzConfig(t, store)

	code, _, errs := sxlab(t, "image", "warm", "macos-15.3", "--config", cfg)
	assert.NotEqual(t, exitOK, code)
	assert.Contains(t, errs, "warm image macos-15.3: vz needs macOS on Apple Silicon")
	assert.Contains(t, errs, "sxlab doctor")
	assert.Equal(t, before, sum(), "the saved state is left as it was")

	code, _, errs = sxlab(t, "image", "warm", "nope", "--config", cfg)
	assert.NotEqual(t, exitOK, code)
	assert.Contains(t, errs, "image nope is not in "+cfg+" (known: macos-15.3, macos-15.4, macos-15.4-tunnel)")

	code, _, errs = sxlab(t, "image", "warm", "macos-15.3", "--bundle", "golden-c", "--config", cfg)
	assert.NotEqual(t, exitOK, code)
	assert.Contains(t, errs, "--bundle golden-c: not a bundle of images.macos-15.3.vz (it has: golden-a, golden-b)")
}

func TestImageCopyMakesASecondGoldenForAPool(t *testing.T) {
	store := t.TempDir()
	copyVZFixture(t, store, "golden-a")
	code, out, errs := sxlab(t, "image", "copy", "golden-a", "golden-b", "--store", store)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "copied golden-a to "+filepath.Join(store, "golden-b"))

	code, out, errs = sxlab(t, "image", "list", "--json", "--store", store)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, `"name": "golden-b"`)
	macs := map[string]bool{}
	for _, name := range []string{"golden-a", "golden-b"} {
		code, out, errs := sxlab(t, "image", "inspect", filepath.Join(store, name))
		require.Equal(t, exitOK, code, errs)
		i := strings.Index(out, `"mac_address": "`)
		require.Positive(t, i)
		macs[out[i:i+40]] = true
	}
	assert.Len(t, macs, 2, "each golden of a pool has its own MAC")

	code, _, errs = sxlab(t, "image", "copy", "golden-a", "golden-b", "--store", store)
	assert.NotEqual(t, exitOK, code)
	assert.Contains(t, errs, "exists already")
}

func TestImageWarmAgentFlagSaysWhenItOverridesTheConfig(t *testing.T) {
	if runtime.GOOS == "darwin" && runtime.GOARCH == "arm64" {
		t.Skip("on Apple Silicon warm would really boot the fixture")
	}
	store := t.TempDir()
	copyVZFixture(t, store, "golden-a")
	copyVZFixture(t, store, "golden-b")
	cfg := vzConfig(t, store)

	code, _, errs := sxlab(t, "image", "warm", "macos-15.3", "--agent", "--config", cfg)
	assert.NotEqual(t, exitOK, code)
	assert.Contains(t, errs, "--agent: installing sxlab-agent although images.macos-15.3.agent is false in "+cfg)
	assert.Contains(t, errs, "vz needs macOS on Apple Silicon", "and nothing was booted")

	code, _, errs = sxlab(t, "image", "warm", "macos-15.3", "--agent=false", "--config", cfg)
	assert.NotEqual(t, exitOK, code)
	assert.NotContains(t, errs, "--agent", "the config agrees: nothing to say")

	assert.Contains(t, agentOverride("macos-15.4", "lab.yaml", false, true),
		"not installing sxlab-agent although images.macos-15.4.agent is true in lab.yaml: runs will find no agent on vsock port 7022 and use TCP")
}

func TestAgentBinaryRefusesAPrebuiltThatIsNotForTheGuest(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "sxlab-agent")
	require.NoError(t, os.WriteFile(bad, []byte("#!/bin/sh\n"), 0o755))
	t.Setenv(agentEnv, bad)
	_, err := agentBinary()(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SXLAB_AGENT: prebuilt sxlab-agent "+bad+": not a Mach-O file")
}
