package launchd

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"howett.net/plist"
)

func TestPlistIsALaunchDaemon(t *testing.T) {
	b, err := Plist(Binary, Port, Target)
	require.NoError(t, err)
	// A generic XML reader accepts it (a broken document fails here).
	require.NoError(t, xml.NewDecoder(bytes.NewReader(b)).Decode(new(struct{})))
	assert.Contains(t, string(b), `<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`)

	var got map[string]any
	_, err = plist.Unmarshal(b, &got)
	require.NoError(t, err)
	assert.Equal(t, "com.sxlab.agent", got["Label"])
	assert.Equal(t, []any{"/usr/local/libexec/sxlab-agent", "--port", "7022", "--target", "127.0.0.1:22"}, got["ProgramArguments"])
	assert.Equal(t, true, got["RunAtLoad"])
	assert.Equal(t, true, got["KeepAlive"])
	assert.Equal(t, "/var/log/sxlab-agent.log", got["StandardErrorPath"])
}

func TestPlistRefusesWhatLaunchdCannotRun(t *testing.T) {
	_, err := Plist("sxlab-agent", Port, Target)
	assert.ErrorContains(t, err, "absolute path")
	_, err = Plist(Binary, 0, Target)
	assert.ErrorContains(t, err, "port 0")
}

func TestPlistEscapesPaths(t *testing.T) {
	b, err := Plist("/Users/a&b/<agent>", Port, Target)
	require.NoError(t, err)
	var got map[string]any
	_, err = plist.Unmarshal(b, &got)
	require.NoError(t, err)
	assert.Equal(t, "/Users/a&b/<agent>", got["ProgramArguments"].([]any)[0])
}

func TestInstallCommandsQuoteTheUpload(t *testing.T) {
	cmds := InstallCommands("/tmp/it's here/sxlab-agent")
	assert.Contains(t, strings.Join(cmds, "\n"), `'/tmp/it'\''s here/sxlab-agent'`)
	assert.Contains(t, cmds[len(cmds)-2], "launchctl bootstrap system /Library/LaunchDaemons/com.sxlab.agent.plist")
}

// TestDocsShowTheInstallCommands keeps docs/agent.md's one-time install
// equal to what the code would run.
func TestDocsShowTheInstallCommands(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "agent.md"))
	require.NoError(t, err)
	doc := string(b)
	for _, c := range InstallCommands("/tmp/sxlab-agent") {
		assert.Contains(t, doc, "\n"+c+"\n")
	}
	p, err := Plist(Binary, Port, Target)
	require.NoError(t, err)
	assert.Contains(t, doc, string(p), "the plist shown is the one printed")
}
