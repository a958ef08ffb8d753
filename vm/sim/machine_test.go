package sim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
	"github.com/sxlab/sxlab/vm/sim/shell"
)

// fakeModel is a tiny Mac: enough commands to drive the machine half.
type fakeModel struct {
	host      Host
	fs        *FS
	bootDelay atomic.Int64 // a time.Duration
	boots     atomic.Int32
}

const fakeAppBinary = "/Applications/Example.app/Contents/MacOS/Example"

func (f *fakeModel) Commands() map[string]shell.Command {
	return map[string]shell.Command{
		"hello": func(_ context.Context, p *shell.Proc) int {
			fmt.Fprintf(p.Stdout, "hello from %s\n", p.User)
			return 0
		},
		"fail": func(_ context.Context, p *shell.Proc) int {
			fmt.Fprintln(p.Stderr, "fail: it failed")
			return 3
		},
		"amroot": func(_ context.Context, p *shell.Proc) int {
			fmt.Fprintln(p.Stdout, p.Root)
			return 0
		},
		"args": func(_ context.Context, p *shell.Proc) int {
			for _, a := range p.Args[1:] {
				fmt.Fprintf(p.Stdout, "[%s]", a)
			}
			fmt.Fprintln(p.Stdout)
			return 0
		},
		"envof": func(_ context.Context, p *shell.Proc) int {
			fmt.Fprintln(p.Stdout, p.Env[p.Args[1]])
			return 0
		},
		"reboot": func(_ context.Context, p *shell.Proc) int {
			if !p.Root {
				fmt.Fprintln(p.Stderr, "reboot: Operation not permitted")
				return 1
			}
			f.host.Reboot()
			return 0
		},
		"block": func(ctx context.Context, p *shell.Proc) int {
			fmt.Fprintln(p.Stdout, "started")
			<-ctx.Done()
			return 130
		},
		"yes": func(ctx context.Context, p *shell.Proc) int {
			for ctx.Err() == nil {
				p.Stdout.Write([]byte("y\n")) // ignores errors, as careless programs do
			}
			return 141
		},
		"panic": func(context.Context, *shell.Proc) int { panic("boom") },
	}
}

func (f *fakeModel) Program(guestPath string) (shell.Command, bool) {
	if guestPath != fakeAppBinary {
		return nil, false
	}
	if _, err := f.fs.Stat(guestPath); err != nil {
		return nil, false
	}
	return func(_ context.Context, p *shell.Proc) int {
		fmt.Fprintf(p.Stdout, "app %s\n", strings.Join(p.Args[1:], " "))
		return 0
	}, true
}

func (f *fakeModel) Boot()                    { f.boots.Add(1) }
func (f *fakeModel) BootDelay() time.Duration { return time.Duration(f.bootDelay.Load()) }

// noLeaks fails the test if it leaves goroutines behind; it is registered
// first so it runs after every other cleanup (machines deleted).
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

type testMachine struct {
	*Machine
	model *fakeModel
	ep    guest.Endpoint
}

type machineOpt func(*Options, *vm.Image, *fakeModel)

func startMachine(t *testing.T, opts ...machineOpt) *testMachine {
	t.Helper()
	fm := &fakeModel{}
	o := Options{BaseDir: t.TempDir(), Logf: t.Logf, Seed: 1}
	img := vm.Image{Name: "test", Sim: &vm.SimImage{ProductVersion: "15.3", Build: "24D60"}}
	for _, opt := range opts {
		opt(&o, &img, fm)
	}
	o.NewModel = func(cfg MacConfig, host Host, fs *FS) Model {
		fm.host, fm.fs = host, fs
		return fm
	}
	p := NewProvider(o)
	ctx := context.Background()
	m, err := p.NewMachine(ctx, img, "test-mac")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Delete(context.Background())) })
	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	return &testMachine{Machine: m, model: fm, ep: ep}
}

func clientConfig(t *testing.T, ep guest.Endpoint, auth ...ssh.AuthMethod) *ssh.ClientConfig {
	t.Helper()
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(ep.HostKey))
	require.NoError(t, err)
	if len(auth) == 0 {
		auth = []ssh.AuthMethod{ssh.Password(ep.Password)}
	}
	return &ssh.ClientConfig{User: ep.User, Auth: auth, HostKeyCallback: ssh.FixedHostKey(hk), Timeout: 5 * time.Second}
}

func dial(t *testing.T, ep guest.Endpoint, auth ...ssh.AuthMethod) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", ep.Addr, clientConfig(t, ep, auth...))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs one command over a new session.
func run(t *testing.T, c *ssh.Client, cmd string) (stdout, stderr string, code int) {
	t.Helper()
	s, err := c.NewSession()
	require.NoError(t, err)
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run(cmd)
	var ee *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitStatus()
	default:
		require.NoError(t, err)
	}
	return out.String(), errb.String(), code
}

func newClientKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	return signer, pem.EncodeToMemory(block)
}

func TestProviderIsSimulated(t *testing.T) {
	p := NewProvider(Options{BaseDir: t.TempDir()})
	assert.Equal(t, "sim", p.Name())
	assert.True(t, p.Simulated())
}

func TestCloneNeedsASimImage(t *testing.T) {
	p := NewProvider(Options{BaseDir: t.TempDir()})
	_, err := p.Clone(context.Background(), vm.Image{Name: "real"}, "x")
	assert.ErrorContains(t, err, `image "real" has no sim section`)
}

func TestEndpointDescribesTheMachine(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	assert.True(t, m.ep.Simulated)
	assert.Equal(t, "admin", m.ep.User)
	assert.Equal(t, "admin", m.ep.Password, "admin/admin like tart's public images")
	assert.True(t, strings.HasPrefix(m.ep.Addr, "127.0.0.1:"), m.ep.Addr)
	assert.True(t, strings.HasPrefix(m.ep.HostKey, "ssh-ed25519 "), m.ep.HostKey)
	assert.Equal(t, int32(1), m.model.boots.Load(), "Start boots the model")
}

func TestStopLeavesNoGoroutinesAndDeleteRemovesTheFolder(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	m := startMachine(t)
	c := dial(t, m.ep)

	// a command in flight, a session with stdin open, an sftp session
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, s.Start("block"))
	buf := make([]byte, 8)
	_, err = out.Read(buf)
	require.NoError(t, err)
	s2, err := c.NewSession()
	require.NoError(t, err)
	_, err = s2.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, s2.Start("cat"))
	s3, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, s3.RequestSubsystem("sftp"))

	require.NoError(t, m.Stop(ctx))
	require.NoError(t, m.Stop(ctx), "Stop twice")
	assert.Error(t, s.Wait(), "the connection is gone")
	_, err = m.Endpoint(ctx)
	assert.Error(t, err)

	require.NoError(t, m.FS().WriteFile("/tmp/upload", make([]byte, 1<<20), 0o644))
	require.NoError(t, m.Delete(ctx))
	require.NoError(t, m.Delete(ctx), "Delete twice")
	_, err = m.FS().Stat("/tmp/upload")
	assert.ErrorIs(t, err, fs.ErrNotExist, "a deleted machine's tree is given back")
	assert.Error(t, m.Start(ctx), "a deleted machine does not start")
}

func TestStopAndDeleteWithoutStart(t *testing.T) {
	noLeaks(t)
	p := NewProvider(Options{BaseDir: t.TempDir(), NewModel: func(MacConfig, Host, *FS) Model { return &fakeModel{} }})
	m, err := p.NewMachine(context.Background(), vm.Image{Sim: &vm.SimImage{}}, "never-started")
	require.NoError(t, err)
	assert.NoError(t, m.Stop(context.Background()))
	assert.NoError(t, m.Delete(context.Background()))
}

func TestRestartKeepsHostKeyAndPort(t *testing.T) {
	noLeaks(t)
	ctx := context.Background()
	m := startMachine(t)
	require.NoError(t, m.Stop(ctx))
	require.NoError(t, m.Start(ctx))
	ep, err := m.Endpoint(ctx)
	require.NoError(t, err)
	assert.Equal(t, m.ep.HostKey, ep.HostKey)
	assert.Equal(t, m.ep.Addr, ep.Addr)
	out, _, code := run(t, dial(t, ep), "hello")
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello from admin\n", out)
}

func TestReapRemovesOnlyDeadMachines(t *testing.T) {
	noLeaks(t)
	base := t.TempDir()
	p := NewProvider(Options{BaseDir: base, NewModel: func(MacConfig, Host, *FS) Model { return &fakeModel{} }})
	live, err := p.NewMachine(context.Background(), vm.Image{Sim: &vm.SimImage{}}, "live")
	require.NoError(t, err)
	defer live.Delete(context.Background())

	// Machines of this sxlab leave nothing on disk: their trees are in
	// memory.
	left, err := os.ReadDir(base)
	require.NoError(t, err)
	assert.Empty(t, left, "a live machine has no folder")

	// The folders older sxlabs kept their machines in.
	// a machine of a process that died: its lock file is there, unheld
	dead := filepath.Join(base, "sxlab-sim-dead-123")
	require.NoError(t, os.MkdirAll(filepath.Join(dead, "root", "Applications"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dead, ".lock"), nil, 0o644))
	// a folder a Clone made a moment ago and has not locked yet
	fresh := filepath.Join(base, "sxlab-sim-fresh-456")
	require.NoError(t, os.Mkdir(fresh, 0o755))
	// a machine an older sxlab still runs: it holds the lock
	running := filepath.Join(base, "sxlab-sim-running-789")
	require.NoError(t, os.MkdirAll(filepath.Join(running, "root"), 0o755))
	lock := flock.New(filepath.Join(running, ".lock"))
	ok, err := lock.TryLock()
	require.NoError(t, err)
	require.True(t, ok)
	defer lock.Close()
	// not ours
	other := filepath.Join(base, "something-else")
	require.NoError(t, os.Mkdir(other, 0o755))

	require.NoError(t, p.Reap(context.Background()))
	assert.NoDirExists(t, dead)
	assert.DirExists(t, running)
	assert.DirExists(t, fresh)
	assert.DirExists(t, other)
	_, err = live.FS().Stat("/Applications")
	assert.NoError(t, err, "reaping leaves live machines alone")
}

func TestCloneAcceptsTheImageKey(t *testing.T) {
	noLeaks(t)
	signer, pemKey := newClientKey(t)
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	require.NoError(t, os.WriteFile(keyFile, pemKey, 0o600))
	m := startMachine(t, func(_ *Options, img *vm.Image, _ *fakeModel) { img.KeyFile = keyFile })
	assert.Equal(t, keyFile, m.ep.KeyFile)
	out, _, code := run(t, dial(t, m.ep, ssh.PublicKeys(signer)), "hello")
	assert.Equal(t, 0, code)
	assert.Equal(t, "hello from admin\n", out)
}

func TestConcurrentMachinesAreIndependent(t *testing.T) {
	noLeaks(t)
	a, b := startMachine(t), startMachine(t)
	assert.NotEqual(t, a.ep.Addr, b.ep.Addr)
	assert.NotEqual(t, a.ep.HostKey, b.ep.HostKey)
	ca, cb := dial(t, a.ep), dial(t, b.ep)
	var wg sync.WaitGroup
	for _, c := range []*ssh.Client{ca, cb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.NewSession()
			if assert.NoError(t, err) {
				defer s.Close()
				out, err := s.Output("echo hi > /tmp/x && cat /tmp/x")
				assert.NoError(t, err)
				assert.Equal(t, "hi\n", string(out))
			}
		}()
	}
	wg.Wait()
	data, err := a.FS().ReadFile("/tmp/x")
	assert.NoError(t, err)
	assert.Equal(t, "hi\n", string(data))
	_, err = b.FS().Stat("/tmp/x")
	assert.NoError(t, err)
}
