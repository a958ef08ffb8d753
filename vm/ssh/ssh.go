// Package ssh is the machine provider for an existing Mac reached over
// SSH: a spare Mac mini, or a Mac on the network of someone running sxlab
// on Linux. Nothing is cloned or booted; before each attempt the host's
// reset command returns the Mac to its baseline (uninstall the app and
// its extension, say), and the attempt then uses the Mac as it is. One
// Mac has one machine at a time.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	cryptossh "golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

// Defaults of Options.
const (
	defaultResetTimeout   = 10 * time.Minute
	defaultConnectTimeout = time.Minute
	defaultUser           = "admin"
	resetOutputTail       = 1024
)

// ErrBusy: the Mac already serves a machine; an ssh host has one slot.
var ErrBusy = errors.New("the Mac already runs an attempt (an ssh host has one slot)")

// Options configure the provider. Credentials are final (environment
// variables already read, key paths resolved).
type Options struct {
	// Host names the host in messages (hosts[].name).
	Host string
	// Address is the Mac's sshd, host:port; port 22 when left out.
	Address string
	// User, Password and KeyFile log in to the Mac. Left empty, the
	// image's user (else "admin") and the image's password or key are used.
	User     string
	Password string
	KeyFile  string
	// Reset runs (through the login shell, as User) before each attempt to
	// return the Mac to its baseline; a non-zero exit fails the attempt's
	// clone. Empty: the Mac is used as it is.
	Reset string
	// ResetTimeout bounds Reset. Default 10m.
	ResetTimeout time.Duration
	// HostKey pins the Mac's host key (authorized_keys format, as in
	// /etc/ssh/ssh_host_ed25519_key.pub). Empty: the key seen at the first
	// contact is trusted and pinned for the provider's lifetime, so every
	// attempt of a run talks to the same Mac.
	HostKey string
	// ConnectTimeout bounds reaching sshd (the Mac is up or it is not).
	// Default 1m.
	ConnectTimeout time.Duration
	// Logf receives progress notes; nil discards them.
	Logf func(format string, args ...any)
}

// Provider hands out the one Mac, one attempt at a time.
type Provider struct {
	o Options

	mu      sync.Mutex
	hostKey string // pinned, authorized_keys format
	busy    string // the live machine's name
	// simulated: the "Mac" turned out to be sxlab's simulated one (sim
	// serve); every result from it must say so.
	simulated bool
}

var (
	_ vm.Provider = (*Provider)(nil)
	_ vm.Machine  = (*Machine)(nil)
)

// NewProvider checks the options and returns the provider.
func NewProvider(o Options) (*Provider, error) {
	if o.Host == "" {
		o.Host = o.Address
	}
	if strings.TrimSpace(o.Address) == "" {
		return nil, fmt.Errorf("ssh host %s: no address", o.Host)
	}
	addr, err := withPort(o.Address)
	if err != nil {
		return nil, fmt.Errorf("ssh host %s: address %q: %w", o.Host, o.Address, err)
	}
	o.Address = addr
	if o.HostKey != "" {
		if _, _, _, _, err := cryptossh.ParseAuthorizedKey([]byte(o.HostKey)); err != nil {
			return nil, fmt.Errorf("ssh host %s: host key %q: %w", o.Host, o.HostKey, err)
		}
	}
	if o.ResetTimeout <= 0 {
		o.ResetTimeout = defaultResetTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return &Provider{o: o, hostKey: strings.TrimSpace(o.HostKey)}, nil
}

// withPort adds sshd's port when addr has none and checks the result.
func withPort(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a name, an IPv4 address, or an IPv6 one with or
		// without brackets.
		host, port = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), "22"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" || strings.ContainsAny(host, "/ []@") {
		return "", errors.New("not a host or host:port")
	}
	return net.JoinHostPort(host, port), nil
}

// Name is "ssh".
func (p *Provider) Name() string { return "ssh" }

// Simulated is false for a real Mac, true once the address turned out to
// be a simulated Mac (sxlab sim serve), which must never pass for real.
func (p *Provider) Simulated() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.simulated
}

// Reap does nothing: an existing Mac leaves no clones behind, and the
// next attempt's reset cleans up after a dead run.
func (p *Provider) Reap(context.Context) error { return nil }

// Clone claims the Mac for one attempt: it pins the host key (first
// contact), logs in, and runs the reset command. The Mac stays claimed
// until the machine is deleted.
func (p *Provider) Clone(ctx context.Context, img vm.Image, name string) (vm.Machine, error) {
	p.mu.Lock()
	if p.busy != "" {
		busy := p.busy
		p.mu.Unlock()
		return nil, fmt.Errorf("ssh host %s: clone %s: %w: %s is still using it (set hosts[].slots to 1)", p.o.Host, name, ErrBusy, busy)
	}
	p.busy = name
	p.mu.Unlock()
	m, err := p.claim(ctx, img, name)
	if err != nil {
		p.release(name)
		return nil, err
	}
	return m, nil
}

func (p *Provider) claim(ctx context.Context, img vm.Image, name string) (*Machine, error) {
	ep := guest.Endpoint{Addr: p.o.Address, User: p.o.User, Password: p.o.Password, KeyFile: p.o.KeyFile}
	if ep.User == "" {
		ep.User = img.User
	}
	if ep.User == "" {
		ep.User = defaultUser
	}
	if ep.Password == "" && ep.KeyFile == "" {
		ep.Password, ep.KeyFile = img.Password, img.KeyFile
	}
	key, err := p.pinnedKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("ssh host %s: clone %s: %w", p.o.Host, name, err)
	}
	ep.HostKey = key
	if err := p.reset(ctx, ep); err != nil {
		return nil, fmt.Errorf("ssh host %s: clone %s: %w", p.o.Host, name, err)
	}
	return &Machine{p: p, name: name, ep: ep}, nil
}

// pinnedKey returns the Mac's host key, learning it at the first contact.
func (p *Provider) pinnedKey(ctx context.Context) (string, error) {
	p.mu.Lock()
	key := p.hostKey
	p.mu.Unlock()
	if key != "" {
		return key, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.o.ConnectTimeout)
	defer cancel()
	k, err := scanHostKey(ctx, p.o.Address)
	if err != nil {
		return "", fmt.Errorf("read the host key of %s: %w", p.o.Address, err)
	}
	key = strings.TrimSpace(string(cryptossh.MarshalAuthorizedKey(k)))
	p.o.Logf("ssh host %s: trusting host key %s on first use", p.o.Host, cryptossh.FingerprintSHA256(k))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hostKey == "" {
		p.hostKey = key
	}
	return p.hostKey, nil
}

// scanHostKey reads the host key sshd offers, as ssh-keyscan does: the
// key exchange runs, and the connection is dropped before any login.
func scanHostKey(ctx context.Context, addr string) (cryptossh.PublicKey, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	var key cryptossh.PublicKey
	seen := errors.New("host key seen")
	cfg := &cryptossh.ClientConfig{
		User: "sxlab",
		HostKeyCallback: func(_ string, _ net.Addr, k cryptossh.PublicKey) error {
			key = k
			return seen
		},
	}
	c, _, _, err := cryptossh.NewClientConn(conn, addr, cfg)
	if c != nil {
		_ = c.Close()
	}
	if key != nil {
		return key, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, err
}

// reset logs in and runs the reset command; with none it still logs in,
// so a Mac that is down or refuses the credentials fails the clone, not
// a step.
func (p *Provider) reset(ctx context.Context, ep guest.Endpoint) error {
	c, err := guest.Dial(ctx, ep, guest.Options{ConnectTimeout: p.o.ConnectTimeout, Logf: p.o.Logf})
	if err != nil {
		return err
	}
	defer c.Close()
	if c.ServerVersion() == guest.SimServerVersion {
		p.mu.Lock()
		p.simulated = true
		p.mu.Unlock()
	}
	if p.o.Reset == "" {
		return nil
	}
	res, err := c.Run(ctx, guest.Cmd{Line: p.o.Reset, Timeout: p.o.ResetTimeout})
	if err != nil {
		return fmt.Errorf("reset (%s): %w", p.o.Reset, err)
	}
	if res.Exit != 0 {
		out := strings.TrimSpace(strings.TrimSpace(res.Stderr) + "\n" + strings.TrimSpace(res.Stdout))
		if len(out) > resetOutputTail {
			out = "…" + out[len(out)-resetOutputTail:]
		}
		if out == "" {
			out = "(no output)"
		}
		return fmt.Errorf("reset (%s) exited %d, so the Mac is not known to be at its baseline: %s", p.o.Reset, res.Exit, out)
	}
	p.o.Logf("ssh host %s: reset done in %s", p.o.Host, res.Duration.Round(time.Millisecond))
	return nil
}

func (p *Provider) release(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy == name {
		p.busy = ""
	}
}

// Machine is one attempt's use of the Mac.
type Machine struct {
	p    *Provider
	name string
	ep   guest.Endpoint

	mu      sync.Mutex
	started bool
	deleted bool
}

// Name is the machine's name as the lab gave it.
func (m *Machine) Name() string { return m.name }

// Start does nothing: the Mac is already up.
func (m *Machine) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deleted {
		return fmt.Errorf("ssh host %s: start %s: the machine was deleted", m.p.o.Host, m.name)
	}
	m.started = true
	return nil
}

// Endpoint is the configured address, credentials and pinned host key.
func (m *Machine) Endpoint(context.Context) (guest.Endpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started || m.deleted {
		return guest.Endpoint{}, fmt.Errorf("ssh host %s: endpoint of %s: the machine is not started", m.p.o.Host, m.name)
	}
	ep := m.ep
	ep.Simulated = m.p.Simulated()
	return ep, nil
}

// Stop does nothing: the Mac is not ours to shut down.
func (m *Machine) Stop(context.Context) error { return nil }

// Delete gives the Mac back for the next attempt; nothing on it is
// touched (the next reset does that).
func (m *Machine) Delete(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.deleted {
		m.deleted = true
		m.p.release(m.name)
	}
	return nil
}
