package main

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// What `go version -m` shows for a binary built by `go build` in a git
// checkout with an edited file.
func checkoutBuild() *debug.BuildInfo {
	return &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/sxlab/sxlab", Version: "v0.0.0-20261123194146-d0e5548e2d5c+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "d0e5548e2d5c49ba69df910835ada3f2d79445ec"},
			{Key: "vcs.time", Value: "2026-11-23T19:41:46Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
}

func TestVersionOfACheckoutBuildNamesTheCommit(t *testing.T) {
	s := buildStamp(checkoutBuild())
	assert.Equal(t, "v0.0.0-20261123194146-d0e5548e2d5c+dirty", s.version)
	assert.Equal(t, "d0e5548e2d5c49ba69df910835ada3f2d79445ec (2026-11-23T19:41:46Z, with uncommitted changes)", s.commitLine())
	assert.Equal(t, "sxlab v0.0.0-20261123194146-d0e5548e2d5c+dirty (d0e5548e2d5c+modified, "+runtime.Version()+")", s.short())
}

func TestVersionWithoutAStampSaysWhy(t *testing.T) {
	s := buildStamp(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}})
	assert.Equal(t, "dev", s.version)
	assert.Contains(t, s.commitLine(), "not stamped")
	assert.Contains(t, s.commitLine(), "go build ./cmd/sxlab")
	assert.Equal(t, "sxlab dev (unknown, "+runtime.Version()+")", s.short())
	assert.Equal(t, "dev", buildStamp(nil).version)
}
