package macos

// How the simulated Mac behaves, in one place. The code is in mac*.go,
// log*.go, fault.go, payload.go, simpkg.go and sysdiagnose.go.
//
// Packages. `installer -pkg X.pkg -target /` (root) reads the flat
// package with the packages reader (the code preflight uses) and lays
// down the app where the package's install-location puts it
// (/Applications/<app>.app): each bundle's Info.plist (XML, the keys
// read) and main executable (a stand-in naming its real LC_UUIDs), for
// the app and for Contents/Library/SystemExtensions/<ext>.systemextension.
// It writes one receipt per component from its PackageInfo (pkgutil
// --pkg-info: identifier, version, location) and /var/log/install.log.
// Identity, versions and the Mach service come from the Info.plists, the
// team and LC_UUIDs from the Mach-O files. What a package cannot say is a
// convention: the extension's name in systemextensionsctl is the app's
// name, and an app with a packet-tunnel or app-proxy provider creates a
// VPN configuration named after itself. The payload goes over what is
// there, like installer; a running app keeps running its old version. A
// file the reader refuses fails as macOS's installer fails for a file
// that is not a flat package ("installer: Error - the package path
// specified was invalid: 'X'.", exit 1), the reason in install.log.
// `ditto -x -k X.zip DIR` and `hdiutil attach … -mountpoint DIR X.dmg`
// then `ditto DIR/App.app /Applications/App.app` install a .zip and a
// .dmg the same way, without a receipt. A *.simpkg.json manifest
// (testdata/simpkg) still installs: a test helper for app behaviours a
// package cannot express (retains_activation_delegate).
//
// Apps. Every launch of a new app process (open -a, launchctl asuser …
// open, or running the executable without arguments) submits an
// activation request for the bundled extension, as Coder Desktop does.
// `open` returns once sysextd decided (launch 2s + activation 3s of
// simulated time). A running app is only brought to the front: no new
// request. `EXE --check-xpc` is a one-shot XPC probe: it looks the Mach
// service up and prints `xpc: connected to SERVICE (extension V/B)` or
// fails with `xpc: SERVICE: connection invalidated`, logging libxpc's
// bootstrap look-up failure lines.
//
// sysextd. A request is decided against the enabled or waiting copy of
// the extension: none → staged, validated, then enabled at once when an
// MDM policy covers it, else `activated waiting for user` with an
// approval prompt on screen; same version → already active, or joins the
// waiting activation (the report's coalesce lines; no new prompt) — after
// a reboot a fresh prompt; other version → the replacement lines of the
// delegate report, and the app answers "replace" (unless it does not
// retain its delegate: then it cancels its connection and nothing is
// replaced). Replacing an enabled copy enables the new one at once (the
// approval carries over); the old copy is `terminated waiting to
// uninstall on reboot` when its provider was running, else removed.
// Replacing a waiting copy leaves the new one waiting with a new prompt.
//
// Approval. Only where macOS approves: System Settings' approval control
// (settings.go), and the golden's MDM system extension policy, which
// approves matching activations at once (a golden with it never shows a
// waiting extension). No click in a notification approves an extension,
// and the sim has no command of its own for either.
// systemextensionsctl developer/uninstall/reset refuse (SIP is on).
//
// The VPN-configuration alert (vpnalert.go). On a golden that does not
// allow VPN configurations (vpn_configuration_allowed: false), the app's
// first save shows "“App” Would Like to Add VPN Configurations" in
// UserNotificationCenter and the configuration exists only once Allow is
// clicked; Don't Allow fails the save until the app saves again.
//
// The golden (golden.go, settings.go). The image says how its golden was
// prepared (Golden): who automatic login puts on the console, SIP,
// FileVault, TCC grants, the MDM enrolment with its policies and VPN
// payloads. The model keeps macOS's rules for them: no GUI session → open
// fails; root's Apple events and scripting without the grants fail
// (-1743, -1719); System Settings offers its approval control on the
// pane of the version (Privacy & Security on 13/14, Login Items &
// Extensions on 15+), behind the password sheet, and none for a copy
// whose request was never presented. An uploaded darwin/arm64 Mach-O is
// answered as the lab's sxlab-probe (probe.go); the shell gives any other
// executable the kernel's "exec format error". docs/macos-behaviour.md
// lists every rule with its source.
//
// Providers and launchd. An enabled extension has the launchd job
// NetworkExtension.<bundle>.<short>.<build>, whose endpoints block lists
// its Mach service unless a fault lost it. The provider process runs while
// its VPN is Connecting/Connected or a running app holds an XPC
// connection to it.
//
// VPN. The app creates its VPN configuration the first time it learns its
// extension is enabled (delegate callback or a launch). `scutil --nc
// start` returns at once; the session is Connecting, then Connected after
// 2s of guest time (or at the second status query, for a clock that does
// not move). It connects only while the extension is enabled.
//
// Reboot (Boot). Apps stop, VPNs disconnect, prompts close, terminated
// copies are removed, per-boot faults heal. Packages, extensions, VPN
// configurations, policies and Default/Error/Fault log messages persist;
// Info/Debug messages do not unless `log config --mode persist:…` was
// set for their subsystem.
//
// Faults (fault.go), each drawn from a generator seeded by the seed and
// the machine's name, in the order events happen:
//
//   - endpoint-lost-on-replace-while-running: a replacement of an enabled
//     copy while its VPN runs, to a version never staged on this machine
//     before, with an unchanged Mach service name, leaves the new job
//     without its endpoint for good (relaunch, VPN restart, reinstall and
//     reboot do not help); the new provider logs "listener failed to
//     activate: xpc_error=[1: Operation not permitted]". Only removing
//     the extension and approving again cure it (no command line of the
//     sim removes one; its tests do it through the model).
//   - endpoint-registration-race: every replacement of an enabled copy
//     loses the endpoint with probability p (0.2) until reboot.
//   - approval-coalesced: replacing a copy that waits for the user (an app
//     update before approval, the report's trigger) hits the staging error
//     "Removing tree at … Resetting flags and trying again!"; the new copy
//     reaches `activated waiting for user` but its prompt never appears,
//     and the retried request coalesces with it. System Settings offers
//     no approval control for it until a reboot (after which the next
//     launch presents the request again). In the demo (config.yaml),
//     approval=pending cells on macos-15.3 therefore end `activated
//     waiting for user` and fail extension-state, mach-endpoint and xpc;
//     on macos-15.4 they pass.
//   - vpn-captures-host-traffic: from the moment a VPN is Connected until
//     none is (a stop, a reboot), the model tells its machine
//     (Network.CaptureHostRoute) that the tunnel takes the guest's route
//     to the host; the machine stalls its TCP to sshd (sshd.Route), not
//     the guest agent's channel. Nothing in the model's output changes
//     (docs/macos-behaviour.md rule 21).
//
// App behaviour retains_activation_delegate: false (delegate-no-callback)
// is a package flag, not a fault.
