"""SHA256SUMS: the format ``sha256sum`` writes and ``sha256sum -c`` reads, strictly.

SPEC: GNU coreutils, ``sha256sum`` (md5sum-compatible output): one line per file, the
64-character lowercase hex digest, a space, a space (text mode) or ``*`` (binary mode),
the file name, a newline. A name holding a backslash or a newline is escaped by GNU with a
leading ``\\``; a release's names never need that, so such lines are refused, as are paths
(a release is one flat directory), duplicates, blank lines and anything past the bounds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sealtrail.release.errors import ChecksumsMalformedError

__all__ = ["CHECKSUMS_NAME", "MAX_CHECKSUMS_BYTES", "MAX_ENTRIES", "check_name",
           "parse_checksums", "render_checksums"]

CHECKSUMS_NAME = "SHA256SUMS"
#: A release of this many files is already far past what a release page holds.
MAX_ENTRIES = 10_000
MAX_NAME_BYTES = 255  # NAME_MAX of common file systems
MAX_CHECKSUMS_BYTES = MAX_ENTRIES * (64 + 2 + MAX_NAME_BYTES + 1)
_LINE = re.compile(rb"([0-9a-f]{64}) ([ *])([^\n]+)")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def check_name(name: str) -> str:
    """``name`` if it can be a file of a flat release listed in SHA256SUMS; else
    :class:`ChecksumsMalformedError`."""
    if not isinstance(name, str) or not name:
        raise ChecksumsMalformedError("empty file name")
    if name in (".", "..") or "/" in name or "\\" in name:
        raise ChecksumsMalformedError("a release file name must be a plain name in the "
                                      "release directory", actual=name)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ChecksumsMalformedError("control character in a file name", actual=repr(name))
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ChecksumsMalformedError("file name is not UTF-8", actual=repr(name)) from None
    if len(encoded) > MAX_NAME_BYTES:
        raise ChecksumsMalformedError("file name too long", actual=f"{len(encoded)} bytes",
                                      expected=f"<= {MAX_NAME_BYTES}")
    return name


def parse_checksums(data: bytes) -> dict[str, str]:
    """The entries of a SHA256SUMS file: name -> lowercase hex digest, in file order."""
    if not isinstance(data, (bytes, bytearray)):
        raise ChecksumsMalformedError("SHA256SUMS must be bytes", actual=type(data).__name__)
    if len(data) > MAX_CHECKSUMS_BYTES:
        raise ChecksumsMalformedError("SHA256SUMS too large", actual=f"{len(data)} bytes",
                                      expected=f"<= {MAX_CHECKSUMS_BYTES}")
    if not data:
        raise ChecksumsMalformedError("SHA256SUMS is empty")
    if not data.endswith(b"\n"):
        raise ChecksumsMalformedError("SHA256SUMS does not end with a newline")
    entries: dict[str, str] = {}
    for number, line in enumerate(bytes(data[:-1]).split(b"\n"), start=1):
        match = _LINE.fullmatch(line)
        if match is None:
            raise ChecksumsMalformedError(
                f"SHA256SUMS line {number} is not '<64 lowercase hex>  <name>'",
                actual=line[:80].decode("utf-8", "replace"))
        try:
            name = match.group(3).decode("utf-8")
        except UnicodeDecodeError:
            raise ChecksumsMalformedError(f"SHA256SUMS line {number}: name is not UTF-8") \
                from None
        try:
            check_name(name)
        except ChecksumsMalformedError as exc:
            raise ChecksumsMalformedError(f"SHA256SUMS line {number}: {exc.message}",
                                          actual=exc.actual, expected=exc.expected) from None
        if name in entries:
            raise ChecksumsMalformedError(f"SHA256SUMS line {number}: {name} is listed twice")
        if len(entries) == MAX_ENTRIES:
            raise ChecksumsMalformedError("SHA256SUMS lists too many files",
                                          expected=f"<= {MAX_ENTRIES}")
        entries[name] = match.group(1).decode("ascii")
    return entries


def render_checksums(entries: Mapping[str, str]) -> bytes:
    """SHA256SUMS for ``entries`` (name -> hex digest), sorted by name, in text mode (two
    spaces), as ``sha256sum *`` prints it; every name and digest is checked first."""
    if not entries:
        raise ChecksumsMalformedError("a release needs at least one file")
    if len(entries) > MAX_ENTRIES:
        raise ChecksumsMalformedError("too many files", expected=f"<= {MAX_ENTRIES}")
    lines = []
    for name in sorted(entries):
        digest = entries[name]
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ChecksumsMalformedError(f"digest of {name} is not 64 lowercase hex",
                                          actual=str(digest)[:80])
        lines.append(f"{digest}  {check_name(name)}\n")
    return "".join(lines).encode("utf-8")
