package guest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// BenchmarkHostKeyCheck is what each new SSH connection of a run spends
// on the run's known_hosts, which gains a line per attempt: the key
// type hint and the check of a new machine's key (not yet recorded, so
// it is appended), at 2,400 and 10,000 lines already in the file. With
// a cache, as sxlab run dials, the file is read once per run; without,
// once per connection.
func BenchmarkHostKeyCheck(b *testing.B) {
	for _, lines := range []int{2400, 10000} {
		for _, cached := range []bool{false, true} {
			b.Run(fmt.Sprintf("lines=%d/cache=%v", lines, cached), func(b *testing.B) {
				file := filepath.Join(b.TempDir(), "known_hosts")
				var sb strings.Builder
				for i := range lines {
					sb.WriteString(knownhosts.Line([]string{fmt.Sprintf("sxlab-0123456789ab-r%d-t1", i)}, newSigner(b).PublicKey()) + "\n")
				}
				if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
					b.Fatal(err)
				}
				key := newSigner(b).PublicKey()
				ep := Endpoint{Addr: "127.0.0.1:2222", HostKey: string(ssh.MarshalAuthorizedKey(key))}
				o := Options{KnownHosts: file}
				if cached {
					o.HostKeyCache = NewHostKeyCache()
				}
				remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
				n := 0
				for b.Loop() {
					o.HostKeyAlias = fmt.Sprintf("sxlab-new-%d", n)
					n++
					h, err := newHostKeys(ep, o)
					if err != nil {
						b.Fatal(err)
					}
					_ = h.algorithms()
					if err := h.callback(o.HostKeyAlias, remote, key); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/check")
			})
		}
	}
}
