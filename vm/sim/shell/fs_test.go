package shell

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFSPathStaysInsideTheTree(t *testing.T) {
	root := t.TempDir()
	f := NewFS(root)
	assert.Equal(t, filepath.Join(root, "Applications", "Example VPN.app"), f.Path("/", "/Applications/Example VPN.app"))
	assert.Equal(t, filepath.Join(root, "Users", "admin", "x.pkg"), f.Path("/Users/admin", "x.pkg"))
	assert.Equal(t, filepath.Join(root, "etc", "passwd"), f.Path("/Users/admin", "../../../../etc/passwd"), "dot-dot stops at the root")
	assert.Equal(t, root, f.Path("/", "/.."))
}
