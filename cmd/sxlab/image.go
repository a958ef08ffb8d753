package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sxlab/sxlab/internal/plainjson"
	"github.com/sxlab/sxlab/lab"
	"github.com/sxlab/sxlab/vm/vz"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Golden macOS images (bundles) for the vz provider"}
	cmd.AddCommand(newImageInspectCmd(), newImageListCmd(), newImageImportTartCmd(), newImageCreateCmd(), newImageCopyCmd(), newImageWarmCmd(), newImageCheckCmd())
	return cmd
}

// storeFlags locate the vz store: --store, else the first vz host's
// hosts[].vz.store in the configuration, else ~/.sxlab/vz.
type storeFlags struct{ store, config string }

func (f *storeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.store, "store", "", "the vz store (default: hosts[].vz.store of the first vz host in the configuration, else ~/.sxlab/vz)")
	cmd.Flags().StringVar(&f.config, "config", "", "configuration file (default ./config.yaml, then $XDG_CONFIG_HOME/sxlab/config.yaml)")
}

func (f *storeFlags) resolve() (string, error) {
	if f.store != "" {
		return vz.ExpandHome(f.store), nil
	}
	l, err := load(f.config, nil)
	switch {
	case errors.Is(err, lab.ErrNotFound) && f.config == "":
		return vz.DefaultStore()
	case err != nil:
		return "", err
	}
	return f.storeOf(l)
}

// storeOf is resolve with the configuration loaded already.
func (f *storeFlags) storeOf(l *lab.Loaded) (string, error) {
	if f.store != "" {
		return vz.ExpandHome(f.store), nil
	}
	for _, h := range l.Config.Hosts {
		if h.Provider == lab.ProviderVZ && h.VZ != nil && h.VZ.Store != "" {
			return l.Resolve(h.VZ.Store), nil
		}
	}
	return vz.DefaultStore()
}

func newImageInspectCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "inspect BUNDLE",
		Short: "Print a bundle's description as JSON (a path, or the name of a bundle in the store)",
		Long: `Print what a tart-compatible bundle (a folder with config.json, disk.img,
nvram.bin and, when suspended, state.vzvmsave) describes, as JSON. Works on
any OS. A malformed or partial bundle is an error naming the file and field.`,
		Args: cobra.ExactArgs(1),
	}
	sf.register(cmd)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		dir := args[0]
		if !looksLikePath(dir) {
			store, err := sf.resolve()
			if err != nil {
				return err
			}
			dir = vz.ResolveBundle(store, dir)
		}
		in, err := vz.Inspect(dir)
		if err != nil {
			return err
		}
		return writeJSON(c.OutOrStdout(), in)
	}
	return cmd
}

// looksLikePath: a name with a separator or ~, or a folder that exists
// here, is a path; a bare name is a bundle in the store.
func looksLikePath(s string) bool {
	if strings.ContainsAny(s, `/\~`) || s == "." || s == ".." {
		return true
	}
	fi, err := os.Stat(s)
	return err == nil && fi.IsDir()
}

func writeJSON(w io.Writer, v any) error {
	enc := plainjson.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// listEntry is one bundle in `image list --json`.
type listEntry struct {
	Name    string         `json:"name"`
	Inspect *vz.Inspection `json:"inspect,omitempty"`
	Error   string         `json:"error,omitempty"`
}

func newImageListCmd() *cobra.Command {
	var (
		sf     storeFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the golden bundles in the vz store",
		Args:  cobra.NoArgs,
	}
	sf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		store, err := sf.resolve()
		if err != nil {
			return err
		}
		entries, err := vz.ListBundles(store)
		if err != nil {
			return err
		}
		var list []listEntry
		for _, e := range entries {
			le := listEntry{Name: e.Name}
			if e.Err != nil {
				le.Error = e.Err.Error()
			} else if in, err := vz.Inspect(e.Dir); err != nil {
				le.Error = err.Error()
			} else {
				le.Inspect = &in
			}
			list = append(list, le)
		}
		out := c.OutOrStdout()
		if asJSON {
			if list == nil {
				list = []listEntry{}
			}
			return writeJSON(out, map[string]any{"store": store, "images": list})
		}
		if len(list) == 0 {
			fmt.Fprintf(out, "no images in %s (sxlab image import-tart NAME copies one from tart)\n", store)
			return nil
		}
		fmt.Fprintf(out, "store %s\n", store)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCPU\tMEMORY\tDISK\tSAVED STATE\tSTATUS")
		for _, le := range list {
			if le.Inspect == nil {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tbroken: %s\n", le.Name, le.Error)
				continue
			}
			in := le.Inspect
			status := "ok"
			if in.Unbootable != "" {
				status = "cannot boot: " + in.Unbootable
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", le.Name, in.CPUCount, gib(int64(in.MemorySize)), gib(in.DiskBytes), yesNo(in.HasSavedState), status)
		}
		return tw.Flush()
	}
	return cmd
}

func gib(n int64) string {
	const g = 1 << 30
	if n >= g {
		return fmt.Sprintf("%.1f GiB", float64(n)/g)
	}
	return fmt.Sprintf("%d B", n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newImageImportTartCmd() *cobra.Command {
	var (
		sf       storeFlags
		as, home string
	)
	cmd := &cobra.Command{
		Use:   "import-tart NAME",
		Short: "Clone a tart VM (~/.tart/vms/NAME, or $TART_HOME/vms/NAME) into the vz store",
		Long: `Clone a local tart VM into the vz store as a golden bundle, copy-on-write
(clonefile) on macOS: the store must be on the same APFS volume as tart's
home. The VM must not be running. A suspended VM's saved state is not
imported: it was saved with tart's device set, which differs from sxlab's,
so the image boots cold.`,
		Args: cobra.ExactArgs(1),
	}
	sf.register(cmd)
	cmd.Flags().StringVar(&as, "as", "", "name of the bundle in the store (default NAME)")
	cmd.Flags().StringVar(&home, "tart-home", "", "tart's home (default $TART_HOME, else ~/.tart)")
	cmd.RunE = func(c *cobra.Command, args []string) error {
		store, err := sf.resolve()
		if err != nil {
			return err
		}
		if home == "" {
			if home, err = vz.TartHome(os.LookupEnv); err != nil {
				return err
			}
		}
		imp, err := vz.ImportTart(vz.ExpandHome(home), args[0], store, as)
		if err != nil {
			return err
		}
		out := c.OutOrStdout()
		fmt.Fprintf(out, "imported tart VM %s as %s (%s)\n", args[0], imp.To, imp.Method)
		if imp.SkippedState {
			fmt.Fprintln(out, "its saved state was not imported (tart's device set differs from sxlab's): the image boots cold until it is warmed")
		}
		return nil
	}
	return cmd
}
