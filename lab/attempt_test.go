package lab

import (
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

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/vm"
)

// events records what the fake provider and guest did, in order.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

type fakeProvider struct {
	ev       *events
	startErr error
}

func (p *fakeProvider) Name() string                   { return "sim" }
func (p *fakeProvider) Simulated() bool                { return true }
func (p *fakeProvider) Reap(ctx context.Context) error { return nil }
func (p *fakeProvider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	p.ev.add("clone " + img.Name)
	return &fakeMachine{p: p, name: name}, nil
}

type fakeMachine struct {
	p    *fakeProvider
	name string
}

func (m *fakeMachine) Name() string { return m.name }
func (m *fakeMachine) Start(ctx context.Context) error {
	m.p.ev.add("start")
	return m.p.startErr
}
func (m *fakeMachine) Endpoint(ctx context.Context) (guest.Endpoint, error) {
	return guest.Endpoint{Addr: "127.0.0.1:1", User: "admin", Simulated: true}, nil
}
func (m *fakeMachine) Stop(ctx context.Context) error {
	m.p.ev.add("stop ctx-ok=" + boolStr(ctx.Err() == nil))
	return nil
}
func (m *fakeMachine) Delete(ctx context.Context) error {
	m.p.ev.add("delete")
	return nil
}

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// scriptConn answers by command prefix; block makes a command wait for
// ctx (an interrupt in the middle of a step).
type scriptConn struct {
	ev      *events
	answers map[string]string
	block   string
}

func (c *scriptConn) Run(ctx context.Context, cmd guest.Cmd) (guest.Result, error) {
	if c.block != "" && strings.HasPrefix(cmd.Line, c.block) {
		<-ctx.Done()
		return guest.Result{Line: cmd.Line}, ctx.Err()
	}
	for prefix, out := range c.answers {
		if strings.HasPrefix(cmd.Line, prefix) {
			return guest.Result{Line: cmd.Line, Stdout: out}, nil
		}
	}
	if cmd.Line == "stat -f %Su /dev/console" {
		return guest.Result{Line: cmd.Line, Stdout: "admin\n"}, nil // automatic login
	}
	return guest.Result{Line: cmd.Line}, nil
}
func (c *scriptConn) Upload(ctx context.Context, l, r string, p guest.Progress) error   { return nil }
func (c *scriptConn) Download(ctx context.Context, r, l string, p guest.Progress) error { return nil }
func (c *scriptConn) Reconnect(ctx context.Context) error                               { return nil }
func (c *scriptConn) Close() error {
	c.ev.add("close")
	return nil
}

const healthyList = "1 extension(s)\n--- com.apple.system_extension.network_extension\nenabled\tactive\tteamID\tbundleID (version)\tname\t[state]\n" +
	"*\t*\tABCDE12345\tcom.example.vpn.tunnel (3.0/300)\tExample VPN\t[activated enabled]\n"

func attemptsFixture(t *testing.T, conn *scriptConn, prov *fakeProvider) (*Attempts, matrices.Attempt) {
	t.Helper()
	l, err := Load(LoadOptions{File: writeConfig(t, validConfig), LookupEnv: noEnv})
	require.NoError(t, err)
	app, err := l.StepsApp()
	require.NoError(t, err)
	probes, err := l.Config.StepsProbes()
	require.NoError(t, err)
	plan, _, err := l.Config.Plan(PlanOptions{})
	require.NoError(t, err)
	x := &Attempts{
		RunDir: t.TempDir(), Config: &l.Config, App: app, Probes: probes,
		Images:    map[string]vm.Image{"macos-15.3": {Name: "macos-15.3", User: "admin"}},
		Providers: map[string]vm.Provider{"local": prov},
		Dial: func(ctx context.Context, ep guest.Endpoint, kh, alias string) (Conn, error) {
			return conn, nil
		},
		Poll: time.Millisecond, Wait: 20 * time.Millisecond, CleanupTimeout: time.Second,
	}
	return x, plan.Attempts[0] // vpn=running
}

func TestAttemptPassesAndCleansUpInReverse(t *testing.T) {
	ev := &events{}
	conn := &scriptConn{ev: ev, answers: map[string]string{
		"systemextensionsctl list":     healthyList,
		"scutil --nc status":           "Connected\n",
		"sudo launchctl print system/": "x = {\n\tendpoints = {\n\t\t\"ABCDE12345.com.example.vpn.tunnel\" = {\n\t\t\tactive = 1\n\t\t}\n\t}\n}\n",
	}}
	x, a := attemptsFixture(t, conn, &fakeProvider{ev: ev})
	rec := x.Execute(context.Background(), Slot{Host: "local", Provider: "sim", Index: 1}, a, 1)
	assert.Equal(t, Pass, rec.Verdict, rec.Reason)
	assert.True(t, rec.Simulated)
	require.Len(t, rec.Probes, 1)
	assert.True(t, rec.Probes[0].Held)
	assert.Equal(t, []string{"clone macos-15.3", "start", "close", "stop ctx-ok=yes", "delete"}, ev.all())
	data, err := os.ReadFile(filepath.Join(x.RunDir, rec.Dir, "steps.jsonl"))
	require.NoError(t, err)
	assert.Contains(t, string(data), `"kind":"install"`)
	assert.Contains(t, string(data), "scutil --nc start")
}

func TestAttemptFailsWhenAProbeDoesNotHold(t *testing.T) {
	ev := &events{}
	conn := &scriptConn{ev: ev, answers: map[string]string{
		"systemextensionsctl list":     healthyList,
		"scutil --nc status":           "Connected\n",
		"sudo launchctl print system/": "x = {\n\tstate = running\n}\n",
	}}
	x, a := attemptsFixture(t, conn, &fakeProvider{ev: ev})
	rec := x.Execute(context.Background(), Slot{Host: "local", Provider: "sim"}, a, 1)
	assert.Equal(t, Fail, rec.Verdict)
	assert.Contains(t, rec.Reason, "probe mach-endpoint")
	assert.Contains(t, rec.Reason, "no endpoints block")
}

func TestAttemptBootFailureIsAnErrorAndTheCloneIsDeleted(t *testing.T) {
	ev := &events{}
	x, a := attemptsFixture(t, &scriptConn{ev: ev}, &fakeProvider{ev: ev, startErr: errors.New("VZErrorVirtualMachineLimitExceeded")})
	rec := x.Execute(context.Background(), Slot{Host: "local", Provider: "sim"}, a, 1)
	assert.Equal(t, Error, rec.Verdict)
	assert.Contains(t, rec.Reason, "boot: VZErrorVirtualMachineLimitExceeded")
	assert.Equal(t, []string{"clone macos-15.3", "start", "delete"}, ev.all())
}

func TestInterruptedAttemptStillCleansUp(t *testing.T) {
	ev := &events{}
	conn := &scriptConn{ev: ev, block: "scutil --nc start"}
	x, a := attemptsFixture(t, conn, &fakeProvider{ev: ev})
	ctx, cancel := context.WithCancel(context.Background())
	x.Phase = func(_ Slot, _ matrices.Attempt, phase string) {
		if phase == "vpn" {
			cancel()
		}
	}
	rec := x.Execute(ctx, Slot{Host: "local", Provider: "sim"}, a, 1)
	assert.Equal(t, Error, rec.Verdict)
	assert.Contains(t, rec.Reason, "interrupted")
	assert.Equal(t, []string{"clone macos-15.3", "start", "close", "stop ctx-ok=yes", "delete"}, ev.all(),
		"cleanups run with a context the interrupt did not cancel")
}
