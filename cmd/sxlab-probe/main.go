// Command sxlab-probe runs inside a macOS guest and tells the lab whether
// a Mach service (an extension's XPC endpoint) can be reached by the user
// it runs as:
//
//	sxlab-probe mach-lookup SERVICE
//	sxlab-probe xpc-connect SERVICE [--timeout 5s] [--privileged]
//
// mach-lookup asks launchd with bootstrap_look_up. xpc-connect does that
// too, then opens an XPC connection to the service
// (xpc_connection_create_mach_service), sends one empty dictionary with
// xpc_connection_send_message_with_reply_sync and reports what libxpc
// delivered: a reply, XPC_ERROR_CONNECTION_INVALID, ..._INTERRUPTED, or
// nothing within the timeout. A registered service that closes the
// connection (an NSXPC-only service cannot decode a raw dictionary) is
// "reachable, rejected the message", which is not a failed lookup.
//
// It prints one JSON object (package schema) on stdout and exits 0 when
// the service is there, 1 when it is not or did not answer in time, 2
// when the probe could not do its job and 64 on a bad command line.
//
// It is pure Go for darwin/arm64, built with CGO_ENABLED=0: libSystem and
// libxpc are called through github.com/ebitengine/purego, and the XPC
// event handler is an Objective-C block made by purego/objc. All of that
// is unverified on macOS: it type-checks and builds, but no Mac has run
// it yet (see docs/probe.md).
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, openSystem))
}
