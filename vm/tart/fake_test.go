package tart

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// The fake tart: this test binary, run through a symlink named "tart"
// (see TestMain). It keeps its VMs under $TART_HOME/vms/<name>/, records
// every invocation in $TART_HOME/calls.jsonl and plays back what
// $TART_HOME/fake.json asks for. The messages and exit codes are tart's
// own (tart 2.x: RuntimeError descriptions, exit 2 for a missing VM).

// fakeScript is fake.json.
type fakeScript struct {
	IP        string `json:"ip,omitempty"`         // what tart ip prints; default 192.168.64.7
	IPTimeout bool   `json:"ip_timeout,omitempty"` // tart ip finds no address
	RunLimit  bool   `json:"run_limit,omitempty"`  // tart run hits the two-VM limit
	RunCrash  bool   `json:"run_crash,omitempty"`  // tart run fails at once
}

const (
	fakeCalls   = "calls.jsonl"
	fakeScriptF = "fake.json"
	fakePID     = "run.pid"
	fakeCrash   = "crash" // created by a test: a running tart run crashes
	fakeState   = "state.vzvmsave"
	limitStderr = `Error Domain=VZErrorDomain Code=6 "The maximum supported number of active virtual machines has been reached." UserInfo={NSLocalizedFailure=The number of virtual machines exceeds the limit., NSLocalizedFailureReason=The maximum supported number of active virtual machines has been reached.}`
	crashStderr = `Error Domain=VZErrorDomain Code=1 "The virtual machine stopped unexpectedly." UserInfo={NSLocalizedFailure=Internal Virtualization error.}`
)

func fakeTart(args []string) int {
	home := os.Getenv("TART_HOME")
	if home == "" {
		fmt.Fprintln(os.Stderr, "fake tart: TART_HOME is not set")
		return 99
	}
	f := &fake{home: home}
	f.record(args)
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "Error: Missing expected argument '<subcommand>'")
		return 64
	}
	rest := args[1:]
	switch args[0] {
	case "clone":
		return f.clone(rest)
	case "run":
		return f.run(rest)
	case "ip":
		return f.ip(rest)
	case "stop":
		return f.stop(rest)
	case "suspend":
		return f.suspend(rest)
	case "delete":
		return f.delete(rest)
	case "list":
		return f.list()
	}
	fmt.Fprintf(os.Stderr, "Error: Unknown subcommand '%s'\n", args[0])
	return 64
}

type fake struct{ home string }

func (f *fake) record(args []string) {
	b, _ := json.Marshal(args)
	fh, err := os.OpenFile(filepath.Join(f.home, fakeCalls), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer fh.Close()
	_, _ = fh.Write(append(b, '\n'))
}

func (f *fake) script() fakeScript {
	var s fakeScript
	b, err := os.ReadFile(filepath.Join(f.home, fakeScriptF))
	if err == nil {
		_ = json.Unmarshal(b, &s)
	}
	if s.IP == "" {
		s.IP = "192.168.64.7"
	}
	return s
}

func (f *fake) dir(name string) string { return filepath.Join(f.home, "vms", name) }

// positional drops --flag value pairs and --flags.
func positional(args []string, valued ...string) (pos []string, opts map[string]string) {
	opts = map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		isValued := false
		for _, v := range valued {
			if a == v {
				isValued = true
			}
		}
		switch {
		case isValued && i+1 < len(args):
			opts[a] = args[i+1]
			i++
		case len(a) > 2 && a[:2] == "--":
			opts[a] = ""
		default:
			pos = append(pos, a)
		}
	}
	return pos, opts
}

func (f *fake) exists(name string) bool {
	_, err := os.Stat(f.dir(name))
	return err == nil
}

func noSuchVM(name string) int {
	fmt.Fprintf(os.Stderr, "the specified VM \"%s\" does not exist\n", name)
	return 2
}

// pid is the running tart run of a VM, 0 when none.
func (f *fake) pid(name string) int {
	b, err := os.ReadFile(filepath.Join(f.dir(name), fakePID))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

func (f *fake) clone(args []string) int {
	pos, _ := positional(args)
	if len(pos) != 2 {
		fmt.Fprintln(os.Stderr, "Error: Missing expected argument '<new-name>'")
		return 64
	}
	src, dst := pos[0], pos[1]
	if !f.exists(src) {
		return noSuchVM(src)
	}
	if f.exists(dst) {
		fmt.Fprintf(os.Stderr, "VM \"%s\" already exists\n", dst)
		return 1
	}
	if err := os.MkdirAll(f.dir(dst), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, _ := os.ReadFile(filepath.Join(f.dir(src), "config.json"))
	_ = os.WriteFile(filepath.Join(f.dir(dst), "config.json"), cfg, 0o644)
	return 0
}

func (f *fake) run(args []string) int {
	pos, _ := positional(args)
	if len(pos) != 1 {
		return 64
	}
	name := pos[0]
	if !f.exists(name) {
		return noSuchVM(name)
	}
	if f.pid(name) != 0 {
		fmt.Fprintf(os.Stderr, "VM \"%s\" is already running!\n", name)
		return 2
	}
	s := f.script()
	if s.RunLimit {
		fmt.Fprintln(os.Stderr, limitStderr)
		return 1
	}
	if s.RunCrash {
		fmt.Fprintln(os.Stdout, "booting the VM...")
		fmt.Fprintln(os.Stderr, crashStderr)
		return 1
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	pidFile := filepath.Join(f.dir(name), fakePID)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.Remove(pidFile)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				_ = os.WriteFile(filepath.Join(f.dir(name), fakeState), []byte("state"), 0o644)
				fmt.Println("snapshot created successfully! shutting down the VM...")
			}
			return 0
		case <-tick.C:
			if _, err := os.Stat(filepath.Join(f.dir(name), fakeCrash)); err == nil {
				fmt.Fprintln(os.Stderr, crashStderr)
				return 1
			}
		}
	}
}

func (f *fake) ip(args []string) int {
	pos, opts := positional(args, "--wait", "--resolver")
	if len(pos) != 1 {
		return 64
	}
	name := pos[0]
	if !f.exists(name) {
		return noSuchVM(name)
	}
	wait, _ := strconv.Atoi(opts["--wait"])
	s := f.script()
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for f.pid(name) == 0 {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "no IP address found, is your VM running?")
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.IPTimeout {
		// The VM runs but gets no lease. Real tart waits out --wait;
		// the fake gives up at once, but only once the VM is up, or a
		// stop that followed could find tart run not yet started.
		fmt.Fprintln(os.Stderr, "no IP address found")
		return 1
	}
	fmt.Println(s.IP)
	return 0
}

func (f *fake) stop(args []string) int {
	pos, opts := positional(args, "--timeout", "-t")
	if len(pos) != 1 {
		return 64
	}
	name := pos[0]
	if !f.exists(name) {
		return noSuchVM(name)
	}
	pid := f.pid(name)
	if pid == 0 {
		fmt.Printf("VM \"%s\" is not running! Nothing to stop!\n", name)
		return 0
	}
	_ = syscall.Kill(pid, syscall.SIGINT)
	timeout, _ := strconv.Atoi(opts["--timeout"])
	deadline := time.Now().Add(time.Duration(timeout) * time.Second)
	for f.pid(name) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.pid(name) != 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return 0
}

func (f *fake) suspend(args []string) int {
	pos, _ := positional(args)
	if len(pos) != 1 {
		return 64
	}
	name := pos[0]
	pid := f.pid(name)
	if pid == 0 {
		fmt.Fprintf(os.Stderr, "VM \"%s\" is not running\n", name)
		return 2
	}
	_ = syscall.Kill(pid, syscall.SIGUSR1)
	return 0
}

func (f *fake) delete(args []string) int {
	pos, _ := positional(args)
	for _, name := range pos {
		if !f.exists(name) {
			return noSuchVM(name)
		}
		if err := os.RemoveAll(f.dir(name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func (f *fake) list() int {
	type info struct {
		Source  string
		Name    string
		Disk    int
		Size    int
		Running bool
		State   string
	}
	out := []info{}
	entries, err := os.ReadDir(filepath.Join(f.home, "vms"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, e := range entries {
		running := f.pid(e.Name()) != 0
		state := "stopped"
		if running {
			state = "running"
		}
		out = append(out, info{Source: "local", Name: e.Name(), Disk: 50, Size: 20, Running: running, State: state})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	return 0
}
