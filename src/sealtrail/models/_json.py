"""Checks on decoded JSON that every wire model shares (pure).

SPEC: RFC 8259 §8.2: a string holding a lone UTF-16 surrogate (written as a ``\\ud800``
escape) is not Unicode text; Python's ``json`` decodes it anyway, and the first ``encode()``
of it then raises ``UnicodeEncodeError`` far from the input. protobuf's JSON parsers (Go's
``protojson``) refuse such strings, and int64 values written with non-ASCII digits.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sealtrail.errors import Error

__all__ = ["parse_int64", "reject_lone_surrogates"]

E = TypeVar("E", bound=Error)

_INT64_RE = re.compile(r"-?[0-9]{1,20}", re.ASCII)


def reject_lone_surrogates(data: Any, what: str, error: type[E]) -> None:
    """Raise ``error`` if any string (key or value) in ``data`` is not encodable as UTF-8.

    Iterative, so a deeply nested document costs no recursion; the message names the
    document, never the offending text (which cannot even be printed).
    """
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = [key for key in item if isinstance(key, str)]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise error(f"{what} holds a string that is not Unicode text "
                                "(a lone UTF-16 surrogate)") from None


def parse_int64(value: Any, what: str, error: type[E], *, minimum: int = 0) -> int:
    """An int64 as protobuf JSON writes it: a JSON number or a string of ASCII digits."""
    if isinstance(value, bool):
        raise error(f"{what} must be an integer", actual=value)
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and _INT64_RE.fullmatch(value):
        result = int(value)
    else:
        raise error(f"{what} must be an integer (ASCII digits)",
                    actual=value.encode("ascii", "backslashreplace").decode()[:40]
                    if isinstance(value, str) else type(value).__name__)
    if result < minimum or result >= 2**63:
        raise error(f"{what} is out of range", actual=result)
    return result
