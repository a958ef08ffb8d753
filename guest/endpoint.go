package guest

import "fmt"

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
}

func (e Endpoint) String() string {
	return fmt.Sprintf("%s@%s", e.User, e.Addr)
}
