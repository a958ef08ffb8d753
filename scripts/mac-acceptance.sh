#!/usr/bin/env bash
# The first hardware acceptance of sxlab on an Apple Silicon Mac mini: the
# figures the project has not been able to measure without a Mac.
#
#   scripts/mac-acceptance.sh [options] TART_VM
#
# TART_VM is a local tart VM (tart list) of macOS with Remote Login on and
# a login user (tart's public images: admin/admin), for example
#   tart clone ghcr.io/cirruslabs/macos-sequoia-base:latest sequoia-base
#
# What it does, in order, stopping at the first thing that fails:
#   1. builds bin/sxlab and signs it with the virtualization entitlement
#      (scripts/sign.sh);
#   2. writes a lab configuration for provider vz in a fresh work folder: a
#      two-cell matrix whose only step probes `sw_vers` (no app installed);
#   3. sxlab config validate, then sxlab doctor;
#   4. sxlab image import-tart TART_VM into the vz store (clonefile: the
#      store must be on the same APFS volume as tart's home), unless the
#      store has that image already; sxlab image inspect;
#   5. times one clonefile(2) of the image's disk by hand (cp -c);
#   6. sxlab run --progress plain, and reads clone, boot-to-SSH and cleanup
#      times per attempt from its progress lines (0.1 s resolution): cold
#      boots, when the image has no saved state yet;
#   7. sxlab image warm (boot the golden, check passwordless sudo, save its
#      state), then a second run whose attempts restore that state:
#      restore-to-SSH; skipped with --no-warm;
#   8. the shutdown check: no vz-worker process and no Virtualization
#      VM process of ours left, nothing left in the store's clones/.
#
# Options:
#   --store DIR       the vz store (default ~/.sxlab/vz)
#   --slots N         attempts at once, 1 or 2 (default 1: figures of one VM
#                     alone; 2 also proves two VMs run side by side)
#   --user NAME       the guest login (default admin); the password is read
#                     from SXLAB_GUEST_PASSWORD (default admin)
#   --bin PATH        use this signed sxlab instead of building bin/sxlab
#   --no-warm         do not warm the image (it keeps what state it has)
#   --print-config    print the lab configuration it would use and exit
#                     (works on any OS)
#
# The figures are printed at the end and kept in WORK/figures.txt with the
# run folder; paste them into the issue. Exit 0 when both attempts passed
# and nothing was left behind.
set -euo pipefail

prog=mac-acceptance.sh

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

# now prints the time in seconds with milliseconds (perl ships with macOS;
# date is the fallback, to the second).
now() {
	perl -MTime::HiRes=time -e 'printf "%.3f\n", time' 2>/dev/null || date +%s
}

# since START prints the seconds from START to now.
since() {
	awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'
}

# write_config FILE STORE IMAGE SLOTS USER RUNS_DIR: the lab the acceptance
# runs. Relative paths in it are taken from FILE's folder.
write_config() {
	cat >"$1" <<EOF
# Written by scripts/mac-acceptance.sh: two attempts on REAL macOS guests
# (provider vz) of a lab with no app, to measure clone, boot and shutdown.
lab:
  name: mac-acceptance
  runs_dir: $6
  timeouts:
    boot: 10m
    command: 5m
hosts:
  - name: mini
    provider: vz
    slots: $4
    vz:
      store: "$2"
images:
  golden:
    vz:
      bundle: "$3"
    user: $5
    auth:
      password_env: SXLAB_GUEST_PASSWORD
    # image warm runs these before saving the state (it checks sw_vers and
    # passwordless sudo itself): no Spotlight indexing in throwaway clones.
    prepare: ["sudo mdutil -a -i off"]
# The schema wants an app; nothing installs it: the scenario only probes.
app:
  name: No-op
  bundle_id: com.example.noop
  extension:
    bundle_id: com.example.noop.extension
    team_id: ABCDE12345
    mach_service: ABCDE12345.com.example.noop.extension
  versions:
    "1": {package: noop.pkg}
matrix:
  axes:
    macos: [golden]
    cell: [first, second]
  repeat: 1
scenario:
  - probe: [sw-vers]
probes:
  - name: sw-vers
    kind: command
    run: sw_vers
    expect_stdout: 'ProductName:\s+macOS'
collect:
  on: failure
  sysdiagnose: false
# An infrastructure error must show, not be retried away.
retry:
  max: 0
EOF
}

# phase_figures LOG: one line per attempt from the plain progress lines of
# sxlab run ("  12.3s mini#1 LABEL r1: PHASE", "  40.0s [1/2] LABEL r1:
# VERDICT"): seconds in clone, from power-on to an address (boot ->
# connect), from the address to sshd answering (connect -> the first step),
# power-on to SSH, and cleanup (stop and delete). A retried attempt counts
# its last try.
phase_figures() {
	awk '
	{
		t = $1; sub(/s$/, "", t)
		line = $0; sub(/^ *[0-9.]+s /, "", line)
		sp = index(line, " "); who = substr(line, 1, sp - 1); rest = substr(line, sp + 1)
		if (!match(rest, / r[0-9]+: /)) next
		key = substr(rest, 1, RSTART - 1) " " substr(rest, RSTART + 1, RLENGTH - 3)
		phase = substr(rest, RSTART + RLENGTH)
		if (who ~ /^\[/) { fin[key] = t; verdict[key] = phase; next }
		if (phase == "clone") {
			if (!(key in seen)) { seen[key] = 1; order[++n] = key }
			clone[key] = t; delete boot[key]; delete conn[key]; delete ssh[key]; delete clean[key]
		} else if (phase == "boot") boot[key] = t
		else if (phase == "connect") conn[key] = t
		else if (phase == "cleanup") clean[key] = t
		else if ((key in conn) && !(key in ssh)) ssh[key] = t
	}
	function d(a, b) { return (a == "" || b == "") ? "-" : sprintf("%.1f", b - a) }
	END {
		printf "%-28s %7s %9s %8s %12s %8s  %s\n", "attempt", "clone", "boot->IP", "IP->SSH", "boot-to-SSH", "cleanup", "verdict"
		for (i = 1; i <= n; i++) {
			k = order[i]
			printf "%-28s %7s %9s %8s %12s %8s  %s\n", k, d(clone[k], boot[k]), d(boot[k], conn[k]), d(conn[k], ssh[k]), d(boot[k], ssh[k]), d(clean[k], fin[k]), verdict[k]
		}
	}' "$1"
}

# run_lab KIND: sxlab run with plain progress; keeps KIND.progress.log,
# KIND.summary.txt, KIND.exit, KIND.seconds and KIND.run_dir in $work.
# Uses bin, cfg and work of main.
run_lab() {
	local kind=$1 t0 code=0
	echo "== sxlab run: $kind boots (progress in $work/$kind.progress.log)"
	t0=$(now)
	"$bin" run --config "$cfg" --progress plain 2> >(tee "$work/$kind.progress.log" >&2) | tee "$work/$kind.summary.txt" || code=$?
	since "$t0" >"$work/$kind.seconds"
	echo "$code" >"$work/$kind.exit"
	sleep 1 # let tee finish the progress log
	sed -n 's/^run folder: //p' "$work/$kind.summary.txt" | tail -n 1 >"$work/$kind.run_dir"
}

# json_seconds JSON KEY: a nanosecond field of JSON as seconds.
json_seconds() {
	awk -v ns="$(inspect_field "$1" "$2")" 'BEGIN { printf "%.1f", ns / 1e9 }'
}

# inspect_field JSON KEY: a scalar of sxlab image inspect's output.
inspect_field() {
	sed -n 's/^ *"'"$2"'": *"\{0,1\}\([^",]*\)"\{0,1\},\{0,1\}$/\1/p' "$1" | head -n 1
}

# vm_processes: Virtualization.framework's per-VM processes (ours and
# anyone else's) and sxlab's workers.
vm_processes() {
	pgrep -lf 'com\.apple\.Virtualization\.VirtualMachine|vz-worker' || true
}

main() {
	local store="$HOME/.sxlab/vz" slots=1 user=admin bin="" print_config=0 vm="" warm=1 t0
	while [ $# -gt 0 ]; do
		case $1 in
		--store) store=${2:?--store needs a folder}; shift 2 ;;
		--slots) slots=${2:?--slots needs 1 or 2}; shift 2 ;;
		--user) user=${2:?--user needs a name}; shift 2 ;;
		--bin) bin=${2:?--bin needs a path}; shift 2 ;;
		--print-config) print_config=1; shift ;;
		--no-warm) warm=0; shift ;;
		-h | --help) usage; exit 0 ;;
		-*) die "unknown option $1 (see --help)" ;;
		*)
			[ -z "$vm" ] || die "one tart VM only (got $vm and $1)"
			vm=$1; shift ;;
		esac
	done
	case $slots in 1 | 2) ;; *) die "--slots $slots: a vz host runs 1 or 2 VMs at once (the macOS licence)" ;; esac
	case $store in /*) ;; *) store="$PWD/$store" ;; esac
	local image=${vm:-TART_VM}

	if [ "$print_config" = 1 ]; then
		local tmp
		tmp=$(mktemp)
		write_config "$tmp" "$store" "$image" "$slots" "$user" ./runs
		cat "$tmp"
		rm -f "$tmp"
		return 0
	fi

	if [ "$(uname -s)" != Darwin ] || [ "$(uname -m)" != arm64 ]; then
		die "this checks sxlab on real Macs and needs macOS on Apple Silicon (the vz provider); this is $(uname -s)/$(uname -m). Elsewhere, 'go run ./cmd/sxlab run' runs the demo lab on simulated Macs."
	fi
	[ -n "$vm" ] || { usage >&2; die "name the tart VM to import (tart list shows them)"; }
	command -v tart >/dev/null 2>&1 || echo "$prog: note: tart is not on PATH; only its VM folder is needed for the import"

	local root work cfg runs_dir
	root=$(cd "$(dirname "$0")/.." && pwd)
	work=$(mktemp -d "${TMPDIR:-/tmp}/sxlab-acceptance.XXXXXX")
	cfg=$work/config.yaml
	runs_dir=$work/runs
	echo "== work folder: $work"

	# 1. a signed binary
	if [ -z "$bin" ]; then
		bin=$root/bin/sxlab
		echo "== build and sign $bin"
		"$root/scripts/sign.sh" "$bin"
	fi
	[ -x "$bin" ] || die "$bin is not an executable"

	# 2-3. the configuration, checked; this machine, checked
	write_config "$cfg" "$store" "$image" "$slots" "$user" "$runs_dir"
	: >"$work/noop.pkg"
	mkdir -p "$store"
	export SXLAB_GUEST_PASSWORD=${SXLAB_GUEST_PASSWORD:-admin}
	echo "== sxlab config validate"
	"$bin" config validate --config "$cfg"
	echo "== sxlab doctor"
	"$bin" doctor --config "$cfg" || die "doctor found what stops vz here; fix it as it says and run again"

	# 4. the golden image
	local tart_home=${TART_HOME:-$HOME/.tart} import_s="not timed (the store had the image)"
	if [ -d "$store/$image" ]; then
		echo "== $store/$image exists: using it (delete it to time a fresh import)"
	else
		[ -d "$tart_home/vms/$vm" ] || die "no tart VM $vm in $tart_home/vms (tart list shows the local VMs)"
		if [ "$(stat -f %d "$tart_home/vms/$vm")" != "$(stat -f %d "$store")" ]; then
			die "$store and $tart_home are on different volumes: clonefile cannot clone across volumes. Use --store on the volume of $tart_home (or move tart's home with TART_HOME)"
		fi
		echo "== sxlab image import-tart $vm"
		t0=$(now)
		"$bin" image import-tart "$vm" --store "$store"
		import_s="$(since "$t0") s"
	fi
	echo "== sxlab image inspect $image"
	"$bin" image inspect "$image" --store "$store" | tee "$work/inspect.json"
	local saved_state disk_bytes
	saved_state=$(inspect_field "$work/inspect.json" has_saved_state)
	disk_bytes=$(inspect_field "$work/inspect.json" disk_bytes)

	# 5. one clonefile by hand, to the millisecond
	local probe="$store/.acceptance-clone-$$" clonefile_s
	mkdir "$probe"
	t0=$(now)
	cp -c "$store/$image/disk.img" "$probe/disk.img"
	clonefile_s=$(since "$t0")
	rm -rf "$probe"

	# 6. the first run: cold boots unless the image is warm already
	local before
	before=$(vm_processes | wc -l | tr -d ' ')
	local first=cold
	[ "$saved_state" != true ] || first=restore
	run_lab "$first"

	# 7. warm the golden, then a run that restores it
	local warm_s="not run (--no-warm)" warm_figures=""
	if [ "$warm" = 1 ]; then
		echo "== sxlab image warm golden"
		t0=$(now)
		"$bin" image warm golden --config "$cfg" --json | tee "$work/warm.json"
		warm_s="$(since "$t0") s"
		warm_figures="boot to address $(json_seconds "$work/warm.json" boot_to_address_ns) s, prepare $(json_seconds "$work/warm.json" prepare_ns) s, save $(json_seconds "$work/warm.json" save_ns) s, state $(inspect_field "$work/warm.json" state_bytes) bytes"
		[ "$first" = restore ] || run_lab restore
	fi

	# 7. nothing left behind
	local leftovers="" after
	after=$(vm_processes | wc -l | tr -d ' ')
	if [ "$after" -gt "$before" ]; then
		leftovers="VM processes: $before before the run, $after after:
$(vm_processes)"
	fi
	local clones=""
	[ ! -d "$store/clones" ] || clones=$(find "$store/clones" -mindepth 1 -maxdepth 1)
	if [ -n "$clones" ]; then
		leftovers="${leftovers:+$leftovers
}left in $store/clones:
$clones"
	fi

	# The label follows what sxlab says of its own run, never an assumption.
	local guests="REAL macOS guests, provider vz"
	if grep -q SIMULATED "$work"/*.summary.txt; then
		guests="SIMULATED guests, not real macOS"
	fi
	{
		echo "sxlab Mac acceptance on $(sysctl -n hw.model 2>/dev/null || echo a Mac), macOS $(sw_vers -productVersion) ($(sw_vers -buildVersion)): $guests"
		echo "sxlab: $("$bin" version 2>/dev/null | head -n 1)"
		echo "image: $image ($disk_bytes bytes of disk, saved state: $saved_state), slots: $slots"
		echo
		echo "import-tart:            $import_s"
		echo "clonefile of disk.img:  ${clonefile_s} s (cp -c, by hand)"
		echo "image warm:             $warm_s${warm_figures:+ ($warm_figures)}"
		local kind
		for kind in cold restore; do
			[ -f "$work/$kind.summary.txt" ] || {
				echo
				echo "$kind boots: not measured$([ "$kind" = cold ] && echo " (the image was warm already)" || echo " (--no-warm)")"
				continue
			}
			echo
			echo "$kind boots (boot-to-SSH is $([ "$kind" = cold ] && echo "power-on" || echo "restore") to SSH): whole run $(cat "$work/$kind.seconds") s, exit $(cat "$work/$kind.exit")"
			phase_figures "$work/$kind.progress.log"
			grep -q 'restoring .* failed' "$work/$kind.progress.log" 2>/dev/null && echo "  note: a restore fell back to a cold boot (see the worker logs in the run folder)"
		done
		echo
		if [ -n "$leftovers" ]; then
			echo "shutdown check: FAILED"
			echo "$leftovers"
		else
			echo "shutdown check: ok: no vz-worker or VM process of the run left, nothing in $store/clones"
		fi
		echo "run folders: $(cat "$work"/*.run_dir 2>/dev/null | tr '\n' ' ')"
	} | tee "$work/figures.txt"

	local kind
	for kind in cold restore; do
		[ ! -f "$work/$kind.exit" ] || [ "$(cat "$work/$kind.exit")" = 0 ] ||
			die "the $kind run exited $(cat "$work/$kind.exit") (1: a probe failed, 2: attempts without a verdict, 3: configuration); see $work/$kind.progress.log"
	done
	[ -z "$leftovers" ] || die "something was left behind after the run"
	echo "$prog: ok; figures in $work/figures.txt"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
