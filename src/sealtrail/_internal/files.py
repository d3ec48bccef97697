"""Streaming file hashing: one pass, every requested digest, memory flat for any file size."""

from __future__ import annotations

import hashlib
import os
from typing import Iterable

from sealtrail.errors import InputError

__all__ = ["READ_CHUNK", "digest_file"]

# Large enough for fast sequential reads, small enough to keep memory flat for any file size.
READ_CHUNK = 1024 * 1024


def digest_file(path: str, algorithms: Iterable[str] = ("sha256",), *,
                what: str = "artifact") -> dict[str, bytes]:
    """Stream ``path`` through each hash in ``algorithms`` (hashlib names) in one pass.

    Raises :class:`InputError` naming ``what`` if the file cannot be read.
    """
    hashers = {name: hashlib.new(name) for name in algorithms}
    try:
        with open(path, "rb", buffering=0) as handle:
            # A small file needs no 1 MiB buffer; a large one is read in fixed chunks.
            size = os.fstat(handle.fileno()).st_size
            buffer = bytearray(max(1, min(READ_CHUNK, size)))
            view = memoryview(buffer)
            while True:
                count = handle.readinto(buffer)
                if not count:
                    break
                for hasher in hashers.values():
                    hasher.update(view[:count])
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    return {name: hasher.digest() for name, hasher in hashers.items()}
