"""SHA256SUMS: what sha256sum writes is read back; everything else is refused, bounded."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from sealtrail.release import checksums
from sealtrail.release.checksums import parse_checksums, render_checksums
from sealtrail.release.errors import ChecksumsMalformedError

A = hashlib.sha256(b"a").hexdigest()
B = hashlib.sha256(b"b").hexdigest()


def test_render_is_sorted_text_mode_lines() -> None:
    assert render_checksums({"b.tar.gz": B, "a.whl": A}) == (
        f"{A}  a.whl\n{B}  b.tar.gz\n".encode())


def test_round_trip() -> None:
    entries = {"app.exe": A, "app linux.tar.gz": B}
    assert parse_checksums(render_checksums(entries)) == entries


def test_sha256sum_reads_what_is_written_and_writes_what_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum")
    for name, data in (("a.txt", b"a"), ("b c.bin", b"b")):
        (tmp_path / name).write_bytes(data)
    produced = subprocess.run(["sha256sum", "a.txt", "b c.bin"], cwd=tmp_path, check=True,
                              capture_output=True).stdout
    assert parse_checksums(produced) == {"a.txt": A, "b c.bin": B}
    (tmp_path / "SUMS").write_bytes(render_checksums({"a.txt": A, "b c.bin": B}))
    assert subprocess.run(["sha256sum", "-c", "SUMS"], cwd=tmp_path).returncode == 0


def test_binary_mode_marker_is_read() -> None:
    assert parse_checksums(f"{A} *a.bin\n".encode()) == {"a.bin": A}


@pytest.mark.parametrize("data, fragment", [
    (b"", "empty"),
    (f"{A}  a".encode(), "newline"),
    (f"{A.upper()}  a\n".encode(), "line 1"),
    (f"{A[:-1]}  a\n".encode(), "line 1"),
    (f"{A} a\n".encode(), "line 1"),
    (f"{A}  a\n\n".encode(), "line 2"),
    (f"{A}  dir/a\n".encode(), "plain name"),
    (f"{A}  ..\n".encode(), "plain name"),
    (f"\\{A}  a\\\\b\n".encode(), "line 1"),
    (f"{A}  a\n{B}  a\n".encode(), "listed twice"),
    (f"{A}  a\r\n".encode(), "control character"),
    (A.encode() + b"  \xff\n", "not UTF-8"),
    (f"{A}  {'x' * 256}\n".encode(), "too long"),
])
def test_malformed_files_are_refused(data: bytes, fragment: str) -> None:
    with pytest.raises(ChecksumsMalformedError) as caught:
        parse_checksums(data)
    assert fragment in caught.value.diagnostics()
    assert caught.value.code == "CHECKSUMS_MALFORMED" and caught.value.exit_code == 2


def test_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checksums, "MAX_ENTRIES", 2)
    parse_checksums(f"{A}  a\n{B}  b\n".encode())
    with pytest.raises(ChecksumsMalformedError, match="too many"):
        parse_checksums(f"{A}  a\n{B}  b\n{A}  c\n".encode())
    monkeypatch.setattr(checksums, "MAX_CHECKSUMS_BYTES", 10)
    with pytest.raises(ChecksumsMalformedError, match="too large"):
        parse_checksums(f"{A}  a\n".encode())


@pytest.mark.parametrize("entries, fragment", [
    ({}, "at least one"),
    ({"a": "xyz"}, "64 lowercase hex"),
    ({"a": A.upper()}, "64 lowercase hex"),
    ({"a/b": A}, "plain name"),
    ({"a\nb": A}, "control character"),
])
def test_render_refuses_what_it_could_not_read_back(entries: dict[str, str],
                                                   fragment: str) -> None:
    with pytest.raises(ChecksumsMalformedError) as caught:
        render_checksums(entries)
    assert fragment in caught.value.diagnostics()
