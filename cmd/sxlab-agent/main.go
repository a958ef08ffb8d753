// Command sxlab-agent runs inside a macOS guest as a LaunchDaemon
// (com.sxlab.agent) and gives the lab a way to the guest's sshd that does
// not depend on the guest's network: it listens on a vsock port of the
// VM's virtio-socket device and forwards each connection to
// 127.0.0.1:22. A VPN under test that takes the guest's routes then
// cannot cut the lab off (tart's guest agent talks over vsock for the
// same reason: tart PR 364, cirruslabs/tart-guest-agent).
//
//	sxlab-agent [--port 7022] [--target 127.0.0.1:22]   serve
//	sxlab-agent plist [--binary PATH] [--port N]          print the LaunchDaemon plist
//
// Pure Go for darwin/arm64 with CGO_ENABLED=0: the vsock socket is made
// with golang.org/x/sys/unix (AF_VSOCK and sockaddr_vm exist on macOS;
// github.com/mdlayher/vsock supports only Linux). Unverified on macOS: it
// builds and its forwarder is tested on Linux, but no Mac has run it.
// docs/agent.md says how to install it in a golden image.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sxlab/sxlab/cmd/sxlab-agent/forward"
	"github.com/sxlab/sxlab/cmd/sxlab-agent/launchd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, listenVsock))
}

// options is one parsed command line.
type options struct {
	plist  bool
	binary string
	port   uint
	target string
}

func parseArgs(args []string) (options, error) {
	o := options{binary: launchd.Binary, port: launchd.Port, target: launchd.Target}
	if len(args) > 0 && args[0] == "plist" {
		o.plist = true
		args = args[1:]
	}
	fs := flag.NewFlagSet("sxlab-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.UintVar(&o.port, "port", o.port, "vsock port to listen on")
	fs.StringVar(&o.target, "target", o.target, "address to forward each connection to")
	if o.plist {
		fs.StringVar(&o.binary, "binary", o.binary, "where the agent is installed")
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.port == 0 || o.port > 0xFFFFFFFE {
		return options{}, fmt.Errorf("--port %d is not a vsock port", o.port)
	}
	if _, _, err := net.SplitHostPort(o.target); err != nil {
		return options{}, fmt.Errorf("--target %q: %w", o.target, err)
	}
	return o, nil
}

// run is the program but for os.Exit; listen makes the vsock listener.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, listen func(port uint32) (net.Listener, error)) int {
	o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "usage: sxlab-agent [--port 7022] [--target 127.0.0.1:22] | sxlab-agent plist [--binary PATH] [--port N]")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sxlab-agent: %v\n", err)
		return 64
	}
	if o.plist {
		b, err := launchd.Plist(o.binary, uint32(o.port), o.target)
		if err != nil {
			fmt.Fprintf(stderr, "sxlab-agent: %v\n", err)
			return 64
		}
		stdout.Write(b)
		fmt.Fprintln(stdout)
		return 0
	}
	logger := log.New(stderr, "sxlab-agent: ", log.LstdFlags)
	ln, err := listen(uint32(o.port))
	if err != nil {
		logger.Printf("listen on vsock port %d: %v", o.port, err)
		return 1
	}
	logger.Printf("forwarding vsock port %d to %s (unverified on macOS)", o.port, o.target)
	dial := func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		return d.DialContext(ctx, "tcp", o.target)
	}
	if err := forward.Serve(ctx, ln, dial, logger.Printf); err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}
