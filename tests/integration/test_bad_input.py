"""Hostile and broken inputs: a one-line reason and exit 1 or 2, never a traceback or a hang.

These run the installed `sealtrail` command in a subprocess, so a traceback anywhere would
show on stderr, and an address-space limit makes unbounded memory use fail loudly.
"""

from __future__ import annotations

import base64
import copy
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from tests.samples import (
    BEACON_IDENTITY as IDENTITY,
    BEACON_ISSUER as ISSUER,
    RELEASE,
)

GOOD = json.loads((RELEASE / "hello.txt.sigstore.json").read_text())
MEMORY_LIMIT = 1024 * 1024 * 1024  # 1 GiB of address space is far more than verifying needs


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def verify(bundle_path: Path, *extra: str, artifact: Path = RELEASE / "hello.txt") -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "sealtrail"), "verify", str(artifact),
               "--bundle", str(bundle_path), "--certificate-identity", IDENTITY,
               "--certificate-oidc-issuer", ISSUER, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60,
                          preexec_fn=_limit_memory)


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: str) -> None:
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    # One line for the failure; a verification that failed (exit 1, not unreadable input)
    # also names the trusted root it was checked against, on a line of its own.
    if done.returncode == 1:
        assert len(lines) == 2 and lines[1].startswith("sealtrail: trusted root: "), done.stderr
    else:
        assert len(lines) == 1, done.stderr
    assert code in lines[0], lines[0]


def entry(bundle: dict[str, Any]) -> dict[str, Any]:
    return bundle["verificationMaterial"]["tlogEntries"][0]


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(bundle: dict[str, Any]) -> None:
        target = bundle
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _checkpoint(transform: Callable[[str], str]) -> Callable[[dict[str, Any]], None]:
    def mutate(bundle: dict[str, Any]) -> None:
        proof = entry(bundle)["inclusionProof"]
        proof["checkpoint"]["envelope"] = transform(proof["checkpoint"]["envelope"])
    return mutate


def _truncated(text: str) -> str:
    text = text.rstrip("=")
    return text[: len(text) - (len(text) % 4) - 3]


def _garbage_timestamp_only(bundle: dict[str, Any]) -> None:
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": "AAAA"}]}
    del entry(bundle)["inclusionPromise"]


TLOG = ["verificationMaterial", "tlogEntries", 0]
CERT = ["verificationMaterial", "certificate", "rawBytes"]

MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # Cut to 4k+1 characters: no base64 text can have that length, padded or not.
    "truncated base64 signature": (_set(["messageSignature", "signature"],
                                        _truncated(GOOD["messageSignature"]["signature"])),
                                   "BUNDLE_MALFORMED"),
    # Cut at a length that still decodes: the shorter signature no longer verifies.
    "base64 signature cut short": (_set(["messageSignature", "signature"],
                                        GOOD["messageSignature"]["signature"][:40]),
                                   "SIGNATURE_INVALID"),
    "signature of the wrong type": (_set(["messageSignature", "signature"], 12345), "BUNDLE_MALFORMED"),
    "tlog entries not a list": (_set(["verificationMaterial", "tlogEntries"], {"a": 1}), "BUNDLE_MALFORMED"),
    "log index as a float": (_set([*TLOG, "logIndex"], 1.5), "BUNDLE_MALFORMED"),
    "negative tree size": (_set([*TLOG, "inclusionProof", "treeSize"], "-1"), "BUNDLE_MALFORMED"),
    "unknown field": (_set(["verificationMaterial", "surprise"], True), "BUNDLE_MALFORMED"),
    "certificate that does not parse": (_set(CERT, base64.b64encode(b"\x30\x03\x02\x01\x01").decode()),
                                        "BUNDLE_MALFORMED"),
    "a million proof hashes": (_set([*TLOG, "inclusionProof", "hashes"],
                                    [base64.b64encode(bytes(32)).decode()] * 1_000_000),
                               "BUNDLE_MALFORMED"),
    "checkpoint without a blank line": (_checkpoint(lambda cp: cp.replace("\n\n", "\n")),
                                        "CHECKPOINT_INVALID"),
    "checkpoint with garbage signature": (_checkpoint(lambda cp: cp.split("\n\n")[0] + "\n\n\u2014 x !!!\n"),
                                          "CHECKPOINT_INVALID"),
    # The SET covers the body, so a replaced body is caught there first.
    "body that is not JSON": (_set([*TLOG, "canonicalizedBody"], base64.b64encode(b"{nope").decode()),
                              "SET_INVALID"),
    # An extra timestamp that cannot be verified is tolerated next to the inclusion promise
    # (sigstore-go's threshold of verified times); without the promise it is the only time.
    "timestamp that is garbage": (_garbage_timestamp_only, "TIMESTAMP_INVALID"),
    "deeply nested JSON": (_set(["verificationMaterial", "x"], None), "BUNDLE_MALFORMED"),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutated_bundle_fails_cleanly(name: str, tmp_path: Path) -> None:
    mutate, code = MUTATIONS[name]
    bundle = copy.deepcopy(GOOD)
    mutate(bundle)
    path = tmp_path / "bundle.json"
    text = json.dumps(bundle)
    if name == "deeply nested JSON":
        text = text[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(text)
    assert_clean_failure(verify(path), code)


@pytest.mark.integration
def test_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(GOOD)[:500])
    assert_clean_failure(verify(path), "BUNDLE_MALFORMED")


@pytest.mark.integration
def test_hundred_megabyte_bundle(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:
        handle.write(b'{"mediaType": "' + b"a" * (100 * 1024 * 1024) + b'"}')
    assert_clean_failure(verify(path), "BUNDLE_MALFORMED")


@pytest.mark.integration
def test_binary_garbage_and_empty_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(bytes(range(256)) * 64)
    assert_clean_failure(verify(garbage), "BUNDLE_MALFORMED")
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    assert_clean_failure(verify(empty), "BUNDLE_MALFORMED")


@pytest.mark.integration
def test_trusted_root_that_does_not_parse(tmp_path: Path) -> None:
    root = tmp_path / "root.json"
    root.write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", '
                    '"tlogs": [{"baseUrl": 5}]}')
    assert_clean_failure(verify(RELEASE / "hello.txt.sigstore.json", "--trusted-root", str(root)),
                         "TRUST_ROOT_MALFORMED")


@pytest.mark.integration
def test_artifact_that_is_a_directory(tmp_path: Path) -> None:
    done = verify(RELEASE / "hello.txt.sigstore.json", artifact=tmp_path)
    assert_clean_failure(done, "INPUT_INVALID")
