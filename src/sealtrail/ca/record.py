"""The CA's durable record of every certificate it issued (SQLite).

Certificate transparency already makes issuance public; this local record answers "what did
*our* CA issue, to whom, when" without a log query, and is written before the certificate is
returned (an issuance that cannot be recorded fails).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import TYPE_CHECKING, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealtrail.errors import ConfigInvalidError, ServiceUnavailableError

if TYPE_CHECKING:
    from sealtrail.ca.identities import Principal

__all__ = ["IssuanceRecord", "IssuedCertificate"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS issued (
    serial TEXT PRIMARY KEY,
    not_before TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    certificate BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_subject ON issued (subject);
"""


class IssuedCertificate(NamedTuple):
    """One row of the record."""

    serial: str  # hex
    not_before: str  # RFC 3339
    subject: str  # the SAN value
    issuer: str  # the OIDC issuer
    certificate: bytes  # DER


class IssuanceRecord:
    """Append-only record in ``path`` (created on first use, WAL, fsynced commits)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._lock = threading.Lock()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._db = sqlite3.connect(os.fspath(path), check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigInvalidError(f"cannot open the CA's issuance record {path}: {exc}") from exc

    def record(self, leaf: x509.Certificate, principal: Principal) -> None:
        """Record ``leaf`` issued to ``principal`` (a :class:`sealtrail.ca.identities.Principal`)."""
        row = (f"{leaf.serial_number:x}",
               leaf.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
               principal.san.value, principal.issuer, leaf.public_bytes(Encoding.DER))
        try:
            with self._lock:
                self._db.execute("INSERT INTO issued VALUES (?, ?, ?, ?, ?)", row)
        except sqlite3.Error as exc:
            # The certificate is not handed out: the CA answers 503 and the client retries.
            raise ServiceUnavailableError("the CA cannot record the certificate it would "
                                          f"issue: {exc}") from exc

    def by_subject(self, subject: str, limit: int = 100) -> list[IssuedCertificate]:
        """The certificates issued to ``subject`` (a SAN value), newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT serial, not_before, subject, issuer, certificate FROM issued "
                "WHERE subject = ? ORDER BY not_before DESC LIMIT ?", (subject, limit)).fetchall()
        return [IssuedCertificate(*row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM issued").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
