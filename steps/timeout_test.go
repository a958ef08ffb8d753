package steps

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
