package sim

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkg/sftp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func sftpClient(t *testing.T, m *testMachine) *sftp.Client {
	t.Helper()
	c, err := sftp.NewClient(dial(t, m.ep))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSFTPUploadDownloadInTheMachinesTree(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := sftpClient(t, m)

	wd, err := c.Getwd()
	require.NoError(t, err)
	assert.Equal(t, "/Users/admin", wd, "sftp starts in the user's home, as OpenSSH's does")

	data := bytes.Repeat([]byte("example vpn package\n"), 10000)
	f, err := c.Create("Example VPN 3.pkg") // relative: lands in the home folder
	require.NoError(t, err)
	_, err = f.Write(data)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	inTree, err := m.FS().ReadFile("/Users/admin/Example VPN 3.pkg")
	require.NoError(t, err)
	assert.Equal(t, data, inTree, "the file is in the machine's tree")

	out, _, code := run(t, dial(t, m.ep), `stat -f %z "Example VPN 3.pkg"`)
	assert.Equal(t, 0, code)
	assert.Equal(t, "200000\n", out, "the shell sees the same tree")

	r, err := c.Open("/Users/admin/Example VPN 3.pkg")
	require.NoError(t, err)
	back, err := io.ReadAll(r)
	require.NoError(t, err)
	r.Close()
	assert.Equal(t, data, back)

	require.NoError(t, c.MkdirAll("/tmp/a/b"))
	require.NoError(t, c.Rename("/Users/admin/Example VPN 3.pkg", "/tmp/a/b/x.pkg"))
	fi, err := c.Stat("/tmp/a/b/x.pkg")
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), fi.Size())
	entries, err := c.ReadDir("/tmp/a/b")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "x.pkg", entries[0].Name())
	require.NoError(t, c.Chmod("/tmp/a/b/x.pkg", 0o600))
	fi, err = c.Stat("/tmp/a/b/x.pkg")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, c.Remove("/tmp/a/b/x.pkg"))
	_, err = c.Stat("/tmp/a/b/x.pkg")
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Error(t, c.Remove("/tmp/a"), "Remove does not remove folders")
	require.NoError(t, c.RemoveDirectory("/tmp/a/b"))
}

func TestSFTPCannotLeaveTheTree(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := sftpClient(t, m)
	tree := m.FS()
	secretDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(secretDir, "secret"), []byte("host secret"), 0o644))
	t.Chdir(t.TempDir()) // where a tree on the host's relative paths would land

	t.Run("dot-dot stops at the root", func(t *testing.T) {
		_, err := c.Open("/../etc/passwd")
		assert.Error(t, err)
		f, err := c.Create("../../../../escaped")
		require.NoError(t, err)
		f.Close()
		_, err = tree.Stat("/escaped")
		assert.NoError(t, err, "the file landed at the guest's root")
		assert.NoFileExists(t, "escaped")
		assert.NoFileExists(t, "../escaped")
	})

	t.Run("symlinks to the host are not followed", func(t *testing.T) {
		// a link someone planted in the tree (the model, a bug, a test)
		require.NoError(t, tree.Symlink(secretDir, "/Users/admin/abs"))
		require.NoError(t, tree.Symlink("../../..", "/Users/admin/up"))
		for _, p := range []string{"abs/secret", "up/etc/passwd", "up/Users"} {
			_, err := c.Open(p)
			assert.Error(t, err, p)
		}
		_, err := c.ReadDir("abs")
		assert.Error(t, err)
		_, err = c.Create("abs/new")
		assert.Error(t, err)
		assert.NoFileExists(t, filepath.Join(secretDir, "new"))
		// the shell refuses them the same way
		_, errs, code := run(t, dial(t, m.ep), "cat abs/secret")
		assert.Equal(t, 1, code)
		assert.Contains(t, errs, "cat: abs/secret:")
	})

	t.Run("new symlinks must stay inside", func(t *testing.T) {
		for _, target := range []string{"/etc/passwd", "../../..", "a/../../b"} {
			assert.Error(t, c.Symlink(target, "link"), target)
		}
		require.NoError(t, c.Mkdir("docs"))
		require.NoError(t, c.Symlink("docs", "docs-link"))
		target, err := c.ReadLink("docs-link")
		require.NoError(t, err)
		assert.Equal(t, "docs", target)
		fi, err := c.Lstat("docs-link")
		require.NoError(t, err)
		assert.Equal(t, os.ModeSymlink, fi.Mode()&os.ModeSymlink)
	})
}

// A client that breaks sftp-server's rules sees what a Mac's sftp-server
// does: the sftp session ends with its exit status (11 for a packet over
// 256 KiB, 255 for an extended request it cannot parse), and the SSH
// connection goes on.
func TestSFTPSessionEndsAsSFTPServerDoes(t *testing.T) {
	noLeaks(t)
	m := startMachine(t)
	c := dial(t, m.ep)
	initPkt := []byte{0, 0, 0, 5, 1, 0, 0, 0, 3}
	for _, tc := range []struct {
		name   string
		pkt    []byte
		status int
	}{
		{"packet over max-packet-length", []byte{0, 4, 0, 1, 200}, 11},
		// an extended request whose name claims 99 bytes of 6
		{"malformed extended request", []byte{0, 0, 0, 15, 200, 0, 0, 0, 1, 0, 0, 0, 99, 'l', 'i', 'm', 'i', 't', 's'}, 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, reqs, err := c.OpenChannel("session", nil)
			require.NoError(t, err)
			defer ch.Close()
			ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))
			require.NoError(t, err)
			require.True(t, ok)
			_, err = ch.Write(initPkt)
			require.NoError(t, err)
			var head [5]byte
			_, err = io.ReadFull(ch, head[:])
			require.NoError(t, err)
			require.Equal(t, byte(2), head[4], "VERSION")
			_, err = ch.Write(tc.pkt)
			require.NoError(t, err)
			_, err = io.Copy(io.Discard, ch) // the rest of VERSION, then the end
			require.NoError(t, err)
			status := -1
			for req := range reqs { // until the server closes the channel
				var x struct{ Status uint32 }
				if req.Type == "exit-status" && ssh.Unmarshal(req.Payload, &x) == nil {
					status = int(x.Status)
				}
			}
			assert.Equal(t, tc.status, status, "sftp-server's exit status")
		})
	}
	_, _, code := run(t, c, "true")
	assert.Equal(t, 0, code, "the connection outlives the sftp session")
}
