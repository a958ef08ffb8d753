#!/usr/bin/env bash
# The issue-15 scale run: the demo's 12 cells of macOS 15.3 and 15.4 ×
# REPEAT (default 200: 2,400 attempts) on one sim host with 4 slots at
# time_scale 0, collect on failure as the demo does, no progress output.
# Prints /usr/bin/time's wall time, peak RSS and CPU. Every figure is from
# SIMULATED Macs.
#
#   bash bench/scale.sh            # builds ./cmd/sxlab into a temp dir first
#   REPEAT=50 bash bench/scale.sh
#   PROFILE=/tmp/cpu.pprof bash bench/scale.sh   # and go tool pprof -top /tmp/cpu.pprof
#   RUNS_DIR=/some/dir bash bench/scale.sh        # run folders there (default: the temp dir)
#
# A short warm-up run goes first, untimed: on a machine's first run the
# lab builds sxlab-probe into the user cache, and with Go's build cache
# still empty of darwin/arm64 packages that build adds seconds and its
# compiler peaks at about 300 MiB: not the orchestrator's cost. On a journal-less ext4 (this project's Linux VMs)
# making files is several times slower for minutes after many were
# deleted, and this script deletes its own run folder (about 18,000
# files) when it exits: leave 6 minutes between runs, or give RUNS_DIR
# on tmpfs (bench/README.md, "Journal-less ext4 and the measurement's
# own deletions").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repeat=${REPEAT:-200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/sxlab" ./cmd/sxlab)
sed -e 's/time_scale: 0\.01/time_scale: 0/' \
    -e "s#examples/pkg/#$root/examples/pkg/#g" "$root/config.yaml" >"$tmp/config.yaml"
grep -q 'time_scale: 0 ' "$tmp/config.yaml" || { echo "scale.sh: config.yaml no longer has time_scale: 0.01" >&2; exit 2; }
cd "$tmp"
SXLAB_MATRIX_REPEAT=1 SXLAB_LAB_RUNS_DIR="$tmp/warm-up" "$tmp/sxlab" run --config "$tmp/config.yaml" --progress none \
  --only macos=macos-15.3 >/dev/null 2>&1 || [ $? = 1 ] || { echo "scale.sh: the warm-up run failed" >&2; exit 2; }
set +e
/usr/bin/time -f 'wall %e s, max RSS %M KiB, user %U s, system %S s' \
  env SXLAB_MATRIX_REPEAT="$repeat" SXLAB_LAB_RUNS_DIR="${RUNS_DIR:-$tmp/runs}" \
  "$tmp/sxlab" ${PROFILE:+--cpuprofile "$PROFILE"} run --config "$tmp/config.yaml" --progress none \
  --only macos=macos-15.3 --only macos=macos-15.4 >"$tmp/out.txt" 2>"$tmp/err.txt"
rc=$?
set -e
tail -n 1 "$tmp/err.txt"
grep -E 'attempts?|pass|fail' "$tmp/out.txt" | head -n 3
echo "exit $rc (1 = findings, the demo's expected result)"
