"""Tiles in an S3-compatible object store, laid out as the C2SP tlog-tiles read API serves them.

Objects live at ``<prefix>/checkpoint``, ``<prefix>/tile/<L>/<N>[.p/<W>]`` and
``<prefix>/tile/entries/<N>[.p/<W>]``: point a CDN or a static bucket website at the prefix
and it serves the log's read API (docs/adr/0015).

An object store's PUT is atomic (a reader sees the old object or the new one) and durable
when acknowledged, so :meth:`S3TileStore.sync` is a no-op (docs/adr/0004). Several writers
may share a bucket (replicas, a stale integrator that has not noticed it lost its lease), so
writes use S3 conditional requests (SPEC: AWS S3 PutObject, ``If-None-Match`` and
``If-Match``; available on AWS since 2024):

- a full tile or entry bundle is create-only: once published its content never changes;
- a partial tile or bundle is written unconditionally: integration is deterministic, so one
  path always carries the same bytes;
- the checkpoint is a compare-and-swap on the ETag that never lowers the tree size.

Credentials come from boto3's standard chain (environment, shared credentials file,
instance or container role...); this module never takes a secret as an argument, and no
message it raises carries one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sealtrail.errors import Error, LogStorageError, UsageError
from sealtrail.log.storage.memory import check_object_path
from sealtrail.merkle.tiles import (
    ENTRY_BUNDLE_WIDTH,
    TILE_BYTES,
    decode_entry_bundle,
    parse_tile_path,
)

__all__ = ["S3TileStore"]

# Bounded so that an unavailable store fails a request within seconds instead of hanging
# the engine's writer: connect and read timeouts per attempt, and botocore's "standard"
# retry mode (exponential backoff with jitter, retries 5xx, throttling and connection
# errors) with few attempts. Worst case for one request about 3 x (2 + 5) s plus backoff.
_CONNECT_TIMEOUT = 2.0
_READ_TIMEOUT = 5.0
_TOTAL_ATTEMPTS = 3
# Parallel PUTs within one write_many (integration writes a tile per level and a bundle;
# recovery rewrites many), and the connection pool that serves them and the engine's
# reader threads.
_WRITE_THREADS = 8
_POOL_CONNECTIONS = 16
# Rounds of read-compare-write before giving up when other writers keep changing an object.
_CONDITIONAL_ROUNDS = 8
# The most keys one DeleteObjects request may name (SPEC: AWS S3 DeleteObjects).
_DELETE_BATCH = 1000

# Tiles never change once written at a path (full ones are create-only, partial ones are
# deterministic), so caches may keep them; the checkpoint must always be revalidated.
# The values Tessera uses (/work/shared/reference/scale-out.md).
_TILE_CACHE_CONTROL = "max-age=604800, immutable"
_CHECKPOINT_CACHE_CONTROL = "no-cache"
_TILE_CONTENT_TYPE = "application/octet-stream"
_CHECKPOINT_CONTENT_TYPE = "text/plain; charset=utf-8"

CHECKPOINT = "checkpoint"


def _normalise_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise UsageError("the object key prefix must be a string",
                         actual=type(prefix).__name__)
    segments = [s for s in prefix.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise UsageError("the object key prefix may not hold '.' or '..' segments",
                         actual=prefix)
    return "/".join(segments)


def _checkpoint_size(note: bytes) -> int | None:
    """The tree size of a signed checkpoint, or None if it is not one.

    SPEC: C2SP tlog-checkpoint: the body is the origin line, then the tree size in ASCII
    decimal (no leading zeros), then the base64 root hash, each ending in a newline.
    """
    lines = note.split(b"\n", 2)
    if len(lines) < 3:
        return None
    size = lines[1]
    if not size.isdigit() or (len(size) > 1 and size.startswith(b"0")):
        return None
    return int(size)


def _well_formed_full(path: str, data: bytes) -> bool:
    """Whether ``data`` is well-formed as the full tile or entry bundle at ``path``."""
    if parse_tile_path(path).is_entries:
        try:
            decode_entry_bundle(data, ENTRY_BUNDLE_WIDTH)
        except Error:
            return False
        return True
    return len(data) == TILE_BYTES


class S3TileStore:
    """A :class:`~sealtrail.log.storage.protocols.TileStore` in an S3-compatible bucket.

    Safe to use from several threads (boto3 clients are thread-safe) and from several
    processes or hosts at once (the conditional writes above).
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, client: Any = None) -> None:
        """Use ``bucket`` (which must exist), objects under ``prefix``.

        ``endpoint_url`` names an S3-compatible server (path-style addressing is used
        then); None is AWS. ``region`` None takes boto3's default (``AWS_REGION``, the
        config file). ``client`` is a ready boto3 S3 client (its own timeouts apply);
        otherwise one is made with bounded timeouts and retries, credentials from the
        standard chain. Raises :class:`~sealtrail.errors.UsageError` for a bad bucket
        name or prefix, :class:`~sealtrail.errors.LogStorageError` if no client can be
        made (boto3 missing, a malformed endpoint). Makes no request.
        """
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise UsageError("an S3 bucket name is required (no '/')", actual=bucket)
        self.bucket = bucket
        self.prefix = _normalise_prefix(prefix)
        self._key_prefix = self.prefix + "/" if self.prefix else ""
        try:
            import botocore.exceptions  # type: ignore[import-untyped]
        except ImportError as exc:
            raise LogStorageError("S3 tile storage needs boto3 (pip install "
                                  "'sealtrail[server]')") from exc
        self._client_error: type[Exception] = botocore.exceptions.ClientError
        self._failures: tuple[type[BaseException], ...] = (
            botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError)
        # A client passed in stays its owner's to close.
        self._owns_client = client is None
        self._client = client if client is not None else self._new_client(endpoint_url,
                                                                          region)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        # (ETag, tree size) of the checkpoint this store last wrote (see _write_checkpoint).
        self._checkpoint_memo: tuple[str, int] | None = None

    def _new_client(self, endpoint_url: str | None, region: str | None) -> Any:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        config = Config(
            connect_timeout=_CONNECT_TIMEOUT, read_timeout=_READ_TIMEOUT,
            retries={"mode": "standard", "total_max_attempts": _TOTAL_ATTEMPTS},
            max_pool_connections=_POOL_CONNECTIONS,
            # S3-compatible servers are addressed by path (bucket in the path, not the
            # host name): what they support everywhere, with no wildcard DNS needed.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        failures: tuple[type[BaseException], ...] = (ValueError, *self._failures)
        try:
            # A session of its own: the default session is shared and not thread-safe.
            session = boto3.session.Session(region_name=region)
            return session.client("s3", endpoint_url=endpoint_url, config=config)
        except failures as exc:
            raise LogStorageError("cannot set up the S3 client",
                                  actual=type(exc).__name__) from exc

    # -- requests ------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        return self._key_prefix + check_object_path(path)

    def _error(self, what: str, path: str, exc: BaseException) -> LogStorageError:
        """A LogStorageError naming the operation, the object and the failure kind only:
        botocore's own texts may carry endpoint URLs, never needed here."""
        if isinstance(exc, self._client_error):
            code, status = self._status(exc)
            kind = f"{code or '?'} (HTTP {status or '?'})"
        else:
            kind = type(exc).__name__
        return LogStorageError(what, actual=f"s3://{self.bucket}/{self._key_prefix}{path}: "
                                            f"{kind}")

    def _status(self, exc: BaseException) -> tuple[str, int]:
        """The S3 error code and HTTP status of a ClientError; ("", 0) for any other
        failure (some botocore errors carry a ``response`` attribute that is None)."""
        if not isinstance(exc, self._client_error):
            return "", 0
        response = getattr(exc, "response", None) or {}
        error = response.get("Error") or {}
        metadata = response.get("ResponseMetadata") or {}
        try:
            status = int(metadata.get("HTTPStatusCode", 0))
        except (TypeError, ValueError):
            status = 0
        return str(error.get("Code", "")), status

    def _lost_race(self, exc: BaseException) -> bool:
        """Whether a conditional PUT failed because the object is not as we assumed:
        412, or 409 ConditionalRequestConflict (AWS: another conditional write on the
        key was in flight). Both mean: read again and decide again."""
        code, status = self._status(exc)
        return status == 412 or code == "ConditionalRequestConflict"

    def _get(self, path: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None if there is none."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(path))
            return response["Body"].read(), str(response["ETag"])
        except self._failures as exc:
            code, status = self._status(exc)
            # A missing bucket is also a 404 but is a configuration failure, not a
            # missing object.
            if code == "NoSuchKey" or (status == 404 and code != "NoSuchBucket"):
                return None
            raise self._error("cannot read from the tile store", path, exc) from exc

    def _put(self, path: str, data: bytes, **condition: str) -> str | None:
        """PUT one object: its new ETag ("" if the store names none), or None if a
        condition failed (see :meth:`_lost_race`)."""
        is_checkpoint = path == CHECKPOINT
        try:
            response = self._client.put_object(
                Bucket=self.bucket, Key=self._key(path), Body=data,
                CacheControl=_CHECKPOINT_CACHE_CONTROL if is_checkpoint
                else _TILE_CACHE_CONTROL,
                ContentType=_CHECKPOINT_CONTENT_TYPE if is_checkpoint
                else _TILE_CONTENT_TYPE,
                **condition)
        except self._failures as exc:
            if condition and self._lost_race(exc):
                return None
            raise self._error("cannot write to the tile store", path, exc) from exc
        return str(response.get("ETag") or "")

    # -- TileStore -----------------------------------------------------------------------

    def read(self, path: str) -> bytes | None:
        """The object at ``path``, or None if it does not exist."""
        found = self._get(path)
        return None if found is None else found[0]

    def write_many(self, objects: Sequence[tuple[str, bytes]]) -> None:
        """Write every object (see the module docstring for the conditions), in parallel.

        Raises :class:`~sealtrail.errors.LogStorageError` if any write fails or is refused
        (the others may have been written: each is atomic, none depends on another).
        """
        checked = [(check_object_path(p), bytes(d)) for p, d in objects]
        if len(checked) <= 1:
            for path, data in checked:
                self._write_one(path, data)
            return
        futures = [self._executor().submit(self._write_one, p, d) for p, d in checked]
        # Wait for every write before raising, so none is still running after we return.
        failure: BaseException | None = None
        for future in futures:
            exc = future.exception()
            if exc is not None and failure is None:
                failure = exc
        if failure is not None:
            raise failure

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise LogStorageError("the tile store is closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_WRITE_THREADS,
                                                thread_name_prefix="sealtrail-s3-tiles")
            return self._pool

    def _write_one(self, path: str, data: bytes) -> None:
        if path == CHECKPOINT:
            self._write_checkpoint(data)
        elif parse_tile_path(path).is_partial:
            self._put(path, data)
        else:
            self._create_full(path, data)

    def _create_full(self, path: str, data: bytes) -> None:
        """Create a full tile or bundle; an existing one must hold the same bytes.

        A full object is published for good (clients and CDNs cache it forever): if one
        with other, well-formed content is there, the bucket holds another history (or a
        writer of the same log diverged), and replacing it would fork what readers saw.
        One that is not well-formed (a torn upload through another tool, tampering) is
        damage, and is replaced, conditionally on it being the object we judged.
        """
        condition = {"IfNoneMatch": "*"}
        for _ in range(_CONDITIONAL_ROUNDS):
            if self._put(path, data, **condition) is not None:
                return
            found = self._get(path)
            if found is None:  # deleted meanwhile: create it again
                condition = {"IfNoneMatch": "*"}
                continue
            existing, etag = found
            if existing == data:
                return
            if _well_formed_full(path, existing):
                raise LogStorageError("a full tile already holds different content; the "
                                      "tile store belongs to another history",
                                      actual=f"s3://{self.bucket}/{self._key(path)}")
            condition = {"IfMatch": etag}
        raise LogStorageError("a full tile kept changing under concurrent writers",
                              actual=f"s3://{self.bucket}/{self._key(path)}")

    def _write_checkpoint(self, note: bytes) -> None:
        """Replace the checkpoint unless the stored one is for a larger tree.

        A stale writer (a replica that lost the integrator lease and has not noticed yet)
        must not roll the published checkpoint back: readers that saw the larger tree would
        then see the log shrink. The read-compare-write is a compare-and-swap on the ETag,
        so a concurrent writer between the two makes the PUT fail and the round repeat.
        An equal size with other bytes (the same tree signed again, a new timestamp) may
        replace it. A stored object that is not a checkpoint is replaced.
        """
        size = _checkpoint_size(note)
        if size is None:
            raise LogStorageError("refusing to publish a checkpoint without a tree size")
        # The checkpoint this store last wrote, if it is no bigger than this one: PUT
        # conditionally on its ETag straight away (the stored object is still that one, or
        # the condition fails and the round below reads what is there). Saves a GET per
        # checkpoint, a round trip on the integrator's path.
        with self._lock:
            memo, self._checkpoint_memo = self._checkpoint_memo, None
        if memo is not None and memo[1] <= size and memo[0]:
            etag = self._put(CHECKPOINT, note, IfMatch=memo[0])
            if etag is not None:
                self._remember_checkpoint(etag, size)
                return
        for _ in range(_CONDITIONAL_ROUNDS):
            found = self._get(CHECKPOINT)
            if found is None:
                condition = {"IfNoneMatch": "*"}
            else:
                existing, etag = found
                if existing == note:
                    self._remember_checkpoint(etag, size)
                    return
                published = _checkpoint_size(existing)
                if published is not None and published > size:
                    raise LogStorageError("refusing to roll the published checkpoint back "
                                          "to a smaller tree", actual=size,
                                          expected=f">= {published}")
                condition = {"IfMatch": etag}
            etag = self._put(CHECKPOINT, note, **condition)
            if etag is not None:
                self._remember_checkpoint(etag, size)
                return
        raise LogStorageError("the checkpoint kept changing under concurrent writers",
                              actual=f"s3://{self.bucket}/{self._key(CHECKPOINT)}")

    def _remember_checkpoint(self, etag: str, size: int) -> None:
        with self._lock:
            self._checkpoint_memo = (etag, size)

    def delete_partials(self, full_path: str) -> None:
        """Delete every ``<full_path>.p/<W>`` object (listed, then batch-deleted).

        Durable when this returns (object stores have no separate sync).
        """
        prefix = self._key(full_path) + ".p/"
        try:
            keys: list[str] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", ()))
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start:start + _DELETE_BATCH]
                response = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                errors = response.get("Errors", ())
                if errors:
                    raise LogStorageError("cannot delete partial tiles",
                                          actual=f"{errors[0].get('Key')}: "
                                                 f"{errors[0].get('Code')}")
        except self._failures as exc:
            raise self._error("cannot delete partial tiles", full_path + ".p/", exc) from exc

    def sync(self, paths: Sequence[str]) -> None:
        """Nothing to do: an acknowledged PUT or DELETE is durable (paths are checked)."""
        for path in paths:
            check_object_path(path)

    def close(self) -> None:
        """Stop the write threads and close the client's connections. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self._owns_client:
            self._client.close()
