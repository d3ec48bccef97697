"""Each file of a release gets one verdict, with its own code."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from sealtrail.release.results import FileResult, classify, outcome_result

A, B, C = "a" * 64, "b" * 64, "c" * 64


class Outcome(NamedTuple):
    ok: bool
    code: str | None = None
    message: str | None = None
    identity: str | None = None
    issuer: str | None = None
    log_index: int | None = None


PASSED = Outcome(True, identity="me@example.com", issuer="https://issuer", log_index=7)


def verdicts(rows: list[FileResult]) -> dict[str, str | None]:
    return {row.name: row.code for row in rows}


def test_a_whole_release_passes() -> None:
    rows = classify({"x": A, "y": B}, {"x": A, "y": B}, ["x", "y"], {"x": PASSED, "y": PASSED})
    assert all(row.ok for row in rows)
    assert rows[0] == FileResult("x", "artifact", True, identity="me@example.com",
                                 issuer="https://issuer", log_index=7)


def test_each_failure_has_its_code_and_names_the_file() -> None:
    rows = classify(
        listed={"kept": A, "gone": B, "changed": A, "unsigned": C, "other": A, "broken": B},
        present={"kept": A, "changed": B, "unsigned": C, "other": A, "broken": B, "added": C},
        bundled=["kept", "changed", "other", "broken", "added", "orphan"],
        outcomes={"kept": PASSED, "changed": PASSED, "added": PASSED,
                  "other": Outcome(False, "IDENTITY_MISMATCH", "certificate identity x"),
                  "broken": Outcome(False, "TLOG_INCLUSION_INVALID", "bad proof")})
    assert verdicts(rows) == {
        "added": "ARTIFACT_EXTRA", "broken": "TLOG_INCLUSION_INVALID",
        "changed": "ARTIFACT_MODIFIED", "gone": "ARTIFACT_MISSING", "kept": None,
        "orphan": "ARTIFACT_EXTRA", "other": "SIGNED_BY_OTHER_IDENTITY",
        "unsigned": "ARTIFACT_EXTRA"}
    for row in rows:
        assert row.ok == (row.code is None)
        if not row.ok:
            assert row.name in (row.message or "") or row.code == "TLOG_INCLUSION_INVALID"
    messages = {row.name: row.message for row in rows}
    assert "not listed in SHA256SUMS" in (messages["added"] or "")
    assert "no bundle" in (messages["unsigned"] or "")
    assert "orphan.sigstore.json is the bundle of no artifact" == messages["orphan"]


@pytest.mark.parametrize("code, expected", [
    ("IDENTITY_MISMATCH", "SIGNED_BY_OTHER_IDENTITY"),
    ("ISSUER_MISMATCH", "SIGNED_BY_OTHER_IDENTITY"),
    ("EXTENSION_MISMATCH", "SIGNED_BY_OTHER_IDENTITY"),
    ("DIGEST_MISMATCH", "ARTIFACT_MODIFIED"),
    ("SIGNATURE_INVALID", "SIGNATURE_INVALID"),
    ("BUNDLE_MALFORMED", "BUNDLE_MALFORMED"),
])
def test_verifier_codes(code: str, expected: str) -> None:
    row = outcome_result("f", "artifact", Outcome(False, code, "why"))
    assert (row.ok, row.code) == (False, expected)


def test_rows_are_json_ready() -> None:
    row = outcome_result("f", "checksums", PASSED)
    assert row.to_json() == {"name": "f", "kind": "checksums", "ok": True, "code": None,
                             "message": None, "identity": "me@example.com",
                             "issuer": "https://issuer", "log_index": 7}
