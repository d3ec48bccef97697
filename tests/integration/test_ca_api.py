"""The CA over real HTTP on 127.0.0.1: a test OIDC issuer and the CA, each a uvicorn server.

The OIDC issuer (discovery + JWKS) is a tiny Starlette app hosted here; the CA fetches its
keys over HTTP with the production fetcher (``make_fetch_json``). Certificates are requested
the way clients do: sigstore-python's own Fulcio client (a CSR, token in the Authorization
header) and sigstore-js's shape (a publicKeyRequest with proof of possession, token in the
body). The negatives come back as 401/400 JSON errors.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sealtrail.ca.authority import CertificateAuthority
from sealtrail.ca.ctlog import CTLog
from sealtrail.ca.keys import create_ca, create_ct_key
from sealtrail.ca.token_verifier import IssuerConfig, TokenVerifier
from sealtrail.crypto.keys import PublicKey
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.models.trusted_root import CertificateAuthority as TrustedCA
from sealtrail.models.trusted_root import TransparencyLog, ValidityWindow
from sealtrail.server._http import EXCEPTION_HANDLERS
from sealtrail.server.ca_api import build_ca_routes, make_fetch_json
from sealtrail.verify._certificate import verify_certificate
from tests.unit.ca._support import (
    TestIssuer,
    email_claims,
    github_claims,
    sigstore_ct_keyring,
    trusted_root_json,
    unsigned_token,
)

pytestmark = pytest.mark.integration


class ServerThread:
    """A uvicorn server for ``app`` on an ephemeral loopback port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def oidc_app(issuers: dict[str, TestIssuer], hits: list[str]) -> Starlette:
    """Discovery and JWKS for each issuer under /<name>, plus two misbehaving endpoints."""

    async def discovery(request: Request) -> Response:
        hits.append(request.url.path)
        issuer = issuers.get(request.path_params["name"])
        return JSONResponse(issuer.discovery()) if issuer else Response(status_code=404)

    async def jwks(request: Request) -> Response:
        hits.append(request.url.path)
        issuer = issuers.get(request.path_params["name"])
        return JSONResponse(issuer.jwks()) if issuer else Response(status_code=404)

    async def big(request: Request) -> Response:
        return Response(b"[" + b"0," * 1_000_000 + b"0]", media_type="application/json")

    return Starlette(routes=[
        Route("/{name}/.well-known/openid-configuration", discovery),
        Route("/{name}/jwks", jwks),
        Route("/big", big),
    ])


@dataclass
class Instance:
    oidc: ServerThread
    ca: ServerThread
    email: TestIssuer
    github: TestIssuer
    hits: list[str]
    trusted_ca: TrustedCA
    trusted_ct: TransparencyLog
    root: x509.Certificate
    intermediate_key: Any

    @property
    def signing_cert_url(self) -> str:
        return self.ca.url + "/api/v2/signingCert"

    def mint(self, issuer: TestIssuer, claims: dict[str, Any], **kwargs: Any) -> str:
        return issuer.mint(claims, now=datetime.now(timezone.utc), **kwargs)


@pytest.fixture(scope="module")
def instance() -> Iterator[Instance]:
    issuers: dict[str, TestIssuer] = {}
    hits: list[str] = []
    oidc = ServerThread(oidc_app(issuers, hits)).start()
    email = TestIssuer(url=f"{oidc.url}/email")
    github = TestIssuer(url=f"{oidc.url}/github")
    issuers.update(email=email, github=github)

    material = create_ca("sealtrail.test", "sealtrail integration CA")
    ct_log = CTLog(create_ct_key())
    authority = CertificateAuthority(material.intermediate_key, material.chain, ct_log)
    configs = [IssuerConfig(email.url, "email"), IssuerConfig(github.url, "github-workflow")]
    verifier = TokenVerifier(configs, make_fetch_json(timeout=5))
    app = Starlette(routes=build_ca_routes(authority, verifier, configs),
                    exception_handlers=EXCEPTION_HANDLERS)  # type: ignore[arg-type]
    ca = ServerThread(app).start()

    window = ValidityWindow(datetime.now(timezone.utc) - timedelta(days=1))
    trusted_ca = TrustedCA(ca.url, tuple(material.chain), window)
    trusted_ct = TransparencyLog(ca.url, PublicKey.from_key(ct_log.public_key), window,
                                 ct_log.log_id)
    try:
        yield Instance(oidc, ca, email, github, hits, trusted_ca, trusted_ct,
                       material.root_cert, material.intermediate_key)
    finally:
        ca.stop()
        oidc.stop()


def check_chain(instance: Instance, pems: list[str]) -> list[x509.Certificate]:
    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]
    assert len(chain) == 3 and chain[-1] == instance.root
    at = datetime.now(timezone.utc)
    assert verify_certificate(chain[0], [instance.trusted_ca], [instance.trusted_ct], at) == chain
    return chain


def error(response: httpx.Response, status: int, reason: str, match: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["reason"] == reason
    assert match in body["message"], body["message"]


def csr_b64(key: Any) -> str:
    algorithm = hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, algorithm)
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


# -- happy paths -------------------------------------------------------------------------------

def test_sigstore_python_client_gets_a_certificate(instance: Instance) -> None:
    from sigstore._internal.fulcio.client import FulcioClient
    from sigstore.oidc import IdentityToken

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    token = IdentityToken(instance.mint(instance.email, email_claims()))
    response = FulcioClient(instance.ca.url).signing_cert.post(csr, token)
    chain = [response.cert, *response.chain]
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
    check_chain(instance, pems)
    assert response.cert.public_key() == key.public_key()
    identity = FulcioIdentity.from_certificate(response.cert)
    assert (identity.san_kind, identity.san) == ("email", "alice@example.com")
    assert identity.issuer == instance.email.url

    # sigstore-python's SCT check, as it runs at signing time.
    from sigstore._internal.sct import verify_sct

    document = trusted_root_json(instance.trusted_ca.chain, instance.trusted_ct.key.spki_der,
                                 datetime.now(timezone.utc) - timedelta(days=1))
    verify_sct(response.cert, response.chain, sigstore_ct_keyring(document))


def test_public_key_request_with_token_in_body(instance: Instance) -> None:
    token = instance.mint(instance.github, github_claims(), kid="ec-1")
    key = ec.generate_private_key(ec.SECP256R1())
    challenge = github_claims()["sub"].encode()
    body = {
        "credentials": {"oidcIdentityToken": token},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode()},
            "proofOfPossession": base64.b64encode(
                key.sign(challenge, ec.ECDSA(hashes.SHA256()))).decode(),
        },
    }
    response = httpx.post(instance.signing_cert_url, json=body)
    assert response.status_code == 200, response.text
    pems = response.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    chain = check_chain(instance, pems)
    identity = FulcioIdentity.from_certificate(chain[0])
    assert identity.san == ("https://github.com/octo/hello/.github/workflows/release.yml"
                            "@refs/tags/v1.0.0")
    assert identity.extensions["source_repository_uri"] == "https://github.com/octo/hello"


def test_trust_bundle_and_configuration(instance: Instance) -> None:
    bundle = httpx.get(instance.ca.url + "/api/v2/trustBundle").json()
    chain = [x509.load_pem_x509_certificate(p.encode())
             for p in bundle["chains"][0]["certificates"]]
    assert chain == list(instance.trusted_ca.chain)
    configuration = httpx.get(instance.ca.url + "/api/v2/configuration").json()
    assert configuration["issuers"][0] == {"issuerUrl": instance.email.url,
                                           "audience": "sigstore", "challengeClaim": "email",
                                           "issuerType": "email"}
    assert configuration["issuers"][1]["issuerType"] == "github-workflow"


def precert_builder(instance: Instance, key: Any, extra: list[Any], *,
                    now: datetime) -> x509.CertificateBuilder:
    """A certificate of the instance's CA; ``now`` fixes the validity, so that the final
    certificate built after the add-pre-chain round trip has the precertificate's TBS."""
    builder = (x509.CertificateBuilder().subject_name(x509.Name([]))
               .issuer_name(instance.trusted_ca.chain[0].subject)
               .public_key(key.public_key()).serial_number(12345)
               .not_valid_before(now.replace(microsecond=0))
               .not_valid_after(now.replace(microsecond=0) + timedelta(minutes=10))
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                            False, False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CODE_SIGNING]),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   instance.intermediate_key.public_key()), critical=False)
               .add_extension(x509.SubjectAlternativeName(
                   [x509.RFC822Name("alice@example.com")]), critical=True))
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical)
    return builder


def test_add_pre_chain(instance: Instance) -> None:
    # RFC 6962 §4.1 over HTTP: the SCT for a poisoned precertificate verifies on the final
    # certificate (same TBS without poison, SCT list appended).
    from asn1crypto import core

    from sealtrail.ca.ctlog import SCT_LIST_OID, sct_list

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    precert = precert_builder(instance, leaf_key, [(x509.PrecertPoison(), True)], now=now).sign(
        instance.intermediate_key, hashes.SHA384())
    chain = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
             for c in (precert, *instance.trusted_ca.chain)]
    response = httpx.post(instance.ca.url + "/ct/v1/add-pre-chain", json={"chain": chain})
    assert response.status_code == 200, response.text
    sct_json = response.json()
    assert set(sct_json) == {"sct_version", "id", "timestamp", "extensions", "signature"}
    ext = base64.b64decode(sct_json["extensions"])
    sct = (bytes([sct_json["sct_version"]]) + base64.b64decode(sct_json["id"])
           + sct_json["timestamp"].to_bytes(8, "big") + len(ext).to_bytes(2, "big") + ext
           + base64.b64decode(sct_json["signature"]))
    extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(SCT_LIST_OID),
                                           core.OctetString(sct_list([sct])).dump())
    leaf = precert_builder(instance, leaf_key, [(extension, False)], now=now).sign(
        instance.intermediate_key, hashes.SHA384())
    verify_certificate(leaf, [instance.trusted_ca], [instance.trusted_ct],
                       datetime.now(timezone.utc))


def test_add_pre_chain_refuses_a_foreign_precertificate(instance: Instance) -> None:
    # Only the CA's intermediate can sign a precertificate the log accepts (the accepted
    # path is covered in tests/unit/ca/test_ctlog.py); over HTTP, check the route and that
    # a precertificate signed by another key is a 400.
    inter = instance.trusted_ca.chain[0]
    foreign_key = ec.generate_private_key(ec.SECP384R1())
    precert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(inter.subject)
               .public_key(foreign_key.public_key()).serial_number(1)
               .not_valid_before(datetime.now(timezone.utc))
               .not_valid_after(datetime.now(timezone.utc) + timedelta(minutes=10))
               .add_extension(x509.PrecertPoison(), critical=True)
               .sign(foreign_key, hashes.SHA384()))
    chain = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
             for c in (precert, *instance.trusted_ca.chain)]
    response = httpx.post(instance.ca.url + "/ct/v1/add-pre-chain", json={"chain": chain})
    error(response, 400, "CERTIFICATE_REQUEST_INVALID", "is not issued by")


# -- negatives ---------------------------------------------------------------------------------

def post_csr(instance: Instance, token: str | None, *, key: Any = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"certificateSigningRequest": csr_b64(key or ec.generate_private_key(ec.SECP256R1()))}
    head = dict(headers or {})
    if token is not None:
        head["Authorization"] = f"Bearer {token}"
    return httpx.post(instance.signing_cert_url, json=body, headers=head)


def test_no_token(instance: Instance) -> None:
    error(post_csr(instance, None), 401, "TOKEN_INVALID", "no identity token")
    error(post_csr(instance, None, headers={"Authorization": "Basic dXNlcjpwdw=="}), 401,
          "TOKEN_INVALID", "must be 'Bearer <token>'")


@pytest.mark.parametrize("overrides, match", [
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "token expired at"),
    ({"nbf": int(time.time()) + 3600}, "not valid before"),
    ({"aud": "other"}, "does not include 'sigstore'"),
])
def test_token_time_and_audience(instance: Instance, overrides: dict[str, Any],
                                 match: str) -> None:
    token = instance.mint(instance.email, email_claims(), **overrides)
    response = post_csr(instance, token)
    error(response, 401, "TOKEN_INVALID", match)
    assert token not in response.text


def test_unknown_issuer(instance: Instance) -> None:
    token = instance.mint(instance.email, email_claims(), iss="https://unknown.example.com")
    error(post_csr(instance, token), 401, "TOKEN_INVALID",
          "unknown issuer https://unknown.example.com")


def test_alg_none(instance: Instance) -> None:
    now = int(time.time())
    token = unsigned_token({**email_claims(), "iss": instance.email.url, "aud": "sigstore",
                            "iat": now, "exp": now + 60})
    error(post_csr(instance, token), 401, "TOKEN_INVALID", "not signed (alg none)")


def test_bad_signature(instance: Instance) -> None:
    token = instance.mint(instance.email, email_claims(), kid="ec-1",
                          sign_with=ec.generate_private_key(ec.SECP256R1()))
    error(post_csr(instance, token), 401, "TOKEN_INVALID", "signature does not verify")


def test_unknown_kid_refetches_the_jwks(instance: Instance) -> None:
    instance.email.add_key("hidden", ec.generate_private_key(ec.SECP256R1()), "ES256",
                           publish=False)
    post_csr(instance, instance.mint(instance.email, email_claims()))  # warm the cache
    before = instance.hits.count("/email/jwks")
    token = instance.mint(instance.email, email_claims(), kid="hidden")
    error(post_csr(instance, token), 401, "TOKEN_INVALID", "unknown key id 'hidden'")
    assert instance.hits.count("/email/jwks") == before + 1


def test_missing_claims(instance: Instance) -> None:
    token = instance.mint(instance.github, github_claims(), run_id=None)
    error(post_csr(instance, token), 401, "TOKEN_INVALID",
          "lacks claims required for github-workflow issuers: run_id")
    token = instance.mint(instance.email, email_claims(), email_verified=False)
    error(post_csr(instance, token), 401, "TOKEN_INVALID", "not verified")


def test_csr_with_bad_signature(instance: Instance) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    der = csr.public_bytes(serialization.Encoding.DER)
    der = der[:-1] + bytes([der[-1] ^ 1])
    pem = (b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der)
           + b"-----END CERTIFICATE REQUEST-----\n")
    response = httpx.post(instance.signing_cert_url,
                          json={"certificateSigningRequest": base64.b64encode(pem).decode()},
                          headers={"Authorization": "Bearer " + instance.mint(
                              instance.email, email_claims())})
    error(response, 400, "CERTIFICATE_REQUEST_INVALID", "signature does not verify")


def test_rsa_1024_is_refused(instance: Instance) -> None:
    response = post_csr(instance, instance.mint(instance.email, email_claims()),
                        key=rsa.generate_private_key(65537, 1024))
    error(response, 400, "CERTIFICATE_REQUEST_INVALID", "RSA keys under 2048 bits")


def test_proof_of_possession_over_the_wrong_challenge(instance: Instance) -> None:
    token = instance.mint(instance.email, email_claims())
    key = ec.generate_private_key(ec.SECP256R1())
    body = {
        "credentials": {"oidcIdentityToken": token},
        "publicKeyRequest": {
            "publicKey": {"content": key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode()},
            # An email issuer's challenge is the email (or sub); this signs someone else.
            "proofOfPossession": base64.b64encode(
                key.sign(b"mallory@example.com", ec.ECDSA(hashes.SHA256()))).decode(),
        },
    }
    error(httpx.post(instance.signing_cert_url, json=body), 400,
          "CERTIFICATE_REQUEST_INVALID", "proof of possession does not verify")


@pytest.mark.parametrize("content, match", [
    (b"{not json", "not valid JSON"),
    (b"[]", "must be a JSON object"),
    (json.dumps({"credentials": "x"}).encode(), "credentials must be a JSON object"),
])
def test_malformed_bodies(instance: Instance, content: bytes, match: str) -> None:
    response = httpx.post(instance.signing_cert_url, content=content,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert match in response.json()["message"]


def test_wrong_method(instance: Instance) -> None:
    assert httpx.get(instance.signing_cert_url).status_code == 405


# -- the production fetcher --------------------------------------------------------------------

def test_fetch_json_limits(instance: Instance) -> None:
    fetch = make_fetch_json(timeout=5, max_bytes=64 * 1024)
    assert fetch(instance.email.jwks_uri)["keys"]
    with pytest.raises(ValueError, match="exceeds"):
        fetch(instance.oidc.url + "/big")
    with pytest.raises(ValueError, match="HTTP 404"):
        fetch(instance.oidc.url + "/nobody/jwks")
