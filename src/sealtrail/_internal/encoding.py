"""Strict decoding helpers for untrusted JSON fields.

Every helper raises the error class it is given, so the caller decides which domain the
failure belongs to (a bundle, a trusted root...).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, TypeVar

from sealtrail.errors import Error

E = TypeVar("E", bound=Error)

_HEX_RE = re.compile(r"\A[0-9a-fA-F]*\Z")
# SPEC: protobuf JSON mapping accepts standard or URL-safe base64, with or without padding.
_B64_RE = re.compile(r"\A[A-Za-z0-9+/\-_]*={0,2}\Z")
# RFC 3339 as emitted by protobuf's Timestamp JSON mapping.
_RFC3339_RE = re.compile(
    r"\A(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def b64decode(value: Any, what: str, error: type[E]) -> bytes:
    """Decode base64 (standard or URL-safe, padding optional) or raise ``error``."""
    if not isinstance(value, str):
        raise error(f"{what} must be a base64 string", actual=type(value).__name__)
    try:
        # The common case, standard and padded, decoded and checked in C. Anything this
        # strict decoder refuses (URL-safe, unpadded, or invalid) takes the path below,
        # which accepts the same strings with the same result, and names the problem.
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    return _b64decode_lenient(value, what, error)


def _b64decode_lenient(value: str, what: str, error: type[E]) -> bytes:
    if not _B64_RE.match(value):
        raise error(f"{what} is not valid base64")
    text = value.replace("-", "+").replace("_", "/").rstrip("=")
    if len(text) % 4 == 1:
        raise error(f"{what} is truncated base64")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not valid base64") from exc


def hexdecode(value: Any, what: str, error: type[E]) -> bytes:
    """Decode a hex string or raise ``error``."""
    if not isinstance(value, str) or not _HEX_RE.match(value) or len(value) % 2:
        raise error(f"{what} must be a hex string")
    return bytes.fromhex(value)


def parse_int(value: Any, what: str, error: type[E], *, minimum: int = 0) -> int:
    """Parse an int64 that protobuf JSON may encode as a string or a number."""
    if isinstance(value, bool):
        raise error(f"{what} must be an integer", actual=value)
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value):
        result = int(value)
    else:
        raise error(f"{what} must be an integer", actual=value)
    if result < minimum or result >= 2**63:
        raise error(f"{what} is out of range", actual=result)
    return result


def parse_rfc3339(value: Any, what: str, error: type[E]) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime."""
    if not isinstance(value, str):
        raise error(f"{what} must be an RFC 3339 string", actual=value)
    match = _RFC3339_RE.match(value)
    if not match:
        raise error(f"{what} is not an RFC 3339 timestamp", actual=value)
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micro = int((frac or ".0")[1:].ljust(6, "0")[:6])
    try:
        stamp = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
    except ValueError as exc:
        raise error(f"{what} is not a valid date", actual=value) from exc
    if zone in ("Z", "z"):
        return stamp.replace(tzinfo=timezone.utc)
    sign = 1 if zone[0] == "+" else -1
    offset_minutes = sign * (int(zone[1:3]) * 60 + int(zone[4:6]))
    from datetime import timedelta

    return (stamp - timedelta(minutes=offset_minutes)).replace(tzinfo=timezone.utc)


def require_dict(value: Any, what: str, error: type[E]) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object, else raise ``error``."""
    if not isinstance(value, dict):
        raise error(f"{what} must be a JSON object", actual=type(value).__name__)
    return value


def require_list(value: Any, what: str, error: type[E], *, max_items: int = 1024) -> list[Any]:
    """Return ``value`` if it is a JSON array of bounded length, else raise ``error``."""
    if not isinstance(value, list):
        raise error(f"{what} must be a JSON array", actual=type(value).__name__)
    if len(value) > max_items:
        raise error(f"{what} has too many items", actual=len(value), expected=f"<= {max_items}")
    return value


def require_str(value: Any, what: str, error: type[E]) -> str:
    """Return ``value`` if it is a JSON string, else raise ``error``."""
    if not isinstance(value, str):
        raise error(f"{what} must be a string", actual=type(value).__name__)
    return value


def _shown(value: Any) -> str:
    """``value`` with its JSON type, so ``"false"`` (a string) is not read as ``false``."""
    return f"{type(value).__name__} {value!r}"


def require_bool(value: Any, what: str, error: type[E]) -> bool:
    """Return ``value`` if it is a JSON boolean, else raise ``error``.

    Configuration is parsed strictly (ADR 0002): ``"false"`` is a non-empty string, and
    reading it for its truthiness would turn a feature *on*."""
    if not isinstance(value, bool):
        raise error(f"{what} must be true or false (a JSON boolean)", actual=_shown(value))
    return value


def require_json_int(value: Any, what: str, error: type[E], *, minimum: int = 0,
                     maximum: int = 2**63 - 1) -> int:
    """Return ``value`` if it is a JSON integer (not a boolean, a float or a string) in
    ``[minimum, maximum]``, else raise ``error``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{what} must be an integer", actual=_shown(value))
    if not minimum <= value <= maximum:
        raise error(f"{what} is out of range", actual=value, expected=f"{minimum}..{maximum}")
    return value


def reject_unknown(data: dict[str, Any], known: Iterable[str], what: str,
                   error: type[E]) -> None:
    """Raise ``error`` naming the fields of ``data`` that are not in ``known``.

    An unknown field is most often a typo ("builtinIssuers"), which lenient parsing would
    silently ignore, leaving the setting at its default."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise error(f"{what} has unknown fields: {', '.join(map(repr, unknown))}",
                    expected=f"only {', '.join(sorted(known))}")
