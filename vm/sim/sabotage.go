package sim

import (
	"regexp"
)

// Sabotage breaks a simulated machine's infrastructure (its sshd, its
// network, its credentials), never its macOS model: tests use it to check
// that the lab reports and retries what goes wrong around a Mac as
// errors, apart from the product's failures. Options.Sabotage picks one
// per machine; the zero value breaks nothing.
type Sabotage struct {
	// NoSSHD: sshd never answers after Start. It accepts and drops every
	// connection, as a Mac stuck in boot does, and Endpoint returns the
	// address at once (a real provider knows it from the DHCP lease), so
	// the client's connection retries are what times out.
	NoSSHD bool
	// Hang, when set, makes an exec command whose line it matches hang
	// without output until its session is signalled or closed, or the
	// machine stops: a guest wedged in an installer.
	Hang *regexp.Regexp
	// CutSFTPAfter, when above 0, drops the whole SSH connection (as a
	// network that goes away) once that many bytes of one file have
	// crossed over SFTP, uploads and downloads alike.
	CutSFTPAfter int64
	// CutSFTPTimes limits how many transfers of the machine are cut, so a
	// retry after a reconnect can succeed; 0 cuts every one.
	CutSFTPTimes int
	// Password, when set, is the password the guest really has. Endpoint
	// still hands out the image's, which then does not match.
	Password string
}
