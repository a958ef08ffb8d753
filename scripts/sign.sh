#!/bin/sh
# Builds sxlab and signs it ad hoc with the com.apple.security.virtualization
# entitlement, without which Virtualization.framework refuses to create VMs
# (the vz provider's workers are this same binary).
#
#   scripts/sign.sh [OUTPUT]      default OUTPUT: bin/sxlab
#
# Run it on the Apple Silicon Mac that runs the lab, from the repository.
# An ad hoc signature (-s -) is enough for a binary run on the machine that
# signed it; copying the binary elsewhere needs a real identity.
set -eu

out=${1:-bin/sxlab}
root=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(uname -s)" != Darwin ] || [ "$(uname -m)" != arm64 ]; then
	echo "sign.sh: the vz provider needs macOS on Apple Silicon; this is $(uname -s)/$(uname -m)" >&2
	exit 1
fi

cd "$root"
mkdir -p "$(dirname "$out")"
# cgo is required: github.com/Code-Hex/vz/v3 calls Virtualization.framework.
CGO_ENABLED=1 go build -o "$out" ./cmd/sxlab
codesign --force --entitlements sxlab.entitlements -s - "$out"

# Check that the entitlement is really there.
if ! codesign -d --entitlements - "$out" 2>/dev/null | grep -q com.apple.security.virtualization; then
	echo "sign.sh: $out was signed but does not carry com.apple.security.virtualization" >&2
	exit 1
fi
echo "built and signed $out with com.apple.security.virtualization"
