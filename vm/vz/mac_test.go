package vz

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRandomMACIsLocallyAdministeredUnicast(t *testing.T) {
	// The draw is forced to locally administered (bit 1) and unicast (bit 0 clear).
	mac, err := RandomMAC(bytes.NewReader(bytes.Repeat([]byte{0xff}, 6)))
	require.NoError(t, err)
	assert.Equal(t, "fe:ff:ff:ff:ff:ff", mac)

	mac, err = RandomMAC(bytes.NewReader(make([]byte, 6)))
	require.NoError(t, err)
	assert.Equal(t, "02:00:00:00:00:00", mac)

	for range 100 {
		mac, err := RandomMAC(rand.Reader)
		require.NoError(t, err)
		hw, err := ParseMAC(mac)
		require.NoError(t, err, mac)
		assert.True(t, IsLocallyAdministered(hw), mac)
	}
}

func TestRandomMACFailsOnShortRandomness(t *testing.T) {
	_, err := RandomMAC(bytes.NewReader([]byte{1, 2}))
	assert.ErrorContains(t, err, "draw a MAC address")
}

func TestCloneMAC(t *testing.T) {
	const golden = "5e:1c:0a:3f:77:d2"
	kept, err := CloneMAC(golden, true, rand.Reader)
	require.NoError(t, err)
	assert.Equal(t, golden, kept, "a restoring clone keeps the MAC its state was saved with")

	fresh, err := CloneMAC(golden, false, rand.Reader)
	require.NoError(t, err)
	assert.NotEqual(t, golden, fresh)

	// A random source that draws the golden's own address is skipped.
	src := bytes.NewReader(append([]byte{0x5e, 0x1c, 0x0a, 0x3f, 0x77, 0xd2}, 0x02, 0, 0, 0, 0, 9))
	fresh, err = CloneMAC(golden, false, src)
	require.NoError(t, err)
	assert.Equal(t, "02:00:00:00:00:09", fresh)

	_, err = CloneMAC("nope", false, rand.Reader)
	assert.ErrorContains(t, err, "golden's macAddress")
}

func TestParseMACAcceptsBootpdSpelling(t *testing.T) {
	hw, err := ParseMAC("1,6:e8:a3:b0:23:b4")
	require.NoError(t, err)
	assert.Equal(t, "06:e8:a3:b0:23:b4", FormatMAC(hw))
	_, err = ParseMAC("01:00:5e:00:00:01")
	assert.ErrorContains(t, err, "multicast")
}
