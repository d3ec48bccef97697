"""Real bundles from other Sigstore clients' public test suites (tests/vectors/ecosystem).

Each case of ``cases.json`` names the file, the artifact, the trust root, the policy and the
outcome that the source project's own test asserts (README.md beside it names the source
and licence). A failing case must fail with the code that names the broken property.

PEP 740 attestations (PyPI's format) carry the same material as a Sigstore bundle in other
field names; ``_pep740_to_bundle`` rewrites one into the v0.3 bundle it stands for
(SPEC: PEP 740 ``Attestation``: verification_material.certificate is the leaf's DER,
transparency_entries are Rekor v1 TransparencyLogEntry objects, envelope.statement and
envelope.signature are the DSSE payload and signature, payload type in-toto).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sealtrail.errors import Error
from sealtrail.models.bundle import Bundle
from sealtrail.trustroot import load_trusted_root
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import Artifact, Verifier

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "ecosystem"
CASES: list[dict[str, Any]] = json.loads((VECTORS / "cases.json").read_text())


def _pep740_to_bundle(attestation: dict[str, Any]) -> dict[str, Any]:
    material = attestation["verification_material"]
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"certificate": {"rawBytes": material["certificate"]},
                                 "tlogEntries": material["transparency_entries"]},
        "dsseEnvelope": {"payload": attestation["envelope"]["statement"],
                         "payloadType": "application/vnd.in-toto+json",
                         "signatures": [{"sig": attestation["envelope"]["signature"]}]},
    }


def load_case_bundle(case: dict[str, Any]) -> Bundle:
    data = json.loads((VECTORS / case["file"]).read_text())
    if case["format"] == "pep740-provenance":
        data = _pep740_to_bundle(data["attestation_bundles"][0]["attestations"][0])
    elif case["format"] == "pep740":
        data = _pep740_to_bundle(data)
    return Bundle.from_dict(data)


def _run(case: dict[str, Any]) -> None:
    verifier = Verifier(load_trusted_root(instance=case["instance"]))
    policy = IdentityPolicy(identity=case["identity"], issuer=case["issuer"])
    bundle = load_case_bundle(case)
    if case["artifact"] is None:
        result = verifier.verify_dsse(bundle, policy, payload_type=case["payload_type"])
        assert result.payload and result.statement is not None
        return
    if case["artifact"] == "nothing":  # the source test's stand-in for a modified file
        artifact = Artifact.from_bytes(b"nothing")
    else:
        artifact = Artifact.from_bytes((VECTORS / case["artifact"]).read_bytes())
    verifier.verify_artifact(artifact, bundle, policy)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_ecosystem_vector(case: dict[str, Any]) -> None:
    if case["expect"] == "ok":
        _run(case)
        return
    with pytest.raises(Error) as info:
        _run(case)
    assert info.value.code == case["expect"], info.value.diagnostics()


def test_jsonl_of_real_bundles_passes_on_the_line_that_verifies(tmp_path: Path) -> None:
    # B7 on real bundles: a staging bundle (its log is not in the production root) and then
    # the production bundle of the same artifact, one per line as gh attestation download
    # writes them.
    from sealtrail.batch import Pair, verify_many
    from sealtrail.trustroot import read_trusted_root_bytes

    staging = json.loads((VECTORS / "pypi-attestations/rfc8785-0.1.2-py3-none-any.whl.sigstore")
                         .read_text())
    production = json.loads((VECTORS / "pypi-attestations/"
                             "pypi_attestation_models-0.0.4a2.tar.gz.sigstore").read_text())
    path = tmp_path / "attestations.jsonl"
    path.write_text(json.dumps(staging) + "\n" + json.dumps(production) + "\n")
    policy = IdentityPolicy(
        identity="https://github.com/trailofbits/pypi-attestation-models/.github/workflows/"
                 "release.yml@refs/tags/v0.0.4a2",
        issuer="https://token.actions.githubusercontent.com")
    artifact = str(VECTORS / "pypi-attestations/pypi_attestation_models-0.0.4a2.tar.gz")
    [outcome] = verify_many([Pair(artifact, str(path))], read_trusted_root_bytes(), policy)
    assert outcome.ok, outcome.message
    assert outcome.bundle_line == 2
