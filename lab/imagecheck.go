package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sxlab/sxlab/golden"
	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/matrices"
	"github.com/sxlab/sxlab/vm"
)

// ImageNeeds says what the scenario asks of each image over the cells:
// which images have a step approving through System Settings (ui, or
// its deprecated alias prompt) and which use approve: mdm.
func (c *Config) ImageNeeds(cells []matrices.Cell, images map[string]vm.Image) map[string]golden.Needs {
	out := map[string]golden.Needs{}
	for _, cell := range cells {
		name := imageOf(c, images, matrices.Attempt{Cell: cell})
		n := out[name]
		for _, s := range c.Scenario {
			if s.Approve == nil || !Applies(s.When, cell.Values) {
				continue
			}
			switch s.Approve.Strategy {
			case "ui", "prompt":
				n.UI = true
			case "mdm":
				n.MDM = true
			}
		}
		out[name] = n
	}
	return out
}

// ImageCheckOptions says which image to check and how to reach it.
type ImageCheckOptions struct {
	Loaded *Loaded
	Image  string
	// Host names the host to boot it on; "" takes the first host whose
	// provider has a section for the image (an ssh host takes any).
	Host        string
	NewProvider func(h Host, seed int64) (vm.Provider, error)
	// Providers, when it has the host, is used instead of NewProvider
	// (a run's providers, already made and reaped).
	Providers map[string]vm.Provider
	Dial      DialFunc
	LookupEnv func(string) (string, bool)
	// Needs overrides what the scenario asks of the image (nil: read it
	// from the configuration's matrix and scenario).
	Needs *golden.Needs
	// Preflight runs only golden.Preflight's cheap subset.
	Preflight bool
	// KnownHosts is where the clone's host key is pinned ("" : a file in
	// a temporary folder, removed afterwards).
	KnownHosts string
}

// ImageCheck is what checking one image found.
type ImageCheck struct {
	Image     string         `json:"image"`
	Host      string         `json:"host"`
	Provider  string         `json:"provider"`
	Simulated bool           `json:"simulated"`
	Needs     golden.Needs   `json:"needs"`
	Checks    []golden.Check `json:"checks"`
}

// Failed reports whether any check is a FAILURE.
func (r *ImageCheck) Failed() bool { return golden.Failed(r.Checks) }

// hostFor picks the host that boots an image.
func hostFor(cfg *Config, image, want string) (Host, error) {
	img := cfg.Images[image]
	for _, h := range cfg.Hosts {
		if want != "" {
			if h.Name == want {
				return h, nil
			}
			continue
		}
		switch {
		case h.Provider == ProviderSim && img.Sim != nil,
			h.Provider == ProviderVZ && img.VZ != nil,
			h.Provider == ProviderTart && img.Tart != nil,
			h.Provider == ProviderSSH:
			return h, nil
		}
	}
	if want != "" {
		return Host{}, fmt.Errorf("host %s is not in the configuration's hosts", want)
	}
	return Host{}, fmt.Errorf("no host can boot image %s: it needs a host whose provider has a section in images.%s (sim, vz, tart) or an ssh host", image, image)
}

// CheckImage clones and boots the image on its host (or connects, for
// an ssh host) as an attempt would, runs the golden checks and deletes
// the machine. An error means the lab could not get to the checks: the
// machine would not clone, boot or answer SSH (then Remote Login is the
// likely fix, and the error says what happened).
func CheckImage(ctx context.Context, o ImageCheckOptions) (*ImageCheck, error) {
	l := o.Loaded
	cfg := &l.Config
	if _, ok := cfg.Images[o.Image]; !ok {
		return nil, &SetupError{fmt.Errorf("image %s is not in %s (known: %s)", o.Image, l.File, strings.Join(slices.Sorted(maps.Keys(cfg.Images)), ", "))}
	}
	images, err := l.ResolveImages(o.LookupEnv)
	if err != nil {
		return nil, &SetupError{err}
	}
	img := images[o.Image]
	h, err := hostFor(cfg, o.Image, o.Host)
	if err != nil {
		return nil, &SetupError{err}
	}
	if h, err = l.ResolveHost(h, o.LookupEnv); err != nil {
		return nil, &SetupError{err}
	}
	prov := o.Providers[h.Name]
	if prov == nil {
		if prov, err = o.NewProvider(h, cfg.Lab.Seed); err != nil {
			return nil, &SetupError{fmt.Errorf("host %s: %w", h.Name, err)}
		}
	}
	needs := golden.Needs{}
	if o.Needs != nil {
		needs = *o.Needs
	} else {
		_, whole, err := cfg.Plan(PlanOptions{})
		if err != nil {
			return nil, &SetupError{err}
		}
		needs = cfg.ImageNeeds(whole.Cells, images)[o.Image]
	}
	app, err := l.StepsApp()
	if err != nil {
		return nil, &SetupError{err}
	}
	knownHosts := o.KnownHosts
	if knownHosts == "" {
		dir, err := os.MkdirTemp("", "sxlab-image-check-")
		if err != nil {
			return nil, fmt.Errorf("image check: %w", err)
		}
		defer os.RemoveAll(dir)
		knownHosts = filepath.Join(dir, "known_hosts")
	}

	out := &ImageCheck{Image: o.Image, Host: h.Name, Provider: h.Provider, Simulated: prov.Simulated(), Needs: needs}
	name := fmt.Sprintf("sxlab-check-%s-%d", sanitizeName(o.Image), time.Now().UnixNano()%1_000_000)
	var undo cleanups
	defer func() { _ = undo.run(ctx, cleanupTimeoutOf(cfg)) }()
	m, err := prov.Clone(ctx, img, name)
	if err != nil {
		return nil, fmt.Errorf("clone image %s on host %s: %w", o.Image, h.Name, err)
	}
	undo.push(m.Delete)
	bootCtx, cancel := context.WithTimeout(ctx, time.Duration(cfg.Lab.Timeouts.Boot))
	defer cancel()
	if err := m.Start(bootCtx); err != nil {
		return nil, fmt.Errorf("boot image %s: %w", o.Image, err)
	}
	undo.push(m.Stop)
	ep, err := m.Endpoint(bootCtx)
	if err != nil {
		return nil, fmt.Errorf("image %s: wait for the guest's address: %w", o.Image, err)
	}
	out.Simulated = out.Simulated || ep.Simulated
	conn, err := o.Dial(bootCtx, ep, knownHosts, name)
	if errors.Is(err, guest.ErrAuth) {
		// sshd answered and refused the image's credentials: a verdict on
		// the golden, not a machine that failed to come up.
		out.Checks = []golden.Check{{Name: "remote-login", Title: "Remote Login (SSH)", Status: golden.Failure,
			Detail:   fmt.Sprintf("sshd at %s refused %s: %v", ep, ep.User, err),
			Fix:      fmt.Sprintf("set images.%s.user and auth to the golden's login, and let that user log in over SSH (System Settings > General > Sharing > Remote Login: allow access for all users, or this one)", o.Image),
			Commands: []golden.Exec{}}}
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: log in over SSH at %s as %s: %w (is Remote Login on in the golden? System Settings > General > Sharing > Remote Login, or sudo systemsetup -setremotelogin on)", o.Image, ep, ep.User, err)
	}
	undo.push(func(context.Context) error { return conn.Close() })
	t := golden.Target{Image: o.Image, User: img.User, Address: ep.String(),
		Team: app.Extension.TeamID, Extension: app.Extension.BundleID, Needs: needs}
	if o.Preflight {
		out.Checks = golden.Preflight(ctx, conn, t)
	} else {
		out.Checks = golden.All(ctx, conn, t)
	}
	return out, nil
}

func cleanupTimeoutOf(cfg *Config) time.Duration {
	if d := time.Duration(cfg.Lab.Timeouts.Boot); d > 0 {
		return d
	}
	return 5 * time.Minute
}

// sanitizeName keeps a machine name to letters, digits and dashes.
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			return r
		}
		return '-'
	}, s)
}

// SetupError is a CheckImage error found before any machine was
// touched: the configuration names no such image or host, or a
// credential is missing.
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// ErrImageUnfit stops a run before its first attempt: an image cannot
// give the scenario's cells a meaning (golden.Preflight failed).
var ErrImageUnfit = errors.New("image unfit for the scenario")

// checkImagesFirst checks, once per image the attempts use and before the
// first of them, what the scenario cannot do without; a FAILURE stops
// the run with one error naming every image's problems and fixes
// instead of a matrix of false failures.
func checkImagesFirst(ctx context.Context, o RunOptions, todo []matrices.Attempt, images map[string]vm.Image, providers map[string]vm.Provider, runDir string) error {
	cfg := &o.Loaded.Config
	var cells []matrices.Cell
	seen := map[string]bool{}
	var order []string
	for _, a := range todo {
		cells = append(cells, a.Cell)
		if name := imageOf(cfg, images, a); !seen[name] {
			seen[name] = true
			order = append(order, name)
		}
	}
	needs := cfg.ImageNeeds(cells, images)
	var problems []string
	for _, name := range order {
		if _, ok := cfg.Images[name]; !ok {
			continue // the attempt says so itself
		}
		n := needs[name]
		if o.Note != nil {
			o.Note(fmt.Sprintf("checking image %s's golden before the first attempt (--skip-image-check skips it)", name))
		}
		res, err := CheckImage(ctx, ImageCheckOptions{Loaded: o.Loaded, Image: name, NewProvider: o.NewProvider, Providers: providers, Dial: o.Dial,
			LookupEnv: o.LookupEnv, Needs: &n, Preflight: true, KnownHosts: filepath.Join(runDir, "known_hosts")})
		if ctx.Err() != nil {
			// Interrupted: the run stops in order with nothing done, as an
			// interrupt before the first attempt always has.
			return nil
		}
		if err != nil {
			// The attempts meet the same trouble and record it as errors,
			// retried: a machine that would not boot once is no verdict.
			if o.Note != nil {
				o.Note(fmt.Sprintf("could not check image %s before the first attempt: %v", name, err))
			}
			continue
		}
		for _, c := range res.Checks {
			if c.Status == golden.Failure {
				p := fmt.Sprintf("image %s: %s: %s", name, c.Title, c.Detail)
				if c.Fix != "" {
					p += "\n    fix: " + c.Fix
				}
				problems = append(problems, p)
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: no attempt was run, because every cell on these images would end in a false verdict:\n  %s\n(sxlab image check IMAGE runs every golden check)",
		ErrImageUnfit, strings.Join(problems, "\n  "))
}
