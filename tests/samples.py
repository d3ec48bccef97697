"""The sample material tests share: where it lives, and the identity that signed it.

The conformance vectors (``tests/vectors/conformance``) and the example release
(``examples/release``) were signed by sigstore-conformance's public OIDC beacon workflow;
the fake CA certifies the same identity by default, so fabricated bundles verify under the
same policy.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "examples" / "release"
CASES = REPO / "tests" / "vectors" / "conformance"
BEACON_IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
                   ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
BEACON_ISSUER = "https://token.actions.githubusercontent.com"
