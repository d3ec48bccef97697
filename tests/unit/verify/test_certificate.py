"""Fulcio certificates: identity extraction, leaf profile, chain, embedded SCT.

Every check is shown able to fail with its own error class, on leaves from the FakeCA
(tests/fakes/ca.py) with one property broken at a time; the FakeCA's SCTs are checked
against sigstore-python's own verifier, and real conformance bundles are run end to end.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.certificate_transparency import LogEntryType
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealtrail.errors import (
    CertChainInvalidError,
    CertProfileInvalidError,
    SCTInvalidError,
    UsageError,
)
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.models.trusted_root import CertificateAuthority, TrustedRoot, ValidityWindow
from sealtrail.verify import _certificate
from sealtrail.verify._certificate import (
    check_leaf_profile,
    verify_certificate,
    verify_chain,
    verify_embedded_sct,
)
from tests.fakes.ca import (
    CT_SCT_LIST_OID,
    DEFAULT_IDENTITY,
    DEFAULT_ISSUER,
    GITHUB_EXTENSION_OIDS,
    FakeCA,
    utf8_der,
)

NB = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)  # leaf notBefore
AT = NB + timedelta(minutes=1)  # a time inside the leaf's 10 minutes
CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING

CONFORMANCE = Path(__file__).resolve().parents[2] / "vectors" / "conformance"
PRODUCTION_ROOT = (Path(__file__).resolve().parents[3] / "src" / "sealtrail" / "data"
                   / "public-good" / "production" / "trusted_root.json")


@pytest.fixture(scope="module")
def ca() -> FakeCA:
    return FakeCA()


@pytest.fixture(scope="module")
def key():
    return FakeCA.new_key().public_key()


@pytest.fixture(scope="module")
def leaf(ca: FakeCA, key) -> x509.Certificate:
    return ca.issue_leaf(key, not_before=NB)


def run(ca: FakeCA, leaf: x509.Certificate, at: datetime = AT) -> list[x509.Certificate]:
    return verify_certificate(leaf, [ca.authority()], [ca.ctlog()], at)


# -- happy paths -------------------------------------------------------------------------------

def test_fake_leaf_verifies_and_returns_the_path(ca: FakeCA, leaf: x509.Certificate) -> None:
    path = run(ca, leaf)
    assert path == [leaf, ca.intermediate, ca.root]


def test_root_only_chain_verifies(key) -> None:
    ca = FakeCA(intermediate=False)
    leaf = ca.issue_leaf(key, not_before=NB)
    assert run(ca, leaf) == [leaf, ca.root]


def test_a_leaf_issued_by_a_later_certificate_of_the_chain_verifies(key) -> None:
    # GitHub's instance: chains [Fulcio Intermediate l2, l1, root], and older leaves issued
    # by l1, the second certificate. Here: a chain [intermediate, root] whose root signs the
    # leaf directly (SCT and all), as sigstore-go accepts.
    ca = FakeCA()
    authority, ctlog, root = ca.authority(), ca.ctlog(), ca.root
    ca.intermediate, ca.intermediate_key = None, None  # from now on the root issues leaves
    leaf = ca.issue_leaf(key, not_before=NB)
    assert verify_certificate(leaf, [authority], [ctlog], AT) == [leaf, root]
    # The leaf still has to be signed by the certificate it names.
    impostor = FakeCA(name=ca.name)  # same names, other keys
    impostor.intermediate, impostor.intermediate_key = None, None
    with pytest.raises(CertChainInvalidError):
        verify_chain(impostor.issue_leaf(key, not_before=NB), [authority], AT)


def test_leaf_valid_at_both_ends_of_its_window(ca: FakeCA, leaf: x509.Certificate) -> None:
    run(ca, leaf, NB)
    run(ca, leaf, NB + timedelta(minutes=10))


def test_sct_with_extensions_verifies(ca: FakeCA, key) -> None:
    # Static CT logs put a leaf index in the SCT extensions (conformance
    # bundle-with-sct-with-extensions); they are part of the signed data.
    run(ca, ca.issue_leaf(key, not_before=NB, sct_extensions=b"\x00\x00\x05\x00\x00\x00\x00\x70"))


@pytest.mark.parametrize("eku", [None, [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
                                 [ExtendedKeyUsageOID.SERVER_AUTH, CODE_SIGNING]])
def test_intermediate_eku_allowing_code_signing_verifies(key, eku) -> None:
    ca = FakeCA(intermediate_eku=eku)
    run(ca, ca.issue_leaf(key, not_before=NB))


def test_picks_the_authority_that_issued_the_leaf(ca: FakeCA, leaf: x509.Certificate) -> None:
    other = FakeCA(name="other")
    path = verify_chain(leaf, [other.authority(), ca.authority()], AT)
    assert path[-1] == ca.root


# -- 1. leaf profile ------------------------------------------------------------------------------

@pytest.mark.parametrize("knobs, needle", [
    ({"key_usage": False}, "no KeyUsage"),
    ({"digital_signature": False}, "digitalSignature"),
    ({"eku": None}, "no ExtendedKeyUsage"),
    ({"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, "codeSigning"),
    ({"san": False}, "no SubjectAlternativeName"),
])
def test_profile_violations(ca: FakeCA, key, knobs: dict, needle: str) -> None:
    bad = ca.issue_leaf(key, not_before=NB, **knobs)
    with pytest.raises(CertProfileInvalidError, match=needle) as info:
        check_leaf_profile(bad)
    assert info.value.code == "CERT_PROFILE_INVALID"
    assert info.value.expected is not None and info.value.actual is not None
    # verify_certificate checks the profile first.
    with pytest.raises(CertProfileInvalidError):
        run(ca, bad)


def test_profile_rejects_unparseable_extensions(ca: FakeCA, key) -> None:
    junk_scts = x509.UnrecognizedExtension(CT_SCT_LIST_OID,
                                           core.OctetString(b"\x00\x05junk!").dump())
    bad = ca.issue_leaf(key, not_before=NB, sct_count=0, extra_extensions=[(junk_scts, False)])
    with pytest.raises(CertProfileInvalidError, match="do not parse"):
        check_leaf_profile(bad)
    with pytest.raises(SCTInvalidError, match="do not parse"):
        verify_embedded_sct(bad, ca.issuer_cert, [ca.ctlog()])


# -- 2. chain -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rogue_name, needle", [
    ("rogue", "does not chain to any trusted certificate authority"),
    # Same names, different keys: only the signature tells them apart.
    ("fake", "signature does not match"),
])
def test_wrong_root(ca: FakeCA, leaf: x509.Certificate, rogue_name: str, needle: str) -> None:
    rogue = FakeCA(name=rogue_name)
    assert (rogue.intermediate.subject == ca.intermediate.subject) == (rogue_name == ca.name)
    with pytest.raises(CertChainInvalidError, match=needle) as info:
        verify_chain(leaf, [rogue.authority()], AT)
    assert info.value.code == "CERT_CHAIN_INVALID"


def test_leaf_expired_at_time(ca: FakeCA, leaf: x509.Certificate) -> None:
    with pytest.raises(CertChainInvalidError, match="certificate has expired at") as info:
        run(ca, leaf, NB + timedelta(minutes=10, seconds=1))
    assert "2025-06-01T12:10:00" in str(info.value.expected)


def test_leaf_not_yet_valid_at_time(ca: FakeCA, leaf: x509.Certificate) -> None:
    with pytest.raises(CertChainInvalidError, match="not yet valid"):
        run(ca, leaf, NB - timedelta(seconds=1))


def test_ca_validity_window_must_cover_time(ca: FakeCA, leaf: x509.Certificate) -> None:
    ended = ValidityWindow(ca.not_before, NB)  # the trusted root retired the CA before AT
    with pytest.raises(CertChainInvalidError, match="does not trust that CA") as info:
        verify_certificate(leaf, [ca.authority(ended)], [ca.ctlog()], AT)
    assert "to 2025-06-01T12:00:00" in str(info.value.expected)
    not_started = ValidityWindow(AT + timedelta(seconds=1))
    with pytest.raises(CertChainInvalidError, match="does not trust that CA"):
        verify_chain(leaf, [ca.authority(not_started)], AT)
    # The end is inclusive.
    verify_chain(leaf, [ca.authority(ValidityWindow(ca.not_before, AT))], AT)


def test_ca_certificate_expired_at_time(key) -> None:
    short = FakeCA(not_before=NB - timedelta(days=1), not_after=NB + timedelta(minutes=5))
    leaf = short.issue_leaf(key, not_before=NB)
    run(short, leaf, NB + timedelta(minutes=4))
    with pytest.raises(CertChainInvalidError, match="CA certificate .* is not valid at"):
        run(short, leaf, NB + timedelta(minutes=6))


def test_chain_rejects_leaf_without_code_signing(ca: FakeCA, key) -> None:
    # verify_chain enforces the EKU on its own, not only through the profile check.
    for eku in ([ExtendedKeyUsageOID.CLIENT_AUTH], None):
        with pytest.raises(CertChainInvalidError):
            verify_chain(ca.issue_leaf(key, not_before=NB, eku=eku), [ca.authority()], AT)


def test_chain_rejects_critical_eku(ca: FakeCA, key) -> None:
    with pytest.raises(CertChainInvalidError):
        verify_chain(ca.issue_leaf(key, not_before=NB, eku_critical=True), [ca.authority()], AT)


def test_chain_rejects_non_critical_san(ca: FakeCA, key) -> None:
    with pytest.raises(CertChainInvalidError, match="subjectAltName MUST be critical"):
        verify_chain(ca.issue_leaf(key, not_before=NB, san_critical=False), [ca.authority()], AT)


def test_chain_rejects_intermediate_eku_without_code_signing(key) -> None:
    ca = FakeCA(intermediate_eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(CertChainInvalidError, match="does not allow codeSigning"):
        run(ca, ca.issue_leaf(key, not_before=NB))


def test_bundle_intermediates_are_not_trusted(ca: FakeCA, leaf: x509.Certificate) -> None:
    # The trusted root names only the root; the bundle offers the real intermediate.
    root_only = CertificateAuthority(ca.uri, (ca.root,), ValidityWindow(ca.not_before))
    with pytest.raises(CertChainInvalidError):
        verify_chain(leaf, [root_only], AT, untrusted_intermediates=[ca.intermediate])


def test_chain_needs_authorities_and_an_aware_time(leaf: x509.Certificate, ca: FakeCA) -> None:
    with pytest.raises(CertChainInvalidError, match="no certificate authorities"):
        verify_chain(leaf, [], AT)
    with pytest.raises(UsageError):
        verify_chain(leaf, [ca.authority()], AT.replace(tzinfo=None))
    # Any timezone is fine: it is the instant that counts.
    verify_chain(leaf, [ca.authority()], AT.astimezone(timezone(timedelta(hours=-7))))


# -- 3. embedded SCT ------------------------------------------------------------------------

@pytest.mark.parametrize("knobs, needle", [
    ({"sct_count": 0}, "no embedded SCT"),
    ({"sct_count": 2}, "exactly one SCT"),
    ({"tamper_sct_signature": True}, "does not verify"),
    ({"sct_key": "other"}, "does not verify"),
    ({"sct_key": "rsa"}, "signature algorithm"),
    ({"sct_hash_code": 5}, "SHA-256"),  # TLS HashAlgorithm sha384
])
def test_sct_violations(ca: FakeCA, key, knobs: dict, needle: str) -> None:
    if knobs.get("sct_key") == "other":
        knobs = {"sct_key": FakeCA.new_key()}
    elif knobs.get("sct_key") == "rsa":
        knobs = {"sct_key": rsa.generate_private_key(65537, 2048)}
    bad = ca.issue_leaf(key, not_before=NB, **knobs)
    with pytest.raises(SCTInvalidError, match=needle) as info:
        run(ca, bad)
    assert info.value.code == "SCT_INVALID"


def test_sct_from_unknown_log(ca: FakeCA, leaf: x509.Certificate) -> None:
    other = FakeCA(name="other")
    needle = f"SCT log id {ca.ct_log_id.hex()} is not in the trusted root"
    with pytest.raises(SCTInvalidError, match=needle):
        verify_certificate(leaf, [ca.authority()], [other.ctlog()], AT)
    with pytest.raises(SCTInvalidError, match="not in the trusted root"):
        verify_certificate(leaf, [ca.authority()], [], AT)


def test_ct_log_not_valid_at_sct_time(ca: FakeCA, key) -> None:
    leaf = ca.issue_leaf(key, not_before=NB, sct_time=NB + timedelta(seconds=30))
    sct_time = NB + timedelta(seconds=30)
    with pytest.raises(SCTInvalidError, match="not trusted at the SCT time"):
        verify_certificate(leaf, [ca.authority()],
                           [ca.ctlog(ValidityWindow(ca.not_before, NB))], AT)
    with pytest.raises(SCTInvalidError, match="not trusted at the SCT time"):
        verify_certificate(leaf, [ca.authority()],
                           [ca.ctlog(ValidityWindow(sct_time + timedelta(milliseconds=1)))], AT)
    # Both ends inclusive, to the millisecond.
    verify_certificate(leaf, [ca.authority()], [ca.ctlog(ValidityWindow(sct_time, sct_time))], AT)


def test_sct_over_another_certificate(ca: FakeCA, key) -> None:
    # A genuine SCT moved onto a different certificate: the TBS it signed is not this one.
    donor = ca.issue_leaf(key, not_before=NB, identity="https://example.com/someone-else")
    thief = ca.issue_leaf(key, not_before=NB, transplant_sct_from=donor)
    run(ca, donor)
    with pytest.raises(SCTInvalidError, match="does not verify"):
        run(ca, thief)


def test_sct_bound_to_issuer_key(ca: FakeCA, leaf: x509.Certificate) -> None:
    # The issuer key hash is signed: the root is not the leaf's issuer.
    verify_embedded_sct(leaf, ca.intermediate, [ca.ctlog()])
    with pytest.raises(SCTInvalidError, match="does not verify"):
        verify_embedded_sct(leaf, ca.root, [ca.ctlog()])


def test_sct_issuer_key_must_be_ec_or_rsa(ca: FakeCA, leaf: x509.Certificate) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed")])
    ed_issuer = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                 .public_key(key.public_key()).serial_number(1)
                 .not_valid_before(NB).not_valid_after(NB + timedelta(days=1)).sign(key, None))
    with pytest.raises(SCTInvalidError, match="ECDSA or RSA"):
        verify_embedded_sct(leaf, ed_issuer, [ca.ctlog()])


class _StubSCT:
    """Field values cryptography never produces for an embedded SCT, to reach the guards."""

    def __init__(self, real, **changes):
        self.__dict__.update({name: getattr(real, name) for name in (
            "version", "log_id", "timestamp", "entry_type", "signature",
            "signature_hash_algorithm", "signature_algorithm", "extension_bytes")})
        self.__dict__.update(changes)


def test_sct_guards_on_version_entry_type_and_sizes(ca: FakeCA, leaf: x509.Certificate,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = _certificate._single_sct(leaf)
    for changes, needle in (({"version": type("V", (), {"name": "v2"})()}, "version"),
                            ({"entry_type": LogEntryType.X509_CERTIFICATE},
                             "precertificate")):
        monkeypatch.setattr(_certificate, "_single_sct",
                            lambda _leaf, c=changes: _StubSCT(real, **c))
        with pytest.raises(SCTInvalidError, match=needle):
            verify_embedded_sct(leaf, ca.intermediate, [ca.ctlog()])
    # CtExtensions is a u16-length vector: anything longer cannot be what the log signed.
    monkeypatch.setattr(_certificate, "_single_sct",
                        lambda _leaf: _StubSCT(real, extension_bytes=b"\0" * 2**16))
    with pytest.raises(SCTInvalidError, match="out of range"):
        verify_embedded_sct(leaf, ca.intermediate, [ca.ctlog()])


def test_chain_is_checked_before_sct(ca: FakeCA, key) -> None:
    # A leaf with both a bad chain and a bad SCT reports the chain: steps run in order.
    bad = ca.issue_leaf(key, not_before=NB, sct_count=0)
    with pytest.raises(CertChainInvalidError):
        run(ca, bad, NB + timedelta(hours=1))


# -- oracle: sigstore-python's SCT verifier accepts the FakeCA's SCTs --------------------------

def _sigstore_ct_keyring(ca: FakeCA):
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.models import TrustedRoot as SigstoreTrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    # sigstore-models is strict (extra="forbid"): this also checks the entry shapes.
    inner = trustroot_v1.TrustedRoot.from_json(json.dumps(ca.trusted_root()))
    return SigstoreTrustedRoot(inner).ct_keyring(KeyringPurpose.VERIFY)


@pytest.mark.parametrize("extensions", [b"", b"\x00\x00\x05\x00\x00\x00\x00\x70"])
def test_oracle_sigstore_python_accepts_fake_sct(ca: FakeCA, key, extensions: bytes) -> None:
    from sigstore._internal.sct import verify_sct

    leaf = ca.issue_leaf(key, not_before=NB, sct_extensions=extensions)
    verify_sct(leaf, [ca.intermediate, ca.root], _sigstore_ct_keyring(ca))
    run(ca, leaf)


def test_oracle_sigstore_python_rejects_tampered_sct(ca: FakeCA, key) -> None:
    from sigstore._internal.sct import verify_sct
    from sigstore.errors import VerificationError

    leaf = ca.issue_leaf(key, not_before=NB, tamper_sct_signature=True)
    with pytest.raises(VerificationError):
        verify_sct(leaf, [ca.intermediate, ca.root], _sigstore_ct_keyring(ca))


def test_trusted_root_entries_parse(ca: FakeCA) -> None:
    root = TrustedRoot.from_dict(ca.trusted_root())
    assert root.certificate_authorities[0].chain == (ca.intermediate, ca.root)
    assert root.ctlog_by_id(ca.ct_log_id) is not None


# -- identity extraction ----------------------------------------------------------------------

@pytest.mark.parametrize("kind, value", [
    ("uri", "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main"),
    ("email", "someone@example.com"),
    ("othername", "alice!example.com"),
])
def test_identity_san_kinds(ca: FakeCA, key, kind: str, value: str) -> None:
    identity = FulcioIdentity.from_certificate(
        ca.issue_leaf(key, not_before=NB, identity=value, san_kind=kind))
    assert (identity.san, identity.san_kind) == (value, kind)
    assert identity.issuer == DEFAULT_ISSUER


def test_identity_issuer_sources(ca: FakeCA, key) -> None:
    def issuer_of(**knobs) -> str | None:
        return FulcioIdentity.from_certificate(ca.issue_leaf(key, not_before=NB, **knobs)).issuer

    assert issuer_of(issuer="https://a.example", legacy_issuer=False) == "https://a.example"
    assert issuer_of(issuer="https://b.example", der_issuer=False) == "https://b.example"
    assert issuer_of(issuer=None) is None
    # .1.8 wins over the legacy .1.1; a malformed .1.8 is skipped in favour of .1.1.
    both = ca.issue_leaf(key, not_before=NB, issuer="https://legacy.example", der_issuer=False,
                         extra_extensions=[(x509.UnrecognizedExtension(
                             x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                             utf8_der("https://new.example")), False)])
    assert FulcioIdentity.from_certificate(both).issuer == "https://new.example"
    broken = ca.issue_leaf(key, not_before=NB, issuer="https://legacy.example", der_issuer=False,
                           extra_extensions=[(x509.UnrecognizedExtension(
                               x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                               b"https://not-der.example"), False)])
    assert FulcioIdentity.from_certificate(broken).issuer == "https://legacy.example"


def test_identity_github_extensions(ca: FakeCA, key) -> None:
    claims = {name: f"value of {name}" for name in GITHUB_EXTENSION_OIDS}
    identity = FulcioIdentity.from_certificate(
        ca.issue_leaf(key, not_before=NB, github=claims, sub="repo:o/r:ref:refs/heads/main"))
    assert identity.extensions == {**claims, "sub": "repo:o/r:ref:refs/heads/main"}


def test_identity_skips_malformed_claims(ca: FakeCA, key) -> None:
    not_der = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12"), b"raw")
    not_utf8 = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.2"),
                                          b"\xff\xfe")
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.99"),
                                         utf8_der("x"))
    identity = FulcioIdentity.from_certificate(ca.issue_leaf(
        key, not_before=NB, github={"build_trigger": "push"},
        extra_extensions=[(not_der, False), (not_utf8, False), (unknown, False)]))
    assert identity.extensions == {"build_trigger": "push"}


@pytest.mark.parametrize("knobs, needle", [
    ({"san": False}, "no SubjectAlternativeName"),
    ({"san_names": [x509.UniformResourceIdentifier("https://a"), x509.RFC822Name("b@c.d")]},
     "exactly one"),
    ({"san_names": [x509.DNSName("example.com")]}, "unsupported type"),
    ({"san_names": [x509.OtherName(x509.ObjectIdentifier("1.2.3.4"), utf8_der("x"))]},
     "unsupported type"),
    ({"san_names": [x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7"),
                                   core.Integer(5).dump())]}, "not a DER UTF8String"),
])
def test_identity_san_errors(ca: FakeCA, key, knobs: dict, needle: str) -> None:
    with pytest.raises(CertProfileInvalidError, match=needle):
        FulcioIdentity.from_certificate(ca.issue_leaf(key, not_before=NB, **knobs))


# -- real data: the conformance bundles -------------------------------------------------------

# Cases whose certificate checks must fail, and why.
_EXPECTED_FAILURES = {
    "invalid-ct-key_fail": SCTInvalidError,  # the SCT's CT log is not in its trusted root
    # integratedTime 2023-02-01 lies before the leaf's notBefore (2030-01-01).
    "intoto-expired-certificate_fail": CertChainInvalidError,
    # integratedTime lies after the leaf's notAfter.
    "integrated-time-in-future_fail": CertChainInvalidError,
}


def _cases() -> list[str]:
    names = []
    for case in sorted(CONFORMANCE.iterdir()):
        try:
            bundle = json.loads((case / "bundle.sigstore.json").read_text())
        except (OSError, ValueError):
            continue  # not a case, or bundle-malformed-json_fail
        material = bundle["verificationMaterial"]
        if "certificate" in material or "x509CertificateChain" in material:
            names.append(case.name)
    return names


def _load_case(name: str):
    case = CONFORMANCE / name
    material = json.loads((case / "bundle.sigstore.json").read_text())["verificationMaterial"]
    raw = (material["certificate"]["rawBytes"] if "certificate" in material
           else material["x509CertificateChain"]["certificates"][0]["rawBytes"])
    leaf = x509.load_der_x509_certificate(base64.b64decode(raw))
    root_path = case / "trusted_root.json"
    root = TrustedRoot.from_json(
        (root_path if root_path.exists() else PRODUCTION_ROOT).read_bytes())
    integrated = int(material["tlogEntries"][0].get("integratedTime", 0))
    at = (datetime.fromtimestamp(integrated, timezone.utc) if integrated
          else leaf.not_valid_before_utc)  # Rekor v2 entries have no integrated time
    return case, leaf, root, at


def test_conformance_cases_found() -> None:
    assert len(_cases()) >= 20
    assert set(_EXPECTED_FAILURES) | {"bundle-with-sct-with-extensions"} <= set(_cases())


@pytest.mark.parametrize("name", _cases())
def test_conformance_identity(name: str) -> None:
    case, leaf, _, _ = _load_case(name)
    identity_file, issuer_file = case / "identity", case / "issuer"
    expected_san = identity_file.read_text().strip() if identity_file.exists() else DEFAULT_IDENTITY
    expected_issuer = issuer_file.read_text().strip() if issuer_file.exists() else DEFAULT_ISSUER
    identity = FulcioIdentity.from_certificate(leaf)
    assert identity.san == expected_san
    assert identity.issuer == expected_issuer
    if identity.san_kind == "uri" and "build_signer_uri" in identity.extensions:
        assert identity.extensions["build_signer_uri"] == expected_san
        assert identity.extensions["github_workflow_ref"] == "refs/heads/main"


@pytest.mark.parametrize("name", _cases())
def test_conformance_certificate(name: str) -> None:
    _, leaf, root, at = _load_case(name)
    expected = _EXPECTED_FAILURES.get(name)
    if expected is None:
        path = verify_certificate(leaf, root.certificate_authorities, root.ctlogs, at)
        assert path[0] == leaf and path[-1] in {ca.chain[-1] for ca in root.certificate_authorities}
    else:
        with pytest.raises(expected):
            verify_certificate(leaf, root.certificate_authorities, root.ctlogs, at)


def test_conformance_expired_certificate_reasons() -> None:
    _, leaf, root, at = _load_case("intoto-expired-certificate_fail")
    with pytest.raises(CertChainInvalidError, match="not yet valid"):
        verify_certificate(leaf, root.certificate_authorities, root.ctlogs, at)
    # At the leaf's own notBefore the leaf is fine, but the CA's root expired in 2024.
    with pytest.raises(CertChainInvalidError, match="CA certificate .* is not valid at"):
        verify_certificate(leaf, root.certificate_authorities, root.ctlogs,
                           leaf.not_valid_before_utc)


def test_conformance_sct_with_extensions_has_extensions() -> None:
    _, leaf, root, at = _load_case("bundle-with-sct-with-extensions")
    (sct,) = leaf.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps).value
    assert sct.extension_bytes  # the case really exercises non-empty SCT extensions
    assert isinstance(sct.signature_hash_algorithm, hashes.SHA256)
    verify_certificate(leaf, root.certificate_authorities, root.ctlogs, at)
