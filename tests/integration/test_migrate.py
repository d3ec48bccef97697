"""`sealtrail migrate`: an embedded instance copied into a real PostgreSQL (tests/integration/
postgres.py) with directory tiles, verified entry by entry; reruns, interruptions, refusals;
`--upgrade-schema` on a schema of the previous version.

Each test gets a database of its own in the session's throwaway cluster (the log schemas
have fixed names, log_<name>).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sealtrail.cli.main import main
from sealtrail.errors import LogStorageError
from sealtrail.log.storage import LogStorage, NewEntry
from sealtrail.log.storage.postgres import SCHEMA_VERSION, PostgresSequencer
from sealtrail.server import migrate
from sealtrail.server.instance import Instance
from sealtrail.server.storage import StorageConfig, open_log_storage
from tests.integration.instance_server import free_port
from tests.integration.postgres import database, postgres_cluster
from tests.integration.s3 import SeaweedS3, s3_credentials, s3_server

pytestmark = pytest.mark.integration

__all__ = ["database", "postgres_cluster", "s3_credentials", "s3_server"]

_databases = itertools.count()




def add_entries(instance: Instance, count: int, tag: str) -> None:
    """``count`` entries with search keys in every active log, integrated and published."""
    services = instance.logs.open()
    try:
        for service in services:
            if service.frozen:
                continue
            last = 0
            for number in range(count):
                body = f"{tag} {service.name} entry {number}".encode()
                keys = [("sha256", hashlib.sha256(body).hexdigest()),
                        ("email", f"signer{number % 3}@example.com")]
                last = service.engine.add_blocking(body, keys).index
            service.engine.wait_blocking(last, 30)
    finally:
        for service in services:
            service.engine.close()


def issue_certificates(instance: Instance, count: int) -> None:
    """``count`` certificates from the instance's CA, as `serve` issues them: each logged
    in the instance's CT log (DIR/ct/log) and recorded in its issuance record."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from sealtrail.ca.keys import load_ca, load_ct_key
    from sealtrail.server.ct_log import CTLogService, ct_log_origin
    from tests.unit.ca.test_ct_static import principal

    issuers = load_ca(*instance.active_ca_dirs()).chain
    ct_log = CTLogService.open(instance.ct_log_storage(), load_ct_key(instance.keys_dir),
                               ct_log_origin(instance.config().public_url), issuers)
    record = instance.issuance_record()
    try:
        authority = instance.certificate_authority(record=record, ct_append=ct_log.append)
        for _ in range(count):
            authority.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), principal())
        ct_log.engine.wait_blocking(count - 1, 30)
    finally:
        record.close()
        ct_log.close()


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    """An embedded instance: a Rekor v1 log, a frozen Rekor v2 shard and its successor, all
    with entries; three certificates in the CA record and the CT log."""
    made = Instance.init(str(tmp_path / "instance"), port=free_port())
    add_entries(made, 7, "before")
    made.logs.rollover(2)  # log1 frozen, log2 active
    add_entries(made, 5, "after")
    issue_certificates(made, 3)
    return made


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1]) if lines else {}, out + err


def sqlite_rows(log_dir: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{log_dir}/sequencer.sqlite3?mode=ro", uri=True) as db:
        return [tuple(bytes(v) if isinstance(v, (bytes, memoryview)) else v for v in row)
                for row in db.execute(sql)]


def pg_rows(database: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database) as conn:
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in conn.execute(sql)]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_migrate_copies_every_log_and_the_ca_record(instance: Instance, database: str,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    tiles = tmp_path / "tiles"
    config_before = Path(instance.path("sealtrail.json")).read_text()
    code, dry, _ = run_cli(capsys, "migrate", instance.directory, "--database", database,
                           "--tiles", str(tiles), "--dry-run", "--json")
    assert code == 0 and dry["migrated"] is False
    assert {item["log"]: item["entries"] for item in dry["logs"]} == {
        "rekor": 12, "log1": 7, "log2": 5, "ct": 3}
    assert {item["targetVersion"] for item in dry["logs"]} == {None}
    assert Path(instance.path("sealtrail.json")).read_text() == config_before
    assert not tiles.exists()

    code, result, _ = run_cli(capsys, "migrate", instance.directory, "--database", database,
                              "--tiles", str(tiles), "--json")
    assert code == 0, result
    assert result["caRecord"] == 3
    copied = {item["log"]: item for item in result["logs"]}
    assert set(copied) == {"rekor", "log1", "log2", "ct"}

    logs = [(spec.name, os.path.join(instance.path("logs"), spec.name), "log_" + spec.name)
            for spec in instance.logs.specs()] + [("ct", instance.path("ct", "log"), "ct_log")]
    for name, log_dir, schema in logs:
        assert copied[name]["schema"] == schema
        entries = sqlite_rows(log_dir, "SELECT idx, leaf_hash, body, integrated_time "
                                       "FROM entries ORDER BY idx")
        assert len(entries) == copied[name]["entries"] == copied[name]["copied"] > 0
        assert pg_rows(database, f"SELECT idx, leaf_hash, body, integrated_time FROM "
                                 f"{schema}.entries ORDER BY idx") == entries
        search = sqlite_rows(log_dir, "SELECT kind, value, idx FROM search "
                                      "ORDER BY kind, value, idx")
        assert len(search) == (0 if name == "ct" else 2 * len(entries))
        assert pg_rows(database, f"SELECT kind, value, idx FROM {schema}.search "
                                 f"ORDER BY kind, value, idx") == search
        state = sqlite_rows(log_dir, "SELECT size, root_hash, checkpoint, published_at "
                                     "FROM state")
        assert pg_rows(database, f"SELECT size, root_hash, checkpoint, published_at "
                                 f"FROM {schema}.state") == state
        assert copied[name]["rootHash"] == state[0][1].hex()
        assert files(tiles / name) == files(Path(log_dir) / "tiles")
        assert copied[name]["tiles"] == len(files(tiles / name)) > 0
    assert pg_rows(database, "SELECT serial, not_before, subject, issuer, certificate "
                             "FROM ca.issued ORDER BY serial") == \
        [tuple(bytes(v) if isinstance(v, bytes) else v for v in row) for row in sqlite3.connect(
            instance.path("ca", "issued.sqlite")).execute("SELECT * FROM issued ORDER BY serial")]

    # The instance now names its storage, and its logs open there with the same checkpoints.
    migrated = Instance(instance.directory)
    assert migrated.config().storage == StorageConfig(database, str(tiles))
    services = migrated.logs.open()
    try:
        for service in services:
            checkpoint = service.engine.latest_checkpoint()
            item = copied[service.name]
            assert (checkpoint.size, checkpoint.root_hash.hex()) == (item["size"],
                                                                      item["rootHash"])
            assert service.engine.search("email", "signer0@example.com")
    finally:
        for service in services:
            service.engine.close()
    ct_storage = migrated.ct_log_storage()
    try:
        state = ct_storage.sequencer.load_state()
        assert state is not None and (state.size, state.root_hash.hex()) == (
            copied["ct"]["size"], copied["ct"]["rootHash"])
    finally:
        ct_storage.close()
    # The SQLite files stay until the user removes them.
    assert os.path.exists(os.path.join(instance.path("logs"), "rekor", "sequencer.sqlite3"))

    # A second migrate to the same place is a no-op.
    code, again, _ = run_cli(capsys, "migrate", instance.directory, "--database", database,
                             "--tiles", str(tiles), "--json")
    assert code == 0 and again["migrated"] is False
    # Elsewhere: refused, the instance is no longer embedded.
    code, _, text = run_cli(capsys, "migrate", instance.directory, "--database", database)
    assert code == 2 and "already keeps its storage" in text


def test_migrate_to_an_object_store(instance: Instance, database: str,
                                    s3_credentials: SeaweedS3,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bucket = f"migrate-{os.getpid()}-{next(_databases)}"
    s3_credentials.create_bucket(bucket)
    location = f"s3://{bucket}/sealtrail"
    storage = StorageConfig(database, location, s3_credentials.endpoint_url)
    # A first run that copied one log and stopped: its create-only objects are there.
    rekor_dir = os.path.join(instance.path("logs"), "rekor")
    target = open_log_storage(storage, "rekor", rekor_dir)
    try:
        assert migrate.copy_embedded_log(rekor_dir, target).tiles > 0
    finally:
        target.close()
    code, result, text = run_cli(capsys, "migrate", instance.directory, "--database",
                                 database, "--tiles", location, "--tiles-endpoint",
                                 s3_credentials.endpoint_url, "--json")
    assert code == 0, text
    assert {item["log"]: item["copied"] for item in result["logs"]} == {
        "rekor": 0, "log1": 7, "log2": 5, "ct": 3}
    client = s3_credentials.client()
    logs = [(spec.name, Path(instance.path("logs")) / spec.name)
            for spec in instance.logs.specs()] + [("ct", Path(instance.path("ct", "log")))]
    try:
        for name, log_dir in logs:
            source = files(log_dir / "tiles")
            prefix = f"sealtrail/{name}/"
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=prefix)
            names = sorted(o["Key"][len(prefix):] for page in pages
                           for o in page.get("Contents", ()))
            assert names == sorted(source)
            for name in names:
                got = client.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
                assert got == source[name], name
    finally:
        client.close()
    migrated = Instance(instance.directory)
    assert migrated.config().storage == storage
    services = migrated.logs.open()
    try:
        assert all(s.engine.latest_checkpoint().size > 0 for s in services)
    finally:
        for service in services:
            service.engine.close()


def test_copy_log_twice_copies_nothing_the_second_time(instance: Instance, database: str,
                                                       tmp_path: Path) -> None:
    log_dir = os.path.join(instance.path("logs"), "rekor")
    for expected_copied in (12, 0):
        target = LogStorage.postgres(database, tmp_path / "tiles", schema="log_rekor")
        try:
            copy = migrate.copy_embedded_log(log_dir, target)
        finally:
            target.close()
        assert (copy.entries, copy.copied) == (12, expected_copied)
        assert copy.tiles > 0


def test_an_interrupted_copy_resumes_to_the_same_target(
        instance: Instance, database: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    log_dir = os.path.join(instance.path("logs"), "rekor")
    monkeypatch.setattr(migrate, "ENTRY_BATCH", 5)
    monkeypatch.setattr(migrate, "TILE_BATCH", 2)

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(stage: str, done: int, total: int) -> None:
        if stage == "entries" and done > 5:
            raise Interrupted

    target = LogStorage.postgres(database, tmp_path / "tiles", schema="log_rekor")
    try:
        with pytest.raises(Interrupted):
            migrate.copy_embedded_log(log_dir, target, progress=stop_after_first_batch)
        assert target.sequencer.sequenced_size() == 10  # two batches committed, no state
        assert target.sequencer.load_state() is None
        copy = migrate.copy_embedded_log(log_dir, target)
    finally:
        target.close()
    assert (copy.entries, copy.copied) == (12, 2)
    schema_rows = pg_rows(database, "SELECT idx, leaf_hash, body, integrated_time FROM "
                                    "log_rekor.entries ORDER BY idx")
    assert schema_rows == sqlite_rows(log_dir, "SELECT idx, leaf_hash, body, integrated_time "
                                               "FROM entries ORDER BY idx")
    assert sorted(pg_rows(database, "SELECT kind, value, idx FROM log_rekor.search")) == \
        sorted(sqlite_rows(log_dir, "SELECT kind, value, idx FROM search"))


def test_a_target_holding_other_entries_is_refused(instance: Instance, database: str,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = next(s for s in instance.logs.specs() if s.name == "rekor")
    other = PostgresSequencer(database, schema="log_rekor")
    try:
        other.bind(spec.origin)
        other.assign([NewEntry(b"\x01" * 32, b"another entry")], 1)
    finally:
        other.close()
    config_before = Path(instance.path("sealtrail.json")).read_text()
    code, result, text = run_cli(capsys, "migrate", instance.directory, "--database",
                                 database, "--tiles", str(tmp_path / "tiles"), "--json")
    assert code == 3
    assert result["code"] == "LOG_STORAGE" and "other entries" in text
    assert Path(instance.path("sealtrail.json")).read_text() == config_before

    # A schema bound to another log is refused too.
    target = LogStorage.postgres(database, tmp_path / "other-tiles", schema="log_other")
    try:
        target.sequencer.bind("another.example/log")
        with pytest.raises(LogStorageError, match="another log"):
            migrate.copy_embedded_log(os.path.join(instance.path("logs"), "rekor"), target)
    finally:
        target.close()


def test_migrate_is_refused_while_served_and_a_password_is_refused(
        instance: Instance, database: str, capsys: pytest.CaptureFixture[str]) -> None:
    held = LogStorage.embedded(os.path.join(instance.path("logs"), "log2"))
    try:
        code, _, text = run_cli(capsys, "migrate", instance.directory, "--database", database)
    finally:
        held.close()
    assert code == 3 and "while it is served" in text and "log log2" in text
    assert Instance(instance.directory).config().storage is None

    code, _, text = run_cli(capsys, "migrate", instance.directory, "--database",
                            "postgresql://postgres:s3cret@127.0.0.1:1/db")
    assert code == 2 and "password" in text and "s3cret" not in text


def test_an_unreachable_database_exits_3(instance: Instance,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/none?connect_timeout=2"
    for dry_run in ((), ("--dry-run",)):
        code, result, _ = run_cli(capsys, "migrate", instance.directory, "--database",
                                  unreachable, "--json", *dry_run)
        assert code == 3 and result["ok"] is False
    assert Instance(instance.directory).config().storage is None


def _previous_version(database: str, schema: str) -> None:
    """The schema as the previous sealtrail left it: the current tables less what the last
    upgrade step adds, and the previous version number."""
    from sealtrail.log.storage.postgres import SCHEMA_UPGRADES

    PostgresSequencer(database, schema=schema).close()
    with psycopg.connect(database, autocommit=True) as conn:
        for statement in SCHEMA_UPGRADES[SCHEMA_VERSION - 1]:
            if statement.startswith("CREATE TABLE IF NOT EXISTS "):
                table = statement.split()[5]
                conn.execute(f"DROP TABLE {schema}.{table}")
        conn.execute(f"UPDATE {schema}.schema_version SET version = {SCHEMA_VERSION - 1}")


def test_upgrade_schema_brings_older_schemas_to_the_driver_version(
        instance: Instance, database: str, capsys: pytest.CaptureFixture[str]) -> None:
    _previous_version(database, "log_rekor")
    PostgresSequencer(database, schema="log_log1").close()  # current already
    with pytest.raises(LogStorageError, match="upgrade"):
        PostgresSequencer(database, schema="log_rekor")

    code, result, _ = run_cli(capsys, "migrate", instance.directory, "--database", database,
                              "--upgrade-schema", "--dry-run", "--json")
    assert code == 0
    versions = {s["schema"]: (s["before"], s["after"]) for s in result["schemas"]}
    assert versions["log_rekor"] == (SCHEMA_VERSION - 1, SCHEMA_VERSION - 1)
    assert versions["log_log1"] == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert versions["log_log2"] == (None, None) and versions["ct_log"] == (None, None)

    # Refused while a server holds the serving lock (its CA record does, shared).
    from sealtrail.ca.record import PostgresIssuanceRecord

    serving = PostgresIssuanceRecord(database)
    try:
        code, result, text = run_cli(capsys, "migrate", instance.directory, "--database",
                                     database, "--upgrade-schema", "--json")
    finally:
        serving.close()
    assert code == 3 and "while it is served" in text
    assert migrate.schema_version(database, "log_rekor") == SCHEMA_VERSION - 1

    code, result, _ = run_cli(capsys, "migrate", instance.directory, "--database", database,
                              "--upgrade-schema", "--json")
    assert code == 0
    versions = {s["schema"]: (s["before"], s["after"]) for s in result["schemas"]}
    assert versions["log_rekor"] == (SCHEMA_VERSION - 1, SCHEMA_VERSION)
    PostgresSequencer(database, schema="log_rekor").close()  # the driver opens it now
    code, result, _ = run_cli(capsys, "migrate", instance.directory, "--database", database,
                              "--upgrade-schema", "--json")
    versions = {s["schema"]: (s["before"], s["after"]) for s in result["schemas"]}
    assert versions["log_rekor"] == (SCHEMA_VERSION, SCHEMA_VERSION)

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"UPDATE log_log1.schema_version SET version = {SCHEMA_VERSION + 1}")
    code, result, _ = run_cli(capsys, "migrate", instance.directory, "--database", database,
                              "--upgrade-schema", "--json")
    assert code == 3 and "newer" in result["message"]


def test_merkle_root_matches_the_reference_tree() -> None:
    from sealtrail.merkle import EMPTY_ROOT, leaf_hash
    from sealtrail.merkle.tree import compute_root

    leaves = [leaf_hash(bytes([n])) for n in range(37)]
    for size in (0, 1, 2, 3, 7, 8, 9, 16, 31, 37):
        expected = compute_root(leaves[:size]) if size else EMPTY_ROOT
        assert migrate.merkle_root(lambda a, b: leaves[a:b], size) == expected
