"""Fake transparency logs that sign checkpoints, for tests.

A :class:`FakeLog` holds a fresh private key and the matching trusted-root
:class:`~sealtrail.models.trusted_root.TransparencyLog`, and signs checkpoints for any
origin, size and root::

    log = make_ed25519_log()              # Rekor v2 style: origin = host, Ed25519 key
    envelope = log.checkpoint(size, root) # full signed note text
    verify_checkpoint(envelope, log.log)  # passes

    v1 = make_ecdsa_log()                 # Rekor v1 style: "<host> - <tree id>", P-256

``add_cosignature`` appends a witness cosignature line (modelled on C2SP
tlog-cosignature) so tests can check that unknown signers are ignored.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sealtrail.crypto.keys import PublicKey
from sealtrail.models.checkpoint import Checkpoint, NoteSignature, note_key_id, sign_note
from sealtrail.models.trusted_root import TransparencyLog, ValidityWindow

__all__ = [
    "DEFAULT_START",
    "FakeLog",
    "add_cosignature",
    "add_signature_line",
    "b64",
    "checkpoint_body",
    "make_ecdsa_log",
    "make_ed25519_log",
    "make_rsa_log",
    "make_witness_key",
]

DEFAULT_START = datetime(2020, 1, 1, tzinfo=timezone.utc)
# A real public-good Rekor v1 tree id, so fabricated origins look like the real ones.
DEFAULT_TREE_ID = 1193050959916656506


def checkpoint_body(origin: str, size: int, root_hash: bytes,
                    extensions: tuple[str, ...] = ()) -> str:
    """The checkpoint text ``origin\\nsize\\nb64(root)\\n[ext\\n...]``."""
    return Checkpoint(origin, size, root_hash, tuple(extensions)).to_body()


@dataclass
class FakeLog:
    """A log key plus its trusted-root entry; signs checkpoints."""

    private_key: Any
    log: TransparencyLog
    tree_id: int | None  # Rekor v1 style logs only

    @property
    def name(self) -> str:
        """The signed-note key name (host of the base URL)."""
        return self.log.origin_name

    @property
    def origin(self) -> str:
        """The origin line this log writes."""
        if self.tree_id is None:
            return self.name
        return f"{self.name} - {self.tree_id}"

    @property
    def key_id(self) -> bytes:
        """The full note key id (the first 4 bytes are the signature-line hint)."""
        return note_key_id(self.name, self.private_key)

    def sign(self, body: str, name: str | None = None) -> str:
        """Sign arbitrary note text with the log key (``name`` defaults to the log's)."""
        return sign_note(body, name or self.name, self.private_key)

    def checkpoint(self, size: int, root_hash: bytes, *, origin: str | None = None,
                   extensions: tuple[str, ...] = ()) -> str:
        """A signed checkpoint envelope for ``size`` and ``root_hash``."""
        body = checkpoint_body(origin if origin is not None else self.origin, size,
                               root_hash, extensions)
        return self.sign(body)


def _make_log(private_key: Any, base_url: str, log_id: bytes | None, tree_id: int | None,
              start: datetime, end: datetime | None) -> FakeLog:
    public = PublicKey.from_key(private_key.public_key())
    name = urlsplit(base_url).hostname or base_url
    if log_id is None:
        # Rekor v1: SHA-256(SPKI); Rekor v2: the note key id. For ECDSA both coincide.
        log_id = note_key_id(name, public)
    log = TransparencyLog(base_url, public, ValidityWindow(start, end), log_id)
    return FakeLog(private_key, log, tree_id)


def make_ecdsa_log(base_url: str = "https://rekor.fake.test", *,
                   tree_id: int | None = DEFAULT_TREE_ID, curve: ec.EllipticCurve | None = None,
                   start: datetime = DEFAULT_START, end: datetime | None = None) -> FakeLog:
    """A Rekor v1 style log: P-256 key, origin ``<host> - <tree id>``.

    Pass ``tree_id=None`` for a Rekor v2 log that signs with ECDSA (bare origin).
    """
    key = ec.generate_private_key(curve or ec.SECP256R1())
    return _make_log(key, base_url, None, tree_id, start, end)


def make_ed25519_log(base_url: str = "https://log2099-1.rekor.fake.test", *,
                     start: datetime = DEFAULT_START, end: datetime | None = None) -> FakeLog:
    """A Rekor v2 style log: Ed25519 key, origin = host, logId = note key id."""
    key = ed25519.Ed25519PrivateKey.generate()
    return _make_log(key, base_url, None, None, start, end)


def make_rsa_log(base_url: str = "https://rsa-log.fake.test", *,
                 start: datetime = DEFAULT_START, end: datetime | None = None) -> FakeLog:
    """A log with an RSA-2048 PKCS#1 v1.5 note key (bare origin); slow-ish to make."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _make_log(key, base_url, None, None, start, end)


def make_witness_key() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 key for :func:`add_cosignature`."""
    return ed25519.Ed25519PrivateKey.generate()


def add_signature_line(note_text: str, name: str, key_hint: bytes, signature: bytes, *,
                       first: bool = False) -> str:
    """Insert a raw signature line (any bytes) at the end or, with ``first``, the start."""
    line = NoteSignature(name, key_hint, signature).to_line()
    body, _, block = note_text.partition("\n\n")
    block = line + block if first else block + line
    return body + "\n\n" + block


def add_cosignature(note_text: str, name: str, witness_key: ed25519.Ed25519PrivateKey, *,
                    timestamp: int = 1_700_000_000, first: bool = False) -> str:
    """Add a witness cosignature line, modelled on C2SP tlog-cosignature/v1.

    Key id = SHA-256(name || 0x0A || 0x04 || key); the signature is the 8-byte timestamp
    followed by Ed25519 over ``"cosignature/v1\\ntime <t>\\n" + checkpoint text``.
    """
    body = note_text.partition("\n\n")[0] + "\n"
    raw = witness_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
    hint = hashlib.sha256(name.encode() + b"\n\x04" + raw).digest()[:4]
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()
    signature = struct.pack(">Q", timestamp) + witness_key.sign(message)
    return add_signature_line(note_text, name, hint, signature, first=first)


def b64(data: bytes) -> str:
    """Standard base64 text, as notes use."""
    return base64.b64encode(data).decode("ascii")
