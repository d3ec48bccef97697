"""The tile store contract on a real S3 server (SeaweedFS), plus what only an object store
shared by several writers needs: create-only full tiles and a checkpoint that never moves
back (docs/adr/0015). Then a whole log on PostgreSQL + S3, and the store going away.

The server is tests/integration/s3.py's (one per session, a bucket per module, a key
prefix per test); PostgreSQL is tests/integration/postgres.py's.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sealtrail.errors import LogStorageError, UsageError
from sealtrail.log import LogEngine, LogStorage
from sealtrail.log.storage import TileStore, open_tile_store
from sealtrail.log.storage.posix import PosixTileStore
from sealtrail.log.storage.s3 import S3TileStore
from sealtrail.merkle import leaf_hash, verify_inclusion
from sealtrail.merkle.tiles import TILE_BYTES, encode_entry_bundle
from sealtrail.merkle.tree import compute_root
from sealtrail.verify._checkpoint import verify_checkpoint
from tests.integration.postgres import PostgresCluster, postgres_cluster
from tests.integration.s3 import SeaweedS3, s3_credentials, s3_server
from tests.unit.log._support import PATIENCE, body, config, fake_log
from tests.unit.log.test_storage import test_tile_stores_refuse_paths_outside_the_layout

pytestmark = pytest.mark.integration

__all__ = [  # fixtures and the contract test collected here with the S3 store
    "postgres_cluster",
    "s3_credentials",
    "s3_server",
    "test_tile_stores_refuse_paths_outside_the_layout",
]

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def bucket(s3_server: SeaweedS3) -> str:
    name = "sealtrail-" + secrets.token_hex(4)
    s3_server.create_bucket(name)
    return name


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix per test: one log each, no cleanup between tests needed."""
    return f"t{os.getpid()}-{next(_prefixes)}/log"


@pytest.fixture
def tiles(s3_credentials: SeaweedS3, bucket: str, prefix: str) -> Iterator[S3TileStore]:
    store = S3TileStore(bucket, prefix, endpoint_url=s3_credentials.endpoint_url)
    try:
        yield store
    finally:
        store.close()


def keys(server: SeaweedS3, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, read with a client of the test's own."""
    client = server.client()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix=prefix + "/")
        return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))
    finally:
        client.close()


def note(size: int, tag: str = "") -> bytes:
    """A checkpoint-shaped note (SPEC: C2SP tlog-checkpoint: origin, size, root lines)."""
    return f"example.com/log\n{size}\nroot{tag}=\n\n— example.com/log sig{tag}\n".encode()


# -- the contract -------------------------------------------------------------------------


def test_read_write_delete_partials_and_sync(tiles: S3TileStore, s3_credentials: SeaweedS3,
                                             bucket: str, prefix: str) -> None:
    assert isinstance(tiles, TileStore)
    assert tiles.read("tile/0/000") is None
    assert tiles.read("checkpoint") is None
    bundle = encode_entry_bundle([b"z"])
    tiles.write_many([("tile/0/000.p/1", b"a" * 32), ("tile/0/000.p/2", b"b" * 64),
                      ("tile/entries/x001/000.p/1", bundle), ("checkpoint", note(2))])
    assert tiles.read("tile/0/000.p/2") == b"b" * 64
    assert tiles.read("tile/entries/x001/000.p/1") == bundle
    assert tiles.read("checkpoint") == note(2)
    tiles.write_many([("checkpoint", note(3))])
    assert tiles.read("checkpoint") == note(3)
    tiles.write_many([("tile/0/000", b"c" * TILE_BYTES)])
    tiles.sync(["tile/0/000", "checkpoint"])  # nothing to do, but paths are checked
    with pytest.raises(LogStorageError):
        tiles.sync(["../escape"])
    # The keys are the tlog-tiles paths under the prefix: a CDN serves them as they are.
    assert keys(s3_credentials, bucket, prefix) == [
        f"{prefix}/{p}" for p in ("checkpoint", "tile/0/000", "tile/0/000.p/1",
                                  "tile/0/000.p/2", "tile/entries/x001/000.p/1")]
    tiles.delete_partials("tile/0/000")
    assert tiles.read("tile/0/000.p/1") is None and tiles.read("tile/0/000.p/2") is None
    assert tiles.read("tile/0/000") == b"c" * TILE_BYTES
    tiles.delete_partials("tile/5/000")  # nothing to delete is fine
    assert keys(s3_credentials, bucket, prefix) == [
        f"{prefix}/{p}" for p in ("checkpoint", "tile/0/000", "tile/entries/x001/000.p/1")]
    tiles.close()
    tiles.close()  # idempotent


def test_delete_partials_deletes_only_that_tiles_partials(
        tiles: S3TileStore, s3_credentials: SeaweedS3, bucket: str, prefix: str) -> None:
    partials = [(f"tile/0/001.p/{w}", b"h" * 32 * w) for w in range(1, 256)]
    tiles.write_many([*partials, ("tile/0/000.p/1", b"a" * 32), ("tile/1/001.p/3", b"x" * 96)])
    tiles.delete_partials("tile/0/001")
    # Other tiles' partials stay.
    assert keys(s3_credentials, bucket, prefix) == [f"{prefix}/tile/0/000.p/1",
                                                    f"{prefix}/tile/1/001.p/3"]


# -- conditional writes -------------------------------------------------------------------


def test_full_tiles_are_create_only(tiles: S3TileStore) -> None:
    tile = b"t" * TILE_BYTES
    tiles.write_many([("tile/0/000", tile)])
    tiles.write_many([("tile/0/000", tile)])  # the same bytes again: accepted
    with pytest.raises(LogStorageError, match="already holds different content"):
        tiles.write_many([("tile/0/000", b"u" * TILE_BYTES)])
    assert tiles.read("tile/0/000") == tile
    bundle = encode_entry_bundle([b"e%d" % i for i in range(256)])
    tiles.write_many([("tile/entries/000", bundle)])
    with pytest.raises(LogStorageError, match="already holds different content"):
        tiles.write_many([("tile/entries/000", encode_entry_bundle([b"f"] * 256))])
    assert tiles.read("tile/entries/000") == bundle
    # Partial ones are plain PUTs (one path, one content, but a repair may rewrite one).
    tiles.write_many([("tile/0/001.p/1", b"a" * 32)])
    tiles.write_many([("tile/0/001.p/1", b"b" * 32)])
    assert tiles.read("tile/0/001.p/1") == b"b" * 32


def test_a_damaged_full_tile_is_replaced(tiles: S3TileStore, s3_credentials: SeaweedS3,
                                         bucket: str, prefix: str) -> None:
    """What the engine's repair needs: an object at a full path that is not a well-formed
    full tile (written by another tool) is damage, not another history."""
    client = s3_credentials.client()
    try:
        client.put_object(Bucket=bucket, Key=f"{prefix}/tile/0/000", Body=b"torn")
        client.put_object(Bucket=bucket, Key=f"{prefix}/tile/entries/000", Body=b"\x00")
    finally:
        client.close()
    bundle = encode_entry_bundle([b"e"] * 256)
    tiles.write_many([("tile/0/000", b"t" * TILE_BYTES), ("tile/entries/000", bundle)])
    assert tiles.read("tile/0/000") == b"t" * TILE_BYTES
    assert tiles.read("tile/entries/000") == bundle


def test_a_stale_writer_cannot_roll_the_checkpoint_back(
        s3_credentials: SeaweedS3, bucket: str, prefix: str) -> None:
    """Two stores on the same bucket and prefix, as two replicas: the one whose view is
    stale is refused; a bigger tree wins; the same size signed again may replace."""
    current, stale = (S3TileStore(bucket, prefix, endpoint_url=s3_credentials.endpoint_url)
                      for _ in range(2))
    try:
        stale.write_many([("checkpoint", note(5))])
        current.write_many([("checkpoint", note(10))])
        with pytest.raises(LogStorageError, match="roll the published checkpoint back"):
            stale.write_many([("checkpoint", note(6))])
        assert stale.read("checkpoint") == note(10)
        stale.write_many([("checkpoint", note(12))])
        assert current.read("checkpoint") == note(12)
        current.write_many([("checkpoint", note(12, "resigned"))])
        assert stale.read("checkpoint") == note(12, "resigned")
        with pytest.raises(LogStorageError):
            current.write_many([("checkpoint", b"not a checkpoint")])
        assert current.read("checkpoint") == note(12, "resigned")
    finally:
        current.close()
        stale.close()


class InterposingClient:
    """A boto3 client that runs ``before_put`` (once) just before its next PutObject: the
    moment another writer can slip in between a store's read and its write."""

    def __init__(self, client: Any, before_put: Callable[[], None]) -> None:
        self._client = client
        self.before_put: Callable[[], None] | None = before_put
        self.puts: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **request: Any) -> Any:
        hook, self.before_put = self.before_put, None
        if hook is not None:
            hook()
        self.puts.append({k: v for k, v in request.items() if k.startswith("If")})
        return self._client.put_object(**request)


def test_writes_are_conditional_on_what_the_store_read(
        s3_credentials: SeaweedS3, bucket: str, prefix: str) -> None:
    """Another writer between the read and the write: the ETag condition makes the PUT
    fail and the store decide again on what is there now (an unconditional PUT would roll
    the checkpoint back to 6 and replace the full tile)."""
    other = S3TileStore(bucket, prefix, endpoint_url=s3_credentials.endpoint_url)
    raw = s3_credentials.client()
    try:
        other.write_many([("checkpoint", note(5))])
        client = InterposingClient(raw, lambda: other.write_many([("checkpoint", note(10))]))
        stale = S3TileStore(bucket, prefix, client=client)
        with pytest.raises(LogStorageError, match="roll the published checkpoint back"):
            stale.write_many([("checkpoint", note(6))])
        assert other.read("checkpoint") == note(10)
        assert [set(p) for p in client.puts] == [{"IfMatch"}]

        client.before_put = lambda: other.write_many([("tile/0/000", b"o" * TILE_BYTES)])
        with pytest.raises(LogStorageError, match="already holds different content"):
            stale.write_many([("tile/0/000", b"s" * TILE_BYTES)])
        assert other.read("tile/0/000") == b"o" * TILE_BYTES
        assert client.puts[-1] == {"IfNoneMatch": "*"}
        stale.close()  # a client passed in stays open: its owner closes it
        raw.list_buckets()
    finally:
        other.close()
        raw.close()


class CountingClient:
    """A boto3 client that counts GetObject calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.gets = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **request: Any) -> Any:
        self.gets += 1
        return self._client.get_object(**request)


def test_the_writer_of_the_last_checkpoint_replaces_it_without_reading_it(
        s3_credentials: SeaweedS3, bucket: str, prefix: str) -> None:
    """The integrator PUTs its next checkpoint on the ETag of its last one, with no GET;
    once another writer replaced it, the condition fails and the store reads again."""
    raw = s3_credentials.client()
    other = S3TileStore(bucket, prefix, endpoint_url=s3_credentials.endpoint_url)
    try:
        client = CountingClient(raw)
        store = S3TileStore(bucket, prefix, client=client)
        store.write_many([("checkpoint", note(5))])
        first_gets = client.gets
        store.write_many([("checkpoint", note(6))])
        store.write_many([("checkpoint", note(7))])
        assert client.gets == first_gets  # no read for the two checkpoints after the first
        assert other.read("checkpoint") == note(7)
        other.write_many([("checkpoint", note(9))])
        with pytest.raises(LogStorageError, match="roll the published checkpoint back"):
            store.write_many([("checkpoint", note(8))])
        assert client.gets == first_gets + 1
        assert other.read("checkpoint") == note(9)
        store.close()
    finally:
        other.close()
        raw.close()


def test_racing_checkpoint_writers_leave_the_largest(
        s3_credentials: SeaweedS3, bucket: str, prefix: str) -> None:
    """The compare-and-swap under contention: writers interleaving sizes; whatever the
    order of their requests, the published checkpoint ends at the largest size, and each
    write either lands or is refused as a roll-back (never lost silently)."""
    stores = [S3TileStore(bucket, prefix, endpoint_url=s3_credentials.endpoint_url)
              for _ in range(3)]
    rounds = 15
    barrier = threading.Barrier(len(stores))
    refused = [0] * len(stores)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout=PATIENCE)
                try:
                    stores[n].write_many([("checkpoint", note(r * len(stores) + n))])
                except LogStorageError as exc:
                    if "roll the published checkpoint back" not in exc.message:
                        raise
                    refused[n] += 1
        except (LogStorageError, threading.BrokenBarrierError) as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(stores))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(PATIENCE)
        assert not errors, errors
        assert not any(t.is_alive() for t in threads)
        assert stores[0].read("checkpoint") == note(rounds * len(stores) - 1)
        # The last writer of the last round holds the largest size and always lands.
        assert refused[-1] < rounds
    finally:
        for s in stores:
            s.close()


# -- configuration and failures -----------------------------------------------------------


def test_open_tile_store_locations(s3_credentials: SeaweedS3, bucket: str,
                                   tmp_path: Path) -> None:
    store = open_tile_store(f"s3://{bucket}/a/b/", endpoint_url=s3_credentials.endpoint_url)
    try:
        assert isinstance(store, S3TileStore)
        assert (store.bucket, store.prefix) == (bucket, "a/b")
        store.write_many([("checkpoint", note(1))])
        assert store.read("checkpoint") == note(1)
    finally:
        store.close()
    for location in (str(tmp_path / "plain"), f"file://{tmp_path / 'url'}"):
        posix = open_tile_store(location, fsync=False)
        assert isinstance(posix, PosixTileStore)
        posix.write_many([("checkpoint", note(1))])
        posix.close()
    assert (tmp_path / "plain" / "checkpoint").read_bytes() == note(1)
    assert (tmp_path / "url" / "checkpoint").read_bytes() == note(1)
    for bad in ("", "gs://bucket/x", "s3://", "s3:///prefix", "s3://b/p?x=1",
                "s3://key:secret@bucket/p", "file://host/dir", "s3://b/../up"):
        with pytest.raises(UsageError):
            open_tile_store(bad)
    with pytest.raises(UsageError) as info:  # a key in a location is never echoed
        open_tile_store("s3://AKIAEXAMPLE:s3cret@bucket/p")
    assert "s3cret" not in info.value.diagnostics()
    with pytest.raises(UsageError):  # an endpoint is for s3:// only
        open_tile_store(str(tmp_path), endpoint_url=s3_credentials.endpoint_url)


def test_failures_are_storage_errors_without_secrets(
        s3_credentials: SeaweedS3, bucket: str, prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    missing = S3TileStore("sealtrail-no-such-bucket", endpoint_url=s3_credentials.endpoint_url)
    try:
        with pytest.raises(LogStorageError, match="cannot read"):
            missing.read("checkpoint")  # a missing bucket is not a missing object
        with pytest.raises(LogStorageError, match="cannot write"):
            missing.write_many([("tile/0/000.p/1", b"a" * 32)])
    finally:
        missing.close()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + s3_credentials.secret_key)
    denied = S3TileStore(bucket, prefix, endpoint_url=s3_credentials.endpoint_url)
    try:
        for attempt in (lambda: denied.read("checkpoint"),
                        lambda: denied.write_many([("checkpoint", note(1))]),
                        lambda: denied.delete_partials("tile/0/000")):
            with pytest.raises(LogStorageError) as info:
                attempt()
            text = info.value.diagnostics()
            assert "HTTP 403" in text
            assert s3_credentials.secret_key not in text
            assert s3_credentials.access_key not in text
    finally:
        denied.close()


def _timed_failure(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    """Run ``call`` in a thread; its exception (None if it returned) and its duration.
    The thread is joined with a bound, so a hang fails the test instead of stalling it."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        # Any exception: the test checks it is a LogStorageError, not a foreign one.
        except Exception as exc:  # noqa: BLE001
            outcome.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PATIENCE)
    assert not thread.is_alive(), "the store hung instead of failing"
    return outcome[0], time.monotonic() - start


def test_an_unavailable_store_fails_and_recovers(s3_credentials: SeaweedS3, tiles: S3TileStore
                                                 ) -> None:
    tiles.write_many([("checkpoint", note(7)), ("tile/0/000.p/1", b"a" * 32)])
    s3_credentials.stop()
    try:
        durations = {}
        for name, call in (
                ("read", lambda: tiles.read("checkpoint")),
                ("write", lambda: tiles.write_many([("tile/0/000.p/2", b"b" * 64),
                                                    ("tile/0/000.p/3", b"c" * 96)])),
                ("checkpoint", lambda: tiles.write_many([("checkpoint", note(8))])),
                ("delete", lambda: tiles.delete_partials("tile/0/000"))):
            failure, durations[name] = _timed_failure(call)
            assert isinstance(failure, LogStorageError), (name, failure)
        print(f"failure times with the store down: {durations}")
    finally:
        s3_credentials.start()
    # The same store object works again once the server is back, with its data.
    assert tiles.read("checkpoint") == note(7)
    tiles.write_many([("checkpoint", note(8))])
    assert tiles.read("checkpoint") == note(8)
    assert tiles.read("tile/0/000.p/1") == b"a" * 32


# -- a whole log: PostgreSQL sequencer, S3 tiles ------------------------------------------


def test_engine_on_postgres_and_s3(postgres_cluster: PostgresCluster,
                                   s3_credentials: SeaweedS3, bucket: str,
                                   prefix: str) -> None:
    fake = fake_log("v2")
    size = 600  # two full level-0 tiles and bundles, then partial ones
    bodies = [body(i, "s3") for i in range(size)]
    leaves = [leaf_hash(b) for b in bodies]
    schema = "s3_" + prefix.split("/")[0].replace("-", "_")

    def storage() -> LogStorage:
        return LogStorage.postgres(postgres_cluster.dsn,
                                   S3TileStore(bucket, prefix,
                                               endpoint_url=s3_credentials.endpoint_url),
                                   schema=schema)

    started = time.monotonic()
    engine = LogEngine.open(config(fake, batch_max=64, batch_wait=0), storage())
    try:
        futures = [engine.submit(b) for b in bodies]
        engine.start()
        assert [f.result(PATIENCE).index for f in futures] == list(range(size))
        engine.wait_blocking(size - 1, PATIENCE)
    finally:
        engine.close()
    added = time.monotonic() - started
    engine = LogEngine.open(config(fake), storage())
    try:
        checkpoint = engine.latest_checkpoint()
        assert checkpoint.size == size
        assert checkpoint.root_hash == compute_root(leaves)
        assert verify_checkpoint(checkpoint.note, fake.log).size == size
        for index, tree_size in ((0, size), (255, 256), (256, size), (599, size),
                                 (300, 512), (17, 300)):
            proof = engine.inclusion_proof(index, tree_size)
            verify_inclusion(leaves[index], index, tree_size, proof,
                             compute_root(leaves[:tree_size]))
        assert engine.read_tile(0, 1, None) == b"".join(leaves[256:512])
    finally:
        engine.close()
    # What a CDN in front of the bucket serves: the tiles and the published checkpoint.
    store = S3TileStore(bucket, prefix, endpoint_url=s3_credentials.endpoint_url)
    try:
        assert store.read("checkpoint") == checkpoint.note.encode()
        assert store.read("tile/0/000") == b"".join(leaves[:256])
        assert store.read("tile/entries/001") == encode_entry_bundle(bodies[256:512])
        assert store.read("tile/0/002.p/88") == b"".join(leaves[512:600])
        assert store.read("tile/entries/002.p/88") == encode_entry_bundle(bodies[512:600])
    finally:
        store.close()
    objects = keys(s3_credentials, bucket, prefix)
    # Full tiles' partials are gone; only the edge's partials remain.
    assert not [k for k in objects if k.startswith((f"{prefix}/tile/0/000.p/",
                                                    f"{prefix}/tile/0/001.p/",
                                                    f"{prefix}/tile/entries/000.p/"))]
    print(f"{size} entries added through PostgreSQL + S3 in {added:.2f} s; "
          f"{len(objects)} objects in the bucket")


def test_a_hung_store_fails_instead_of_hanging(s3_credentials: SeaweedS3, bucket: str,
                                              prefix: str) -> None:
    """A server that accepts connections and never answers: the read timeout ends the
    request and the failure is a LogStorageError. (The store's own client waits 3 x 5 s;
    this one is given a 0.5 s timeout and one attempt to keep the test short: what is
    checked is the mapping of a timeout, not botocore's timer.)"""
    raw = s3_credentials.client(read_timeout=0.5)
    store = S3TileStore(bucket, prefix, client=raw)
    try:
        store.write_many([("checkpoint", note(1))])
        s3_credentials.freeze()
        try:
            for call in (lambda: store.read("checkpoint"),
                         lambda: store.write_many([("checkpoint", note(2))]),
                         lambda: store.write_many([("tile/0/000.p/1", b"a" * 32),
                                                   ("tile/0/000.p/2", b"b" * 64)]),
                         lambda: store.delete_partials("tile/0/000")):
                failure, _ = _timed_failure(call)
                assert isinstance(failure, LogStorageError), failure
                assert "Timeout" in failure.diagnostics()
        finally:
            s3_credentials.thaw()
        # A request that timed out may still be carried out once the server resumes (as
        # with any store): the checkpoint is the old one or the new one, whole.
        assert store.read("checkpoint") in (note(1), note(2))
    finally:
        store.close()
        raw.close()
