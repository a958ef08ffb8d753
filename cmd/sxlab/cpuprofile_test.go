package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A profile is written whole even when the command fails: that is when
// someone wants to know where the time went.
func TestCPUProfileIsWrittenEvenWhenTheCommandFails(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"plan", []string{"plan", "--config", demoConfig}, exitOK},
		{"failing", []string{"config", "validate", "--config", filepath.Join(dir, "missing.yaml")}, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prof := filepath.Join(dir, tc.name+".pprof")
			var out, errb strings.Builder
			code := run(context.Background(), append([]string{"--cpuprofile", prof}, tc.args...), &out, &errb)
			assert.Equal(t, tc.code, code, errb.String())
			data, err := os.ReadFile(prof)
			require.NoError(t, err)
			// runtime/pprof writes a gzip'd protocol buffer; a profile
			// never stopped is an empty file.
			require.Greater(t, len(data), 2)
			assert.Equal(t, []byte{0x1f, 0x8b}, data[:2])
		})
	}
}
