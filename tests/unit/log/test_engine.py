"""Tests for sealtrail.log.engine, the facade: the whole engine against an independent oracle.

The oracle is ``sealtrail.merkle.tree`` (a plain list of leaves, RFC 6962 recursion).
Checkpoints are checked with the verifier's own ``verify_checkpoint`` against a trusted-root
``TransparencyLog`` for the engine's key, exactly as a client would. The parts have their
own tests (test_writer, test_reader, test_recovery, test_tile_sync, ...).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sealtrail.errors import CheckpointInvalidError, LogStorageError, UsageError
from sealtrail.log import LogEngine, LogStorage
from sealtrail.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from sealtrail.merkle.tree import compute_root
from sealtrail.merkle.tree import consistency_proof as oracle_consistency
from sealtrail.merkle.tree import inclusion_proof as oracle_inclusion
from sealtrail.models.checkpoint import Checkpoint, SignedNote
from sealtrail.verify._checkpoint import verify_checkpoint
from tests.unit.log._support import (
    PATIENCE,
    ManualClock,
    body,
    check_all_consistent,
    config,
    fake_log,
    recording,
    started,
)

MAX = 1500
BODIES = [body(i) for i in range(MAX)]
LEAVES = [leaf_hash(b) for b in BODIES]
V1 = fake_log("v1")
V2 = fake_log("v2")


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
        results = [f.result(PATIENCE) for f in futures]
        assert [r.index for r in results] == list(range(size))
        assert not any(r.duplicate for r in results)
        checkpoint = engine.wait_blocking(size - 1, PATIENCE)
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


def test_checkpoints_verify_and_tampering_is_caught() -> None:
    for fake in (V1, V2):
        engine = started(fake)
        try:
            engine.add_blocking(b"one")
            cp = engine.wait_blocking(0, PATIENCE)
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


def test_open_checks_its_arguments() -> None:
    with pytest.raises(UsageError):
        LogEngine.open("config", LogStorage.memory())  # type: ignore[arg-type]
    with pytest.raises(UsageError):  # the API before the clock protocol
        LogEngine.open(config(V1), LogStorage.memory(), clock=lambda: 0.0)  # type: ignore[arg-type]
    storage = LogStorage.memory()
    LogEngine.open(config(V1), storage).close()
    with pytest.raises(LogStorageError):  # the storage belongs to another log
        LogEngine.open(config(V2), storage)


def test_the_facade_keeps_its_import_path_and_names() -> None:
    # The server and callers import from sealtrail.log.engine and sealtrail.log; the
    # split into modules must not move a public name.
    import sealtrail.log
    from sealtrail.log import engine

    for name in engine.__all__:
        assert hasattr(engine, name), name
    for name in sealtrail.log.__all__:
        assert getattr(sealtrail.log, name) is not None
    assert sealtrail.log.LogEngine is engine.LogEngine
    assert sealtrail.log.LogConfig is engine.LogConfig


def test_open_publishes_at_the_time_of_the_injected_clock() -> None:
    clock = ManualClock(start=1_800_000_000.5)
    with LogEngine.open(config(V2), LogStorage.memory(), clock=clock) as engine:
        assert engine.latest_checkpoint().published_at == 1_800_000_000.5
    storage = LogStorage.memory()
    engine = started(V2, storage, clock=clock, batch_wait=0)
    try:
        clock.advance(10)
        result = engine.add_blocking(b"x")
        assert result.integrated_time == 1_800_000_010
        assert engine.wait_blocking(0, PATIENCE).published_at == 1_800_000_010.5
        assert engine.entry(0).integrated_time == 1_800_000_010
    finally:
        engine.close()
