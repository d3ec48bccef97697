"""Tests for sealtrail.log.engine: the engine against an independent oracle, and its contract.

The oracle is ``sealtrail.merkle.tree`` (a plain list of leaves, RFC 6962 recursion).
Checkpoints are checked with the verifier's own ``verify_checkpoint`` against a trusted-root
``TransparencyLog`` for the engine's key, exactly as a client would.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sealtrail.errors import (
    CheckpointInvalidError,
    LogEntryInvalidError,
    LogEntryNotFoundError,
    LogError,
    LogFrozenError,
    LogOverloadedError,
    LogStorageError,
    UsageError,
)
from sealtrail.log import AddResult, LogConfig, LogEngine, LogStorage, StoredEntry
from sealtrail.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from sealtrail.merkle.tiles import decode_entry_bundle, decode_tile
from sealtrail.merkle.tree import compute_root
from sealtrail.merkle.tree import consistency_proof as oracle_consistency
from sealtrail.merkle.tree import inclusion_proof as oracle_inclusion
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.verify._checkpoint import verify_checkpoint
from tests.unit.log._support import body, check_all_consistent, config, fake_log, recording

MAX = 1500
BODIES = [body(i) for i in range(MAX)]
LEAVES = [leaf_hash(b) for b in BODIES]
V1 = fake_log("v1")
V2 = fake_log("v2")


def started(fake=V1, storage=None, **options) -> LogEngine:
    engine = LogEngine.open(config(fake, **options), storage or LogStorage.memory())
    engine.start()
    return engine


# -- the engine against the oracle ----------------------------------------------------------


@given(size=st.integers(1, MAX), batch_max=st.integers(1, 400), kind=st.sampled_from(["v1", "v2"]),
       rng=st.randoms(use_true_random=False))
@example(size=MAX, batch_max=37, kind="v1", rng=random.Random(1))
@example(size=MAX, batch_max=400, kind="v2", rng=random.Random(2))
@example(size=513, batch_max=256, kind="v2", rng=random.Random(3))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_engine_matches_the_reference_tree(size: int, batch_max: int, kind: str,
                                           rng: random.Random) -> None:
    fake = V1 if kind == "v1" else V2
    # At most ~40 checkpoints, so that checking every pair stays cheap.
    batch_max = max(batch_max, size // 40 + 1)
    storage, seq, _ = recording(LogStorage.memory())
    engine = LogEngine.open(config(fake, batch_max=batch_max, batch_wait=0), storage)
    try:
        # Queued before the writer starts, the entries are sequenced in batches of exactly
        # batch_max: the split points are under the test's control.
        futures = [engine.submit(b) for b in BODIES[:size]]
        engine.start()
        results = [f.result(30) for f in futures]
        assert [r.index for r in results] == list(range(size))
        assert not any(r.duplicate for r in results)
        checkpoint = engine.wait_blocking(size - 1, 30)
        leaves = LEAVES[:size]
        assert checkpoint.size == size
        assert checkpoint.root_hash == compute_root(leaves)
        sizes = [s.size for s in seq.states]
        assert sizes == sorted(sizes) and sizes[0] == 0
        # Every published checkpoint: a valid note for the right root ...
        for state in seq.states:
            parsed = verify_checkpoint(state.checkpoint, fake.log)
            assert parsed == Checkpoint(fake.origin, state.size, compute_root(LEAVES[:state.size]))
        # ... and every pair of them provably consistent.
        check_all_consistent(fake, [s.checkpoint for s in seq.states], engine)
        # Inclusion and consistency proofs for random trees equal the oracle's and verify.
        for _ in range(15):
            tree_size = rng.randint(1, size)
            index = rng.randrange(tree_size)
            proof = engine.inclusion_proof(index, tree_size)
            assert proof == oracle_inclusion(LEAVES[:tree_size], index)
            verify_inclusion(LEAVES[index], index, tree_size, proof,
                             compute_root(LEAVES[:tree_size]))
            old = rng.randint(0, tree_size)
            proof = engine.consistency_proof(old, tree_size)
            assert proof == oracle_consistency(LEAVES[:tree_size], old)
            verify_consistency(old, tree_size, proof, compute_root(LEAVES[:old]),
                               compute_root(LEAVES[:tree_size]))
            assert engine.root_at(tree_size) == compute_root(LEAVES[:tree_size])
    finally:
        engine.close()


def test_proofs_after_every_checkpoint_match_the_oracle() -> None:
    # A running log answers proofs at each new checkpoint; each snapshot extends the
    # previous one's expansion of the partial edge tiles (only new nodes are hashed). Steps
    # of 1 to 13 entries cross the 256- and 512-leaf tile boundaries, so the extension
    # also starts over on a fresh tile and works one tile level up.
    engine = started(V2, batch_wait=0)
    rng = random.Random(7)
    try:
        size = 0
        while size < 700:
            step = rng.randint(1, 13)
            futures = [engine.submit(b) for b in BODIES[size:size + step]]
            size += step
            for future in futures:
                future.result(30)
            assert engine.wait_blocking(size - 1, 30).size >= size
            tree_size = engine.latest_checkpoint().size
            root = compute_root(LEAVES[:tree_size])
            for index in {tree_size - 1, tree_size - step, rng.randrange(tree_size), 0}:
                if not 0 <= index < tree_size:
                    continue
                proof = engine.inclusion_proof(index, tree_size)
                assert proof == oracle_inclusion(LEAVES[:tree_size], index)
                verify_inclusion(LEAVES[index], index, tree_size, proof, root)
    finally:
        engine.close()


def test_checkpoints_verify_and_tampering_is_caught() -> None:
    for fake in (V1, V2):
        engine = started(fake)
        try:
            engine.add_blocking(b"one")
            cp = engine.wait_blocking(0, 10)
            assert verify_checkpoint(cp.note, fake.log).size == 1
            note = SignedNote.from_text(cp.note)
            # v1: "<host> - <tree id>"; v2: the bare host, no extension lines.
            assert note.body.split("\n")[0] == fake.origin
            assert note.body.count("\n") == 3
            assert [s.name for s in note.signatures] == [fake.name]
            assert note.signatures[0].key_hint == engine.checkpoint_key_id[:4]
            tampered = cp.note.replace("\n1\n", "\n2\n", 1)
            with pytest.raises(CheckpointInvalidError):
                verify_checkpoint(tampered, fake.log)
            with pytest.raises(CheckpointInvalidError):  # another log's key
                verify_checkpoint(cp.note, fake_log("v1" if fake is V1 else "v2").log)
        finally:
            engine.close()
    # The v2 key id is the trusted root's logId; the v1 one is SHA-256(SPKI).
    for fake in (V1, V2):
        with LogEngine.open(config(fake), LogStorage.memory()) as engine:
            assert engine.checkpoint_key_id == fake.log.log_id
            assert engine.public_key.same_key(fake.log.key)


def test_an_empty_log_publishes_the_empty_tree() -> None:
    engine = LogEngine.open(config(V2), LogStorage.memory())
    cp = engine.latest_checkpoint()
    assert (cp.size, cp.root_hash) == (0, EMPTY_ROOT)
    assert verify_checkpoint(cp.note, V2.log).size == 0
    engine.close()


def test_consistency_between_every_checkpoint_of_a_busy_run() -> None:
    # Concurrent writers, small batches and a short idle interval: many checkpoints of
    # many sizes (and re-signed ones of the same size), all mutually consistent.
    storage, seq, _ = recording(LogStorage.memory())
    engine = started(V1, storage, batch_max=7, batch_wait=0.001, checkpoint_interval=0.02)

    async def writer(tag: str) -> None:
        for i in range(40):
            result = await engine.add(body(i, tag))
            await engine.wait_for_checkpoint(result.index, 10)
            if i % 10 == 0:
                await asyncio.sleep(0.03)  # idle: let the interval checkpoint fire

    async def main() -> None:
        await asyncio.gather(*(writer(f"w{n}") for n in range(5)))

    try:
        asyncio.run(main())
        time.sleep(0.05)
        notes = [s.checkpoint for s in seq.states]
        assert len(notes) > 20
        assert len({s.size for s in seq.states}) < len(notes)  # idle re-signing happened
        assert check_all_consistent(V1, notes, engine) > 100
    finally:
        engine.close()


def test_idle_checkpoints_are_re_signed() -> None:
    engine = started(V1, checkpoint_interval=0.02)
    try:
        first = engine.latest_checkpoint()
        time.sleep(0.15)
        later = engine.latest_checkpoint()
        assert later.size == first.size and later.published_at > first.published_at
        assert later.note != first.note  # ECDSA signatures are randomised
    finally:
        engine.close()


# -- dedup and concurrency ------------------------------------------------------------------


def test_an_identical_entry_returns_the_existing_index() -> None:
    now = [1_700_000_000.0]
    engine = LogEngine.open(config(V2), LogStorage.memory(), clock=lambda: now[0])
    engine.start()
    try:
        first = engine.add_blocking(b"same", [("sha256", "aa")])
        assert first == AddResult(0, False, 1_700_000_000)
        engine.add_blocking(b"other")
        now[0] += 50
        again = engine.add_blocking(b"same", [("sha256", "aa")])
        assert again == AddResult(0, True, 1_700_000_000)  # the original time, too
        engine.wait_blocking(1, 10)
        assert engine.search("sha256", "aa") == [0]
        assert engine.latest_checkpoint().size == 2
    finally:
        engine.close()


def test_duplicates_inside_one_batch_share_one_index() -> None:
    engine = LogEngine.open(config(V1), LogStorage.memory())
    futures = [engine.submit(b) for b in (b"a", b"b", b"a", b"a", b"c", b"b")]
    engine.start()
    try:
        results = [f.result(10) for f in futures]
        assert [(r.index, r.duplicate) for r in results] == [
            (0, False), (1, False), (0, True), (0, True), (2, False), (1, True)]
        assert engine.wait_blocking(2, 10).size == 3
    finally:
        engine.close()


def test_concurrent_adds_from_tasks_and_threads_never_share_an_index() -> None:
    engine = started(V2, batch_max=16, batch_wait=0.001)
    distinct = [body(i, "shared") for i in range(60)]
    results: list[tuple[bytes, AddResult]] = []
    lock = threading.Lock()

    def thread_writer(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(80):
            b = rng.choice(distinct) if i % 2 else body(i, f"thread{seed}")
            r = engine.add_blocking(b)
            with lock:
                results.append((b, r))

    async def task_writer(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(30):
            b = rng.choice(distinct) if i % 3 else body(i, f"task{seed}")
            r = await engine.add(b)
            with lock:
                results.append((b, r))

    async def tasks() -> None:
        await asyncio.gather(*(task_writer(100 + s) for s in range(10)))

    threads = [threading.Thread(target=thread_writer, args=(s,)) for s in range(4)]
    try:
        for t in threads:
            t.start()
        asyncio.run(tasks())
        for t in threads:
            t.join()
        by_body: dict[bytes, int] = {}
        for b, r in results:
            assert by_body.setdefault(b, r.index) == r.index  # one body, one index
        indexes = sorted(by_body.values())
        assert indexes == list(range(len(indexes)))  # one index, one body; no gaps
        fresh = [r for _, r in results if not r.duplicate]
        assert len(fresh) == len(by_body)
        engine.wait_blocking(len(indexes) - 1, 10)
        for b, index in by_body.items():
            assert engine.entry(index).body == b
            assert engine.find(leaf_hash(b)) == index
    finally:
        engine.close()


# -- limits and failure modes ---------------------------------------------------------------


def test_pushback_when_too_many_entries_wait() -> None:
    engine = LogEngine.open(config(V1, max_pending=3), LogStorage.memory())
    for i in range(3):
        engine.submit(body(i))
    with pytest.raises(LogOverloadedError) as info:
        engine.submit(body(3))
    assert info.value.code == "LOG_OVERLOADED"
    engine.start()
    engine.close()


@pytest.mark.parametrize("bad, keys", [
    (b"", ()),
    (b"x" * 65536, ()),
    ("text", ()),
    (None, ()),
    (b"ok", [("sha256", "v")] * 33),
    (b"ok", [("SHA256", "v")]),
    (b"ok", [("", "v")]),
    (b"ok", [("k" * 65, "v")]),
    (b"ok", [("sha256", "")]),
    (b"ok", [("sha256", "v" * 2049)]),
    (b"ok", [("sha256", 5)]),
    (b"ok", [("sha256",)]),
    (b"ok", "sha256"),
])
def test_invalid_entries_are_refused(bad: object, keys: object) -> None:
    engine = LogEngine.open(config(V1), LogStorage.memory())
    with pytest.raises(LogEntryInvalidError) as info:
        engine.submit(bad, keys)  # type: ignore[arg-type]
    assert info.value.code == "LOG_ENTRY_INVALID"
    engine.close()


def test_the_largest_entry_fits_an_entry_bundle() -> None:
    engine = started(V2)
    try:
        big = b"x" * 65535
        r = engine.add_blocking(big)
        engine.wait_blocking(r.index, 10)
        assert decode_entry_bundle(engine.read_entry_bundle(0, 1)) == [big]
    finally:
        engine.close()


def test_a_frozen_log_refuses_adds_and_serves_reads() -> None:
    storage = LogStorage.memory()
    engine = started(V1, storage)
    engine.add_blocking(b"before the freeze")
    engine.wait_blocking(0, 10)
    engine.close()
    frozen = LogEngine.open(config(V1, frozen=True), storage)
    frozen.start()  # a no-op: nothing to write
    try:
        with pytest.raises(LogFrozenError) as info:
            frozen.submit(b"after")
        assert info.value.code == "LOG_FROZEN"
        with pytest.raises(LogFrozenError):
            asyncio.run(frozen.add(b"after"))
        assert frozen.frozen
        assert frozen.entry(0).body == b"before the freeze"
        assert frozen.latest_checkpoint().size == 1
        assert frozen.inclusion_proof(0, 1) == []
        assert asyncio.run(frozen.wait_for_checkpoint(0, 1)).size == 1
    finally:
        frozen.close()


def test_a_failing_commit_acknowledges_nothing() -> None:
    calls = {"n": 0}

    def fault(operation: str):
        if operation == "assign":
            calls["n"] += 1
            if calls["n"] == 2:
                return OSError("disk full")
        return None

    storage, seq, _ = recording(LogStorage.memory(), seq_fault=fault)
    engine = started(V1, storage)
    try:
        assert engine.add_blocking(b"first").index == 0
        with pytest.raises(LogStorageError) as info:
            engine.add_blocking(b"second")
        assert info.value.code == "LOG_STORAGE"
        assert seq.sequenced_size() == 1
        # The writer recovers; the next entry takes the next free index.
        assert engine.add_blocking(b"third").index == 1
    finally:
        engine.close()


def test_acknowledged_before_integrated_and_hidden_until_published() -> None:
    broken = {"on": False}

    def fault(operation: str, paths: list[str]):
        return OSError("tile disk unavailable") if broken["on"] else None

    storage, _, _ = recording(LogStorage.memory(), tile_fault=fault)
    engine = LogEngine.open(config(V2), storage)  # publishes the empty tree
    broken["on"] = True
    engine.start()
    try:
        r = engine.add_blocking(b"committed", [("sha256", "ab")])
        assert r.index == 0  # durable in the sequencer: acknowledged
        with pytest.raises(LogOverloadedError):
            engine.wait_blocking(0, 0.2)
        with pytest.raises(LogOverloadedError):
            asyncio.run(engine.wait_for_checkpoint(0, 0.2))
        # Not covered by a checkpoint yet: no reader sees it.
        assert engine.latest_checkpoint().size == 0
        assert engine.find(leaf_hash(b"committed")) is None
        assert engine.search("sha256", "ab") == []
        with pytest.raises(LogEntryNotFoundError):
            engine.entry(0)
        broken["on"] = False  # the writer retries and catches up
        assert engine.wait_blocking(0, 10).size == 1
        assert engine.find(leaf_hash(b"committed")) == 0
        assert engine.search("sha256", "ab") == [0]
    finally:
        engine.close()


def test_waiting_for_an_unknown_index_fails_fast() -> None:
    engine = started(V1)
    try:
        with pytest.raises(LogEntryNotFoundError):
            engine.wait_blocking(0, 10)
        with pytest.raises(LogEntryNotFoundError):
            asyncio.run(engine.wait_for_checkpoint(5, 10))
        with pytest.raises(UsageError):
            engine.wait_blocking(-1, 1)
    finally:
        engine.close()


def test_close_drains_the_queue_and_fails_what_comes_after() -> None:
    engine = LogEngine.open(config(V1, batch_max=2), LogStorage.memory())
    futures = [engine.submit(body(i)) for i in range(7)]
    engine.start()
    engine.close()
    assert [f.result(0).index for f in futures] == list(range(7))
    with pytest.raises(LogError):
        engine.submit(b"late")
    engine.close()  # idempotent


def test_close_fails_checkpoint_waiters_and_unstarted_adds() -> None:
    def fault(operation: str, paths: list[str]):
        return OSError("tiles down") if "checkpoint" not in paths else None

    storage, _, _ = recording(LogStorage.memory(), tile_fault=fault)
    engine = started(V1, storage, batch_wait=0)
    engine.add_blocking(b"x")
    waiter = engine._checkpoint_future(0)
    engine.close()
    with pytest.raises(LogError):
        waiter.result(1)
    unstarted = LogEngine.open(config(V1), LogStorage.memory())
    future = unstarted.submit(b"never sequenced")
    unstarted.close()
    with pytest.raises(LogError):
        future.result(1)


# -- reads ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_300() -> LogEngine:
    engine = LogEngine.open(config(V2, batch_max=100, batch_wait=0), LogStorage.memory())
    futures = [engine.submit(b, [("sha256", f"{i % 7:064x}")]) for i, b in
               enumerate(BODIES[:300])]
    engine.start()
    for f in futures:
        f.result(10)
    engine.wait_blocking(299, 10)
    yield engine
    engine.close()


def test_tiles_and_bundles_are_served_at_every_width(engine_300: LogEngine) -> None:
    e = engine_300
    assert decode_tile(e.read_tile(0, 0, None), 256) == LEAVES[:256]
    assert decode_tile(e.read_tile(0, 1, 44), 44) == LEAVES[256:300]
    assert decode_tile(e.read_tile(0, 1, 10), 10) == LEAVES[256:266]  # prefix of the edge
    assert decode_tile(e.read_tile(0, 0, 3), 3) == LEAVES[:3]  # prefix of a full tile
    assert e.read_tile(1, 0, 1) == compute_root(LEAVES[:256])
    assert decode_entry_bundle(e.read_entry_bundle(0, None), 256) == BODIES[:256]
    assert decode_entry_bundle(e.read_entry_bundle(1, 44), 44) == BODIES[256:300]
    assert decode_entry_bundle(e.read_entry_bundle(0, 5), 5) == BODIES[:5]
    for args in ((0, 1, None), (0, 1, 45), (0, 2, 1), (1, 0, None), (1, 0, 2), (2, 0, 1)):
        with pytest.raises(LogEntryNotFoundError):
            e.read_tile(*args)
    for args in ((1, None), (1, 45), (2, 1)):
        with pytest.raises(LogEntryNotFoundError):
            e.read_entry_bundle(*args)
    for args in ((0, 0, 0), (0, 0, 256), (64, 0, None), (-1, 0, None), (0, -1, None),
                 (0, 0, True), ("0", 0, None)):
        with pytest.raises(UsageError):
            e.read_tile(*args)
    with pytest.raises(UsageError):
        e.read_entry_bundle(0, 256)


def test_entries_find_and_search(engine_300: LogEngine) -> None:
    e = engine_300
    assert e.entry(299) == StoredEntry(299, BODIES[299], e.entry(299).integrated_time)
    assert e.entry(7).leaf_hash == LEAVES[7]
    for bad in (300, -1, True, "1"):
        with pytest.raises(LogEntryNotFoundError):
            e.entry(bad)  # type: ignore[arg-type]
    assert e.find(LEAVES[42]) == 42
    assert e.find(leaf_hash(b"absent")) is None
    with pytest.raises(UsageError):
        e.find(b"short")
    assert e.search("sha256", f"{3:064x}") == list(range(3, 300, 7))
    assert e.search("sha256", f"{3:064x}", limit=2) == [3, 10]
    assert e.search("sha256", "none") == []
    for kind, value, limit in (("BAD", "x", 1), ("sha256", "", 1), ("sha256", "x", 0),
                               ("sha256", "x", 1001)):
        with pytest.raises(UsageError):
            e.search(kind, value, limit)


def test_proof_arguments_are_checked(engine_300: LogEngine) -> None:
    e = engine_300
    with pytest.raises(LogEntryNotFoundError):
        e.inclusion_proof(0, 301)
    with pytest.raises(UsageError):
        e.inclusion_proof(300, 300)
    with pytest.raises(UsageError):
        e.inclusion_proof(0, 0)
    with pytest.raises(UsageError):
        e.inclusion_proof(-1, 10)
    with pytest.raises(LogEntryNotFoundError):
        e.consistency_proof(1, 301)
    with pytest.raises(UsageError):
        e.consistency_proof(20, 10)
    with pytest.raises(UsageError):
        e.consistency_proof(-1, 10)
    assert e.consistency_proof(0, 300) == [] and e.consistency_proof(300, 300) == []
    assert e.root_at(0) == EMPTY_ROOT


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"origin": ""},
    {"origin": "123"},
    {"origin": "a\nb"},
    {"origin": " padded"},
    {"origin": 5},
    {"key_name": "has space"},
    {"key_name": "plus+sign"},
    {"key_name": ""},
    {"private_key": "not a key"},
    {"private_key": ec.generate_private_key(ec.SECP256R1()).public_key()},
    {"checkpoint_interval": 0},
    {"checkpoint_interval": True},
    {"batch_max": 0},
    {"batch_max": 1.5},
    {"batch_wait": -1},
    {"max_pending": 0},
    {"tile_cache_size": 0},
    {"frozen": "yes"},
])
def test_config_is_checked_when_built(change: dict) -> None:
    options = {"origin": "log.example", "key_name": "log.example",
               "private_key": ed25519.Ed25519PrivateKey.generate(), **change}
    with pytest.raises(UsageError):
        LogConfig(**options)


def test_rsa_log_keys_are_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024 + 1024)
    with pytest.raises(UsageError):
        LogConfig("log.example", "log.example", key)


def test_open_checks_its_arguments() -> None:
    with pytest.raises(UsageError):
        LogEngine.open("config", LogStorage.memory())  # type: ignore[arg-type]
    storage = LogStorage.memory()
    LogEngine.open(config(V1), storage).close()
    with pytest.raises(LogStorageError):  # the storage belongs to another log
        LogEngine.open(config(V2), storage)


# -- the tile directory on its own ----------------------------------------------------------


def test_the_tile_directory_alone_serves_the_read_api(tmp_path) -> None:
    # What a static file server or CDN would serve: the checkpoint, tiles and bundles,
    # enough for a client to prove inclusion and consistency without the engine.
    from sealtrail.merkle.tile_proofs import consistency_proof_from_tiles, inclusion_proof_from_tiles
    from sealtrail.merkle.tiles import entries_path

    engine = LogEngine.open(config(V2, batch_max=64, batch_wait=0),
                            LogStorage.embedded(tmp_path / "log"))
    first = engine.latest_checkpoint()
    futures = [engine.submit(b) for b in BODIES[:700]]
    engine.start()
    for f in futures:
        f.result(10)
    engine.wait_blocking(699, 10)
    engine.close()
    root = tmp_path / "log" / "tiles"

    def fetch(path: str) -> bytes:
        return (root / path).read_bytes()

    cp = verify_checkpoint(fetch("checkpoint").decode(), V2.log)
    assert cp.size == 700
    for index in (0, 255, 256, 511, 699):
        proof = inclusion_proof_from_tiles(fetch, index, cp.size)
        verify_inclusion(LEAVES[index], index, cp.size, proof, cp.root_hash)
    proof = consistency_proof_from_tiles(fetch, 300, cp.size)
    verify_consistency(300, cp.size, proof, compute_root(LEAVES[:300]), cp.root_hash)
    verify_consistency(0, cp.size, consistency_proof_from_tiles(fetch, 0, cp.size),
                       first.root_hash, cp.root_hash)
    bodies = []
    for n in range(2):
        bodies += decode_entry_bundle(fetch(entries_path(n)), 256)
    bodies += decode_entry_bundle(fetch(entries_path(2, 188)), 188)
    assert bodies == BODIES[:700]
    # Partial tiles of tiles that have filled up were cleaned away; the edge's remain.
    assert not (root / "tile" / "0" / "000.p").exists()
    assert not (root / "tile" / "entries" / "001.p").exists()
    assert (root / "tile" / "0" / "002.p" / "188").exists()
    assert (root / "tile" / "1" / "000.p" / "2").exists()


def test_entries_appended_by_another_sequencer_client_are_integrated() -> None:
    # With a shared database (the PostgreSQL plan) another replica may sequence entries
    # between two of this engine's batches; the integrator must take them from the
    # sequencer rather than assume it saw every index.
    from sealtrail.log.storage import NewEntry

    storage = LogStorage.memory()
    engine = started(V1, storage, batch_wait=0)
    try:
        assert engine.add_blocking(b"mine 0").index == 0
        engine.wait_blocking(0, 10)
        other = storage.sequencer.assign([NewEntry(leaf_hash(b"theirs"), b"theirs")], 5)
        assert other[0].index == 1
        assert engine.add_blocking(b"mine 1").index == 2
        cp = engine.wait_blocking(2, 10)
        assert cp.size == 3
        leaves = [leaf_hash(b) for b in (b"mine 0", b"theirs", b"mine 1")]
        assert cp.root_hash == compute_root(leaves)
        assert engine.entry(1).body == b"theirs"
    finally:
        engine.close()
