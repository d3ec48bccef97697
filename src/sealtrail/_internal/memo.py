"""A bounded memory of pure parse results, for values a busy process sees again and again.

A signing run sends many log entries under one certificate, and a TSA puts the same
certificate in every token: remembering what those exact bytes parsed to skips repeated
X.509 work. The memory holds at most ``limit`` entries and is emptied when full, which
keeps hostile input from growing it and costs nothing per lookup. Only results of pure
functions of the key may be kept. (Checks that *passed* are remembered differently, by a
digest of all their inputs: :mod:`sealtrail.verify._memo`.)
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["BoundedMemo"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(dict[K, V], Generic[K, V]):
    """A dict of at most ``limit`` entries; :meth:`put` empties it when it is full."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` under ``key``."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
