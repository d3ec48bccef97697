"""sigstore-python 4.5 as an independent oracle for the fabricated instance and the verifier.

Each fabricated happy bundle must verify with sigstore-python *and* with sealtrail against
the same fabricated trusted root: that shows :class:`tests.fakes.instance.FakeInstance`
emits what real clients accept, not merely what sealtrail accepts. A handful of mutations
must then fail in both.

sigstore-python is built from the trusted root directly (no TUF, no signing config) and
the socket layer is disabled for every test here, so nothing can reach the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sealtrail.errors import Error
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import Verifier
from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER
from tests.fakes.instance import FakeInstance, b64, body_of, set_body, statement_for

sigstore_errors = pytest.importorskip("sigstore.errors")
from sigstore.models import Bundle as SigstoreBundle  # noqa: E402
from sigstore.models import TrustedRoot as SigstoreTrustedRoot  # noqa: E402
from sigstore.verify import Verifier as SigstoreVerifier  # noqa: E402
from sigstore.verify.policy import Identity  # noqa: E402
from sigstore_models.trustroot import v1 as trustroot_v1  # noqa: E402

ARTIFACT = b"sealtrail oracle artifact\n"
OTHER_ARTIFACT = b"something else entirely\n"
POLICY = IdentityPolicy(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)
ORACLE_POLICY = Identity(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail loudly if anything (sigstore-python's TUF or Rekor clients) opens a socket."""
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("network access attempted during an offline oracle test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


@pytest.fixture(scope="module")
def instance() -> FakeInstance:
    return FakeInstance()


@pytest.fixture(scope="module")
def oracle(instance: FakeInstance) -> SigstoreVerifier:
    # sigstore-models parses strictly (extra="forbid"): this also vets the root's shape.
    inner = trustroot_v1.TrustedRoot.from_json(json.dumps(instance.trusted_root_json()))
    return SigstoreVerifier(trusted_root=SigstoreTrustedRoot(inner))


@pytest.fixture(scope="module")
def sealtrail(instance: FakeInstance) -> Verifier:
    return Verifier(instance.trusted_root(), now=instance.now)


def oracle_verify(oracle: SigstoreVerifier, bundle: dict[str, Any], artifact: bytes | None,
                  policy: Any = ORACLE_POLICY) -> tuple[str, bytes] | None:
    """sigstore-python's verdict: returns on success, raises sigstore.errors.Error."""
    parsed = SigstoreBundle.from_json(json.dumps(bundle))
    if artifact is None:
        return oracle.verify_dsse(parsed, policy)
    oracle.verify_artifact(artifact, parsed, policy)
    return None


def sealtrail_verify(verifier: Verifier, bundle: dict[str, Any], artifact: bytes | None,
                     policy: IdentityPolicy = POLICY) -> Any:
    text = json.dumps(bundle)
    if artifact is None:
        return verifier.verify_dsse(text, policy)
    return verifier.verify_artifact(artifact, text, policy)


# -- both accept the fabricated happy bundles ----------------------------------------------------

HAPPY: list[Any] = [
    pytest.param(lambda i: i.sign_artifact(ARTIFACT, rekor=1), ARTIFACT,
                 id="rekor1-hashedrekord-v0.3"),
    pytest.param(lambda i: i.sign_artifact(ARTIFACT, rekor=1, version="0.1"), ARTIFACT,
                 id="rekor1-hashedrekord-v0.1"),
    pytest.param(lambda i: i.sign_artifact(ARTIFACT, rekor=1, version="0.2"), ARTIFACT,
                 id="rekor1-hashedrekord-v0.2"),
    pytest.param(lambda i: i.sign_artifact(ARTIFACT, rekor=1, media_type_spelling="version=0.3"),
                 ARTIFACT, id="rekor1-hashedrekord-v0.3-param"),
    pytest.param(lambda i: i.sign_artifact(ARTIFACT, rekor=1, timestamp=True), ARTIFACT,
                 id="rekor1-hashedrekord-with-tsa"),
    pytest.param(lambda i: i.sign_artifact(ARTIFACT, rekor=2), ARTIFACT,
                 id="rekor2-hashedrekord-with-tsa"),
    pytest.param(lambda i: i.sign_dsse(statement_for(ARTIFACT), rekor=1, kind="dsse"), None,
                 id="rekor1-dsse"),
    pytest.param(lambda i: i.sign_dsse(statement_for(ARTIFACT), rekor=2), None,
                 id="rekor2-dsse-as-hashedrekord"),
]


@pytest.mark.parametrize("make, artifact", HAPPY)
def test_fabricated_bundle_verifies_in_both(instance: FakeInstance, oracle: SigstoreVerifier,
                                            sealtrail: Verifier,
                                            make: Callable[[FakeInstance], dict[str, Any]],
                                            artifact: bytes | None) -> None:
    bundle = make(instance)
    oracle_result = oracle_verify(oracle, bundle, artifact)
    result = sealtrail_verify(sealtrail, bundle, artifact)
    assert result.identity == DEFAULT_IDENTITY
    if artifact is None:
        # Both return the same payload and type.
        assert oracle_result == (result.payload_type, result.payload)
    else:
        # sealtrail's DSSE shapes are also artifact-bound; check that too.
        assert oracle_result is None


def test_fabricated_trusted_root_keys_load_in_the_oracle(instance: FakeInstance) -> None:
    # Every key must load: sigstore-python only logs (and drops) a key it cannot parse.
    from sigstore._internal.trust import KeyringPurpose

    inner = trustroot_v1.TrustedRoot.from_json(json.dumps(instance.trusted_root_json()))
    root = SigstoreTrustedRoot(inner)
    assert len(root.rekor_keyring(KeyringPurpose.VERIFY)._keyring) == 2
    assert len(root.ct_keyring(KeyringPurpose.VERIFY)._keyring) == 1
    assert len(root.get_timestamp_authorities()) == 1


# -- both reject the same mutations ----------------------------------------------------------------

def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    return bundle["verificationMaterial"]["tlogEntries"][0]


def _flip(value: str, index: int = -1) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01  # last byte: inside the DER INTEGER s, still a well-formed signature
    return b64(bytes(raw))


def signature_flipped_rekor1(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    bundle["messageSignature"]["signature"] = _flip(bundle["messageSignature"]["signature"])
    return bundle, ARTIFACT


def signature_flipped_rekor2(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    bundle["messageSignature"]["signature"] = _flip(bundle["messageSignature"]["signature"])
    return inst.restamp(bundle), ARTIFACT  # re-stamped: the token covers the signature


def dsse_signature_flipped(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    bundle = inst.sign_dsse(statement_for(ARTIFACT), rekor=1)
    sig = bundle["dsseEnvelope"]["signatures"][0]
    sig["sig"] = _flip(sig["sig"])
    return bundle, None


def other_artifact(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    return inst.sign_artifact(ARTIFACT, rekor=2), OTHER_ARTIFACT


def wrong_identity(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    return inst.sign_artifact(ARTIFACT, identity="https://github.com/evil/evil/.github/"
                              "workflows/x.yml@refs/heads/main"), ARTIFACT


def wrong_issuer(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    return inst.sign_artifact(ARTIFACT, issuer="https://accounts.google.com"), ARTIFACT


def proof_hash_flipped_rekor1(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    hashes = _entry(bundle)["inclusionProof"]["hashes"]
    hashes[0] = _flip(hashes[0])
    return bundle, ARTIFACT


def proof_hash_flipped_rekor2(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    bundle = inst.sign_dsse(statement_for(ARTIFACT), rekor=2)
    hashes = _entry(bundle)["inclusionProof"]["hashes"]
    hashes[-1] = _flip(hashes[-1])
    return bundle, None


def checkpoint_for_another_root(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    bundle = inst.sign_artifact(ARTIFACT, rekor=2)
    proof = _entry(bundle)["inclusionProof"]
    proof["checkpoint"]["envelope"] = inst.rekor_v2.checkpoint(
        int(proof["treeSize"]), hashlib.sha256(b"another tree").digest())
    return bundle, ARTIFACT


def set_over_another_time(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    _entry(bundle)["integratedTime"] = str(int(_entry(bundle)["integratedTime"]) + 1)
    return bundle, ARTIFACT


def logged_digest_changed(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    # Resealed: the log re-integrates the edited body, so only the body check can fail.
    bundle = inst.sign_artifact(ARTIFACT, rekor=1)
    body = body_of(bundle)
    body["spec"]["data"]["hash"]["value"] = hashlib.sha256(OTHER_ARTIFACT).hexdigest()
    set_body(bundle, body)
    return inst.reseal(bundle), ARTIFACT


def rekor2_without_timestamp(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    return inst.sign_artifact(ARTIFACT, rekor=2, timestamp=False), ARTIFACT


def leaf_without_sct(inst: FakeInstance) -> tuple[dict[str, Any], bytes | None]:
    return inst.sign_artifact(ARTIFACT, sct_count=0), ARTIFACT


MUTATIONS = [
    pytest.param(signature_flipped_rekor1, "SIGNATURE_INVALID", id="signature-flipped-rekor1"),
    pytest.param(signature_flipped_rekor2, "SIGNATURE_INVALID", id="signature-flipped-rekor2"),
    pytest.param(dsse_signature_flipped, "SIGNATURE_INVALID", id="dsse-signature-flipped"),
    pytest.param(other_artifact, "DIGEST_MISMATCH", id="other-artifact"),
    pytest.param(wrong_identity, "IDENTITY_MISMATCH", id="wrong-identity"),
    pytest.param(wrong_issuer, "ISSUER_MISMATCH", id="wrong-issuer"),
    pytest.param(proof_hash_flipped_rekor1, "TLOG_INCLUSION_INVALID", id="bad-proof-rekor1"),
    pytest.param(proof_hash_flipped_rekor2, "TLOG_INCLUSION_INVALID", id="bad-proof-rekor2"),
    pytest.param(checkpoint_for_another_root, "CHECKPOINT_INVALID", id="checkpoint-other-root"),
    pytest.param(set_over_another_time, "SET_INVALID", id="set-over-another-time"),
    pytest.param(logged_digest_changed, "TLOG_ENTRY_MISMATCH", id="logged-digest-changed"),
    pytest.param(rekor2_without_timestamp, "NO_VERIFIED_TIME", id="rekor2-no-timestamp"),
    pytest.param(leaf_without_sct, "SCT_INVALID", id="leaf-without-sct"),
]


@pytest.mark.parametrize("mutate, code", MUTATIONS)
def test_mutated_bundle_fails_in_both(instance: FakeInstance, oracle: SigstoreVerifier,
                                      sealtrail: Verifier,
                                      mutate: Callable[[FakeInstance],
                                                       tuple[dict[str, Any], bytes | None]],
                                      code: str) -> None:
    bundle, artifact = mutate(instance)
    with pytest.raises(sigstore_errors.Error):
        oracle_verify(oracle, bundle, artifact)
    with pytest.raises(Error) as info:
        sealtrail_verify(sealtrail, bundle, artifact)
    assert info.value.code == code, info.value.diagnostics()
