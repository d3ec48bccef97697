"""The instance's CT log as a static-ct-api tile log: sequencing for the CA, and its read API.

The CA's :class:`~sealtrail.ca.ctlog.CTLog` gets :meth:`CTLogService.append` as its
sequencing step: every precertificate (issued through ``/api/v2/signingCert`` or submitted to
``add-pre-chain``) is durably sequenced in a :class:`~sealtrail.log.engine.LogEngine` before
its SCT is signed. The engine stores static-ct-api TileLeaf structures, hashes them with the
RFC 6962 leaf hash of their TimestampedEntry and signs checkpoints with an
RFC6962NoteSignature (the ``leaf_hasher`` and ``note_signer`` hooks of
:class:`~sealtrail.log.config.LogConfig`).

The entry's index is inside the entry (its ``leaf_index`` extension), so it must be known
before the entry is hashed: :meth:`CTLogService.append` submits a *built* entry, whose body
the sequencer builds from the index inside the transaction that assigns it (docs/ct-log.md,
"The index inside the entry"). Appends from many threads and from every replica sharing a
PostgreSQL sequencer are batched into common commits and always name their own index.

Read API under ``/ct`` (SPEC: C2SP static-ct-api, monitoring prefix = ``<public URL>/ct``):
``checkpoint``, ``tile/<L>/<N>[.p/<W>]`` (hash tiles), ``tile/data/<N>[.p/<W>]`` (TileLeaf
structures back to back; the engine's entry bundles, without their uint16 length prefixes)
and ``issuer/<hex SHA-256>`` (issuer certificates, DER). Bad paths are 404 JSON errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sealtrail.ca.ctlog import CTLog, merkle_leaf_hash
from sealtrail.errors import Error, InputError, LogStorageError, ServiceUnavailableError
from sealtrail.log.clock import SYSTEM_CLOCK, Clock
from sealtrail.log.engine import DEFAULT_CHECKPOINT_INTERVAL, LogConfig, LogEngine
from sealtrail.log.storage import LogStorage
from sealtrail.merkle.tiles import MAX_ENTRY_SIZE, decode_entry_bundle, parse_tile_path
from sealtrail.server._http import ApiError
from sealtrail.server.log_api import CHECKPOINT_CACHE, FULL_TILE_CACHE, PARTIAL_TILE_CACHE

__all__ = ["DEFAULT_SEQUENCE_TIMEOUT", "CTLogService", "ct_log_origin"]

_log = logging.getLogger("sealtrail.server.ct")

#: How long an issuance waits for its precertificate to be sequenced before answering 503.
DEFAULT_SEQUENCE_TIMEOUT = 10.0
_PREFIX = "/ct"


def ct_log_origin(public_url: str) -> str:
    """The checkpoint origin (and note key name) of the CT log of the instance at ``public_url``.

    SPEC: static-ct-api: the origin is the submission prefix as a schema-less URL with no
    trailing slash, e.g. ``sealtrail.example/ct``.
    """
    parts = urlsplit(public_url)
    return f"{parts.netloc}{parts.path.rstrip('/')}{_PREFIX}"


class CTLogService:
    """The CT log: a :class:`LogEngine` of TileLeaf entries, its sequencing step, its routes.

    Build with :meth:`open`; :meth:`close` when done. ``issuers`` are the certificates served
    at ``issuer/<hex>``: every CA certificate that may appear in an entry's chain (all CA
    generations, so old entries stay checkable after a rotation).
    """

    def __init__(self, engine: LogEngine, issuers: Sequence[x509.Certificate], *,
                 timeout: float) -> None:
        """Use :meth:`open`; this only wires the parts together."""
        self.engine = engine
        #: Seconds :meth:`append` waits for the commit of its entry (then 503).
        self.timeout = timeout
        self._issuers = {cert.fingerprint(hashes.SHA256()).hex():
                         cert.public_bytes(serialization.Encoding.DER) for cert in issuers}

    @classmethod
    def open(cls, storage: LogStorage, private_key: ec.EllipticCurvePrivateKey, origin: str,
             issuers: Sequence[x509.Certificate], *, timeout: float = DEFAULT_SEQUENCE_TIMEOUT,
             clock: Clock = SYSTEM_CLOCK,
             checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL) -> CTLogService:
        """Open (recovering) and start the CT log in ``storage`` under ``origin``.

        ``private_key`` is the CT log key (the SCT key of the trusted root's ``ctlogs``);
        ``timeout`` bounds how long :meth:`append` waits; ``checkpoint_interval`` is the
        engine's idle re-signing cadence. The engine owns ``storage``.
        Raises :class:`~sealtrail.errors.LogStorageError` or
        :class:`~sealtrail.errors.UsageError`.
        """
        signer = CTLog(private_key)
        log_config = LogConfig(
            origin, origin, private_key,
            # No gathering window: the entries that arrive while a commit runs form the
            # next batch (group commit), so a lone issuance waits for no one.
            batch_wait=0.0,
            leaf_hasher=merkle_leaf_hash,
            # The engine's clock is in seconds; RFC 6962 timestamps are milliseconds.
            note_signer=lambda body, now: signer.sign_checkpoint(body, int(now * 1000)),
            checkpoint_interval=checkpoint_interval)
        engine = LogEngine.open(log_config, storage, clock=clock)
        try:
            engine.start()
        except BaseException:
            engine.close()
            raise
        return cls(engine, issuers, timeout=timeout)

    @property
    def origin(self) -> str:
        """The checkpoint origin and note key name."""
        return self.engine.config.origin

    def close(self) -> None:
        """Stop the engine (idempotent)."""
        self.engine.close()

    # -- sequencing ---------------------------------------------------------------------

    def append(self, build: Callable[[int], bytes]) -> int:
        """Durably sequence ``build(index)`` at ``index``; return the index.

        The CA's :data:`~sealtrail.ca.ctlog.LeafAppender`. The entry is submitted as a
        built entry (:meth:`LogEngine.submit_built`): the sequencer calls ``build`` with
        the index inside the transaction that assigns it, so the index named in the entry
        is the one it gets, whichever replica or thread sequences, and concurrent appends
        share commits. ``build`` is called once here first (for index 0: every index
        encodes to the same length) so that an entry the log cannot hold fails this
        caller alone (``ValueError``), never the batch it would join.

        Raises :class:`ServiceUnavailableError` (503) when the log cannot sequence within
        the timeout, is closed, overloaded, or its storage fails; no SCT may be signed
        then. An entry whose commit comes after the timeout stays in the log, unpromised.
        """
        probe = build(0)
        if not 1 <= len(probe) <= MAX_ENTRY_SIZE:
            raise ValueError(f"the log entry would be {len(probe)} bytes; the log holds "
                             f"1..{MAX_ENTRY_SIZE}")
        try:
            future = self.engine.submit_built(build)
            result = future.result(self.timeout)
        except FutureTimeout:
            raise ServiceUnavailableError("the CT log did not sequence the precertificate "
                                          "in time; retry later",
                                          actual=f"{self.timeout} s") from None
        except Error as exc:  # closed, overloaded, storage failure: nothing was promised
            detail = exc.diagnostics()
            _log.error("CT log cannot sequence: %s", detail)
            raise ServiceUnavailableError("the CT log cannot sequence the precertificate; "
                                          "retry later", actual=detail) from exc
        if result.duplicate:  # pragma: no cover - built entries are never deduplicated
            raise ServiceUnavailableError("the CT log deduplicated a built entry",
                                          actual=result.index)
        return result.index

    # -- read API -------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The static-ct-api read routes under ``/ct``."""
        return [
            Route(_PREFIX + "/checkpoint", self._checkpoint, methods=["GET"]),
            Route(_PREFIX + "/tile/{path:path}", self._tile, methods=["GET"]),
            Route(_PREFIX + "/issuer/{fingerprint}", self._issuer, methods=["GET"]),
        ]

    async def _checkpoint(self, request: Request) -> Response:
        note = self.engine.latest_checkpoint().note
        return PlainTextResponse(note, headers={"Cache-Control": CHECKPOINT_CACHE})

    async def _tile(self, request: Request) -> Response:
        path = request.path_params["path"]
        data_tile = path.startswith("data/")
        try:
            # SPEC: static-ct-api: data tiles are at tile/data/<N>[.p/<W>], indexed as the
            # tlog-tiles entry bundles (which this API does not serve).
            ref = parse_tile_path("tile/" + ("entries/" + path[5:] if data_tile else path))
        except InputError as exc:
            raise ApiError(404, "NOT_FOUND", exc.diagnostics()) from None
        if ref.is_entries != data_tile:
            raise ApiError(404, "NOT_FOUND", "no such tile (data tiles are tile/data/<N>)")
        try:
            data = await run_in_threadpool(self._read_tile, ref.level, ref.index, ref.width)
        except LogStorageError as exc:
            raise ServiceUnavailableError("the CT log storage is unavailable",
                                          actual=exc.actual) from None
        cache = PARTIAL_TILE_CACHE if ref.is_partial else FULL_TILE_CACHE
        return Response(data, media_type="application/octet-stream",
                        headers={"Cache-Control": cache})

    def _read_tile(self, level: int | None, index: int, width: int | None) -> bytes:
        if level is not None:
            return self.engine.read_tile(level, index, width)
        bundle = self.engine.read_entry_bundle(index, width)
        try:
            # SPEC: static-ct-api: a data tile is the TileLeaf structures concatenated
            # (self-delimiting); the engine stores them uint16-length-prefixed.
            return b"".join(decode_entry_bundle(bundle))
        except InputError as exc:  # our own bundle does not parse: the storage is damaged
            raise LogStorageError("a CT log entry bundle does not parse",
                                  actual=exc.diagnostics()) from exc

    async def _issuer(self, request: Request) -> Response:
        fingerprint = request.path_params["fingerprint"]
        der = self._issuers.get(fingerprint)
        if der is None:
            raise ApiError(404, "NOT_FOUND", "no such issuer (the path is issuer/<64 lower-case "
                           "hex digits of the certificate's SHA-256>)")
        return Response(der, media_type="application/pkix-cert",
                        headers={"Cache-Control": FULL_TILE_CACHE})
