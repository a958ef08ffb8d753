package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sxlab/sxlab/lab"
)

// configFlag registers --config on cmd and returns where it lands.
func configFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("config", "", "configuration file (default ./config.yaml, then $XDG_CONFIG_HOME/sxlab/config.yaml)")
}

// load reads the configuration; overrides maps configuration keys to the
// command's flags that set them.
func load(file string, overrides map[string]*pflag.Flag) (*lab.Loaded, error) {
	return loadTo(os.Stderr, file, overrides)
}

// loadTo is load with its warnings (an SXLAB_* variable that names no
// key) written to stderr.
func loadTo(stderr io.Writer, file string, overrides map[string]*pflag.Flag) (*lab.Loaded, error) {
	l, err := lab.Load(lab.LoadOptions{File: file, LookupEnv: os.LookupEnv, Environ: os.Environ, Flags: overrides})
	if l != nil {
		for _, w := range l.Warnings {
			fmt.Fprintf(stderr, "sxlab: warning: %s\n", w)
		}
	}
	return l, err
}

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check or show the configuration"}

	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration; print every problem as FILE:LINE:COL: message",
		Args:  cobra.NoArgs,
	}
	vfile := configFlag(validate)
	validate.RunE = func(c *cobra.Command, _ []string) error {
		l, err := loadTo(c.ErrOrStderr(), *vfile, nil)
		if err != nil {
			return err
		}
		_, whole, err := l.Plan(lab.PlanOptions{})
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		cfg := l.Config
		slots := 0
		for _, h := range cfg.Hosts {
			slots += h.Slots
		}
		fmt.Fprintf(c.OutOrStdout(), "%s: ok: lab %s, %d host(s) with %d slot(s), %d image(s), %d version(s), %d cells × %d = %d attempts\n",
			l.File, cfg.Lab.Name, len(cfg.Hosts), slots, len(cfg.Images), len(cfg.App.Versions), len(whole.Cells), cfg.Matrix.Repeat, len(whole.Attempts))
		return nil
	}

	print := &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (defaults, file, environment, flags) with secrets redacted",
		Args:  cobra.NoArgs,
	}
	pfile := configFlag(print)
	print.RunE = func(c *cobra.Command, _ []string) error {
		l, err := loadTo(c.ErrOrStderr(), *pfile, nil)
		if err != nil {
			return err
		}
		out, err := l.EffectiveYAML()
		if err != nil {
			return err
		}
		_, err = c.OutOrStdout().Write(out)
		return err
	}

	cmd.AddCommand(validate, print)
	return cmd
}
