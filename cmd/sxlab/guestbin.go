package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sxlab/sxlab/guestbin"
)

// probeEnv names a prebuilt darwin/arm64 sxlab-probe, for an sxlab run
// away from a checkout.
const probeEnv = "SXLAB_PROBE"

// probeBinary gives the run its sxlab-probe: built from this checkout on
// first use (cached), or the file SXLAB_PROBE names.
func probeBinary() func(ctx context.Context) (string, error) {
	b := &guestbin.Builder{Prebuilt: map[string]string{guestbin.Probe: os.Getenv(probeEnv)}}
	return func(ctx context.Context) (string, error) {
		p, err := b.Path(ctx, guestbin.Probe)
		if err != nil && os.Getenv(probeEnv) == "" {
			return "", fmt.Errorf("%w (or set %s to a darwin/arm64 sxlab-probe)", err, probeEnv)
		}
		return p, err
	}
}
