package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/vm/sim"
)

func newSimCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sim", Short: "Work with simulated Macs"}
	cmd.AddCommand(newSimServeCmd())
	return cmd
}

type simServeFlags struct {
	config, image, listen, name string
	authorizedKeys              []string
	timeScale                   float64
	verbose                     bool
}

func newSimServeCmd() *cobra.Command {
	var f simServeFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run one simulated Mac in the foreground and print how to ssh into it",
		Long: `Run one simulated Mac of a configured image until interrupted. It is a
test server with a known password: it listens on 127.0.0.1 unless --listen
names another address explicitly.`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "configuration file (default ./config.yaml, then $XDG_CONFIG_HOME/sxlab/config.yaml)")
	fl.StringVar(&f.image, "image", "", "image to simulate (default: the first sim image of the matrix's image axis, said on stderr)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:0", "address of the simulated Mac's sshd (port 0: a free port)")
	fl.StringArrayVar(&f.authorizedKeys, "authorized-key", nil, "public key file (authorized_keys format) allowed to log in; repeatable")
	fl.Float64Var(&f.timeScale, "time-scale", -1, "multiplies simulated durations: 0 instant, 1 real time (default: the first sim host's time_scale, else 1)")
	fl.StringVar(&f.name, "name", "", "machine name; the guest's hostname derives from it (default sim-IMAGE)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log connections, reboots and failed logins to stderr")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		return simServe(c.Context(), f, c.OutOrStdout(), c.ErrOrStderr())
	}
	return cmd
}

// checkListen refuses to listen beyond loopback by accident: a host part
// must be written out to do so (":2222" is refused, "0.0.0.0:2222" is
// allowed with a warning).
func checkListen(addr string, stderr io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError("--listen %q: %v", addr, err)
	}
	if host == "" {
		return usageError("--listen %q listens on every interface; write the address out (0.0.0.0%s) if that is really meant", addr, addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return usageError("--listen %q: give an IP address", addr)
	}
	if !ip.IsLoopback() {
		fmt.Fprintf(stderr, "warning: %s is reachable from the network; this simulated Mac is a test server with a known password\n", addr)
	}
	return nil
}

// firstSimImage is the image a person thinks of first: the first value of
// the matrix's image axis that has a sim section, else the first by name.
func firstSimImage(cfg *lab.Config, simImages []string) string {
	for _, ax := range cfg.Matrix.Axes {
		if ax.Name != cfg.Matrix.ImageAxis {
			continue
		}
		for _, v := range ax.Values {
			if img, ok := cfg.Images[v]; ok && img.Sim != nil {
				return v
			}
		}
	}
	return simImages[0]
}

func simServe(ctx context.Context, f simServeFlags, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkListen(f.listen, stderr); err != nil {
		return err
	}
	l, err := loadTo(stderr, f.config, nil)
	if err != nil {
		return err
	}
	cfg := l.Config
	var simImages []string
	for name, img := range cfg.Images {
		if img.Sim != nil {
			simImages = append(simImages, name)
		}
	}
	sort.Strings(simImages)
	if f.image == "" {
		if len(simImages) == 0 {
			return usageError("no image of %s has a sim section to simulate", l.File)
		}
		f.image = firstSimImage(&cfg, simImages)
		if len(simImages) > 1 {
			fmt.Fprintf(stderr, "sxlab: simulating %s, the first image of the matrix (--image picks another: %s)\n", f.image, strings.Join(simImages, ", "))
		}
	}
	if img, ok := cfg.Images[f.image]; !ok || img.Sim == nil {
		return usageError("--image %q: no such sim image (images with a sim section: %s)", f.image, strings.Join(simImages, ", "))
	}
	images, err := l.ResolveImages(os.LookupEnv)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	img := images[f.image]

	var keys []ssh.PublicKey
	for _, file := range f.authorizedKeys {
		ks, err := readAuthorizedKeys(file)
		if err != nil {
			return usageError("--authorized-key: %v", err)
		}
		keys = append(keys, ks...)
	}
	scale := f.timeScale
	if scale < 0 {
		scale = 1
		for _, h := range cfg.Hosts {
			if h.Provider == lab.ProviderSim && h.Sim != nil && h.Sim.TimeScale != nil {
				scale = *h.Sim.TimeScale
				break
			}
		}
	}
	name := f.name
	if name == "" {
		name = "sim-" + f.image
	}
	var logf func(string, ...any)
	if f.verbose {
		var mu sync.Mutex
		logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
	}

	p := sim.NewProvider(sim.Options{TimeScale: scale, Seed: cfg.Lab.Seed, Listen: f.listen, AuthorizedKeys: keys, Logf: logf, BaseDir: simMachinesDir()})
	m, err := p.NewMachine(ctx, img, name)
	if err != nil {
		return err
	}
	defer func() {
		// the run's context is over by now: clean up under a fresh one
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := m.Delete(dctx); err != nil {
			fmt.Fprintf(stderr, "sxlab: %v\n", err)
		}
	}()
	if err := m.Start(ctx); err != nil {
		return err
	}
	ep, err := m.Endpoint(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while booting
		}
		return err
	}
	host, port, _ := net.SplitHostPort(ep.Addr)
	fmt.Fprintf(stdout, "simulated Mac %q: macOS %s (%s), image %s — SIMULATED, not a real Mac\n", name, img.Sim.ProductVersion, img.Sim.Build, f.image)
	fmt.Fprintf(stdout, "  address:  %s\n", ep.Addr)
	fmt.Fprintf(stdout, "  user:     %s\n", ep.User)
	fmt.Fprintf(stdout, "  password: %s\n", ep.Password)
	fmt.Fprintf(stdout, "  host key: %s (%s)\n", ssh.FingerprintSHA256(m.HostKey()), ep.HostKey)
	if len(keys) > 0 {
		fmt.Fprintf(stdout, "  keys:     %d authorized\n", len(keys))
	}
	fmt.Fprintf(stdout, "  try:      ssh -p %s %s@%s sw_vers\n", port, ep.User, host)
	fmt.Fprintf(stdout, "            sftp -P %s %s@%s\n", port, ep.User, host)
	fmt.Fprintf(stdout, "  time scale %g; stop with Ctrl-C\n", scale)
	<-ctx.Done()
	fmt.Fprintf(stdout, "stopping %s\n", name)
	return nil
}

// readAuthorizedKeys reads every key of an authorized_keys-format file.
func readAuthorizedKeys(file string) ([]ssh.PublicKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var keys []ssh.PublicKey
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no public key", file)
	}
	return keys, nil
}
