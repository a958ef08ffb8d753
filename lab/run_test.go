package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sxlab/sxlab/guest"
	"github.com/sxlab/sxlab/vm"
)

func runFixture(t *testing.T, ev *events) (RunOptions, *scriptConn) {
	t.Helper()
	src := strings.Replace(validConfig, "lab:\n  name: t\n", "lab:\n  name: t\n  runs_dir: "+t.TempDir()+"\n", 1)
	src = strings.Replace(src, "    vpn: [running, stopped]\n", "    vpn: [running, stopped]\n  repeat: 2\n", 1)
	l, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.NoError(t, err)
	conn := &scriptConn{ev: ev, answers: map[string]string{
		"systemextensionsctl list":     healthyList,
		"scutil --nc status":           "Connected\n",
		"sudo launchctl print system/": "x = {\n\tendpoints = {\n\t\t\"ABCDE12345.com.example.vpn.tunnel\" = {\n\t\t}\n\t}\n}\n",
	}}
	return RunOptions{
		Loaded: l, Tool: "test", LookupEnv: noEnv,
		NewProvider: func(h Host, seed int64) (vm.Provider, error) { return &fakeProvider{ev: ev}, nil },
		Dial: func(ctx context.Context, ep guest.Endpoint, kh, alias string) (Conn, error) {
			return conn, nil
		},
		Poll: time.Millisecond, Wait: 20 * time.Millisecond, CleanupTimeout: time.Second,
	}, conn
}

func readRecords(t *testing.T, dir string) []Record {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, JournalFile))
	require.NoError(t, err)
	defer f.Close()
	recs, damage, err := ReadJournal(f)
	require.NoError(t, err)
	require.Empty(t, damage)
	return recs
}

func TestRunJournalsEveryAttemptOnce(t *testing.T) {
	o, _ := runFixture(t, &events{})
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, 0, res.Remaining)
	recs := readRecords(t, res.Dir)
	assert.Len(t, Finished(recs), 4, "2 cells × repeat 2, one final line each")
	require.Len(t, res.Cells, 2)
	for _, c := range res.Cells {
		assert.Equal(t, CellPass, c.Verdict)
	}
	var info RunInfo
	require.NoError(t, ReadJSON(res.Dir, RunFile, &info))
	assert.True(t, info.Simulated, "run.json says the results are simulated")
	assert.Equal(t, []string{"sim"}, info.Providers)
	var plan PlanInfo
	require.NoError(t, ReadJSON(res.Dir, PlanFile, &plan))
	assert.Len(t, plan.Attempts, 4)
}

func TestInterruptThenResumeCompletesTheRun(t *testing.T) {
	ev := &events{}
	o, _ := runFixture(t, ev)
	ctx, cancel := context.WithCancel(context.Background())
	var finished atomic.Int32
	o.Finished = func(r Record, done, total int) {
		if finished.Add(1) == 2 {
			cancel()
		}
	}
	res, err := Run(ctx, o)
	require.ErrorIs(t, err, ErrInterrupted)
	assert.Equal(t, 2, res.Remaining)
	assert.Len(t, Finished(readRecords(t, res.Dir)), 2)

	o.Finished = nil
	o.Resume = res.Dir
	res2, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, 0, res2.Remaining)
	assert.Len(t, Finished(readRecords(t, res.Dir)), 4, "resume ran only what was missing")
	assert.Len(t, res2.Records, 4)

	// Every machine that was cloned was deleted, interrupted or not.
	var clones, deletes int
	for _, e := range ev.all() {
		if strings.HasPrefix(e, "clone") {
			clones++
		}
		if e == "delete" {
			deletes++
		}
	}
	assert.Equal(t, clones, deletes)
}

func TestResumeRefusesAChangedPlan(t *testing.T) {
	o, _ := runFixture(t, &events{})
	res, err := Run(context.Background(), o)
	require.NoError(t, err)
	o.Resume = res.Dir
	o.Plan = PlanOptions{Only: []string{"vpn=running"}}
	_, err = Run(context.Background(), o)
	assert.ErrorContains(t, err, "the plan changed")
}

func TestPasswordEnvMustBeSet(t *testing.T) {
	src := strings.Replace(validConfig, `sim: {product_version: "15.3", build: 24D60}`, "sim: {product_version: \"15.3\", build: 24D60}\n    auth: {password_env: GUEST_PW}", 1)
	l, err := Load(LoadOptions{File: writeConfig(t, src), LookupEnv: noEnv})
	require.NoError(t, err)
	_, err = l.ResolveImages(noEnv)
	assert.ErrorContains(t, err, "GUEST_PW is not set")
	imgs, err := l.ResolveImages(envOf("GUEST_PW", "s3cret"))
	require.NoError(t, err)
	assert.Equal(t, "s3cret", imgs["macos-15.3"].Password)
}

func TestResolveHostMakesPathsAndCredentialsFinal(t *testing.T) {
	l, err := Load(LoadOptions{File: writeConfig(t, validConfig), LookupEnv: noEnv})
	require.NoError(t, err)
	h := Host{Name: "spare", Provider: ProviderSSH, Slots: 1,
		SSH:  &SSHHost{Address: "mac.local", Auth: Auth{PasswordEnv: "SPARE_PW", Key: "keys/id_ed25519"}},
		Tart: &TartHost{Home: "tart-home"}}
	_, err = l.ResolveHost(h, noEnv)
	assert.ErrorContains(t, err, "hosts.spare.ssh.auth.password_env: environment variable SPARE_PW is not set")

	got, err := l.ResolveHost(h, envOf("SPARE_PW", "pw"))
	require.NoError(t, err)
	assert.Equal(t, "pw", got.SSH.Auth.Password)
	assert.Equal(t, filepath.Join(l.Dir, "keys/id_ed25519"), got.SSH.Auth.Key, "relative to the config file")
	assert.Equal(t, filepath.Join(l.Dir, "tart-home"), got.Tart.Home)
	assert.Equal(t, "keys/id_ed25519", h.SSH.Auth.Key, "the configuration itself is left as written")
}
