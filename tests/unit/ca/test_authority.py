"""The CA: request parsing (CSR, proof of possession, key policy) and issuance.

Issued certificates are checked by sealtrail's own verifier, by sigstore-python's SCT and
chain checks (oracles), and read back with FulcioIdentity; each refusal has its own test.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealtrail.ca.authority import CertificateAuthority, embedded_sct_response
from sealtrail.ca.ctlog import SCT_LIST_OID, CTLog
from sealtrail.ca.identities import IDENTITY_TYPES, IssuerSettings, Principal, principal_from_claims
from sealtrail.ca.keys import create_ca, create_ct_key
from sealtrail.ca.token_verifier import IssuerConfig
from sealtrail.errors import (
    CertChainInvalidError,
    CertificateRequestInvalidError,
    ConfigInvalidError,
    Error,
    SCTInvalidError,
)
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.verify._certificate import verify_certificate
from tests.unit.ca._support import (
    GITHUB_ISSUER,
    NOW,
    TestCA,
    email_claims,
    github_claims,
    gitlab_claims,
    make_ca,
    sigstore_ct_keyring,
)

E = CertificateRequestInvalidError
AT = NOW + timedelta(minutes=1)
ARC = "1.3.6.1.4.1.57264.1."


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return make_ca()


def principal(kind: str = "github-workflow") -> Principal:
    if kind == "github-workflow":
        claims, url = github_claims(), GITHUB_ISSUER
    elif kind == "gitlab-pipeline":
        claims, url = gitlab_claims(), "https://gitlab.example.com"
    elif kind == "email":
        claims, url = email_claims(), "https://accounts.example.com"
    elif kind == "username":
        claims, url = {"sub": "alice"}, "https://id.example.com"
    elif kind == "spiffe":
        claims, url = {"sub": "spiffe://example.org/ci/builder"}, "https://spire.example.org"
    else:
        claims, url = {"sub": "https://svc.example.com/b/1"}, "https://svc.example.com"
    settings = IssuerSettings(url, url, subject_domain=(
        "example.com" if kind == "username" else "https://svc.example.com"),
        spiffe_trust_domain="example.org")
    return principal_from_claims(IDENTITY_TYPES[kind], claims, settings)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csr_body(key: Any, *, subject: x509.Name = x509.Name([]), tamper: bool = False) -> dict:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, algorithm)
    der = csr.public_bytes(serialization.Encoding.DER)
    if tamper:
        # The last byte lies inside the signature: the CSR still parses, but does not verify.
        der = der[:-1] + bytes([der[-1] ^ 0x01])
        pem = (b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der)
               + b"-----END CERTIFICATE REQUEST-----\n")
    else:
        pem = csr.public_bytes(serialization.Encoding.PEM)
    return {"certificateSigningRequest": b64(pem)}


def sign_challenge(key: Any, challenge: str) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(challenge.encode())
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(challenge.encode(), padding.PKCS1v15(), hashes.SHA256())
    return key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256()))


def key_body(key: Any, challenge: str, proof: bytes | None = None) -> dict:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"publicKeyRequest": {
        "publicKey": {"algorithm": "ECDSA", "content": pem.decode()},
        "proofOfPossession": b64(proof if proof is not None else sign_challenge(key, challenge)),
    }}


def verify_all(ca: TestCA, chain: list[x509.Certificate]) -> None:
    """sealtrail's verifier and sigstore-python's SCT and chain checks all accept ``chain``."""
    from sigstore._internal.sct import verify_sct

    leaf = chain[0]
    path = verify_certificate(leaf, [ca.trusted_ca], [ca.trusted_ct], AT)
    assert path == chain
    verify_sct(leaf, chain[1:], sigstore_ct_keyring(ca))
    sigstore_chain_check(ca, leaf)


def sigstore_chain_check(ca: TestCA, leaf: x509.Certificate) -> None:
    """sigstore-python's Verifier._verify_chain_at_time (its webpki policy for Fulcio)."""
    from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
    from sigstore.models import TrustedRoot as SigstoreTrustedRoot
    from sigstore.verify.verifier import Verifier
    from sigstore_models.trustroot import v1 as trustroot_v1

    document = ca.ct_trusted_root()
    document["tlogs"] = [{**document["ctlogs"][0], "baseUrl": "https://rekor.test"}]
    root = SigstoreTrustedRoot(trustroot_v1.TrustedRoot.from_json(json.dumps(document)))
    result = TimestampVerificationResult(source=TimestampSource.TRANSPARENCY_SERVICE, time=AT)
    Verifier(trusted_root=root)._verify_chain_at_time(leaf, result)


# -- issuance ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["github-workflow", "gitlab-pipeline", "email", "uri",
                                  "spiffe", "username"])
def test_issued_certificate_verifies_for_every_issuer_type(ca: TestCA, kind: str) -> None:
    who = principal(kind)
    chain = ca.authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), who)
    assert chain[1:] == list(ca.material.chain)
    verify_all(ca, chain)
    identity = FulcioIdentity.from_certificate(chain[0])
    assert (identity.san_kind, identity.san) == who.san
    assert identity.issuer == who.issuer
    assert identity.extensions["sub"] == who.subject


def test_github_extensions_read_back(ca: TestCA) -> None:
    chain = ca.authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(),
                               principal("github-workflow"))
    ext = FulcioIdentity.from_certificate(chain[0]).extensions
    workflow = "https://github.com/octo/hello/.github/workflows/release.yml@refs/tags/v1.0.0"
    assert ext == {
        "github_workflow_trigger": "push",
        "github_workflow_sha": "2222222222222222222222222222222222222222",
        "github_workflow_name": "Release",
        "github_workflow_repository": "octo/hello",
        "github_workflow_ref": "refs/tags/v1.0.0",
        "build_signer_uri": workflow,
        "build_signer_digest": "1111111111111111111111111111111111111111",
        "runner_environment": "github-hosted",
        "source_repository_uri": "https://github.com/octo/hello",
        "source_repository_digest": "2222222222222222222222222222222222222222",
        "source_repository_ref": "refs/tags/v1.0.0",
        "source_repository_identifier": "123456",
        "source_repository_owner_uri": "https://github.com/octo",
        "source_repository_owner_identifier": "654321",
        "build_config_uri": workflow,
        "build_config_digest": "1111111111111111111111111111111111111111",
        "build_trigger": "push",
        "run_invocation_uri": "https://github.com/octo/hello/actions/runs/987/attempts/2",
        "source_repository_visibility_at_signing": "public",
        "sub": "repo:octo/hello:ref:refs/tags/v1.0.0",
    }


@pytest.mark.parametrize("make_key", [
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: ec.generate_private_key(ec.SECP521R1()),
    lambda: ed25519.Ed25519PrivateKey.generate(),
    lambda: rsa.generate_private_key(65537, 2048),
], ids=["p384", "p521", "ed25519", "rsa2048"])
def test_issue_for_each_client_key_type(ca: TestCA, make_key: Any) -> None:
    chain = ca.authority.issue(make_key().public_key(), principal("email"))
    verify_all(ca, chain)


def test_fulcio_profile(ca: TestCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = ca.authority.issue(key.public_key(), principal("github-workflow"))[0]
    intermediate = ca.material.intermediate_cert
    assert leaf.version == x509.Version.v3
    # SPEC: sigstore-wire.md §1 "Profile".
    assert leaf.not_valid_before_utc == NOW
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(minutes=10)
    assert leaf.subject == x509.Name([])
    assert leaf.issuer == intermediate.subject
    assert 0 < leaf.serial_number < 2**159  # positive, at most 20 bytes
    ext = leaf.extensions
    san = ext.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and len(san.value) == 1
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == intermediate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest
    fulcio = [e for e in ext if e.oid.dotted_string.startswith(ARC)]
    assert fulcio and all(not e.critical for e in fulcio)
    # The SCT list comes last (precertificate flow) and holds exactly one SCT.
    assert list(ext)[-1].oid.dotted_string == SCT_LIST_OID
    scts = ext.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    assert len(scts) == 1 and scts[0].log_id == ca.ct_log.log_id
    assert scts[0].timestamp.replace(tzinfo=None) == NOW.replace(tzinfo=None)
    leaf.verify_directly_issued_by(intermediate)


def test_serials_are_random(ca: TestCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    serials = {ca.authority.issue(key, principal("email"))[0].serial_number for _ in range(5)}
    assert len(serials) == 5


def test_sct_from_another_log_does_not_verify() -> None:
    # Mutation check of the oracle: a CA whose CT log is not the trusted one fails the SCT.
    first, second = make_ca(), make_ca()
    authority = CertificateAuthority(first.material.intermediate_key, first.material.chain,
                                     second.ct_log, lambda: NOW)
    leaf = authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(),
                           principal("email"))[0]
    with pytest.raises(SCTInvalidError):
        verify_certificate(leaf, [first.trusted_ca], [first.trusted_ct], AT)


def test_final_tbs_must_equal_the_signed_tbs(ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> None:
    # If the precertificate's TBS differed from the final one (here: another signature
    # algorithm), the SCT would not verify: the CA must refuse to hand out the certificate.
    authority = CertificateAuthority(ca.material.intermediate_key, ca.material.chain,
                                     ca.ct_log, lambda: NOW)
    monkeypatch.setattr(authority, "_precert_key", rsa.generate_private_key(65537, 2048))
    with pytest.raises(Error, match="final TBS differs"):
        authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), principal("email"))


def test_on_issue_hook(ca: TestCA) -> None:
    seen = []
    authority = CertificateAuthority(ca.material.intermediate_key, ca.material.chain,
                                     ca.ct_log, lambda: NOW,
                                     on_issue=lambda leaf, who: seen.append((leaf, who)))
    who = principal("email")
    chain = authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), who)
    assert seen == [(chain[0], who)]


def test_dry_run_shows_the_certificate_but_it_is_not_trusted(ca: TestCA) -> None:
    who = principal("github-workflow")
    leaf = ca.authority.dry_run(who)
    real = ca.authority.issue(leaf.public_key(), who)[0]
    assert FulcioIdentity.from_certificate(leaf) == FulcioIdentity.from_certificate(real)
    assert [e.oid for e in leaf.extensions] == [e.oid for e in real.extensions]
    assert leaf.issuer == real.issuer
    # Signed by a throwaway key: a dry run (no proof of possession) mints nothing usable.
    with pytest.raises(CertChainInvalidError):
        verify_certificate(leaf, [ca.trusted_ca], [ca.trusted_ct], AT)


def test_constructor_checks() -> None:
    material = create_ca("o", "cn")
    log = CTLog(create_ct_key())
    with pytest.raises(ConfigInvalidError, match="does not match"):
        CertificateAuthority(ec.generate_private_key(ec.SECP384R1()), material.chain, log)
    with pytest.raises(ConfigInvalidError, match="ECDSA or RSA"):
        CertificateAuthority(ed25519.Ed25519PrivateKey.generate(), material.chain, log)
    with pytest.raises(ConfigInvalidError, match="intermediate and the root"):
        CertificateAuthority(material.intermediate_key, material.chain[:1], log)


# -- requests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make_key", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ed25519.Ed25519PrivateKey.generate(),
    lambda: rsa.generate_private_key(65537, 2048),
], ids=["p256", "ed25519", "rsa2048"])
def test_csr_request(ca: TestCA, make_key: Any) -> None:
    key = make_key()
    # The CSR subject is ignored (sigstore-python sends an empty one; others may not).
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ignored")])
    parsed = ca.authority.parse_request(csr_body(key, subject=subject), principal("email"))
    assert parsed == key.public_key()


def test_csr_as_base64_der_is_tolerated(ca: TestCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    body = {"certificateSigningRequest": b64(csr.public_bytes(serialization.Encoding.DER))}
    assert ca.authority.parse_request(body, principal("email")) == key.public_key()


def test_csr_with_bad_signature(ca: TestCA) -> None:
    body = csr_body(ec.generate_private_key(ec.SECP256R1()), tamper=True)
    with pytest.raises(E, match="signature does not verify") as info:
        ca.authority.parse_request(body, principal("email"))
    assert info.value.code == "CERTIFICATE_REQUEST_INVALID"


def test_csr_with_rsa_1024(ca: TestCA) -> None:
    body = csr_body(rsa.generate_private_key(65537, 1024))
    with pytest.raises(E, match="RSA keys under 2048 bits"):
        ca.authority.parse_request(body, principal("email"))


@pytest.mark.parametrize("value, match", [
    ("%%%", "not valid base64"),
    (b64(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
     "not a PEM certificate request"),
    (b64(b"garbage"), "not a PEM certificate request"),
    (42, "must be a base64 string"),
    ("A" * 200000, "too large"),
])
def test_csr_malformed(ca: TestCA, value: Any, match: str) -> None:
    with pytest.raises(E, match=match):
        ca.authority.parse_request({"certificateSigningRequest": value}, principal("email"))


def test_public_key_request(ca: TestCA) -> None:
    who = principal("github-workflow")
    for key in (ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate(),
                rsa.generate_private_key(65537, 3072)):
        assert ca.authority.parse_request(key_body(key, who.challenge), who) == key.public_key()


def test_public_key_request_p384_with_its_own_hash(ca: TestCA) -> None:
    who = principal("email")
    key = ec.generate_private_key(ec.SECP384R1())
    proof = key.sign(who.challenge.encode(), ec.ECDSA(hashes.SHA384()))
    assert ca.authority.parse_request(key_body(key, "", proof), who) == key.public_key()


def test_proof_of_possession_over_the_wrong_challenge(ca: TestCA) -> None:
    who = principal("email")  # challenge: the email
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(E, match="proof of possession does not verify") as info:
        ca.authority.parse_request(key_body(key, "mallory@example.com"), who)
    assert info.value.code == "CERTIFICATE_REQUEST_INVALID"


def test_proof_of_possession_over_sub_for_an_email_issuer(ca: TestCA) -> None:
    # sigstore-js signs `sub` for issuers it does not special-case, even email ones; the
    # signature proves possession of the key just as well (Fulcio would insist on the email).
    who = principal("email")
    assert who.alternate_challenges == (who.subject,)
    key = ec.generate_private_key(ec.SECP256R1())
    assert ca.authority.parse_request(key_body(key, who.subject), who) == key.public_key()


def test_proof_of_possession_by_another_key(ca: TestCA) -> None:
    who = principal("email")
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    body = key_body(key, who.challenge, sign_challenge(other, who.challenge))
    with pytest.raises(E, match="proof of possession does not verify"):
        ca.authority.parse_request(body, who)


@pytest.mark.parametrize("make_key, match", [
    (lambda: rsa.generate_private_key(65537, 1024), "RSA keys under 2048 bits"),
    (lambda: ec.generate_private_key(ec.SECP256K1()), "unsupported elliptic curve"),
    (lambda: x25519.X25519PrivateKey.generate(), "unsupported public key type"),
], ids=["rsa1024", "secp256k1", "x25519"])
def test_public_key_request_weak_or_unsupported_keys(ca: TestCA, make_key: Any,
                                                     match: str) -> None:
    key = make_key()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    body = {"publicKeyRequest": {"publicKey": {"content": pem.decode()},
                                 "proofOfPossession": b64(b"x" * 64)}}
    with pytest.raises(E, match=match):
        ca.authority.parse_request(body, principal("email"))


def test_rsa_over_4096_is_refused(ca: TestCA) -> None:
    # Generating an 8192-bit key is slow; a public key needs only a modulus of that size.
    big = rsa.RSAPublicNumbers(65537, 2**8191 + 1).public_key()
    pem = big.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    body = {"publicKeyRequest": {"publicKey": {"content": pem.decode()},
                                 "proofOfPossession": b64(b"x" * 64)}}
    with pytest.raises(E, match="RSA keys over 4096 bits"):
        ca.authority.parse_request(body, principal("email"))


@pytest.mark.parametrize("body, match", [
    ([], "must be a JSON object"),
    ({}, "exactly one of"),
    ({"certificateSigningRequest": "x", "publicKeyRequest": {}}, "exactly one of"),
    ({"publicKeyRequest": "x"}, "publicKeyRequest must be a JSON object"),
    ({"publicKeyRequest": {}}, "publicKey must be a JSON object"),
    ({"publicKeyRequest": {"publicKey": {"content": 3}}}, "must be a PEM public key"),
    ({"publicKeyRequest": {"publicKey": {"content": "-----BEGIN PUBLIC KEY-----\nAA\n"
                                                    "-----END PUBLIC KEY-----\n"}}},
     "is not a PEM public key"),
    ({"publicKeyRequest": {"publicKey": {"content": "x" * 20000}}}, "too large"),
])
def test_malformed_requests(ca: TestCA, body: Any, match: str) -> None:
    with pytest.raises(E, match=match):
        ca.authority.parse_request(body, principal("email"))


@pytest.mark.parametrize("proof, match", [
    (None, "must be a base64 string"),
    ("***", "not valid base64"),
    ("", "wrong length"),
    ("A" * 4000, "too large"),
])
def test_malformed_proof(ca: TestCA, proof: Any, match: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    body = key_body(key, "x")
    body["publicKeyRequest"]["proofOfPossession"] = proof
    with pytest.raises(E, match=match):
        ca.authority.parse_request(body, principal("email"))


# -- documents ---------------------------------------------------------------------------------

def test_trust_bundle_and_response_shapes(ca: TestCA) -> None:
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in ca.material.chain]
    assert ca.authority.trust_bundle() == {"chains": [{"certificates": pems}]}
    chain = ca.authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(),
                               principal("email"))
    response = embedded_sct_response(chain)
    certs = response["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    assert [x509.load_pem_x509_certificate(c.encode()) for c in certs] == chain


def test_configuration_shape() -> None:
    issuers = [
        IssuerConfig("https://accounts.example.com", "email"),
        IssuerConfig("https://*.example.com", "github-workflow", audience="aud"),
        IssuerConfig("https://spire.example.org", "spiffe", spiffe_trust_domain="example.org"),
        IssuerConfig("https://svc.example.com", "uri", subject_domain="https://svc.example.com"),
    ]
    assert CertificateAuthority.configuration(issuers) == {"issuers": [
        {"issuerUrl": "https://accounts.example.com", "audience": "sigstore",
         "challengeClaim": "email", "issuerType": "email"},
        {"wildcardIssuerUrl": "https://*.example.com", "audience": "aud",
         "challengeClaim": "sub", "issuerType": "github-workflow"},
        {"issuerUrl": "https://spire.example.org", "audience": "sigstore",
         "challengeClaim": "sub", "issuerType": "spiffe", "spiffeTrustDomain": "example.org"},
        {"issuerUrl": "https://svc.example.com", "audience": "sigstore",
         "challengeClaim": "sub", "issuerType": "uri",
         "subjectDomain": "https://svc.example.com"},
    ]}


def test_issuance_record_keeps_every_certificate_and_a_failed_write_fails_the_issuance(
        ca: TestCA, tmp_path: Any) -> None:
    from sealtrail.ca.record import IssuanceRecord

    record = IssuanceRecord(tmp_path / "ca" / "issued.sqlite")
    authority = CertificateAuthority(ca.material.intermediate_key, ca.material.chain,
                                     ca.ct_log, lambda: NOW, on_issue=record.record)
    who = principal("email")
    chain = authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), who)
    (row,) = record.by_subject(who.san.value)
    assert row.certificate == chain[0].public_bytes(serialization.Encoding.DER)
    assert row.serial == f"{chain[0].serial_number:x}" and row.issuer == who.issuer
    # Reopened, the record still holds it (committed, not just cached).
    record.close()
    reopened = IssuanceRecord(tmp_path / "ca" / "issued.sqlite")
    assert reopened.count() == 1
    # When the record cannot be written, no certificate is handed out.
    reopened.close()
    from sealtrail.errors import ServiceUnavailableError

    with pytest.raises(ServiceUnavailableError, match="cannot record"):
        authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), who)
