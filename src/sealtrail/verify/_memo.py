"""A bounded memory of checks that passed, so re-verifying the same material is cheap.

Admission controllers and CI jobs verify the same bundles over and over (one image verified
15,000 times a day is a real report). Signature and chain checks are deterministic: given the
same inputs and the same trusted root, they give the same answer. So a :class:`Verifier` may
remember a *passed* check under a key that is a SHA-256 digest over **every** input of that
check; a hit then means the identical check already passed. Failures are never stored, the
memory is bounded (least recently used entries go first), and it lives in one Verifier, whose
trusted root never changes.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable, TypeVar, cast

__all__ = ["SuccessMemo"]

T = TypeVar("T")
DEFAULT_MAX_ENTRIES = 4096


def memo_key(*parts: bytes | str | int) -> bytes:
    """An unambiguous digest of ``parts`` (each is type-tagged and length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            data, tag = part.encode(), b"s"
        elif isinstance(part, int):
            data, tag = str(part).encode(), b"i"
        else:
            data, tag = bytes(part), b"b"
        digest.update(tag + len(data).to_bytes(8, "big") + data)
    return digest.digest()


class SuccessMemo:
    """Thread-safe LRU of passed checks; ``max_entries=0`` disables it."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, object] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, key_parts: tuple[bytes | str | int, ...], predicate: Callable[[], bool]) -> bool:
        """Whether ``predicate`` holds for these inputs; only ``True`` is remembered."""
        if self._max <= 0:
            return predicate()
        key = memo_key(*key_parts)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return True
        if not predicate():
            return False
        self._store(key, True)
        return True

    def run(self, key_parts: tuple[bytes | str | int, ...], check: Callable[[], T]) -> T:
        """Return the remembered result of ``check`` for these inputs, or run it.

        ``check`` raises on failure; only a returned result is remembered.
        """
        if self._max <= 0:
            return check()
        key = memo_key(*key_parts)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                # The key covers the check's inputs and kind, so what is stored under it
                # is a result of this same check.
                return cast(T, self._entries[key])
        result = check()
        self._store(key, result)
        return result

    def _store(self, key: bytes, value: object) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
