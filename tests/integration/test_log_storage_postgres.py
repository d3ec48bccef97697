"""The storage contract on a real PostgreSQL server, plus what SQLite cannot show.

The contract tests of tests/unit/log/test_storage.py run here against
:class:`PostgresSequencer` (unit tests never touch the network, so the parametrisation lives
in this integration module): the ``sequencer`` fixture below replaces the unit module's
for the test functions imported from it. Each test gets its own PostgreSQL schema in one
throwaway cluster (tests/integration/postgres.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from sealtrail.errors import LogStorageError
from sealtrail.log.storage import IntegrationState, LogStorage, SequencerStorage
from sealtrail.log.storage.postgres import MAX_READERS, SCHEMA_VERSION, PostgresSequencer
from sealtrail.merkle import leaf_hash
from tests.integration.postgres import (
    PostgresCluster,
    database,
    postgres_cluster,
    schema,
    sequencer,
)
from tests.unit.log.test_storage import (
    new,
    test_assign_gives_contiguous_indexes_and_dedups,
    test_bind_ties_storage_to_one_log,
    test_durable_size_must_be_within_the_state,
    test_integration_state,
    test_search_bounds,
    test_sequencers_implement_every_role,
    test_unsynced_states_are_visible_at_once,
)

pytestmark = pytest.mark.integration

__all__ = [  # the contract tests, collected here with the PostgreSQL fixture
    "database",
    "postgres_cluster",
    "schema",
    "sequencer",
    "test_assign_gives_contiguous_indexes_and_dedups",
    "test_bind_ties_storage_to_one_log",
    "test_durable_size_must_be_within_the_state",
    "test_integration_state",
    "test_search_bounds",
    "test_sequencers_implement_every_role",
    "test_unsynced_states_are_visible_at_once",
]







def test_the_contract_runs_on_postgres(sequencer: SequencerStorage) -> None:
    # Guards the fixture override: the imported contract tests must see this driver.
    assert type(sequencer).__name__ == "PostgresSequencer"


def test_postgres_persists_across_connections(postgres_cluster: PostgresCluster,
                                              schema: str) -> None:
    seq = PostgresSequencer(postgres_cluster.dsn, schema=schema)
    seq.bind("log.example")
    seq.assign([new(b"a", ("sha256", "x")), new(b"b")], 7)
    seq.save_state(IntegrationState(2, b"\x02" * 32, "n\n", 3.0, 1))
    seq.close()
    seq.close()  # idempotent
    with pytest.raises(LogStorageError):
        seq.find(leaf_hash(b"a"))
    with pytest.raises(LogStorageError):
        seq.assign([new(b"c")], 8)
    again = PostgresSequencer(postgres_cluster.dsn, schema=schema)
    try:
        assert again.sequenced_size() == 2
        assert again.find(leaf_hash(b"b")) == 1
        assert again.search("sha256", "x", 10, 10) == [0]
        assert again.load_state() == IntegrationState(2, b"\x02" * 32, "n\n", 3.0, 1)
        with pytest.raises(LogStorageError):
            again.bind("other.example")
        again.bind("log.example")
    finally:
        again.close()


def test_postgres_batches_are_atomic(sequencer: SequencerStorage) -> None:
    sequencer.assign([new(b"a")], 1)
    # A NUL in a text column is refused by PostgreSQL inside the batch's transaction.
    bad = new(b"b", ("id", "nul\x00byte"))
    with pytest.raises(LogStorageError) as info:
        sequencer.assign([new(b"x"), bad], 2)
    assert info.value.code == "LOG_STORAGE"
    assert sequencer.sequenced_size() == 1
    assert sequencer.find(leaf_hash(b"x")) is None
    assert [a.index for a in sequencer.assign([new(b"y")], 3)] == [1]


def test_postgres_refuses_unknown_schema_versions(postgres_cluster: PostgresCluster,
                                                  schema: str) -> None:
    PostgresSequencer(postgres_cluster.dsn, schema=schema).close()
    with psycopg.connect(postgres_cluster.dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.schema_version SET version = 99")
    with pytest.raises(LogStorageError) as info:
        PostgresSequencer(postgres_cluster.dsn, schema=schema)
    assert info.value.expected == str(SCHEMA_VERSION)
    with pytest.raises(LogStorageError):
        PostgresSequencer(postgres_cluster.dsn, schema="Not-A-Name")


def test_unreachable_servers_are_storage_errors(postgres_cluster: PostgresCluster) -> None:
    # A password in the connection string never shows in the error.
    dsn = "host=127.0.0.1 port=1 user=postgres password=s3cret connect_timeout=5"
    with pytest.raises(LogStorageError) as info:
        PostgresSequencer(dsn)
    assert "s3cret" not in str(info.value) + str(info.value.actual)
    with pytest.raises(LogStorageError):
        PostgresSequencer("this is not = a conninfo '")


def test_log_storage_postgres_wiring(postgres_cluster: PostgresCluster, schema: str,
                                     tmp_path: Path) -> None:
    storage = LogStorage.postgres(postgres_cluster.dsn, tmp_path / "tiles", schema=schema)
    try:
        assert [a.index for a in storage.sequencer.assign([new(b"a"), new(b"b")], 1)] == [0, 1]
        storage.tiles.write_many([("tile/0/000", b"\x00" * 32)])
        assert (tmp_path / "tiles" / "tile" / "0" / "000").read_bytes() == b"\x00" * 32
    finally:
        storage.close()


# -- what SQLite cannot show: several clients of one log -----------------------------------


def test_concurrent_assigners_dedup_exactly(postgres_cluster: PostgresCluster,
                                            schema: str) -> None:
    """Two connections (as two API replicas) assigning the same leaf hashes at the same
    moment: each leaf gets one index, both callers are told the same one, no index is
    used twice and the indexes stay contiguous."""
    clients = [PostgresSequencer(postgres_cluster.dsn, schema=schema) for _ in range(2)]
    rounds = 40
    barrier = threading.Barrier(len(clients))
    results: list[list[list[tuple[int, bool]]]] = [[] for _ in clients]
    errors: list[Exception] = []

    def run(n: int) -> None:
        try:
            for r in range(rounds):
                # Same leaf in both; one leaf of their own, so batches really interleave.
                batch = [new(f"shared {r}".encode()), new(f"own {n} {r}".encode())]
                barrier.wait(timeout=30)
                results[n].append([(a.index, a.duplicate)
                                   for a in clients[n].assign(batch, r)])
        except (LogStorageError, threading.BrokenBarrierError) as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert not errors, errors
        for r in range(rounds):
            (shared_0, _), (shared_1, _) = results[0][r][0], results[1][r][0]
            assert shared_0 == shared_1  # one index for the shared leaf
            assert [results[0][r][0][1], results[1][r][0][1]].count(True) == 1
        size = clients[0].sequenced_size()
        assert size == rounds * 3  # one shared entry and two own ones per round
        entries = clients[0].entries(0, size)
        assert [e.index for e in entries] == list(range(size))
        assert len({e.leaf_hash for e in entries}) == size
        for r in range(rounds):
            assert clients[1].find(leaf_hash(f"shared {r}".encode())) == results[0][r][0][0]
    finally:
        for c in clients:
            c.close()


def test_other_clients_see_entries_and_lazy_states_at_once(
        postgres_cluster: PostgresCluster, schema: str) -> None:
    """What another replica needs: entries it did not assign and a state saved with
    sync=False by the integrator, visible on its own connection without delay."""
    one, two = (PostgresSequencer(postgres_cluster.dsn, schema=schema) for _ in range(2))
    try:
        assert two.load_state() is None and two.sequenced_size() == 0
        one.assign([new(b"a", ("id", "alice")), new(b"b")], 5)
        assert two.sequenced_size() == 2
        assert two.search("id", "alice", 2, 10) == [0]
        assert [a.index for a in two.assign([new(b"c"), new(b"a")], 6)] == [2, 0]
        lazy = IntegrationState(3, b"\x03" * 32, "three\n", 4.0, 2)
        one.save_state(lazy, sync=False)
        assert two.load_state() == lazy
        with pytest.raises(LogStorageError):  # the size never goes backwards, across clients
            two.save_state(IntegrationState(2, b"\x02" * 32, "two\n", 5.0, 2))
        assert one.load_state() == lazy
    finally:
        one.close()
        two.close()


_WRITER = r"""
import sys
from sealtrail.log.storage import NewEntry
from sealtrail.log.storage.postgres import PostgresSequencer
from sealtrail.merkle import leaf_hash
seq = PostgresSequencer(sys.argv[1], schema=sys.argv[2])
n = 0
while True:
    batch = [f"entry {n + i}".encode() for i in range(4)]
    n += 4
    out = seq.assign([NewEntry(leaf_hash(b), b, ()) for b in batch], n)
    # Acknowledge only after assign() returned (after the commit), as the engine does.
    for body, a in zip(batch, out):
        print(a.index, body.decode(), flush=True)
"""


def _acknowledged(stdout: str) -> dict[int, str]:
    acked: dict[int, str] = {}
    for line in stdout.splitlines():
        index, _, body = line.partition(" ")
        if body.startswith("entry ") and body[6:].isdigit():  # a cut last line is not an ack
            acked[int(index)] = body
    return acked


def _start_writer(cluster: PostgresCluster, schema: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _WRITER, cluster.dsn, schema],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _wait_for_acks(writer: subprocess.Popen[str], count: int) -> list[str]:
    assert writer.stdout is not None
    lines = [writer.stdout.readline() for _ in range(count)]
    assert all(lines), "the writer stopped early"
    return lines


def test_a_killed_client_loses_nothing_acknowledged(postgres_cluster: PostgresCluster,
                                                    schema: str) -> None:
    """SIGKILL a sequencing client between its commits and its acknowledgements: every
    index it acknowledged is there with its entry, nothing half-committed."""
    writer = _start_writer(postgres_cluster, schema)
    try:
        seen = _wait_for_acks(writer, 200)
    finally:
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=30)
    acked = _acknowledged("".join(seen) + rest)
    assert len(acked) >= 200
    seq = PostgresSequencer(postgres_cluster.dsn, schema=schema)
    try:
        size = seq.sequenced_size()
        entries = {e.index: e.body.decode() for e in seq.entries(0, size)}
        assert list(entries) == list(range(size))
        assert size % 4 == 0  # whole batches only
        for index, body in acked.items():
            assert entries[index] == body
    finally:
        seq.close()


def test_a_server_crash_loses_nothing_acknowledged(postgres_cluster: PostgresCluster,
                                                   schema: str) -> None:
    """Crash PostgreSQL itself (immediate stop: no checkpoint, WAL replay on start) while
    a client sequences: everything acknowledged before the crash is there afterwards,
    and a client that outlives the crash works again on its next call."""
    survivor = PostgresSequencer(postgres_cluster.dsn, schema=schema)
    writer = _start_writer(postgres_cluster, schema)
    try:
        seen = _wait_for_acks(writer, 200)
        postgres_cluster.crash()
        rest, _ = writer.communicate(timeout=60)  # it dies on its failed assign
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate(timeout=30)
        postgres_cluster.start()
    acked = _acknowledged("".join(seen) + rest)
    try:
        assert len(acked) >= 200
        with pytest.raises(LogStorageError):  # its connection died with the server
            survivor.assign([new(b"after")], 1)
        size = survivor.sequenced_size()  # ... and the next call reconnects
        entries = {e.index: e.body.decode() for e in survivor.entries(0, size)}
        assert list(entries) == list(range(size))
        for index, body in acked.items():
            assert entries[index] == body
        assert [a.index for a in survivor.assign([new(b"after")], 1)] == [size]
    finally:
        survivor.close()



def test_reading_threads_that_end_leave_no_connections_behind(
        postgres_cluster: PostgresCluster, database: str) -> None:
    """Server threads come and go: each read borrows a pooled connection, so twenty
    short-lived reading threads leave at most MAX_READERS reading connections open."""
    seq = PostgresSequencer(database, schema="reads")
    try:
        seq.assign([new(b"a")], 1)

        def read() -> None:
            assert seq.find(leaf_hash(b"a")) == 0

        for _ in range(20):
            thread = threading.Thread(target=read)
            thread.start()
            thread.join()
        name = database.rsplit("/", 1)[1]
        with psycopg.connect(postgres_cluster.dsn, autocommit=True) as admin:
            open_now = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                     (name,)).fetchone()
        assert open_now is not None
        assert open_now[0] <= MAX_READERS + 1  # the readers and the one writing connection
    finally:
        seq.close()
