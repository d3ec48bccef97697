"""in-toto statements to attest: built from files and a predicate, or read ready-made.

SPEC: in-toto attestation framework v1, Statement layer: ``_type``
``https://in-toto.io/Statement/v1``, ``subject[]`` of ``{name, digest: {sha256: hex}}``,
``predicateType`` (a URI) and ``predicate`` (a JSON object).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sealtrail.errors import Error, InputError, UsageError
from sealtrail.models.intoto import INTOTO_PAYLOAD_TYPE, Statement

__all__ = ["INTOTO_PAYLOAD_TYPE", "STATEMENT_V1", "build_statement", "check_statement"]

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
MAX_STATEMENT_BYTES = 16 * 1024 * 1024  # the log refuses larger DSSE payloads anyway


def build_statement(subjects: Sequence[tuple[str, bytes]], predicate_type: str,
                    predicate: Any) -> bytes:
    """The JSON payload of a v1 statement over ``subjects`` (name, raw SHA-256 digest).

    Raises :class:`UsageError` for no subjects, a predicate type that is not an absolute
    URI, or a predicate that is not a JSON object.
    """
    if not subjects:
        raise UsageError("an attestation needs at least one subject")
    parts = urlsplit(predicate_type) if isinstance(predicate_type, str) else None
    if parts is None or not parts.scheme or not (parts.netloc or parts.path):
        raise UsageError("the predicate type must be an absolute URI", actual=predicate_type,
                         expected="e.g. https://slsa.dev/provenance/v1")
    if not isinstance(predicate, dict):
        raise UsageError("the predicate must be a JSON object", actual=type(predicate).__name__)
    for name, digest in subjects:
        if len(digest) != 32:
            raise UsageError(f"subject {name} needs a SHA-256 digest", actual=len(digest),
                             expected=32)
    statement = {
        "_type": STATEMENT_V1,
        "subject": [{"name": name, "digest": {"sha256": digest.hex()}} for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode()


def check_statement(payload: bytes) -> Statement:
    """Parse a ready-made statement; raise :class:`InputError` unless it is an in-toto
    statement (v0.1 or v1) with at least one subject."""
    if len(payload) > MAX_STATEMENT_BYTES:
        raise InputError("the statement is too large", actual=len(payload),
                         expected=f"<= {MAX_STATEMENT_BYTES} bytes")
    try:
        statement = Statement.from_payload(payload)
    except Error as exc:
        raise InputError(f"not an in-toto statement: {exc.message}", actual=exc.actual,
                         expected=exc.expected) from exc
    if not statement.subjects:
        raise InputError("the statement has no subjects")
    return statement
