"""Shared test material for the CA: a test OIDC issuer (keys, JWKS, tokens) and a CA.

The issuer is pure data: ``fetch_json`` serves its discovery document and JWKS from memory
(and counts the fetches), so unit tests never touch the network. The integration test serves
the same documents over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sealtrail.ca.authority import CertificateAuthority
from sealtrail.ca.ctlog import CTLog
from sealtrail.ca.keys import CAMaterial, create_ca, create_ct_key
from sealtrail.crypto.keys import PublicKey
from sealtrail.models.trusted_root import CertificateAuthority as TrustedCA
from sealtrail.models.trusted_root import TransparencyLog, ValidityWindow

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

_RSA_KEY = rsa.generate_private_key(65537, 2048)  # slow to make: one per test session


def jwk_of(public_key: Any, kid: str, alg: str) -> dict[str, Any]:
    """A public JWK for ``public_key`` (PyJWT does the encoding)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        data = jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        data = jwt.algorithms.ECAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        data = jwt.algorithms.OKPAlgorithm.to_jwk(public_key, as_dict=True)
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class TestIssuer:
    """An OIDC issuer with an RS256 key ("rsa-1") and an ES256 key ("ec-1")."""

    __test__ = False  # not a pytest test class

    url: str = "https://issuer.test"
    keys: dict[str, tuple[Any, str]] = field(default_factory=dict)  # kid -> (private, alg)
    published: list[str] = field(default_factory=list)  # kids in the JWKS
    fetches: list[str] = field(default_factory=list)
    discovery_issuer: str | None = None  # override the discovery document's issuer

    def __post_init__(self) -> None:
        if not self.keys:
            self.add_key("rsa-1", _RSA_KEY, "RS256")
            self.add_key("ec-1", ec.generate_private_key(ec.SECP256R1()), "ES256")

    def add_key(self, kid: str, private_key: Any, alg: str, *, publish: bool = True) -> None:
        self.keys[kid] = (private_key, alg)
        if publish:
            self.published.append(kid)

    @property
    def jwks_uri(self) -> str:
        return self.url.rstrip("/") + "/jwks"

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.discovery_issuer or self.url, "jwks_uri": self.jwks_uri,
                "id_token_signing_alg_values_supported": ["RS256", "ES256"]}

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            private, alg = self.keys[kid]
            out.append(jwk_of(private.public_key(), kid, alg))
        return {"keys": out}

    def fetch_json(self, url: str) -> Any:
        self.fetches.append(url)
        if url == self.url.rstrip("/") + "/.well-known/openid-configuration":
            return self.discovery()
        if url == self.jwks_uri:
            return self.jwks()
        raise ValueError(f"HTTP 404 from {url}")

    def mint(self, claims: dict[str, Any], *, kid: str | None = "rsa-1",
             headers: dict[str, Any] | None = None, now: datetime = NOW,
             lifetime: timedelta = timedelta(minutes=5), sign_with: Any = None,
             **overrides: Any) -> str:
        """A signed token with iss/aud/iat/exp defaults; ``overrides`` replace claims
        (a value of None removes the claim); ``sign_with`` signs with another private key
        (same algorithm) while naming ``kid``."""
        issued = int(now.timestamp())
        payload: dict[str, Any] = {"iss": self.url, "aud": "sigstore", "iat": issued,
                                   "nbf": issued, "exp": issued + int(lifetime.total_seconds())}
        payload.update(claims)
        for name, value in overrides.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        private, alg = self.keys[kid or "rsa-1"]
        private = sign_with or private
        head = dict(headers or {})
        if kid is not None:
            head["kid"] = kid
        return jwt.encode(payload, private, algorithm=alg, headers=head)


def unsigned_token(payload: dict[str, Any], alg: str = "none") -> str:
    """A JWT with ``alg`` and an empty signature (the alg-none attack)."""
    def part(data: Any) -> str:
        import json

        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(payload)}."


def email_claims(email: str = "alice@example.com") -> dict[str, Any]:
    return {"sub": "user-1234", "email": email, "email_verified": True}


def github_claims() -> dict[str, Any]:
    """Claims shaped like a GitHub Actions token (docs.github.com OIDC reference)."""
    workflow = "octo/hello/.github/workflows/release.yml@refs/tags/v1.0.0"
    return {
        "sub": "repo:octo/hello:ref:refs/tags/v1.0.0",
        "job_workflow_ref": workflow,
        "job_workflow_sha": "1111111111111111111111111111111111111111",
        "sha": "2222222222222222222222222222222222222222",
        "event_name": "push",
        "repository": "octo/hello",
        "workflow": "Release",
        "ref": "refs/tags/v1.0.0",
        "runner_environment": "github-hosted",
        "repository_id": "123456",
        "repository_owner": "octo",
        "repository_owner_id": "654321",
        "repository_visibility": "public",
        "workflow_ref": workflow,
        "workflow_sha": "1111111111111111111111111111111111111111",
        "run_id": "987",
        "run_attempt": "2",
    }


def gitlab_claims() -> dict[str, Any]:
    """Claims shaped like a GitLab CI id_token (docs.gitlab.com id_token reference)."""
    return {
        "sub": "project_path:grp/proj:ref_type:branch:ref:main",
        "ci_config_ref_uri": "gitlab.example.com/grp/proj//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "3333333333333333333333333333333333333333",
        "project_path": "grp/proj",
        "project_id": "42",
        "namespace_path": "grp",
        "namespace_id": "7",
        "pipeline_source": "push",
        "pipeline_id": "1001",
        "job_id": "5005",
        "ref": "main",
        "ref_type": "branch",
        "sha": "4444444444444444444444444444444444444444",
        "runner_environment": "gitlab-hosted",
        "project_visibility": "private",
    }


@dataclass
class TestCA:
    """A CA built with sealtrail.ca.keys, and the trusted-root objects that trust it."""

    __test__ = False

    material: CAMaterial
    ct_log: CTLog
    authority: CertificateAuthority
    trusted_ca: TrustedCA
    trusted_ct: TransparencyLog

    def ct_trusted_root(self) -> dict[str, Any]:
        """A trusted_root.json with this CA and CT log (for sigstore-python)."""
        return trusted_root_json(self.material.chain, self.ct_log.public_key_der,
                                 NOW - timedelta(days=1))


def trusted_root_json(chain: Any, ct_spki: bytes, start: datetime) -> dict[str, Any]:
    """A trusted_root.json document trusting ``chain`` and the CT log key ``ct_spki``."""
    valid = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [],
        "certificateAuthorities": [{
            "subject": {"organization": "sealtrail.test", "commonName": "test"},
            "uri": "https://ca.test",
            "certChain": {"certificates": [
                {"rawBytes": base64.b64encode(c.public_bytes(
                    serialization.Encoding.DER)).decode()} for c in chain]},
            "validFor": valid,
        }],
        "ctlogs": [{
            "baseUrl": "https://ct.test", "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": base64.b64encode(ct_spki).decode(),
                          "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": valid},
            "logId": {"keyId": base64.b64encode(hashlib.sha256(ct_spki).digest()).decode()},
        }],
        "timestampAuthorities": [],
    }


def make_ca(clock: Any = None, **kwargs: Any) -> TestCA:
    material = create_ca("sealtrail.test", "sealtrail test CA", now=NOW - timedelta(days=1))
    ct_log = CTLog(create_ct_key())
    authority = CertificateAuthority(material.intermediate_key, material.chain, ct_log,
                                     clock or (lambda: NOW), **kwargs)
    window = ValidityWindow(NOW - timedelta(days=1))
    trusted_ca = TrustedCA("https://ca.test", tuple(material.chain), window)
    trusted_ct = TransparencyLog("https://ct.test", PublicKey.from_key(ct_log.public_key),
                                 window, ct_log.log_id)
    return TestCA(material, ct_log, authority, trusted_ca, trusted_ct)


def sigstore_ct_keyring(ca: TestCA | dict[str, Any]) -> Any:
    """sigstore-python's CT keyring for ``ca`` or a trusted_root.json document (parsed
    strictly by sigstore-models)."""
    import json

    from sigstore._internal.trust import KeyringPurpose
    from sigstore.models import TrustedRoot as SigstoreTrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    document = ca if isinstance(ca, dict) else ca.ct_trusted_root()
    inner = trustroot_v1.TrustedRoot.from_json(json.dumps(document))
    return SigstoreTrustedRoot(inner).ct_keyring(KeyringPurpose.VERIFY)


def clock_at(when: datetime) -> Any:
    """A ``time.time``-like clock frozen at ``when``."""
    return lambda: when.timestamp()
