"""What makes one log (:class:`LogConfig`), its named defaults, and the limits on entries.

Options are checked once, when the config is built (docs/architecture.md habit 8): the
threads of the engine trust them afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import Error, LogEntryInvalidError, UsageError
from sealtrail.merkle import EMPTY_ROOT, leaf_hash
from sealtrail.models.checkpoint import Checkpoint, note_key_id, sign_note

__all__ = [
    "DEFAULT_BATCH_MAX",
    "DEFAULT_BATCH_WAIT",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_TILE_CACHE",
    "MAX_SEARCH_KEYS",
    "MAX_SEARCH_KIND_CHARS",
    "MAX_SEARCH_LIMIT",
    "MAX_SEARCH_VALUE_CHARS",
    "LogConfig",
    "check_search_keys",
    "is_int",
]

#: Seconds between checkpoints while no entry arrives. rekor-tiles' compose setup uses 2 s.
DEFAULT_CHECKPOINT_INTERVAL = 2.0
#: Entries sequenced per transaction (Trillian's log_signer uses 1000).
DEFAULT_BATCH_MAX = 1024
#: How long the writer gathers a batch after its first entry arrives.
DEFAULT_BATCH_WAIT = 0.005
#: Entries waiting to be sequenced or integrated beyond which add() pushes back.
DEFAULT_MAX_PENDING = 8192
#: Expanded full tiles kept for proofs (~16 KiB each, so at most ~64 MiB): every tile of a
#: log of 10^6 entries fits, and the most recent tiles of a bigger one.
DEFAULT_TILE_CACHE = 4096

#: Search keys per entry, and their bounds (values come from untrusted certificates).
MAX_SEARCH_KEYS = 32
MAX_SEARCH_KIND_CHARS = 64
MAX_SEARCH_VALUE_CHARS = 2048
#: The most indexes one search returns.
MAX_SEARCH_LIMIT = 1000

_SEARCH_KIND_RE = re.compile(r"\A[a-z0-9][a-z0-9_.:-]*\Z")


def is_int(value: object) -> bool:
    """An int that is not a bool (``True`` is not an index)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LogConfig:
    """What makes one log: its origin, signing key and write-path tuning.

    ``origin`` is the checkpoint's first line (``"rekor.example - 1234"`` for a Rekor v1
    style log, ``"log2026-1.example"`` for Rekor v2); ``key_name`` the signed-note name
    (the host of the log's base URL). ``private_key`` is a ``cryptography`` ECDSA (P-256
    for v1 logs) or Ed25519 (v2 logs) private key. Checked when built:
    :class:`~sealtrail.errors.UsageError` on any invalid option.
    """

    origin: str
    key_name: str
    private_key: Any
    checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL
    batch_max: int = DEFAULT_BATCH_MAX
    batch_wait: float = DEFAULT_BATCH_WAIT
    max_pending: int = DEFAULT_MAX_PENDING
    frozen: bool = False
    tile_cache_size: int = DEFAULT_TILE_CACHE
    #: The Merkle leaf hash of an entry body; None: RFC 6962 ``SHA-256(0x00 || body)``.
    #: A static CT log stores a TileLeaf and hashes the MerkleTreeLeaf inside it.
    leaf_hasher: Callable[[bytes], bytes] | None = None
    #: Signs a checkpoint body at a time (unix seconds) and returns the whole note;
    #: None: a C2SP signed note under ``key_name`` with ``private_key``. A static CT log
    #: signs with an RFC 6962 note signature (C2SP static-ct-api).
    note_signer: Callable[[str, float], str] | None = None

    def __post_init__(self) -> None:
        self.valid()

    def valid(self) -> None:
        """Check every option; raises :class:`~sealtrail.errors.UsageError`."""
        if not isinstance(self.origin, str):
            raise UsageError("the log origin must be a string", actual=self.origin)
        try:
            parsed = Checkpoint.from_body(Checkpoint(self.origin, 0, EMPTY_ROOT).to_body())
        except Error as exc:
            raise UsageError("invalid log origin", actual=self.origin) from exc
        if parsed.origin != self.origin:
            raise UsageError("invalid log origin (it must be one line)", actual=self.origin)
        try:
            sign_note("probe\n", self.key_name, ed25519.Ed25519PrivateKey.generate())
        except Error as exc:
            raise UsageError("invalid signed-note key name", actual=self.key_name) from exc
        if not isinstance(self.private_key, (ec.EllipticCurvePrivateKey,
                                             ed25519.Ed25519PrivateKey)):
            raise UsageError("the log key must be an ECDSA or Ed25519 private key",
                             actual=type(self.private_key).__name__)
        for name, value, low, high in (("checkpoint_interval", self.checkpoint_interval,
                                        0.01, 3600.0),
                                       ("batch_wait", self.batch_wait, 0.0, 10.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    low <= value <= high):
                raise UsageError(f"{name} is out of range", actual=value,
                                 expected=f"{low}..{high} seconds")
        for name, ivalue, ilow, ihigh in (("batch_max", self.batch_max, 1, 65536),
                                          ("max_pending", self.max_pending, 1, 10_000_000),
                                          ("tile_cache_size", self.tile_cache_size, 1,
                                           1_000_000)):
            if not is_int(ivalue) or not ilow <= ivalue <= ihigh:
                raise UsageError(f"{name} is out of range", actual=ivalue,
                                 expected=f"{ilow}..{ihigh}")
        if not isinstance(self.frozen, bool):
            raise UsageError("frozen must be a bool", actual=self.frozen)
        for name, hook in (("leaf_hasher", self.leaf_hasher),
                           ("note_signer", self.note_signer)):
            if hook is not None and not callable(hook):
                raise UsageError(f"{name} must be callable", actual=type(hook).__name__)

    def hash_leaf(self, body: bytes) -> bytes:
        """The Merkle leaf hash of an entry body (see ``leaf_hasher``)."""
        if self.leaf_hasher is None:
            return leaf_hash(body)
        return self.leaf_hasher(body)

    def sign_checkpoint(self, body: str, now: float) -> str:
        """The signed note for a checkpoint body (see ``note_signer``)."""
        if self.note_signer is None:
            return sign_note(body, self.key_name, self.private_key)
        return self.note_signer(body, now)

    @property
    def public_key(self) -> PublicKey:
        """The log's public key."""
        return PublicKey.from_key(self.private_key.public_key())

    @property
    def checkpoint_key_id(self) -> bytes:
        """The full 32-byte signed-note key id (the trusted root's logId for v2 logs)."""
        return note_key_id(self.key_name, self.private_key)


def check_search_keys(keys: Sequence[tuple[str, str]], *,
                      error: type[Error] = LogEntryInvalidError) -> tuple[tuple[str, str], ...]:
    """The (kind, value) pairs, checked and without repeats; raises ``error`` otherwise."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        raise error("search keys must be a sequence of (kind, value) pairs",
                    actual=type(keys).__name__)
    if len(keys) > MAX_SEARCH_KEYS:
        raise error("too many search keys", actual=len(keys), expected=f"<= {MAX_SEARCH_KEYS}")
    out = []
    for pair in keys:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise error("a search key is a (kind, value) pair", actual=pair)
        kind, value = pair
        if not isinstance(kind, str) or len(kind) > MAX_SEARCH_KIND_CHARS or \
                not _SEARCH_KIND_RE.match(kind):
            raise error("invalid search key kind", actual=kind,
                        expected="lower-case letters, digits, '_.:-' (at most 64)")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_SEARCH_VALUE_CHARS:
            raise error("invalid search key value", actual=value,
                        expected=f"a string of 1..{MAX_SEARCH_VALUE_CHARS} characters")
        out.append((kind, value))
    return tuple(dict.fromkeys(out))
