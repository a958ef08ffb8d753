package lab

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withSSHHost adds a second host, an existing Mac, after the sim host of
// validConfig; its lines start at line 6.
func withSSHHost(lines string) string {
	return strings.Replace(validConfig, "    provider: sim\n", "    provider: sim\n  - name: spare\n    provider: ssh\n"+lines, 1)
}

func TestSSHHostRunsOneAttemptAtATime(t *testing.T) {
	path := writeConfig(t, withSSHHost("    slots: 2\n    ssh: {address: mac-mini.local}\n"))
	_, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
	assert.Equal(t, []string{
		path + ":8:12: hosts[1].slots: 2 is more than 1: an existing Mac runs one attempt at a time (each attempt resets the whole Mac); list each further Mac as a host of its own",
	}, problemLines(t, err))

	for _, slots := range []string{"", "    slots: 1\n"} {
		l, err := Load(LoadOptions{File: writeConfig(t, withSSHHost(slots+"    ssh: {address: mac-mini.local}\n")), LookupEnv: noEnv})
		require.NoError(t, err, "slots %q", slots)
		assert.Equal(t, 1, l.Config.Hosts[1].Slots)
	}
}

func TestSSHAddressIsAHostOrHostPort(t *testing.T) {
	for _, addr := range []string{
		"mac-mini.local", "mac-mini.local:2222", "192.168.64.5", "192.168.64.5:22",
		"[fe80::1]:22", "[fe80::1%en0]:22", "fe80::1", "[::1]", "mac_mini:65535",
	} {
		_, err := Load(LoadOptions{File: writeConfig(t, withSSHHost("    ssh: {address: \""+addr+"\"}\n")), LookupEnv: noEnv})
		assert.NoError(t, err, "address %q", addr)
	}

	for addr, want := range map[string]string{
		"mac-mini.local:ssh":       `"mac-mini.local:ssh": the port "ssh" is not a number from 1 to 65535`,
		"mac-mini.local:":          `"mac-mini.local:": the port "" is not a number from 1 to 65535`,
		"mac-mini.local:70000":     `the port "70000" is not a number from 1 to 65535`,
		"mac-mini.local:0":         `the port "0" is not a number from 1 to 65535`,
		"admin@mac-mini.local":     `the login goes in ssh.user ("admin")`,
		"ssh://mac-mini.local:22":  `no scheme, only host or host:port`,
		"mac mini.local":           `"mac mini.local" is not a host or host:port`,
		"mac-mini.local:22:22":     `"mac-mini.local:22:22" is neither a name nor an IPv6 address`,
		"[fe80::1:22":              `unbalanced brackets`,
		":22":                      `":22" is not a host or host:port`,
		"mac-mini.local/var/empty": `is not a host or host:port`,
	} {
		path := writeConfig(t, withSSHHost("    ssh: {address: \""+addr+"\"}\n"))
		_, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
		lines := problemLines(t, err)
		if assert.Len(t, lines, 1, "address %q", addr) {
			assert.True(t, strings.HasPrefix(lines[0], path+":8:20: hosts[1].ssh.address: "), "the problem points at the address: %s", lines[0])
			assert.Contains(t, lines[0], want)
		}
	}
}

func TestSSHHostNeedsAnAddress(t *testing.T) {
	path := writeConfig(t, withSSHHost("    ssh: {user: admin}\n"))
	_, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
	lines := problemLines(t, err)
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], "hosts[1]: an ssh host needs ssh.address")
}

func TestImageOfSSHHostsNeedsNoSource(t *testing.T) {
	onlySSH := strings.Replace(validConfig, "  - name: local\n    provider: sim\n", "  - name: spare\n    provider: ssh\n    ssh: {address: mac-mini.local}\n", 1)
	onlySSH = strings.Replace(onlySSH, `    sim: {product_version: "15.3", build: 24D60}`, "    user: admin", 1)
	l, err := Load(LoadOptions{File: writeConfig(t, onlySSH), LookupEnv: noEnv})
	require.NoError(t, err, "the spare Mac boots nothing: its image needs no source")
	assert.Nil(t, l.Config.Images["macos-15.3"].Sim)

	// Next to a host that boots images, the image needs that host's source.
	mixed := strings.Replace(validConfig, `    sim: {product_version: "15.3", build: 24D60}`, "    user: admin", 1)
	mixed = strings.Replace(mixed, "    provider: sim\n", "    provider: sim\n  - name: spare\n    provider: ssh\n    ssh: {address: mac-mini.local}\n", 1)
	_, err = Load(LoadOptions{File: writeConfig(t, mixed), LookupEnv: noEnv})
	assert.Contains(t, strings.Join(problemLines(t, err), "\n"), "images.macos-15.3: host local (hosts[0]) uses provider sim, but the image has no sim source")
}

// withVZImage gives the image of validConfig vz lines after its sim line
// (line 8), so they start at line 9.
func withVZImage(lines string) string {
	return strings.Replace(validConfig, "    sim: {product_version: \"15.3\", build: 24D60}\n", "    sim: {product_version: \"15.3\", build: 24D60}\n"+lines, 1)
}

func TestVZImageIsABundleOrAPoolOfThem(t *testing.T) {
	for _, ok := range []string{
		"    vz: {bundle: sequoia}\n",
		"    vz: {bundles: [sequoia-a, sequoia-b]}\n    prepare: [\"sudo mdutil -i off /\"]\n",
	} {
		l, err := Load(LoadOptions{File: writeConfig(t, withVZImage(ok)), LookupEnv: noEnv})
		require.NoError(t, err, ok)
		images, err := l.ResolveImages(noEnv)
		require.NoError(t, err)
		assert.NotEmpty(t, images["macos-15.3"].VZ.Bundles)
	}

	for lines, want := range map[string]string{
		"    vz: {}\n":                               ":9:9: images.macos-15.3.vz.bundle: missing",
		"    vz: {bundle: a, bundles: [b]}\n":        ":9:30: images.macos-15.3.vz: give bundle or bundles, not both",
		"    vz: {bundles: [a, a]}\n":                `:9:23: images.macos-15.3.vz.bundles[1]: "a" is listed twice`,
		"    vz: {bundles: [a, \"\"]}\n":             ":9:23: images.macos-15.3.vz.bundles[1]: empty",
		"    vz: {bundle: a}\n    prepare: [\"\"]\n": ":10:15: images.macos-15.3.prepare[0]: empty command",
		"    prepare: [\"sudo mdutil -i off /\"]\n":  ":9:14: images.macos-15.3.prepare: only vz images are warmed",
	} {
		path := writeConfig(t, withVZImage(lines))
		_, err := Load(LoadOptions{File: path, LookupEnv: noEnv})
		got := problemLines(t, err)
		if assert.Len(t, got, 1, "%q", lines) {
			assert.True(t, strings.HasPrefix(got[0], path+want), "want %s at the key: %s", want, got[0])
		}
	}
}

func TestSimGoldenKeys(t *testing.T) {
	golden := "    sim:\n      product_version: \"15.3\"\n      build: 24D60\n      golden:\n        auto_login: false\n        tcc: {accessibility: []}\n        mdm:\n          system_extension_policies: [{team: ABCDE12345, bundle_ids: [com.example.vpn.tunnel]}]\n          vpn: [{name: Corp VPN, provider: com.example.vpn.tunnel}]\n"
	cfg := strings.Replace(validConfig, "    sim: {product_version: \"15.3\", build: 24D60}\n", golden, 1)
	l, err := Load(LoadOptions{File: writeConfig(t, cfg), LookupEnv: noEnv})
	require.NoError(t, err)
	images, err := l.ResolveImages(noEnv)
	require.NoError(t, err)
	g := images["macos-15.3"].Sim.Golden
	require.NotNil(t, g.AutoLogin)
	assert.False(t, *g.AutoLogin)
	assert.Nil(t, g.SIP, "unset keys keep the well-prepared default")
	require.NotNil(t, g.Accessibility)
	assert.Empty(t, *g.Accessibility, "an empty list grants nobody")
	require.NotNil(t, g.MDM)
	assert.Equal(t, "ABCDE12345", g.MDM.SystemExtensionPolicies[0].Team)
	assert.Equal(t, "Corp VPN", g.MDM.VPNs[0].Name)

	bad := strings.Replace(cfg, "team: ABCDE12345", "team: acme", 1)
	_, err = Load(LoadOptions{File: writeConfig(t, bad), LookupEnv: noEnv})
	assert.Contains(t, strings.Join(problemLines(t, err), "\n"), `images.macos-15.3.sim.golden.mdm.system_extension_policies[0].team: "acme" is not a team ID`)
}
