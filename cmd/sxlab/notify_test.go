package main

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// main's context names the signal that ended it, so sxlab run can leave
// that signal to its stopper and still pass a caller's cancel on.
func TestNotifyContextSaysWhichSignalEndedIt(t *testing.T) {
	ctx, stop := notifyContext(context.Background(), syscall.SIGUSR1)
	defer stop()
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGUSR1))
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the signal did not end the context")
	}
	got, ok := errors.AsType[signalled](context.Cause(ctx))
	require.True(t, ok, "cause: %v", context.Cause(ctx))
	assert.Equal(t, syscall.SIGUSR1, got.sig)
	assert.ErrorIs(t, ctx.Err(), context.Canceled)

	plain, stopPlain := notifyContext(context.Background(), syscall.SIGUSR2)
	stopPlain()
	_, bySignal := errors.AsType[signalled](context.Cause(plain))
	assert.False(t, bySignal, "a stop is no signal")
}
