package vz

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
)

// Three leases for the clone's MAC (bootpd prints octets unpadded): an
// expired one with the latest address, and two live ones of which the later
// expiry wins. Another guest's lease in between.
const leasesFixture = `{
	name=admins-Virtual-Machine
	ip_address=192.168.64.9
	hw_address=1,6:e8:a3:b0:23:b4
	identifier=1,6:e8:a3:b0:23:b4
	lease=0x66f00000
}
{
	name=admins-Virtual-Machine
	ip_address=192.168.64.5
	hw_address=1,6:e8:a3:b0:23:b4
	identifier=1,6:e8:a3:b0:23:b4
	lease=0x66f1a2b3
}
{
	name=other
	ip_address=192.168.64.6
	hw_address=1,2:0:0:0:0:1
	identifier=1,2:0:0:0:0:1
	lease=0x66f2ffff
}
{
	name=admins-Virtual-Machine
	ip_address=192.168.64.7
	hw_address=1,6:e8:a3:b0:23:b4
	identifier=1,6:e8:a3:b0:23:b4
	lease=0x66f1a000
}
`

const arpFixture = `? (192.168.64.1) at 3e:22:fb:b:9c:64 on bridge100 ifscope permanent [bridge]
? (192.168.64.20) at 6:e8:a3:b0:23:b4 on bridge100 ifscope [ethernet]
? (192.168.64.21) at (incomplete) on bridge100 ifscope [ethernet]
mac-mini.local (10.0.0.2) at 0:1c:42:0:0:8 on en0 ifscope [ethernet]
garbage line
`

func TestLookupIPNewestUnexpiredLeaseWins(t *testing.T) {
	leases, err := guest.ParseLeases(strings.NewReader(leasesFixture))
	require.NoError(t, err)
	now := time.Unix(0x66f10000, 0)

	ip, src, ok := LookupIP(leases, nil, "06:e8:a3:b0:23:b4", now)
	require.True(t, ok)
	assert.Equal(t, "192.168.64.5", ip)
	assert.Equal(t, SourceLeases, src)

	// Asked with bootpd's own unpadded spelling, the answer is the same.
	ip, _, ok = LookupIP(leases, nil, "6:e8:a3:b0:23:b4", now)
	require.True(t, ok)
	assert.Equal(t, "192.168.64.5", ip)

	// Once 0x66f1a000 has passed, only 0x66f1a2b3 is left; once all have
	// passed, none.
	ip, _, _ = LookupIP(leases, nil, "06:e8:a3:b0:23:b4", time.Unix(0x66f1a100, 0))
	assert.Equal(t, "192.168.64.5", ip)
	_, _, ok = LookupIP(leases, nil, "06:e8:a3:b0:23:b4", time.Unix(0x66f1a2b3, 0))
	assert.False(t, ok, "a lease expiring now is expired")
}

func TestLookupIPFallsBackToARP(t *testing.T) {
	arp, err := ParseARP(strings.NewReader(arpFixture))
	require.NoError(t, err)
	require.Len(t, arp, 3, "incomplete and unrecognised lines are skipped")
	assert.Equal(t, ARPEntry{IP: "192.168.64.1", MAC: "3e:22:fb:0b:9c:64", Interface: "bridge100"}, arp[0])
	assert.Equal(t, ARPEntry{IP: "10.0.0.2", MAC: "00:1c:42:00:00:08", Interface: "en0"}, arp[2])

	// Every lease expired: the ARP table answers.
	leases, err := guest.ParseLeases(strings.NewReader(leasesFixture))
	require.NoError(t, err)
	ip, src, ok := LookupIP(leases, arp, "06:e8:a3:b0:23:b4", time.Unix(0x70000000, 0))
	require.True(t, ok)
	assert.Equal(t, "192.168.64.20", ip)
	assert.Equal(t, SourceARP, src)

	_, _, ok = LookupIP(leases, arp, "02:99:99:99:99:99", time.Unix(0, 0))
	assert.False(t, ok)
}

func TestCountVMProcesses(t *testing.T) {
	ps := `  PID COMMAND
    1 /sbin/launchd
  812 /System/Library/Frameworks/Virtualization.framework/Versions/A/XPCServices/com.apple.Virtualization.VirtualMachine.xpc/Contents/MacOS/com.apple.Virtualization.VirtualMachine
  901 /opt/homebrew/bin/tart run sonoma
  902 /System/Library/Frameworks/Virtualization.framework/Versions/A/XPCServices/com.apple.Virtualization.VirtualMachine.xpc/Contents/MacOS/com.apple.Virtualization.VirtualMachine
  950 grep com.apple.Virtualization.VirtualMachine
`
	assert.Equal(t, 2, CountVMProcesses(ps))
	assert.Equal(t, 0, CountVMProcesses(""))
}

func TestRestoredIPTakesTheNewestLeaseEvenExpired(t *testing.T) {
	leases, err := guest.ParseLeases(strings.NewReader(leasesFixture))
	require.NoError(t, err)
	// Every lease of the MAC expired long ago: LookupIP finds none, the
	// restored clone's address is the newest one's.
	_, _, ok := LookupIP(leases, nil, "06:e8:a3:b0:23:b4", time.Unix(0x70000000, 0))
	require.False(t, ok)
	ip, ok := RestoredIP(leases, "6:e8:a3:b0:23:b4")
	require.True(t, ok)
	assert.Equal(t, "192.168.64.5", ip)

	_, ok = RestoredIP(leases, "02:99:99:99:99:99")
	assert.False(t, ok, "no lease for the MAC at all")

	// bootpd gave the address to another guest since: not ours any more.
	taken := append(leases, guest.Lease{IPAddress: "192.168.64.5", HWAddress: "02:00:00:00:00:02", Expires: 0x66f20000})
	_, ok = RestoredIP(taken, "06:e8:a3:b0:23:b4")
	assert.False(t, ok)
}
