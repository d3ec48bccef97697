#!/usr/bin/env bash
# `make demo`: verify a sample release artifact offline, then show two failures that a user
# must be able to act on (another artifact, another identity).
set -uo pipefail
cd "$(dirname "$0")/.."

IDENTITY="https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
ISSUER="https://token.actions.githubusercontent.com"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
expect() {  # expect CODE command...: run, show the output, check the exit code
  local want=$1; shift
  step "$*"
  "$@"; local got=$?
  if [ "$got" -ne "$want" ]; then echo "demo: expected exit $want, got $got" >&2; exit 1; fi
  echo "(exit $got, as expected)"
}

echo "A release artifact signed on the public-good Sigstore instance, verified with no network:"
expect 0 sealtrail verify examples/release/hello.txt \
  --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER"

echo; echo "The same, by digest only, with JSON output:"
digest=$(sha256sum examples/release/hello.txt | cut -d' ' -f1)
expect 0 sealtrail verify "sha256:$digest" --bundle examples/release/hello.txt.sigstore.json \
  --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER" --json

echo; echo "Failure 1: another artifact presented with the same bundle:"
printf 'not the release\n' > "$work/hello.txt"
cp examples/release/hello.txt.sigstore.json "$work/hello.txt.sigstore.json"
expect 1 sealtrail verify "$work/hello.txt" \
  --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER"

echo; echo "Failure 2: the right artifact, but we expected another signer:"
expect 1 sealtrail verify examples/release/hello.txt \
  --certificate-identity "https://github.com/example/project/.github/workflows/release.yml@refs/tags/v1.0.0" \
  --certificate-oidc-issuer "$ISSUER"

echo; echo "demo: all steps behaved as expected"
