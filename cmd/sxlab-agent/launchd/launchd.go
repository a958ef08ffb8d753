// Package launchd describes how sxlab-agent runs in a guest: the
// LaunchDaemon property list (com.sxlab.agent) and the one-time commands
// that install it in a golden image. Unverified on macOS: the plist keys
// are launchd.plist(5)'s, but no Mac has loaded this one yet.
package launchd

import (
	"fmt"
	"strconv"
	"strings"

	"howett.net/plist"
)

// Where the agent lives in the guest, and how launchd knows it.
const (
	Label = "com.sxlab.agent"
	// Binary is outside the sealed system volume and SIP's reach, so
	// installing it needs only sudo.
	Binary    = "/usr/local/libexec/sxlab-agent"
	PlistPath = "/Library/LaunchDaemons/" + Label + ".plist"
	LogPath   = "/var/log/sxlab-agent.log"
	// Port is the vsock port the agent listens on; the host connects to
	// it through the VM's virtio-socket device. It is vm.AgentPort, which
	// a guest program cannot import (guestbin hashes only cmd/sxlab-agent);
	// vm/vz's tests hold the two equal.
	Port = 7022
	// Target is the guest's sshd.
	Target = "127.0.0.1:22"
)

// job is the LaunchDaemon's property list.
type job struct {
	Label             string   `plist:"Label"`
	ProgramArguments  []string `plist:"ProgramArguments"`
	RunAtLoad         bool     `plist:"RunAtLoad"`
	KeepAlive         bool     `plist:"KeepAlive"`
	StandardOutPath   string   `plist:"StandardOutPath"`
	StandardErrorPath string   `plist:"StandardErrorPath"`
	// Adaptive: the lab's channel must not be throttled like a
	// background job while the guest is busy installing.
	ProcessType string `plist:"ProcessType"`
}

// Plist returns the LaunchDaemon for an agent at binary that listens on
// port and forwards to target. launchd starts it at boot and restarts it
// when it exits.
func Plist(binary string, port uint32, target string) ([]byte, error) {
	if !strings.HasPrefix(binary, "/") {
		return nil, fmt.Errorf("launchd needs an absolute path to the agent, got %q", binary)
	}
	if port == 0 {
		return nil, fmt.Errorf("vsock port 0 is not a port the agent can listen on")
	}
	j := job{
		Label:            Label,
		ProgramArguments: []string{binary, "--port", strconv.FormatUint(uint64(port), 10), "--target", target},
		RunAtLoad:        true, KeepAlive: true,
		StandardOutPath: LogPath, StandardErrorPath: LogPath,
		ProcessType: "Adaptive",
	}
	return plist.MarshalIndent(j, plist.XMLFormat, "\t")
}

// InstallCommands are the shell commands that install an agent uploaded
// to uploaded (run as the image's user, who has passwordless sudo) and
// start it now. They are idempotent: a second run replaces the agent.
func InstallCommands(uploaded string) []string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	return []string{
		"sudo install -d -o root -g wheel -m 755 /usr/local/libexec",
		fmt.Sprintf("sudo install -o root -g wheel -m 755 %s %s", q(uploaded), Binary),
		fmt.Sprintf("%s plist | sudo tee %s >/dev/null", Binary, PlistPath),
		fmt.Sprintf("sudo chown root:wheel %s && sudo chmod 644 %s", PlistPath, PlistPath),
		// bootout fails when the job is not loaded yet; that is fine. When
		// it was loaded (a golden warmed again), launchd frees the label a
		// few seconds after bootout returns, and a bootstrap before that
		// fails with "Bootstrap failed: 5: Input/output error" (measured
		// ~5 s in headroomlabs-ai/headroom#1289; tuist/tuist#10143 sleeps
		// for it): retry for 15 s, then fail with bootstrap's own error.
		fmt.Sprintf("sudo launchctl bootout system/%s 2>/dev/null; n=0; until sudo launchctl bootstrap system %s; do n=$((n+1)); [ $n -ge 15 ] && exit 5; sleep 1; done", Label, PlistPath),
		// launchd starts the job right away; give it a moment to run.
		fmt.Sprintf("sleep 1; sudo launchctl print system/%s | grep -q 'state = running'", Label),
	}
}
