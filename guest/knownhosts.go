package guest

import (
	"bytes"
	"fmt"
	"net"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyChangedError: the guest presented a host key other than the one
// pinned for it. It matches ErrHostKeyChanged with errors.Is.
type HostKeyChangedError struct {
	Host   string // the name the key is pinned under (alias or host:port)
	Want   string // SHA256 fingerprint of the pinned key
	Got    string // SHA256 fingerprint of the key the guest presented
	Source string // where the pinned key came from
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("%v for %s: pinned %s (%s), the guest presented %s; not accepted (a new clone needs a new name, or remove the old line)",
		ErrHostKeyChanged, e.Host, e.Want, e.Source, e.Got)
}

// Is makes errors.Is(err, ErrHostKeyChanged) hold.
func (e *HostKeyChangedError) Is(target error) bool { return target == ErrHostKeyChanged }

// hostKeys verifies a guest's host key: against the endpoint's key when
// the provider knows it, otherwise trust on first use, remembered for the
// Client's lifetime and, when a file is given, in known_hosts format so
// that later processes (resume, an engineer's ssh) agree.
type hostKeys struct {
	name  string // host:port as looked up in known_hosts
	file  string
	kh    *knownHostsFile // file as kept in memory; nil when file is ""
	fixed ssh.PublicKey
	logf  func(format string, args ...any)

	mu       sync.Mutex
	pinned   ssh.PublicKey
	source   string
	recorded bool // the fixed key is in the known_hosts file
}

func newHostKeys(ep Endpoint, o Options) (*hostKeys, error) {
	h := &hostKeys{name: ep.Addr, file: o.KnownHosts, logf: o.logf}
	if h.file != "" {
		h.kh = o.HostKeyCache.file(h.file)
	}
	if o.HostKeyAlias != "" {
		h.name = o.HostKeyAlias
		if _, _, err := net.SplitHostPort(h.name); err != nil {
			h.name = net.JoinHostPort(h.name, "22") // written as the bare name
		}
	}
	if ep.HostKey != "" {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(ep.HostKey))
		if err != nil {
			return nil, fmt.Errorf("endpoint host key %q: %w", ep.HostKey, err)
		}
		h.fixed = k
	}
	return h, nil
}

// label is the host as written in known_hosts.
func (h *hostKeys) label() string { return knownhosts.Normalize(h.name) }

func (h *hostKeys) callback(_ string, remote net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fixed != nil {
		if err := h.match(h.fixed, key, "the endpoint's HostKey"); err != nil {
			return err
		}
		// Recorded too, so a person can ssh in with the run's known_hosts.
		if h.file != "" && !h.recorded {
			if known, err := h.checkFile(remote, key); err == nil && !known {
				if err := h.appendFile(key); err != nil {
					return &permanentError{err}
				}
			}
			h.recorded = true
		}
		return nil
	}
	if h.pinned != nil {
		return h.match(h.pinned, key, h.source)
	}
	source, known := "trusted on first use", false
	if h.file != "" {
		var err error
		if known, err = h.checkFile(remote, key); err != nil {
			return err
		}
		if known {
			source = "known_hosts " + h.file
		} else {
			if err := h.appendFile(key); err != nil {
				return &permanentError{err}
			}
			source = "trusted on first use, recorded in " + h.file
		}
	}
	if !known {
		h.logf("ssh %s: trusting host key %s on first use", h.label(), ssh.FingerprintSHA256(key))
	}
	h.pinned, h.source = key, source
	return nil
}

func (h *hostKeys) match(want, got ssh.PublicKey, source string) error {
	if bytes.Equal(want.Marshal(), got.Marshal()) {
		return nil
	}
	return &HostKeyChangedError{Host: h.label(), Want: ssh.FingerprintSHA256(want),
		Got: ssh.FingerprintSHA256(got), Source: source}
}

// checkFile looks key up in the known_hosts file: true when it is there,
// false when the host is unknown, an error when the host is known with
// other keys or the file is unusable.
func (h *hostKeys) checkFile(remote net.Addr, key ssh.PublicKey) (bool, error) {
	return h.kh.lookup(h.name, remote, key)
}

// appendFile records key for the host.
func (h *hostKeys) appendFile(key ssh.PublicKey) error { return h.kh.add(h.name, key) }

// algorithms asks the guest for the kind of key that is pinned: a Mac has
// RSA, ECDSA and Ed25519 host keys, and a handshake that negotiated
// another kind than the pinned one would look like a changed key.
func (h *hostKeys) algorithms() []string {
	h.mu.Lock()
	k := h.fixed
	if k == nil {
		k = h.pinned
	}
	h.mu.Unlock()
	var typ string
	switch {
	case k != nil:
		typ = k.Type()
	case h.file != "":
		typ = h.fileKeyType()
	}
	switch typ {
	case "":
		return nil
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{typ}
}

// fileKeyType is the key type recorded for the host in the file, when
// there is exactly one (plain host names only; hashed ones are still
// verified by checkFile, just without the hint).
func (h *hostKeys) fileKeyType() string { return h.kh.keyType(h.name) }
