"""sealtrail.batch: verify_many's inputs, JSON Lines bundle files, default roots, hostile bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sealtrail.batch import (
    Pair,
    default_other_roots,
    github_trusted_root_bytes,
    read_bundles,
    verify_many,
    verify_payload,
)
from sealtrail.errors import BundleMalformedError, UsageError
from sealtrail.models.trusted_root import TrustedRoot
from sealtrail.trustroot import load_trusted_root, read_trusted_root_bytes
from sealtrail.verify.policy import IdentityPolicy
from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER
from tests.fakes.instance import FakeInstance

ARTIFACT = b"sealtrail release 1.0.0\n"
POLICY = IdentityPolicy(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)
MEGABYTES = "A" * (4 * 1024 * 1024)


@pytest.fixture(scope="module")
def inst() -> FakeInstance:
    return FakeInstance()


@pytest.fixture()
def root_json(inst: FakeInstance) -> bytes:
    return json.dumps(inst.trusted_root_json()).encode()


def _files(tmp_path: Path, inst: FakeInstance, *bundles: dict[str, Any],
           jsonl: bool = False) -> Pair:
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(ARTIFACT)
    bundle = tmp_path / ("release.jsonl" if jsonl else "release.sigstore.json")
    bundle.write_text("".join(json.dumps(b) + "\n" for b in bundles))
    return Pair(str(artifact), str(bundle))


# -- D: verify_many takes what the README says, and refuses the rest in one short line ----------

@pytest.mark.parametrize("pairs, match", [
    ("release.tar.gz", "pairs must be"),
    (b"release.tar.gz", "pairs must be"),
    ({"a": "b"}, "pairs must be"),
    (42, "pairs must be"),
    (["release.tar.gz"], r"pairs\[0\] must be"),
    ([("a", "b", "c")], r"pairs\[0\] must be"),
    ([(b"artifact bytes", "b.json")], r"pairs\[0\].artifact must be a path"),
    ([("a.txt", MEGABYTES.encode())], r"pairs\[0\].bundle must be a path"),
    ([("a.txt", MEGABYTES)], r"pairs\[0\].bundle is not a path"),
])
def test_verify_many_refuses_what_is_not_pairs(root_json: bytes, pairs: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        verify_many(pairs, root_json, POLICY)
    assert len(info.value.diagnostics()) < 300


@pytest.mark.parametrize("root", [None, 42, ["x"]])
def test_verify_many_refuses_a_root_that_is_not_json_bytes(root: Any) -> None:
    with pytest.raises(UsageError, match="trusted_root_json") as info:
        verify_many([], root, POLICY)
    assert len(info.value.diagnostics()) < 300


def test_verify_many_refuses_a_parsed_root_naming_what_to_pass() -> None:
    with pytest.raises(UsageError, match="bytes") as info:
        verify_many([], load_trusted_root(), POLICY)  # type: ignore[arg-type]
    assert len(info.value.diagnostics()) < 300


def test_verify_many_refuses_a_bad_policy_or_worker_count(root_json: bytes) -> None:
    with pytest.raises(UsageError, match="policy"):
        verify_many([], root_json, MEGABYTES)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="workers"):
        verify_many([], root_json, POLICY, workers=0)


def test_verify_many_takes_pairs_tuples_and_paths(tmp_path: Path, inst: FakeInstance,
                                                  root_json: bytes) -> None:
    pair = _files(tmp_path, inst, inst.sign_artifact(ARTIFACT))
    for given in ([pair], [(pair.artifact, pair.bundle)],
                  ((Path(pair.artifact), Path(pair.bundle)),)):
        [outcome] = verify_many(given, root_json, POLICY)  # type: ignore[arg-type]
        assert outcome.ok, outcome.message
        assert outcome.bundle_line is None


# -- B7: JSON Lines bundle files ---------------------------------------------------------------

def test_jsonl_passes_when_one_bundle_verifies_and_says_which(
        tmp_path: Path, inst: FakeInstance, root_json: bytes) -> None:
    other = inst.sign_artifact(ARTIFACT, identity="https://example.test/other-workflow")
    good = inst.sign_artifact(ARTIFACT)
    pair = _files(tmp_path, inst, other, good, jsonl=True)
    [outcome] = verify_many([pair], root_json, POLICY)
    assert outcome.ok, outcome.message
    assert outcome.bundle_line == 2
    assert outcome.to_json()["bundle_line"] == 2


def test_jsonl_fails_when_none_verifies_with_the_last_error(
        tmp_path: Path, inst: FakeInstance, root_json: bytes) -> None:
    bundles = [inst.sign_artifact(ARTIFACT, identity=f"https://example.test/w{i}")
               for i in range(3)]
    [outcome] = verify_many([_files(tmp_path, inst, *bundles, jsonl=True)], root_json, POLICY)
    assert not outcome.ok and outcome.code == "IDENTITY_MISMATCH"
    assert outcome.message is not None and "none of the 3 bundles verified; line 3" in outcome.message
    assert outcome.bundle_line == 3 and outcome.exit_code == 1


def test_jsonl_with_a_malformed_line_is_refused_naming_it(tmp_path: Path,
                                                          inst: FakeInstance) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(inst.sign_artifact(ARTIFACT)) + "\n{\"mediaType\": 1}\n")
    with pytest.raises(BundleMalformedError, match="line 2"):
        read_bundles(str(path))


def test_a_pretty_printed_bundle_is_one_bundle(tmp_path: Path, inst: FakeInstance) -> None:
    path = tmp_path / "x.sigstore.json"
    path.write_text(json.dumps(inst.sign_artifact(ARTIFACT), indent=2))
    [(line, _)] = read_bundles(str(path))
    assert line is None
    path.write_text("{\n")
    with pytest.raises(BundleMalformedError, match="not valid JSON"):
        read_bundles(str(path))


# -- E: one hostile bundle fails alone -----------------------------------------------------------

@pytest.mark.parametrize("hostile", ['"\\ud800"', '"\u0661\u0662"'])
def test_a_hostile_bundle_fails_alone_with_one_line(tmp_path: Path, inst: FakeInstance,
                                                    root_json: bytes, hostile: str) -> None:
    good = _files(tmp_path, inst, inst.sign_artifact(ARTIFACT))
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _files(bad_dir, inst, inst.sign_artifact(ARTIFACT))
    text = Path(bad.bundle).read_text()
    entry_index = json.loads(text)["verificationMaterial"]["tlogEntries"][0]["logIndex"]
    Path(bad.bundle).write_text(text.replace(f'"logIndex": "{entry_index}"',
                                             f'"logIndex": {hostile}', 1))
    first, second = verify_many([bad, good], root_json, POLICY)
    assert not first.ok and first.code == "BUNDLE_MALFORMED" and first.exit_code == 2
    assert first.message is not None and "\n" not in first.message
    first.message.encode("utf-8")
    assert second.ok, second.message


# -- B4: GitHub's packaged root beside public-good's ---------------------------------------------

def test_github_root_is_packaged_and_trusted_beside_public_good_only(root_json: bytes) -> None:
    github = TrustedRoot.from_json(github_trusted_root_bytes())
    assert not github.tlogs and not github.ctlogs and github.timestamp_authorities
    assert all("GitHub" in ca.chain[0].subject.rfc4514_string()
               for ca in github.certificate_authorities)
    production = TrustedRoot.from_json(read_trusted_root_bytes())
    assert default_other_roots(production) == [github_trusted_root_bytes()]
    assert default_other_roots(TrustedRoot.from_json(root_json)) == []
    staging = TrustedRoot.from_json(read_trusted_root_bytes(instance="staging"))
    assert default_other_roots(staging) == []


# -- B6: DSSE payloads that name no artifact, verified from a bundle file ------------------------

def test_verify_payload_returns_the_verified_payload(tmp_path: Path, inst: FakeInstance,
                                                     root_json: bytes) -> None:
    path = tmp_path / "note.sigstore.json"
    path.write_text(json.dumps(inst.sign_dsse(b"release notes\n", payload_type="text/plain")))
    done = verify_payload(str(path), root_json, POLICY, payload_type="text/plain")
    assert done.outcome.ok, done.outcome.message
    assert (done.payload_type, done.payload) == ("text/plain", b"release notes\n")
    assert done.outcome.identity == DEFAULT_IDENTITY


def test_verify_payload_checks_the_payload_type_and_the_policy(
        tmp_path: Path, inst: FakeInstance, root_json: bytes) -> None:
    path = tmp_path / "note.sigstore.json"
    path.write_text(json.dumps(inst.sign_dsse(b"release notes\n", payload_type="text/plain")))
    wrong_type = verify_payload(str(path), root_json, POLICY, payload_type="application/json")
    assert not wrong_type.outcome.ok and wrong_type.outcome.code == "SUBJECT_MISMATCH"
    assert wrong_type.payload is None
    other = IdentityPolicy(identity="https://example.test/other", issuer=DEFAULT_ISSUER)
    assert verify_payload(str(path), root_json, other).outcome.code == "IDENTITY_MISMATCH"


def test_verify_payload_refuses_a_message_signature_bundle(
        tmp_path: Path, inst: FakeInstance, root_json: bytes) -> None:
    path = tmp_path / "a.sigstore.json"
    path.write_text(json.dumps(inst.sign_artifact(ARTIFACT)))
    done = verify_payload(str(path), root_json, POLICY)
    assert done.outcome.code == "BUNDLE_MALFORMED" and done.outcome.exit_code == 2
    with pytest.raises(UsageError, match="bundle_path"):
        verify_payload(MEGABYTES, root_json, POLICY)
