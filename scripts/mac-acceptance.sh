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
#   8. one real sysdiagnose in a guest (a one-attempt run whose only step
#      runs it the way sxlab's collection does): its duration, the
#      archive's size, and `sysdiagnose -h`; skipped with --no-sysdiagnose;
#   9. sxlab image check golden --json: every golden check (automatic
#      login, FileVault, SIP, the TCC grants, MDM, NE logging, sleep, disk,
#      sysdiagnose, clock) with the commands and their output, none of
#      which a Mac has run yet; a FAILURE there is data, not a stop;
#      skipped with --no-image-check;
#  10. the accessibility trees of the System Settings panes `approve: ui`
#      clicks in (a one-attempt run whose steps open each pane as the
#      console user and dump window 1 of System Settings through System
#      Events, recursively: class and index, name, role, description,
#      value): Privacy & Security (13/14: "Allow"), and on 15+ General >
#      Login Items & Extensions (the extension's switch). No extension is
#      pending in this lab, so the approval control itself is absent: the
#      trees show the layout the built-in scripts navigate, to correct
#      them. The trees go into the report and WORK/ax/PANE.txt; skipped
#      with --no-ui-trees;
#  11. the shutdown check: no vz-worker process and no Virtualization
#      VM process of ours left, nothing left in the store's clones/.
#
# Per attempt it also reports, from each run's journal (results.jsonl),
# how the machine started (restored or cold, and why a restore fell back),
# the seconds from power-on to SSH, and the channel SSH went over: vsock
# (sxlab-agent in the guest, over the VM's virtio-socket device) or tcp,
# with why the agent's channel was not used. The image has agent: true
# unless --no-agent; a golden without sxlab-agent costs each attempt up
# to a minute before SSH falls back to TCP (the report then says so).
#
# Options:
#   --store DIR       the vz store (default ~/.sxlab/vz)
#   --slots N         attempts at once, 1 or 2 (default 1: figures of one VM
#                     alone; 2 also proves two VMs run side by side)
#   --user NAME       the guest login (default admin); the password is read
#                     from SXLAB_GUEST_PASSWORD (default admin)
#   --bin PATH        use this signed sxlab instead of building bin/sxlab
#   --no-warm         do not warm the image (it keeps what state it has)
#   --no-agent        do not try SSH over the agent's vsock channel
#   --no-sysdiagnose  do not run the sysdiagnose attempt
#   --no-image-check  do not run sxlab image check
#   --no-ui-trees     do not dump the System Settings accessibility trees
#   --print-config    print the lab configuration it would use and exit
#                     (works on any OS)
#
# The figures are printed at the end and kept in one report file,
# WORK/figures.txt, next to the run folders; attach it to the issue. Exit 0 when both attempts passed
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

# write_config FILE STORE IMAGE SLOTS USER RUNS_DIR AGENT [KIND]: the lab
# the acceptance runs; AGENT is true or false (SSH over the agent's vsock
# channel); KIND sysdiagnose makes the one-attempt lab whose only step
# runs a real sysdiagnose. Relative paths in it are taken from FILE's
# folder.
write_config() {
	local cells="[first, second]" command=5m
	if [ "${8:-}" = sysdiagnose ]; then
		cells="[sysdiagnose]" command=30m
	elif [ "${8:-}" = uitrees ]; then
		cells="[ui-trees]" command=10m
	fi
	cat >"$1" <<EOF
# Written by scripts/mac-acceptance.sh: attempts on REAL macOS guests
# (provider vz) of a lab with no app, to measure clone, boot and shutdown.
lab:
  name: mac-acceptance
  runs_dir: $6
  timeouts:
    boot: 10m
    command: $command
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
    # SSH over the sxlab-agent's vsock channel; TCP when it does not answer.
    agent: $7
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
    cell: $cells
  repeat: 1
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
	if [ "${8:-}" = sysdiagnose ]; then
		# Lines the report reads back from steps.jsonl: sysdiagnose's help,
		# then its exit, duration and the archive's size, as sxlab's own
		# collection runs it.
		cat >>"$1" <<'EOF'
scenario:
  - shell:
      run: >-
        sysdiagnose -h 2>&1 | head -n 40 | sed 's/^/SXLAB-SDH| /';
        s=$(date +%s);
        sudo -n sysdiagnose -u -b -Q -f /tmp/sxlab-sd -A acceptance >/tmp/sxlab-sd.out 2>&1; e=$?;
        t=$(( $(date +%s) - s ));
        b=$(stat -f %z /tmp/sxlab-sd/acceptance.tar.gz 2>/dev/null || echo none);
        echo "SXLAB-SD| exit=$e seconds=$t bytes=$b";
        tail -n 3 /tmp/sxlab-sd.out | sed 's/^/SXLAB-SDOUT| /'
EOF
	elif [ "${8:-}" = uitrees ]; then
		write_uitrees_scenario >>"$1"
	else
		cat >>"$1" <<'EOF'
scenario:
  - probe: [sw-vers]
EOF
	fi
}

# write_uitrees_scenario: the scenario of the ui-trees lab. Each step
# opens one System Settings pane as the console user, in their session
# (launchctl asuser UID sudo -u USER, as the lab's own GUI commands run),
# waits for it to draw, and prints window 1's accessibility tree, gzipped
# and base64-encoded between SXLAB-AX-BEGIN/END lines (a step keeps 256
# KiB of stdout). Errors print as SXLAB-AXERR| lines, and every step
# exits 0, so the next pane is still dumped.
write_uitrees_scenario() {
	cat <<'EOF'
scenario:
  - name: ax-info
    shell:
      run: >-
        echo "SXLAB-AXINFO| macOS $(sw_vers -productVersion) ($(sw_vers -buildVersion)),
        console user $(stat -f %Su /dev/console), ssh user $(id -un)"
EOF
	local pane tree
	tree=$(ax_tree_script)
	# name, URL, first macOS major that has the pane
	for pane in \
		"privacy-security x-apple.systempreferences:com.apple.preference.security?Security 13" \
		"privacy-security-extension x-apple.systempreferences:com.apple.settings.PrivacySecurity.extension 13" \
		"login-items-extensions x-apple.systempreferences:com.apple.LoginItems-Settings.extension 15"; do
		# shellcheck disable=SC2086 # the three words of $pane
		set -- $pane
		cat <<EOF
  - name: ax-$1
    shell:
      run: |
        major=\$(sw_vers -productVersion | cut -d. -f1)
        if [ "\$major" -lt $3 ]; then echo "SXLAB-AXSKIP| $1: macOS \$major has no such pane (it is new in $3)"; exit 0; fi
        uid=\$(id -u); user=\$(id -un)
        sudo -n launchctl asuser "\$uid" sudo -n -u "\$user" osascript -e 'tell application "System Settings" to quit' >/dev/null 2>&1 || true
        sleep 2
        if ! sudo -n launchctl asuser "\$uid" sudo -n -u "\$user" open '$2' 2>/tmp/sxlab-ax.err; then
          echo "SXLAB-AXERR| $1: open $2: \$(cat /tmp/sxlab-ax.err)"; exit 0
        fi
        sleep 8
        cat >/tmp/sxlab-ax.applescript <<'AX'
$tree
        AX
        if sudo -n launchctl asuser "\$uid" sudo -n -u "\$user" osascript /tmp/sxlab-ax.applescript >/tmp/sxlab-ax.txt 2>/tmp/sxlab-ax.err; then
          echo "SXLAB-AX-BEGIN| $1 $2 (\$(wc -l </tmp/sxlab-ax.txt | tr -d ' ') elements)"
          gzip -c /tmp/sxlab-ax.txt | base64
          echo "SXLAB-AX-END| $1"
        else
          echo "SXLAB-AXERR| $1: osascript: \$(cat /tmp/sxlab-ax.err)"
        fi
        exit 0
EOF
	done
}

# ax_tree_script: the AppleScript that prints System Settings' window 1,
# one line per UI element: indentation, its class and index among its
# siblings of that class (how a script names it: button 2), then name,
# role, description and value. Indented 8 spaces for the YAML block.
ax_tree_script() {
	sed 's/^/        /' <<'EOF'
on txt(x)
	try
		if x is missing value then return ""
		return x as text
	on error
		return "?"
	end try
end txt
on walk(el, depth, label)
	tell application "System Events"
		set pad to ""
		repeat depth times
			set pad to pad & "  "
		end repeat
		set r to ""
		set n to ""
		set d to ""
		set v to ""
		try
			set r to my txt(role of el)
		end try
		try
			set n to my txt(name of el)
		end try
		try
			set d to my txt(description of el)
		end try
		try
			set v to my txt(value of el)
		end try
		set out to pad & label & " name=\"" & n & "\" role=" & r & " description=\"" & d & "\" value=\"" & v & "\""
		set kids to {}
		try
			set kids to UI elements of el
		end try
		set seen to {}
		repeat with k in kids
			set c to "?"
			try
				set c to my txt(class of k)
			end try
			set i to 1
			repeat with s in seen
				if (s as text) is c then set i to i + 1
			end repeat
			set end of seen to c
			set out to out & linefeed & my walk(k, depth + 1, c & " " & i)
		end repeat
		return out
	end tell
end walk
tell application "System Events" to tell process "System Settings"
	set frontmost to true
	return my walk(window 1, 0, "window 1")
end tell
EOF
}

# image_check_figures JSON: one line per check of sxlab image check --json
# (JSON::PP is in macOS's perl).
image_check_figures() {
	[ -s "$1" ] || { echo "  (no output: see ${1%.json}.err)"; return 0; }
	perl -MJSON::PP -e '
		local $/; my $r = decode_json(<STDIN>);
		for my $c (@{$r->{checks}}) {
			printf "  %-8s %-13s %s%s\n", $c->{status}, $c->{name}, $c->{detail},
				$c->{unverified_on_macos} ? " (unverified on macOS)" : "";
			printf "  %-8s %-13s fix: %s\n", "", "", $c->{fix} if $c->{fix} && $c->{status} ne "ok";
		}' <"$1"
}

# uitrees_figures RUN_DIR OUT_DIR: decodes each pane's tree from the
# run's steps.jsonl into OUT_DIR/PANE.txt and prints them, with the
# steps' errors and skips.
uitrees_figures() {
	local steps
	steps=$(find "$1/cells" -name steps.jsonl 2>/dev/null | head -n 1)
	[ -n "$steps" ] || { echo "  (no steps.jsonl in $1: the attempt did not reach its steps)"; return 0; }
	mkdir -p "$2"
	perl -MJSON::PP -ne '
		my $e = eval { decode_json($_) } or next;
		print $e->{result}{stdout} // "" if ($e->{step} // "") =~ /^ax-/;' "$steps" >"$2/stdout.txt"
	sed -n 's/^SXLAB-AXINFO| /  /p; s/^SXLAB-AXSKIP| /  skipped: /p; s/^SXLAB-AXERR| /  ERROR: /p' "$2/stdout.txt"
	local pane
	while IFS= read -r pane; do
		sed -n "/^SXLAB-AX-BEGIN| $pane /,/^SXLAB-AX-END| $pane\$/p" "$2/stdout.txt" | sed '1d;$d' |
			base64 -D | gunzip >"$2/$pane.txt" || echo "  ERROR: $pane: the tree did not decode"
		echo
		echo "  $(grep "^SXLAB-AX-BEGIN| $pane " "$2/stdout.txt" | sed 's/^SXLAB-AX-BEGIN| //') -> $2/$pane.txt:"
		sed 's/^/    /' "$2/$pane.txt"
	done < <(sed -n 's/^SXLAB-AX-BEGIN| \([^ ]*\) .*/\1/p' "$2/stdout.txt")
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

# journal_figures RUN_DIR: per attempt of the run's journal, how its
# machine started, the seconds from power-on to SSH and the channel SSH
# went over, with the notes that say why a restore or the agent's channel
# was not had.
journal_figures() {
	local journal=$1/results.jsonl
	[ -f "$journal" ] || { echo "  (no journal in $1)"; return 0; }
	printf '  %-28s %-9s %7s %-7s %s\n' attempt start to_ssh channel notes
	local line notes note
	while IFS= read -r line; do
		notes=""
		for note in "$(json_string "$line" start_note)" "$(json_string "$line" channel_note)" "$(json_string "$line" quarantine)"; do
			[ "$note" = - ] || notes="${notes:+$notes; }$note"
		done
		printf '  %-28s %-9s %7s %-7s %s\n' \
			"$(json_string "$line" label) r$(json_number "$line" repeat)" \
			"$(json_string "$line" start)" "$(json_number "$line" to_ssh)" "$(json_string "$line" channel)" \
			"${notes:--}"
	done <"$journal"
}

# json_string LINE KEY and json_number LINE KEY: one field of a journal
# line (no nesting is needed for these keys); "-" when absent.
json_string() {
	local v
	v=$(printf '%s\n' "$1" | sed -En 's/.*"'"$2"'":"(([^"\\]|\\.)*)".*/\1/p' | head -n 1)
	printf '%s' "${v:--}"
}
json_number() {
	local v
	v=$(printf '%s\n' "$1" | sed -En 's/.*"'"$2"'":([0-9.]+).*/\1/p' | head -n 1)
	printf '%s' "${v:--}"
}

# sysdiagnose_figures RUN_DIR: the lines the sysdiagnose step printed,
# read back from its steps.jsonl.
sysdiagnose_figures() {
	local steps
	steps=$(find "$1/cells" -name steps.jsonl 2>/dev/null | head -n 1)
	[ -n "$steps" ] || { echo "  (no steps.jsonl in $1: the attempt did not reach its step)"; return 0; }
	# The step's stdout is one JSON string: unescape its newlines.
	local out
	out=$(sed -En 's/.*"stdout":"(([^"\\]|\\.)*)".*/\1/p' "$steps" | head -n 1)
	out=$(printf '%b' "${out//\\\"/\"}")
	local fig
	fig=$(printf '%s\n' "$out" | sed -n 's/^SXLAB-SD| //p')
	echo "  ${fig:-no figures: the step did not finish (see $steps)}"
	printf '%s\n' "$out" | sed -n 's/^SXLAB-SDOUT| /  sysdiagnose said: /p'
	echo "  sysdiagnose -h:"
	printf '%s\n' "$out" | sed -n 's/^SXLAB-SDH| /    /p'
}

# run_lab KIND [CFG]: sxlab run with plain progress; keeps
# KIND.progress.log, KIND.summary.txt, KIND.exit, KIND.seconds and
# KIND.run_dir in $work. Uses bin, cfg and work of main.
run_lab() {
	local kind=$1 config=${2:-$cfg} t0 code=0
	echo "== sxlab run: $kind (progress in $work/$kind.progress.log)"
	t0=$(now)
	"$bin" run --config "$config" --progress plain 2> >(tee "$work/$kind.progress.log" >&2) | tee "$work/$kind.summary.txt" || code=$?
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
	local store="$HOME/.sxlab/vz" slots=1 user=admin bin="" print_config=0 vm="" warm=1 agent=true sysdiagnose=1 imagecheck=1 uitrees=1 t0
	while [ $# -gt 0 ]; do
		case $1 in
		--store) store=${2:?--store needs a folder}; shift 2 ;;
		--slots) slots=${2:?--slots needs 1 or 2}; shift 2 ;;
		--user) user=${2:?--user needs a name}; shift 2 ;;
		--bin) bin=${2:?--bin needs a path}; shift 2 ;;
		--print-config) print_config=1; shift ;;
		--no-warm) warm=0; shift ;;
		--no-agent) agent=false; shift ;;
		--no-sysdiagnose) sysdiagnose=0; shift ;;
		--no-image-check) imagecheck=0; shift ;;
		--no-ui-trees) uitrees=0; shift ;;
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
		write_config "$tmp" "$store" "$image" "$slots" "$user" ./runs "$agent"
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
	write_config "$cfg" "$store" "$image" "$slots" "$user" "$runs_dir" "$agent"
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

	# 8. one real sysdiagnose, in a guest of its own
	if [ "$sysdiagnose" = 1 ]; then
		write_config "$work/sysdiagnose.yaml" "$store" "$image" 1 "$user" "$runs_dir" "$agent" sysdiagnose
		run_lab sysdiagnose "$work/sysdiagnose.yaml"
	fi

	# 9. every golden check, recorded (a FAILURE is data for the report)
	local imagecheck_exit="not run (--no-image-check)"
	if [ "$imagecheck" = 1 ]; then
		echo "== sxlab image check golden --json (in $work/image-check.json)"
		imagecheck_exit=0
		"$bin" image check golden --config "$cfg" --json >"$work/image-check.json" 2>"$work/image-check.err" || imagecheck_exit=$?
	fi

	# 10. the accessibility trees of the panes approve: ui clicks in
	if [ "$uitrees" = 1 ]; then
		write_config "$work/uitrees.yaml" "$store" "$image" 1 "$user" "$runs_dir" "$agent" uitrees
		run_lab uitrees "$work/uitrees.yaml"
	fi

	# 11. nothing left behind
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
			echo "  from the journal (start: restored|cold; to_ssh: power-on to SSH, s; channel: vsock|tcp):"
			journal_figures "$(cat "$work/$kind.run_dir")"
		done
		echo
		if [ -f "$work/sysdiagnose.run_dir" ]; then
			echo "sysdiagnose in a guest (exit $(cat "$work/sysdiagnose.exit"), whole run $(cat "$work/sysdiagnose.seconds") s):"
			sysdiagnose_figures "$(cat "$work/sysdiagnose.run_dir")"
		else
			echo "sysdiagnose in a guest: not measured (--no-sysdiagnose)"
		fi
		echo
		echo "sxlab image check golden: exit $imagecheck_exit (0: no FAILURE, 1: a FAILURE, 2: not reached); its checks are unverified on macOS until this run:"
		[ "$imagecheck" != 1 ] || image_check_figures "$work/image-check.json"
		echo
		if [ -f "$work/uitrees.run_dir" ]; then
			echo "System Settings accessibility trees (exit $(cat "$work/uitrees.exit"); to correct approve: ui's scripts):"
			uitrees_figures "$(cat "$work/uitrees.run_dir")" "$work/ax"
		else
			echo "System Settings accessibility trees: not dumped (--no-ui-trees)"
		fi
		echo "agent channel: $([ "$agent" = true ] && echo "tried (images.golden.agent: true): see channel above" || echo "not tried (--no-agent)")"
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
	for kind in cold restore sysdiagnose uitrees; do
		[ ! -f "$work/$kind.exit" ] || [ "$(cat "$work/$kind.exit")" = 0 ] ||
			die "the $kind run exited $(cat "$work/$kind.exit") (1: a probe failed, 2: attempts without a verdict, 3: configuration); see $work/$kind.progress.log"
	done
	[ -z "$leftovers" ] || die "something was left behind after the run"
	echo "$prog: ok; figures in $work/figures.txt"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
