package sim

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// posixQuote is the quoting the lab uses for arguments it builds: single
// quotes, with ' written as '\”.
func posixQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// randomArg draws a string full of what shells trip over.
func randomArg(r *rand.Rand) string {
	alphabet := []rune("ab Z09 \t\n'\"$\\`;&|<>()[]{}*?#~!%=-_./:,é中🙂\r")
	n := r.IntN(12)
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func TestQuotedArgumentsRoundTripOverSSH(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := dial(t, m.ep)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 50; i++ {
		arg := randomArg(r)
		out, errs, code := run(t, c, "printf %s "+posixQuote(arg))
		require.Equal(t, 0, code, errs)
		require.Equal(t, arg, out)
	}
}
