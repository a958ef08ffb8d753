package steps

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
)

// stepFunc is a step made of a function, to play a step cut short.
type stepFunc func(ctx context.Context, env *Env) error

func (stepFunc) Kind() string                              { return "shell" }
func (f stepFunc) Run(ctx context.Context, env *Env) error { return f(ctx, env) }

// waitThen waits for ctx to end, then returns what wording gives.
func waitThen(wording func(ctx context.Context) error) stepFunc {
	return func(ctx context.Context, _ *Env) error {
		<-ctx.Done()
		return wording(ctx)
	}
}

func TestTimeoutIsTheLabsErrorNamingStepAndBound(t *testing.T) {
	env := testEnv(newFake())
	var logged []Entry
	env.Record = func(e Entry) { logged = append(logged, e) }
	// A step cut short may word its end as a product failure (a probe
	// whose command died): the bound must still read as the lab's.
	st := WithTimeout(waitThen(func(ctx context.Context) error { return fail("3 shell", "exit 143") }), "3 shell", 20*time.Millisecond)
	err := st.Run(context.Background(), env)
	var terr *TimeoutError
	require.ErrorAs(t, err, &terr)
	assert.False(t, IsProductFailure(err), "a timeout is the lab's error")
	assert.Contains(t, err.Error(), "3 shell: did not finish within its timeout of 20ms")
	assert.Equal(t, "shell", st.Kind())
	require.NotEmpty(t, logged, "steps.jsonl says why the step ended")
	assert.Contains(t, logged[len(logged)-1].Error, "timeout of 20ms")
}

func TestAnInterruptIsNotAStepTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st := WithTimeout(waitThen(func(ctx context.Context) error { return ctx.Err() }), "3 shell", time.Hour)
	cancel()
	err := st.Run(ctx, testEnv(newFake()))
	require.ErrorIs(t, err, context.Canceled)
	var terr *TimeoutError
	assert.NotErrorAs(t, err, &terr)
}

func TestNoTimeoutLeavesTheStepAsIs(t *testing.T) {
	s := Sleep{Label: "s", For: time.Millisecond}
	assert.Equal(t, s, WithTimeout(s, "s", 0))
	require.NoError(t, WithTimeout(s, "s", time.Hour).Run(context.Background(), testEnv(newFake())))
}

// hangingGuest answers scutil's start, then hangs every status query
// until its context ends: a wedged guest, not a VPN that will not connect.
type hangingGuest struct{ *fakeGuest }

func (g hangingGuest) Run(ctx context.Context, c guest.Cmd) (guest.Result, error) {
	if strings.Contains(c.Line, "--nc status") {
		<-ctx.Done()
		return guest.Result{Line: c.Line}, context.Cause(ctx)
	}
	return g.fakeGuest.Run(ctx, c)
}

func TestAPollingStepThatHangsPastItsGraceIsTheLabsError(t *testing.T) {
	g := newFake().on(`scutil --nc start 'Example VPN'`, ok(""))
	env := testEnv(g)
	env.Guest = hangingGuest{g}
	st := WithTimeoutGrace(VPN{Label: "4 vpn", Action: "start", Timeout: 20 * time.Millisecond}, "4 vpn", 20*time.Millisecond, 20*time.Millisecond)
	err := st.Run(context.Background(), env)
	var terr *TimeoutError
	require.ErrorAs(t, err, &terr)
	assert.False(t, IsProductFailure(err))
	assert.Contains(t, err.Error(), "4 vpn: did not finish within its timeout of 20ms and 20ms for its last check")
}

func TestAPollingStepThatMissesItsStateIsStillAFail(t *testing.T) {
	g := newFake().on(`scutil --nc start 'Example VPN'`, ok("")).on(`scutil --nc status 'Example VPN'`, ok("Connecting\n"))
	st := WithTimeoutGrace(VPN{Label: "4 vpn", Action: "start", Timeout: 20 * time.Millisecond}, "4 vpn", 20*time.Millisecond, time.Minute)
	err := st.Run(context.Background(), testEnv(g))
	require.Error(t, err)
	assert.True(t, IsProductFailure(err), "%v", err)
}
