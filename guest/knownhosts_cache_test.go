package guest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// cachedKeys is the host-key check of one connection of a run that
// shares cache, for a guest reached as alias.
func cachedKeys(t *testing.T, cache *HostKeyCache, file, alias string) *hostKeys {
	t.Helper()
	h, err := newHostKeys(Endpoint{Addr: "127.0.0.1:2222"}, Options{KnownHosts: file, HostKeyAlias: alias, HostKeyCache: cache})
	require.NoError(t, err)
	return h
}

var loopback = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}

func TestHostKeyCacheKeepsTheFileAsTheRecord(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known_hosts")
	cache := NewHostKeyCache()
	a, b := newSigner(t).PublicKey(), newSigner(t).PublicKey()

	// First connection to machine m1: trusted on first use, written down.
	require.NoError(t, cachedKeys(t, cache, file, "m1").callback("m1", loopback, a))
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, knownhosts.Line([]string{"m1:22"}, a)+"\n", string(data), "the file has the key at once")

	// A later connection of the run checks against what was recorded.
	err = cachedKeys(t, cache, file, "m1").callback("m1", loopback, b)
	require.ErrorIs(t, err, ErrHostKeyChanged)
	assert.Contains(t, err.Error(), file+":1")
	assert.Equal(t, []string{ssh.KeyAlgoED25519}, cachedKeys(t, cache, file, "m1").algorithms())

	// Lines someone else appends (another sxlab process, a person) count.
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("# added by hand\n" + knownhosts.Line([]string{"m2"}, b) + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	err = cachedKeys(t, cache, file, "m2").callback("m2", loopback, a)
	require.ErrorIs(t, err, ErrHostKeyChanged, "the appended line is read")
	assert.Contains(t, err.Error(), file+":3")

	// A file replaced by a shorter one (a person removed a line) is read again.
	require.NoError(t, os.WriteFile(file, []byte(knownhosts.Line([]string{"m1"}, b)+"\n"), 0o600))
	require.NoError(t, cachedKeys(t, cache, file, "m1").callback("m1", loopback, b))
	require.NoError(t, cachedKeys(t, cache, file, "m2").callback("m2", loopback, a), "m2 is no longer known: first use again")
	data, err = os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(data), "\n"))
}

// Hashed names (ssh-keygen -H) are not read by the cache; knownhosts
// judges such a file, so a changed key is still refused.
func TestHostKeyCacheLeavesHashedNamesToKnownhosts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known_hosts")
	a, b := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	require.NoError(t, os.WriteFile(file, []byte(knownhosts.Line([]string{knownhosts.HashHostname("m1")}, a)+"\n"), 0o600))
	cache := NewHostKeyCache()
	require.NoError(t, cachedKeys(t, cache, file, "m1").callback("m1", loopback, a))
	err := cachedKeys(t, cache, file, "m1").callback("m1", loopback, b)
	assert.ErrorIs(t, err, ErrHostKeyChanged)
}

func TestHostKeyCacheIsOptional(t *testing.T) {
	file := filepath.Join(t.TempDir(), "known_hosts")
	a, b := newSigner(t).PublicKey(), newSigner(t).PublicKey()
	require.NoError(t, cachedKeys(t, nil, file, "m1").callback("m1", loopback, a))
	assert.ErrorIs(t, cachedKeys(t, nil, file, "m1").callback("m1", loopback, b), ErrHostKeyChanged)
}
