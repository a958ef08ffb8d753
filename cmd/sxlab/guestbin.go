package main

import (
	"context"
	"os"

	"github.com/sxlab/sxlab/guestbin"
)

// probeBinary gives the run its sxlab-probe: built from this checkout on
// first use (cached), or the darwin/arm64 file SXLAB_PROBE names.
func probeBinary() func(ctx context.Context) (string, error) {
	b := &guestbin.Builder{Prebuilt: map[string]string{guestbin.Probe: os.Getenv("SXLAB_PROBE")}}
	return func(ctx context.Context) (string, error) { return b.Path(ctx, guestbin.Probe) }
}
