"""Output files (all or nothing), managed keys, and in-toto statements."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import InputError, KeyMalformedError, UsageError
from sealtrail.sign.keys import generate_key_pair, load_private_key
from sealtrail.sign.outputs import StagedOutputs
from sealtrail.sign.statement import build_statement, check_statement


# -- outputs ----------------------------------------------------------------------------------

def test_outputs_are_written_together(tmp_path: Path) -> None:
    outputs = StagedOutputs()
    paths = [str(tmp_path / "a.json"), str(tmp_path / "b.key")]
    outputs.plan(paths)
    assert not any(os.path.exists(p) for p in paths)  # planning writes nothing
    outputs.put(paths[0], b"bundle")
    outputs.put(paths[1], b"secret", mode=0o600)
    assert outputs.commit() == paths
    assert Path(paths[0]).read_bytes() == b"bundle"
    assert stat.S_IMODE(os.stat(paths[1]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(paths[0]).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.key"]  # no temporaries left


def test_existing_outputs_are_refused_unless_overwriting(tmp_path: Path) -> None:
    existing = tmp_path / "a.json"
    existing.write_text("old")
    with pytest.raises(UsageError, match="exists; pass --overwrite"):
        StagedOutputs().plan([str(existing)])
    outputs = StagedOutputs(overwrite=True)
    outputs.plan([str(existing)])
    outputs.put(str(existing), b"new")
    outputs.commit()
    assert existing.read_text() == "new"


@pytest.mark.parametrize("paths,message", [
    (["x.json", "./x.json"], "written twice"),
    (["missing-dir/x.json"], "does not exist"),
    (["."], "is a directory"),
])
def test_bad_plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paths: list[str],
                   message: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=message):
        StagedOutputs().plan(paths)


def test_unplanned_or_missing_content(tmp_path: Path) -> None:
    outputs = StagedOutputs()
    outputs.plan([str(tmp_path / "a")])
    with pytest.raises(UsageError, match="not planned"):
        outputs.put(str(tmp_path / "b"), b"")
    with pytest.raises(UsageError, match="no content"):
        outputs.commit()


def test_a_failure_while_moving_into_place_leaves_nothing(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = StagedOutputs()
    paths = [str(tmp_path / f"{n}.json") for n in "abc"]
    outputs.plan(paths)
    for path in paths:
        outputs.put(path, b"data")
    real_link = os.link
    calls = []

    def flaky_link(source: str, target: str) -> None:
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", target)
        real_link(source, target)

    monkeypatch.setattr(os, "link", flaky_link)
    with pytest.raises(InputError, match="No space left"):
        outputs.commit()
    assert os.listdir(tmp_path) == []  # the first file was removed again, temporaries too


def test_a_file_appearing_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    outputs = StagedOutputs()
    path = tmp_path / "a.json"
    outputs.plan([str(path)])
    outputs.put(str(path), b"ours")
    path.write_text("theirs")
    with pytest.raises(UsageError, match="appeared while signing"):
        outputs.commit()
    assert path.read_text() == "theirs" and os.listdir(tmp_path) == ["a.json"]


def test_staged_outputs_never_show_at_their_targets_before_commit(tmp_path: Path) -> None:
    # put() writes a hidden temporary beside the target at once (from worker threads, as
    # files finish); the targets appear only at commit, all together.
    from concurrent.futures import ThreadPoolExecutor

    paths = [str(tmp_path / f"f{i}.json") for i in range(40)]
    with StagedOutputs() as outputs:
        outputs.plan(paths)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: outputs.put(p, p.encode()), paths))
        listed = os.listdir(tmp_path)
        assert len(listed) == 40 and all(n.startswith(".f") and n.endswith(".tmp")
                                         for n in listed)
        assert outputs.commit() == paths
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)
    assert all(Path(p).read_bytes() == p.encode() for p in paths)


def test_a_failed_run_removes_its_temporaries(tmp_path: Path) -> None:
    paths = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    with pytest.raises(RuntimeError, match="signing failed"):
        with StagedOutputs() as outputs:
            outputs.plan(paths)
            outputs.put(paths[0], b"done")
            assert len(os.listdir(tmp_path)) == 1
            raise RuntimeError("signing failed")  # the second file never came
    assert os.listdir(tmp_path) == []


def test_putting_twice_keeps_the_last_content(tmp_path: Path) -> None:
    path = str(tmp_path / "a.json")
    with StagedOutputs() as outputs:
        outputs.plan([path])
        outputs.put(path, b"first")
        outputs.put(path, b"second")
        assert len(os.listdir(tmp_path)) == 1  # the first temporary was removed
        outputs.commit()
    assert os.listdir(tmp_path) == ["a.json"] and Path(path).read_bytes() == b"second"


def test_a_leftover_temporary_is_never_reused(tmp_path: Path) -> None:
    # Temporaries are created exclusively: a file already holding the next name (say, left
    # by a killed run) is neither opened nor replaced; the next free name is taken.
    path = str(tmp_path / "a.json")
    with StagedOutputs() as outputs:
        outputs.plan([path])
        squatter = tmp_path / f".a.json.{outputs._tag}-0.tmp"
        squatter.write_bytes(b"not ours")
        outputs.put(path, b"ours")
        outputs.commit()
    assert Path(path).read_bytes() == b"ours" and squatter.read_bytes() == b"not ours"


def test_a_name_that_is_always_taken_is_an_input_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "a.json")
    outputs = StagedOutputs()
    outputs.plan([path])
    monkeypatch.setattr("sealtrail.sign.outputs._NAME_ATTEMPTS", 2)
    for n in range(2):
        (tmp_path / f".a.json.{outputs._tag}-{n}.tmp").write_bytes(b"x")
    with pytest.raises(InputError, match="no free temporary name"):
        outputs.put(path, b"ours")


def test_modes_are_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        paths = [str(tmp_path / "public.json"), str(tmp_path / "private.key")]
        with StagedOutputs() as outputs:
            outputs.plan(paths)
            outputs.put(paths[0], b"bundle")
            outputs.put(paths[1], b"key", mode=0o600)
            outputs.commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(paths[0]).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(paths[1]).st_mode) == 0o600


def test_a_commit_leaves_nothing_for_discard(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Moved temporaries are forgotten, so the cleanup after a commit removes nothing (it
    # used to try, and fail, once per file).
    paths = [str(tmp_path / f"{n}.json") for n in "abc"]
    removed: list[str] = []
    monkeypatch.setattr("sealtrail.sign.outputs._remove", removed.append)
    with StagedOutputs() as outputs:
        outputs.plan(paths)
        for path in paths:
            outputs.put(path, b"data")
        outputs.commit()
    assert removed == []


def test_a_directory_gone_since_planning_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "out" / "a.json"
    path.parent.mkdir()
    with StagedOutputs() as outputs:
        outputs.plan([str(path)])
        path.parent.rmdir()
        with pytest.raises(InputError, match="cannot write"):
            outputs.put(str(path), b"x")


# -- keys -------------------------------------------------------------------------------------

def test_generated_keys_are_encrypted_and_load_back() -> None:
    private, public = generate_key_pair(b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in private and b"PUBLIC KEY" in public
    key = load_private_key(private, b"correct horse")
    assert key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) == public
    with pytest.raises(KeyMalformedError, match="wrong passphrase"):
        load_private_key(private, b"wrong")
    with pytest.raises(KeyMalformedError, match="needs a passphrase"):
        load_private_key(private, None)
    with pytest.raises(UsageError, match="non-empty passphrase"):
        generate_key_pair(b"")


def test_only_p256_keys_are_accepted() -> None:
    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(KeyMalformedError, match="P-256"):
        load_private_key(other, None)
    with pytest.raises(KeyMalformedError):
        load_private_key(b"not a key", None)
    with pytest.raises(KeyMalformedError, match="too large"):
        load_private_key(b"x" * 70_000, None)


# -- statements -------------------------------------------------------------------------------

def test_statement_from_files() -> None:
    digest = hashlib.sha256(b"a").digest()
    payload = build_statement([("a.txt", digest)], "https://slsa.dev/provenance/v1", {"k": 1})
    data = json.loads(payload)
    assert data == {"_type": "https://in-toto.io/Statement/v1",
                    "subject": [{"name": "a.txt", "digest": {"sha256": digest.hex()}}],
                    "predicateType": "https://slsa.dev/provenance/v1", "predicate": {"k": 1}}
    assert check_statement(payload).subjects[0].name == "a.txt"


@pytest.mark.parametrize("subjects,predicate_type,predicate,message", [
    ([], "https://x.test/p", {}, "at least one subject"),
    ([("a", b"\0" * 32)], "not a uri", {}, "absolute URI"),
    ([("a", b"\0" * 32)], "https://x.test/p", [1], "JSON object"),
    ([("a", b"\0" * 20)], "https://x.test/p", {}, "SHA-256"),
])
def test_bad_statement_inputs(subjects: list, predicate_type: str, predicate: object,
                              message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_statement(subjects, predicate_type, predicate)


@pytest.mark.parametrize("payload,message", [
    (b"{", "not valid JSON"),
    (b'{"_type": "https://example.com/other", "subject": []}', "statement type"),
    (b'{"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "x"}',
     "no subjects"),
])
def test_ready_statements_are_checked(payload: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_statement(payload)
