package guest

import (
	"context"
	"fmt"
	"net"
)

// Endpoint says how to reach a guest's sshd.
type Endpoint struct {
	Addr     string // host:port
	User     string
	Password string
	KeyFile  string // private key file, when key auth is used
	// HostKey is the guest's public host key in authorized_keys format when
	// the provider knows it (the sim does); otherwise it is learnt on first
	// use and pinned.
	HostKey string
	// Simulated marks a simulated guest; results from it say so.
	Simulated bool
	// Stream, when set, opens the byte stream to the guest's sshd instead
	// of a TCP connection to Addr (the guest agent's vsock channel, which
	// a VPN taking the guest's routes does not cut). Everything else, host
	// key pinning included, is the same; Addr still names the guest.
	Stream func(ctx context.Context) (net.Conn, error) `json:"-"`
}

func (e Endpoint) String() string {
	return fmt.Sprintf("%s@%s", e.User, e.Addr)
}
