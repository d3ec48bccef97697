"""Built entries on a real PostgreSQL sequencer, also with several writers at once.

The sequencer contract tests of tests/unit/log/test_built_entries.py run here against
:class:`PostgresSequencer` (the ``sequencer`` fixture below replaces the unit module's).
Then what only a shared sequencer shows: several sequencers (as separate replicas hold
them) and several threads assign built entries to one log at once, and two replica
engines take built entries concurrently; every stored body names exactly its own index.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sealtrail.log import LogEngine, LogStorage
from sealtrail.log.storage import SequencerStorage
from sealtrail.log.storage.postgres import PostgresSequencer
from sealtrail.merkle import leaf_hash
from tests.integration.postgres import PostgresCluster, postgres_cluster, schema, sequencer
from tests.unit.log._support import PATIENCE, config, fake_log
from tests.unit.log.test_built_entries import (
    built,
    named,
    test_a_build_must_return_a_leaf_hash_and_a_body,
    test_a_build_that_raises_fails_the_whole_batch,
    test_a_built_entry_is_built_for_the_index_it_gets,
    test_a_built_leaf_hash_already_in_the_log_fails_the_batch,
    test_built_entries_are_never_deduplicated,
)

pytestmark = pytest.mark.integration

__all__ = [  # the contract tests, collected here with the PostgreSQL fixture
    "postgres_cluster",
    "schema",
    "sequencer",
    "test_a_build_must_return_a_leaf_hash_and_a_body",
    "test_a_build_that_raises_fails_the_whole_batch",
    "test_a_built_entry_is_built_for_the_index_it_gets",
    "test_a_built_leaf_hash_already_in_the_log_fails_the_batch",
    "test_built_entries_are_never_deduplicated",
]







def test_the_contract_runs_on_postgres(sequencer: SequencerStorage) -> None:
    # Guards the fixture override: the imported contract tests must see this driver.
    assert type(sequencer).__name__ == "PostgresSequencer"


def run_threads(work: Callable[[int], None], count: int) -> None:
    """Run ``work(n)`` for n in 0..count-1 on as many threads; re-raise the first failure."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
        assert not thread.is_alive(), "a writer did not finish"
    if errors:
        raise errors[0]


def test_sequencers_sharing_a_log_build_every_entry_for_its_index(
        postgres_cluster: PostgresCluster, schema: str) -> None:
    # Three sequencers (three replicas' connections), two threads each, batches of 5.
    sequencers = [PostgresSequencer(postgres_cluster.dsn, schema=schema) for _ in range(3)]
    got: dict[str, int] = {}
    lock = threading.Lock()

    def work(n: int) -> None:
        seq = sequencers[n % 3]
        for batch in range(10):
            tags = [f"w{n}-b{batch}-e{i}" for i in range(5)]
            out = seq.assign([built(tag) for tag in tags], 1)
            with lock:
                got.update((tag, a.index) for tag, a in zip(tags, out))

    try:
        run_threads(work, 6)
        reader = sequencers[0]
        assert reader.sequenced_size() == 300
        assert sorted(got.values()) == list(range(300))  # no index twice, no gap
        for entry in reader.entries(0, 300):
            assert json.loads(entry.body)["index"] == entry.index
            assert got[json.loads(entry.body)["tag"]] == entry.index
            assert entry.leaf_hash == leaf_hash(entry.body)
    finally:
        for seq in sequencers:
            seq.close()


def test_two_replica_engines_take_built_entries_concurrently(
        postgres_cluster: PostgresCluster, schema: str, tmp_path: Path) -> None:
    fake = fake_log("v2")
    engines: list[LogEngine] = []
    try:
        for _ in range(2):
            storage = LogStorage.postgres(postgres_cluster.dsn, tmp_path / "tiles",
                                          schema=schema)
            engine = LogEngine.open(config(fake, batch_wait=0.001, checkpoint_interval=0.05),
                                    storage)
            engine.start()
            engines.append(engine)
        assert sum(e.is_integrator for e in engines) == 1
        got: dict[str, int] = {}
        lock = threading.Lock()

        def work(n: int) -> None:
            engine = engines[n % 2]
            futures = [(f"t{n}-{i}", engine.submit_built(named(f"t{n}-{i}")))
                       for i in range(25)]
            for tag, future in futures:
                result = future.result(PATIENCE)
                assert not result.duplicate
                with lock:
                    got[tag] = result.index

        run_threads(work, 8)
        assert sorted(got.values()) == list(range(200))
        for engine in engines:
            checkpoint = engine.wait_blocking(199, PATIENCE)
            assert checkpoint.size >= 200
        for tag, index in got.items():
            for engine in engines:  # the follower exposes what the integrator published
                assert json.loads(engine.entry(index).body) == {"tag": tag, "index": index}
    finally:
        for engine in engines:
            engine.close()
