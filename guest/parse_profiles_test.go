package guest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// profilesOutput follows the layout of real `profiles -C -o stdout-xml`
// output (macadmins/osquery-extension keeps one as its macos_profiles test
// input): payloads of other types carry contents of other shapes, which
// the parser must step over.
const profilesOutput = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>_computerlevel</key>
	<array>
		<dict>
			<key>ProfileDisplayName</key>
			<string>Firewall</string>
			<key>ProfileIdentifier</key>
			<string>com.company.mdm.firewall</string>
			<key>ProfileInstallDate</key>
			<string>2025-03-31 01:14:38 +0000</string>
			<key>ProfileItems</key>
			<array>
				<dict>
					<key>PayloadContent</key>
					<dict>
						<key>EnableFirewall</key>
						<true/>
					</dict>
					<key>PayloadType</key>
					<string>com.apple.security.firewall</string>
					<key>PayloadVersion</key>
					<integer>1</integer>
				</dict>
			</array>
			<key>ProfileVersion</key>
			<integer>1</integer>
		</dict>
		<dict>
			<key>ProfileDisplayName</key>
			<string>System Extensions</string>
			<key>ProfileIdentifier</key>
			<string>com.company.mdm.sysext</string>
			<key>ProfileItems</key>
			<array>
				<dict>
					<key>PayloadContent</key>
					<dict>
						<key>AllowUserOverrides</key>
						<true/>
						<key>AllowedSystemExtensions</key>
						<dict>
							<key>ABCDE12345</key>
							<array>
								<string>com.example.vpn.tunnel</string>
							</array>
						</dict>
						<key>AllowedTeamIdentifiers</key>
						<array>
							<string>ZYXWV98765</string>
						</array>
					</dict>
					<key>PayloadType</key>
					<string>com.apple.system-extension-policy</string>
				</dict>
			</array>
		</dict>
	</array>
</dict>
</plist>
`

func TestParseProfiles(t *testing.T) {
	ps, err := ParseProfiles(strings.NewReader(profilesOutput))
	require.NoError(t, err)
	require.Len(t, ps.Computer, 2)
	assert.Equal(t, "com.company.mdm.firewall", ps.Computer[0].Identifier)
	assert.Equal(t, 1, ps.Policies())
	assert.Equal(t, "com.company.mdm.sysext", ps.Allows("ABCDE12345", "com.example.vpn.tunnel"), "a team's listed bundle ID")
	assert.Equal(t, "", ps.Allows("ABCDE12345", "com.example.vpn.other"), "another bundle ID of that team is not allowed")
	assert.Equal(t, "com.company.mdm.sysext", ps.Allows("ZYXWV98765", "anything"), "a whole team")
	assert.Equal(t, "", ps.Allows("QQQQQ11111", "com.example.vpn.tunnel"))
}

func TestParseProfilesNone(t *testing.T) {
	// profiles run without root, or nothing installed: an empty dict.
	ps, err := ParseProfiles(strings.NewReader("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n</dict>\n</plist>\n"))
	require.NoError(t, err)
	assert.Empty(t, ps.Computer)
	assert.Equal(t, "", ps.Allows("ABCDE12345", "com.example.vpn.tunnel"))

	_, err = ParseProfiles(strings.NewReader("  \n"))
	require.ErrorIs(t, err, ErrEmptyInput)
	_, err = ParseProfiles(strings.NewReader("There are no configuration profiles installed\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "parse profiles")
}
