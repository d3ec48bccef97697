"""Which files of a release are artifacts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sealtrail.release.layout import hash_artifacts, is_output, scan


def test_outputs_are_not_artifacts() -> None:
    names = frozenset({"app", "app.sig", "app.pem", "key.pem", "SHA256SUMS", "VERIFY.md",
                       "multiple.intoto.jsonl", "app.sigstore.json", ".app.123.tmp"})
    assert {n for n in names if not is_output(n, names)} == {"app", "key.pem"}


def test_scan_is_flat_and_does_not_follow_links(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "a.sigstore.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_text("b")
    os.symlink("/etc/hostname", tmp_path / "link")
    found = scan(str(tmp_path))
    assert found.artifacts == ["a"]
    assert found.names == {"a", "a.sigstore.json"}


def test_hash_artifacts(tmp_path: Path) -> None:
    for name in ("x", "y", "z"):
        (tmp_path / name).write_bytes(name.encode())
    assert hash_artifacts(str(tmp_path), ["x", "y", "z"]) == {
        n: hashlib.sha256(n.encode()).hexdigest() for n in "xyz"}
    assert hash_artifacts(str(tmp_path), ["x"]) == {"x": hashlib.sha256(b"x").hexdigest()}
