"""Replicas of one log on a shared PostgreSQL sequencer: election, fencing, failover.

Each engine here is a replica as a separate `sealtrail serve` process would run it: its
own connections (sequencer, lease), the same schema and the same tile directory. The
integrator is elected through the database (log/replica.py); these tests check that
exactly one integrates, that followers expose what it publishes, that a deposed one is
fenced, and that another takes over when it dies, losing nothing acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from sealtrail.errors import LogStorageError
from sealtrail.log import LogEngine, LogStorage
from sealtrail.log.storage import IntegrationState
from sealtrail.log.storage.postgres import PostgresSequencer, upgrade_schema
from sealtrail.log.storage.protocols import IntegratorFencedError
from sealtrail.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.integration.postgres import PostgresCluster, postgres_cluster, schema
from tests.integration.serving import poll_until
from tests.unit.log._support import PATIENCE, body, config, fake_log

pytestmark = pytest.mark.integration

__all__ = ["postgres_cluster", "schema"]





@pytest.fixture
def open_replica(postgres_cluster: PostgresCluster, schema: str, tmp_path: Path
                 ) -> Iterator[Callable[[], LogEngine]]:
    """Opens another replica of the test's log (same schema, same tile directory)."""
    fake = fake_log("v2")
    engines: list[LogEngine] = []

    def opener() -> LogEngine:
        storage = LogStorage.postgres(postgres_cluster.dsn, tmp_path / "tiles", schema=schema)
        engine = LogEngine.open(config(fake, batch_wait=0.001, checkpoint_interval=0.05),
                                storage)
        engine.start()
        engines.append(engine)
        return engine

    yield opener
    for engine in engines:
        engine.close()




def _terminate_lease_session(dsn: str, schema: str) -> int:
    """Kill the database session holding the log's integrator lock (as if its replica
    died): PostgreSQL releases the session's advisory lock at once."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.objid::int = hashtext(%s)", (f"sealtrail.integrator.{schema}",)).fetchall()
        for (pid,) in rows:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return len(rows)


def test_exactly_one_replica_integrates_and_followers_serve_its_checkpoints(
        open_replica: Callable[[], LogEngine]) -> None:
    first, second, third = open_replica(), open_replica(), open_replica()
    assert [e.is_integrator for e in (first, second, third)] == [True, False, False]
    results = []
    for i in range(60):
        replica = (first, second, third)[i % 3]
        results.append(replica.add_blocking(body(i)))
    # Callers get the same result type from every replica (the integrator's and a
    # follower's writer alike).
    assert {type(r).__name__ for r in results} == {"AddResult"}
    indexes = sorted(r.index for r in results)
    assert indexes == list(range(60))  # every index once, whichever replica sequenced it
    for replica in (second, third):
        checkpoint = replica.wait_blocking(59, PATIENCE)
        assert checkpoint.size >= 60
    # A follower proves inclusion against a checkpoint the integrator signed.
    cp = third.latest_checkpoint()
    for i in (0, 31, 59):
        index = third.find(leaf_hash(body(i)))
        assert index is not None
        verify_inclusion(leaf_hash(body(i)), index, cp.size, third.inclusion_proof(index, cp.size),
                         cp.root_hash)
    assert third.entry(indexes[5]).body in {body(i) for i in range(60)}
    # A duplicate sent to another replica gets the existing index.
    again = second.add_blocking(body(7))
    assert again.duplicate and again.index == results[7].index


def test_a_deposed_integrator_cannot_save_state(postgres_cluster: PostgresCluster,
                                                schema: str) -> None:
    seq = PostgresSequencer(postgres_cluster.dsn, schema=schema)
    other = PostgresSequencer(postgres_cluster.dsn, schema=schema)
    old, new = seq.integrator_lease("old"), other.integrator_lease("new")
    try:
        epoch = old.acquire()
        assert epoch is not None
        assert new.acquire() is None  # the lock is held
        seq.save_state_fenced(IntegrationState(0, b"\x00" * 32, "n\n", 1.0), epoch=epoch,
                              expected_size=0)
        old.release()  # as if its session died
        # The server frees the lock once it has ended the old session.
        poll_until(lambda: new.acquire() is not None, "the lock to be free")
        new_epoch = new.epoch
        assert new_epoch == epoch + 1
        with pytest.raises(IntegratorFencedError):
            seq.save_state_fenced(IntegrationState(1, b"\x01" * 32, "n\n", 2.0),
                                  epoch=epoch, expected_size=0)
        # The compare-and-swap on the size fences too: a stale expectation fails.
        other.save_state_fenced(IntegrationState(2, b"\x02" * 32, "n\n", 3.0),
                                epoch=new_epoch, expected_size=0)
        with pytest.raises(IntegratorFencedError):
            other.save_state_fenced(IntegrationState(3, b"\x03" * 32, "n\n", 4.0),
                                    epoch=new_epoch, expected_size=0)
        state = seq.load_state()
        assert state is not None and state.size == 2
        assert not old.held() and new.held()
    finally:
        old.close()
        new.close()
        seq.close()
        other.close()


def test_another_replica_takes_over_when_the_integrator_dies(
        open_replica: Callable[[], LogEngine], postgres_cluster: PostgresCluster,
        schema: str) -> None:
    first, second = open_replica(), open_replica()
    acknowledged = [first.add_blocking(body(i)) for i in range(20)]
    seen = [second.wait_blocking(19, PATIENCE)]
    assert first.is_integrator and not second.is_integrator
    assert _terminate_lease_session(postgres_cluster.dsn, schema) == 1
    # The follower sees the lock free at its next poll and takes over; the old one is
    # fenced by the epoch even before it notices.
    poll_until(lambda: second.is_integrator, "the follower to take over")
    acknowledged += [second.add_blocking(body(i)) for i in range(20, 40)]
    acknowledged += [first.add_blocking(body(i)) for i in range(40, 50)]
    final = second.wait_blocking(max(a.index for a in acknowledged), PATIENCE)
    seen.append(final)
    assert not (first.is_integrator and second.is_integrator)
    assert sorted(a.index for a in acknowledged) == list(range(50))
    for a, i in zip(acknowledged, range(50)):
        assert second.find(leaf_hash(body(i))) == a.index
    # Every checkpoint a client saw is consistent with the final one.
    for cp in seen[:-1]:
        verify_consistency(cp.size, final.size,
                           second.consistency_proof(cp.size, final.size),
                           cp.root_hash, final.root_hash)
    poll_until(lambda: first.latest_checkpoint().size >= final.size,
                "the old integrator to follow the new one")


def test_older_schemas_are_refused_until_upgraded(postgres_cluster: PostgresCluster,
                                                  schema: str) -> None:
    PostgresSequencer(postgres_cluster.dsn, schema=schema).close()
    with psycopg.connect(postgres_cluster.dsn, autocommit=True) as conn:
        # What version 1 was: no integrator table.
        conn.execute(f"DROP TABLE {schema}.integrator")
        conn.execute(f"UPDATE {schema}.schema_version SET version = 1")
    with pytest.raises(LogStorageError) as info:
        PostgresSequencer(postgres_cluster.dsn, schema=schema)
    assert "sealtrail migrate" in str(info.value)
    assert upgrade_schema(postgres_cluster.dsn, schema) == (1, 2)
    assert upgrade_schema(postgres_cluster.dsn, schema) == (2, 2)
    seq = PostgresSequencer(postgres_cluster.dsn, schema=schema)
    try:
        assert seq.integrator_lease("x").acquire() == 1
    finally:
        seq.close()
