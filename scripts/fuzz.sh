#!/bin/sh
# Runs every fuzz target of the module for FUZZTIME each (default 60s), one
# after the other: a scheduled job (nightly or weekly), not a CI step — a
# whole pass takes about a minute per target. A crasher is written to the
# package's testdata/fuzz/<Target>/ and fails the script; commit it with
# the fix, and it becomes a regression test that every `go test` runs.
set -eu
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-60s}
status=0
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
			status=1
		fi
	done
done
exit $status
