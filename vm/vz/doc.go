// Package vz runs macOS guests on Apple's Virtualization.framework through
// github.com/Code-Hex/vz/v3, one worker process per VM.
//
// The package is split the way crc-org/vfkit splits pkg/config from pkg/vf:
// everything that describes a machine (the tart-compatible bundle, MAC
// rules, clone plans, lease lookup, the worker protocol, the provider) is
// pure Go, builds everywhere and is tested on Linux; only vz_darwin_arm64.go
// maps that description onto Virtualization.framework calls.
//
// A VM runs in its own process, `sxlab vz-worker CLONE`, which the provider
// starts and talks to over a unix socket in the clone folder (JSON lines).
// A crash inside the framework then never takes down a run, and the worker
// holds an fcntl lock on the clone's config.json while it lives, so Reap can
// tell live clones from leftovers of killed runs.
//
// Every VM has a virtio-socket device. A "connect" request turns a
// connection to the worker's socket into a stream to a guest vsock port
// (Machine.DialGuest, vm.StreamDialer): the lab runs SSH over it to the
// guest agent at vm.AgentPort, a channel the guest's network, and a VPN
// under test that takes its routes, do not touch.
package vz
