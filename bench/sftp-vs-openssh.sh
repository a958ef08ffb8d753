#!/usr/bin/env bash
# Compares SFTP download throughput from a real OpenSSH sshd on loopback:
# sxlab's guest client (BenchmarkDownloadOpenSSH in ./guest) against
# OpenSSH's own sftp, on the same file, in alternating rounds. Prints MB/s
# (10^6 bytes per second, as go test does) and the ratio ours/openssh
# (goal >= 0.9). Exits non-zero only when the setup fails: the goal is
# reported, not enforced. See bench/README.md.
#
# Environment: SIZE_MIB (default 1024), ROUNDS (default 3),
# VERIFIED=0 skips timing the whole Download (with the guest-side shasum).
set -euo pipefail

size_mib=${SIZE_MIB:-1024}
rounds=${ROUNDS:-3}
verified=${VERIFIED:-1}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
	echo "sftp-vs-openssh: $*" >&2
	exit 1
}

[[ $size_mib =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive number of MiB, not '$size_mib'"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$rounds'"
command -v go >/dev/null || die "go is not on PATH (needed to build the guest benchmark)"

# --- packages: sshd, the OpenSSH client, and shasum (Download checks the
# file with the guest's `shasum -a 256`; Debian ships it in perl).
need=()
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
command -v sftp >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v shasum >/dev/null || need+=(perl)
if ((${#need[@]})); then
	sudo=()
	if [[ $(id -u) != 0 ]]; then
		command -v sudo >/dev/null || die "need ${need[*]} and cannot install them: not root and no sudo"
		sudo=(sudo)
	fi
	echo "sftp-vs-openssh: installing ${need[*]}" >&2
	apt_install() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2; }
	# A fresh machine has no package lists yet.
	apt_install || { "${sudo[@]}" apt-get update -q >&2 && apt_install; } || die "apt-get install ${need[*]} failed"
fi
sftp_server=
for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/libexec/sftp-server; do
	if [[ -x $p ]]; then
		sftp_server=$p
		break
	fi
done
[[ -n $sftp_server ]] || die "no sftp-server binary found (looked in /usr/lib/openssh, /usr/libexec/openssh, /usr/libexec)"

# --- a private sshd: this user, loopback only, keys and pid file in a temp
# dir; nothing of the system's configuration is read or changed.
work=$(mktemp -d "${TMPDIR:-/tmp}/sftp-vs-openssh.XXXXXX") || die "cannot make a temp dir"
sshd_pid=
cleanup() {
	if [[ -n $sshd_pid ]]; then
		kill "$sshd_pid" 2>/dev/null || true
		wait "$sshd_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

avail_kib=$(df -Pk "$work" | awk 'NR==2 {print $4}')
need_kib=$((size_mib * 1024 * 2 + 512 * 1024))
((avail_kib >= need_kib)) || die "$work has $((avail_kib / 1024)) MiB free; need $((need_kib / 1024)) MiB (the file and one download)"

if [[ $(id -u) == 0 && ! -d /run/sshd ]]; then
	# sshd run by root insists on its privilege separation directory, which
	# the system's ssh service would create at boot.
	mkdir -m 0755 /run/sshd || die "cannot create /run/sshd"
fi
ssh-keygen -q -t ed25519 -N '' -C sftp-vs-openssh-host -f "$work/host_key" || die "ssh-keygen failed"
ssh-keygen -q -t ed25519 -N '' -C sftp-vs-openssh-client -f "$work/client_key" || die "ssh-keygen failed"
cp "$work/client_key.pub" "$work/authorized_keys"
user=$(id -un)

start_sshd() {
	local port=$1
	cat >"$work/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $work/host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PrintMotd no
Subsystem sftp $sftp_server
EOF
	/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
	sshd_pid=$!
	for _ in $(seq 50); do
		if ! kill -0 "$sshd_pid" 2>/dev/null; then
			wait "$sshd_pid" 2>/dev/null || true
			sshd_pid=
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	kill "$sshd_pid" 2>/dev/null || true
	wait "$sshd_pid" 2>/dev/null || true
	sshd_pid=
	return 1
}

port=
for _ in 1 2 3 4 5; do
	p=$((20000 + RANDOM % 40000))
	# A port something already answers on is taken.
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		continue
	fi
	if start_sshd "$p"; then
		port=$p
		break
	fi
done
[[ -n $port ]] || die "sshd did not start; its log: $(tail -5 "$work/sshd.log" 2>/dev/null)"
echo "[127.0.0.1]:$port $(cat "$work/host_key.pub")" >"$work/known_hosts"

ssh_opts=(-F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i "$work/client_key"
	-o UserKnownHostsFile="$work/known_hosts" -o StrictHostKeyChecking=yes -o LogLevel=ERROR)
sftp -q "${ssh_opts[@]}" -P "$port" -b - "$user@127.0.0.1" <<<"pwd" >/dev/null ||
	die "OpenSSH's sftp cannot log in to the private sshd; its log: $(tail -5 "$work/sshd.log")"

# --- the file, and our benchmark binary.
size=$((size_mib * 1024 * 1024))
echo "sftp-vs-openssh: writing a ${size_mib} MiB file of random bytes" >&2
head -c "$size" /dev/urandom >"$work/file.bin" || die "cannot write $work/file.bin"
# Flushed now, so writeback does not run under the first round.
sync "$work/file.bin" || die "cannot sync $work/file.bin"
(cd "$repo" && go test -c -o "$work/guest.test" ./guest/) || die "go test -c ./guest/ failed"

export SXLAB_OPENSSH_ADDR=127.0.0.1:$port SXLAB_OPENSSH_USER=$user SXLAB_OPENSSH_KEY=$work/client_key \
	SXLAB_OPENSSH_HOSTKEY=$work/host_key.pub SXLAB_OPENSSH_FILE=$work/file.bin

# mbps BYTES SECONDS
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }

# sftp_secs BATCH: how long one sftp session running BATCH takes.
sftp_secs() {
	local t0=$EPOCHREALTIME
	sftp -q "${ssh_opts[@]}" -P "$port" -b - "$user@127.0.0.1" >/dev/null <<<"$1" || die "sftp failed running: $1"
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }'
}

# openssh_run: MB/s of sftp's get, less the time the same session takes
# to start and end (ssh handshake, login, sftp-server start), which our
# benchmark does not time either.
openssh_run() {
	rm -f "$work/openssh.bin"
	local setup get got
	setup=$(sftp_secs "pwd")
	get=$(sftp_secs "get $work/file.bin $work/openssh.bin")
	got=$(stat -c %s "$work/openssh.bin")
	[[ $got == "$size" ]] || die "sftp got $got bytes of $size"
	rm -f "$work/openssh.bin"
	mbps "$size" "$(awk -v g="$get" -v s="$setup" 'BEGIN { print g - s }')"
}

# ours SUB: the MB/s go test prints for BenchmarkDownloadOpenSSH/SUB.
ours_run() {
	local out
	out=$("$work/guest.test" -test.run '^$' -test.bench "^BenchmarkDownloadOpenSSH\$/^$1\$" \
		-test.benchtime 1x 2>&1) || die "BenchmarkDownloadOpenSSH/$1 failed: $out"
	local v
	v=$(awk '$1 ~ /^BenchmarkDownloadOpenSSH\// { for (i = 1; i < NF; i++) if ($(i+1) == "MB/s") print $i }' <<<"$out")
	[[ -n $v ]] || die "no MB/s in the output of BenchmarkDownloadOpenSSH/$1: $out"
	printf '%s' "$v"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

server_version=$(dpkg-query -W -f '${Version}' openssh-server 2>/dev/null || echo unknown)
echo "sftp-vs-openssh: ${size_mib} MiB over SFTP from sshd (openssh-server $server_version, $sftp_server) on 127.0.0.1:$port;"
echo "  ours = guest.Client (transfer = SFTP copy + local sha256), openssh = $(ssh -V 2>&1 | cut -d, -f1) sftp get (less its session setup); $rounds rounds, MB/s = 10^6 bytes/s"

theirs=() ours=() checked=()
for r in $(seq "$rounds"); do
	# Alternate who goes first, so a load change on the machine hits both.
	if ((r % 2)); then
		o=$(openssh_run)
		g=$(ours_run transfer)
	else
		g=$(ours_run transfer)
		o=$(openssh_run)
	fi
	theirs+=("$o") ours+=("$g")
	line="round $r: openssh $o MB/s, ours $g MB/s, ratio $(awk -v g="$g" -v o="$o" 'BEGIN { printf "%.2f", g / o }')"
	if [[ $verified == 1 ]]; then
		v=$(ours_run verified)
		checked+=("$v")
		line+="; ours with the guest's shasum check $v MB/s"
	fi
	echo "$line"
done

mo=$(median "${theirs[@]}")
mg=$(median "${ours[@]}")
ratio=$(awk -v g="$mg" -v o="$mo" 'BEGIN { printf "%.2f", g / o }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.9) ? "met" : "NOT met" }')
echo "median: openssh $mo MB/s, ours $mg MB/s"
echo "ratio ours/openssh: $ratio (goal >= 0.90: $verdict)"
if [[ $verified == 1 ]]; then
	echo "ours with the guest's shasum check (Download as the lab runs it), median: $(median "${checked[@]}") MB/s"
fi
