package guest

import (
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuote(t *testing.T) {
	assert.Equal(t, "installer", Quote("installer"))
	assert.Equal(t, "/tmp/x-1.pkg", Quote("/tmp/x-1.pkg"))
	assert.Equal(t, "'/Applications/Coder Desktop.app'", Quote("/Applications/Coder Desktop.app"))
	assert.Equal(t, `'it'\''s'`, Quote("it's"))
	assert.Equal(t, "''", Quote(""))
	assert.Equal(t, "'$HOME'", Quote("$HOME"))
	assert.Equal(t, "open -a '/Applications/Example VPN.app'", Join("open", "-a", "/Applications/Example VPN.app"))
}

// randomWord draws from the characters that break naive quoting.
func randomWord(r *rand.Rand) string {
	alphabet := []rune("aZ9 \t\n'\"$`\\!*?[]{}();&|<>~#=%-é漢🙂")
	n := r.IntN(12)
	out := make([]rune, n)
	for i := range out {
		out[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(out)
}

// TestQuoteRoundTripsThroughSh: whatever the word, the shell hands the
// program exactly those bytes.
func TestQuoteRoundTripsThroughSh(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		w := randomWord(r)
		out, err := exec.Command(sh, "-c", "printf %s "+Quote(w)).Output()
		require.NoError(t, err, "word %q", w)
		require.Equal(t, w, string(out), "word %q quoted as %s", w, Quote(w))
	}
}
