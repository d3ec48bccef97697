#!/usr/bin/env bash
# `make demo`: the release-signing flow end to end on the embedded default.
#   1. verify a release signed on the public-good Sigstore instance, with no network;
#   2. start a fresh local instance (CA, CT log, TSA, Rekor logs, OIDC issuer, TUF) on 127.0.0.1;
#   3. sign a sample release with a GitHub-Actions-shaped workflow identity, verify it;
#   4. show the two failures a user must be able to act on (another artifact, another identity);
#   5. sign the whole release at once (bundles, SHA256SUMS, VERIFY.md) and verify it, then
#      show that a file changed after signing is named.
set -uo pipefail
cd "$(dirname "$0")/.."

PUBLIC_IDENTITY="https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
PUBLIC_ISSUER="https://token.actions.githubusercontent.com"
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
expect() {  # expect CODE command...: run, show the output, check the exit code
  local want=$1; shift
  step "$*"
  "$@"; local got=$?
  if [ "$got" -ne "$want" ]; then echo "demo: expected exit $want, got $got" >&2; exit 1; fi
  echo "(exit $got, as expected)"
}

echo "== 1. A release signed on the public-good instance, verified with no network"
expect 0 sealtrail verify examples/release/hello.txt \
  --certificate-identity "$PUBLIC_IDENTITY" --certificate-oidc-issuer "$PUBLIC_ISSUER"

echo; echo "== 2. A fresh local instance"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect 0 sealtrail init "$work/instance" --port "$port" --builtin-issuer
step sealtrail serve "$work/instance" "&"
sealtrail serve "$work/instance" --port-file "$work/port" &
server=$!
for _ in $(seq 1 300); do [ -f "$work/port" ] && break; sleep 0.1; done
[ -f "$work/port" ] || { echo "demo: the instance did not start" >&2; exit 1; }

echo; echo "== 3. Sign a release as the workflow example/project/.github/workflows/release.yml@refs/tags/v1.0.0"
mkdir -p "$work/release"
head -c 100000 /dev/urandom > "$work/release/project-1.0.0.tar.gz"
head -c 50000 /dev/urandom > "$work/release/project-1.0.0-py3-none-any.whl"
step 'export SIGSTORE_ID_TOKEN=$(sealtrail token github --repository example/project --ref refs/tags/v1.0.0 --instance ...)'
# The token goes through the environment, as CI systems pass it: it is never printed.
SIGSTORE_ID_TOKEN=$(sealtrail token github --repository example/project --ref refs/tags/v1.0.0 \
  --instance "$work/instance") || exit 1
export SIGSTORE_ID_TOKEN
echo "(a GitHub-Actions-shaped identity token from the instance's built-in issuer)"
expect 0 sealtrail sign "$work/release/project-1.0.0.tar.gz" "$work/release/project-1.0.0-py3-none-any.whl" \
  --instance-dir "$work/instance"

IDENTITY="https://github.com/example/project/.github/workflows/release.yml@refs/tags/v1.0.0"
ISSUER="http://127.0.0.1:$port/oidc/github"
ROOT="$work/instance/trust/trusted_root.json"
expect 0 sealtrail verify "$work/release/project-1.0.0.tar.gz" "$work/release/project-1.0.0-py3-none-any.whl" \
  --trusted-root "$ROOT" --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER" \
  --cert-github-workflow-repository example/project --cert-github-workflow-ref refs/tags/v1.0.0

echo; echo "== 4a. Failure: another artifact presented with the release's bundle"
printf 'not the release\n' > "$work/project-1.0.0.tar.gz"
cp "$work/release/project-1.0.0.tar.gz.sigstore.json" "$work/project-1.0.0.tar.gz.sigstore.json"
expect 1 sealtrail verify "$work/project-1.0.0.tar.gz" --trusted-root "$ROOT" \
  --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER"

echo; echo "== 4b. Failure: the right artifact, but we expected another signer"
expect 1 sealtrail verify "$work/release/project-1.0.0.tar.gz" --trusted-root "$ROOT" \
  --certificate-identity "https://github.com/example/project/.github/workflows/nightly.yml@refs/heads/main" \
  --certificate-oidc-issuer "$ISSUER"

echo; echo "== 5. The whole release at once: release sign, then release verify"
mkdir -p "$work/dist"
cp "$work/release/project-1.0.0.tar.gz" "$work/release/project-1.0.0-py3-none-any.whl" "$work/dist/"
expect 0 sealtrail release sign "$work/dist" --instance-dir "$work/instance"
expect 0 sealtrail release verify "$work/dist" --trusted-root "$ROOT" \
  --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER"

echo; echo "== 5a. Failure: one file of the release changed after it was signed (named)"
printf 'tampered\n' >> "$work/dist/project-1.0.0-py3-none-any.whl"
expect 1 sealtrail release verify "$work/dist" --trusted-root "$ROOT" \
  --certificate-identity "$IDENTITY" --certificate-oidc-issuer "$ISSUER"

echo; echo "demo: all steps behaved as expected"
