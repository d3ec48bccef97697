"""An instance on PostgreSQL and a tile directory or an S3 bucket (issue 16): `sealtrail init
--database [--tiles ...]` and `sealtrail serve`, against a real PostgreSQL server
(tests/integration/postgres.py) and SeaweedFS (tests/integration/s3.py).

Each test gets its own database in the one throwaway cluster: the instance's schemas
(``ca``, ``log_rekor``, ``log_log1``) have fixed names, so instances must not share one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.ca.record import PostgresIssuanceRecord, held_exclusively
from sealtrail.errors import ServiceUnavailableError
from tests.integration.instance_server import BIN, InstanceServer, free_port, run
from tests.integration.postgres import PostgresCluster, database, postgres_cluster
from tests.integration.s3 import SeaweedS3, s3_credentials, s3_server
from tests.unit.ca.test_authority import principal

pytestmark = pytest.mark.integration

__all__ = ["database", "postgres_cluster", "s3_credentials", "s3_server"]





def _schemas(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT schema_name FROM information_schema.schemata")}


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _leaf(serial: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(datetime(2026, 1, 1, tzinfo=timezone.utc))
            .not_valid_after(datetime(2026, 1, 2, tzinfo=timezone.utc))
            .sign(key, hashes.SHA256()))


def test_the_postgres_record_keeps_certificates_and_fails_as_503(database: str) -> None:
    record = PostgresIssuanceRecord(database, schema="ca")
    try:
        leaf = _leaf(0xC0FFEE)
        record.record(leaf, principal("email"))
        (row,) = record.by_subject(principal("email").san.value)
        assert row.serial == "c0ffee" and row.not_before == "2026-01-01T00:00:00Z"
        assert row.certificate == leaf.public_bytes(serialization.Encoding.DER)
        # Open, the record holds the serving lock: `rotate` cannot take it.
        with held_exclusively(database) as free:
            assert not free
        # A lost connection fails that one call as 503, the next reconnects.
        with psycopg.connect(database, autocommit=True) as admin:
            others = ("FROM pg_stat_activity WHERE datname = current_database() "
                      "AND pid <> pg_backend_pid()")
            admin.execute(f"SELECT pg_terminate_backend(pid) {others}")
            # Termination is asynchronous: wait until the record's server process is gone.
            deadline = time.monotonic() + 30
            while admin.execute(f"SELECT count(*) {others}").fetchone() != (0,):
                assert time.monotonic() < deadline, "the terminated backend did not exit"
        with pytest.raises(ServiceUnavailableError) as info:
            record.record(_leaf(2), principal("email"))
        assert info.value.exit_code == 3 and "issuance record" in info.value.message
        record.record(_leaf(3), principal("email"))
        # Recording the same serial twice is refused, as with SQLite, and nothing is lost.
        with pytest.raises(ServiceUnavailableError):
            record.record(leaf, principal("email"))
        assert record.count() == 2
    finally:
        record.close()
        record.close()  # idempotent
    with held_exclusively(database) as free:  # closed: the lock went with the connection
        assert free
    reopened = PostgresIssuanceRecord(database, schema="ca")
    try:
        assert reopened.count() == 2
        with pytest.raises(ServiceUnavailableError, match="closed"):
            record.count()
    finally:
        reopened.close()
    with pytest.raises(ServiceUnavailableError) as info:
        PostgresIssuanceRecord(f"postgresql://postgres@127.0.0.1:{free_port()}/x"
                               "?connect_timeout=5")
    assert info.value.exit_code == 3


def test_init_writes_the_storage_section_and_creates_the_schemas(tmp_path: Path,
                                                                 database: str) -> None:
    directory = tmp_path / "instance"
    run(str(BIN / "sealtrail"), "init", str(directory), "--port", str(free_port()),
        "--database", database, "--tiles", str(tmp_path / "tiles"))
    config = json.loads((directory / "sealtrail.json").read_text())
    assert config["storage"] == {"database": database, "tiles": str(tmp_path / "tiles")}
    assert {"ca", "log_rekor", "log_log1", "ct_log"} <= _schemas(database)
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version FROM ca.schema_version").fetchall() == [(1,)]
        assert conn.execute("SELECT count(*) FROM ca.issued").fetchone() == (0,)
    # Nothing embedded was made: no SQLite files under the instance directory.
    assert not list(directory.rglob("*.sqlite*"))


def test_the_password_comes_from_libpq_s_own_sources(tmp_path: Path, database: str,
                                                     postgres_cluster: PostgresCluster) -> None:
    """A role that must give a password (scram-sha-256 for it alone, on this cluster):
    `init` fails without one (exit 3, nothing written) and works with PGPASSFILE; the
    password is in neither the config nor any output."""
    role, secret = f"pw_{os.getpid()}", "pw-" + secrets.token_hex(8)
    dbname = database.rsplit("/", 1)[1]
    hba = postgres_cluster.data / "pg_hba.conf"
    original = hba.read_text()
    with psycopg.connect(postgres_cluster.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'")
        conn.execute(f"GRANT CREATE ON DATABASE {dbname} TO {role}")
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
        conn.execute("SELECT pg_reload_conf()")
    try:
        url = f"postgresql://{role}@127.0.0.1:{postgres_cluster.port}/{dbname}"
        argv = [str(BIN / "sealtrail"), "init", str(tmp_path / "instance"), "--port",
                str(free_port()), "--database", url]
        env = {"PGPASSFILE": str(tmp_path / "none"), "PGPASSWORD": ""}
        done = run(*argv, env=env, check=False)
        assert done.returncode == 3, done.stderr
        assert "SERVICE_UNAVAILABLE" in _error_line(done.stderr)
        assert not (tmp_path / "instance").exists()
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"127.0.0.1:{postgres_cluster.port}:{dbname}:{role}:{secret}\n")
        passfile.chmod(0o600)
        done = run(*argv, env={**env, "PGPASSFILE": str(passfile)})
        assert secret not in done.stdout + done.stderr
        assert secret not in (tmp_path / "instance" / "sealtrail.json").read_text()
        with psycopg.connect(postgres_cluster.dsn.replace("dbname=postgres",
                                                          f"dbname={dbname}")) as conn:
            owners: dict[str, str] = dict(conn.execute(
                "SELECT schema_name, schema_owner FROM information_schema.schemata "
                "WHERE schema_owner = %s", (role,)).fetchall())
        assert owners == {name: role for name in ("ca", "log_rekor", "log_log1", "ct_log")}
    finally:
        hba.write_text(original)
        with psycopg.connect(postgres_cluster.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


@pytest.mark.parametrize("form", ["url", "query", "keywords"])
def test_init_refuses_a_password_and_never_shows_it(tmp_path: Path, database: str,
                                                    form: str) -> None:
    secret = "pw-Zq81xK"
    host, _, dbname = database.removeprefix("postgresql://postgres@").partition("/")
    url = {"url": f"postgresql://postgres:{secret}@{host}/{dbname}",
           "query": f"{database}?password={secret}",
           "keywords": f"host=127.0.0.1 dbname={dbname} user=postgres password='{secret}'"}[form]
    directory = tmp_path / "instance"
    done = run(str(BIN / "sealtrail"), "init", str(directory), "--port", str(free_port()),
               "--database", url, check=False)
    assert done.returncode == 2, done.stderr
    line = _error_line(done.stderr)
    assert "CONFIG_INVALID" in line and "password" in line and "PGPASSWORD" in line
    assert secret not in done.stdout + done.stderr
    assert not directory.exists()


def test_a_password_in_the_file_stops_serve_without_showing_it(tmp_path: Path,
                                                               database: str) -> None:
    directory = tmp_path / "instance"
    run(str(BIN / "sealtrail"), "init", str(directory), "--port", str(free_port()),
        "--database", database)
    config_path = directory / "sealtrail.json"
    config = json.loads(config_path.read_text())
    config["storage"]["database"] = database + "?password=pw-Zq81xK"
    config_path.write_text(json.dumps(config))
    done = run(str(BIN / "sealtrail"), "serve", str(directory), check=False)
    assert done.returncode == 2
    assert "storage.database must not hold a password" in _error_line(done.stderr)
    assert "pw-Zq81xK" not in done.stderr


def test_init_with_an_unreachable_database_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "instance"
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=5"
    done = run(str(BIN / "sealtrail"), "init", str(directory), "--port", str(free_port()),
               "--database", unreachable, check=False)
    assert done.returncode == 3, done.stderr
    assert "SERVICE_UNAVAILABLE" in _error_line(done.stderr)
    assert not directory.exists()


def test_init_refuses_a_database_that_holds_an_instance(tmp_path: Path, database: str) -> None:
    first = InstanceServer(tmp_path / "first")
    first.init("--database", database)
    first.start()
    try:  # serving saves each log's first checkpoint: the database is no longer empty
        assert httpx.get(first.url + "/healthz", timeout=30).status_code == 200
    finally:
        first.stop()
    done = run(str(BIN / "sealtrail"), "init", str(tmp_path / "second"), "--port",
               str(free_port()), "--database", database, check=False)
    assert done.returncode == 2, done.stderr
    assert "already holds an instance" in _error_line(done.stderr)
    assert not (tmp_path / "second").exists()


def test_flags_of_tiles_need_a_database(tmp_path: Path) -> None:
    done = run(str(BIN / "sealtrail"), "init", str(tmp_path / "instance"), "--tiles",
               str(tmp_path / "tiles"), check=False)
    assert done.returncode == 2 and "--database" in _error_line(done.stderr)
    assert not (tmp_path / "instance").exists()


def _sign_and_verify(instance: InstanceServer, tmp_path: Path, version: str) -> tuple[Path, str]:
    artifact = tmp_path / f"release-v{version}.tar.gz"
    artifact.write_bytes(f"a release for Rekor v{version}\n".encode())
    identity = f"dev{version}@example.com"
    run(str(BIN / "sealtrail"), "sign", str(artifact), "--instance-dir", str(instance.directory),
        "--rekor-version", version, "--identity-token", instance.token(identity))
    done = run(str(BIN / "sealtrail"), "verify", str(artifact), "--trusted-root",
               str(instance.trusted_root), "--certificate-identity", identity,
               "--certificate-oidc-issuer", instance.issuer)
    assert identity in done.stdout
    return artifact, identity


def test_serve_signs_verifies_and_searches_on_postgres(tmp_path: Path, database: str) -> None:
    tiles = tmp_path / "tiles"
    instance = InstanceServer(tmp_path / "instance")
    instance.init("--database", database, "--tiles", f"file://{tiles}")
    instance.start()
    try:
        signed = [_sign_and_verify(instance, tmp_path, version) for version in ("1", "2")]
        # Search finds each entry, by digest and by identity, in the log it went to.
        digest_v1 = hashlib.sha256(signed[0][0].read_bytes()).hexdigest()
        found_v1 = httpx.post(instance.url + "/api/v1/index/retrieve",
                              json={"hash": f"sha256:{digest_v1}"}, timeout=30).json()
        assert len(found_v1) == 1
        assert len(httpx.post(instance.url + "/api/v1/index/retrieve",
                              json={"email": signed[0][1]}, timeout=30).json()) == 1
        digest_v2 = hashlib.sha256(signed[1][0].read_bytes()).hexdigest()
        found_v2 = httpx.get(instance.url + "/logs/log1/api/v2/log/search",
                             params={"sha256": digest_v2}, timeout=30).json()
        assert len(found_v2["logIndexes"]) == 1
        # While served, rotation is refused: the server holds the PostgreSQL serving lock.
        config_before = (instance.directory / "sealtrail.json").read_text()
        for argv in (("ca",), ("log", "--api", "2")):
            done = run(str(BIN / "sealtrail"), "rotate", argv[0], str(instance.directory),
                       *argv[1:], check=False)
            assert done.returncode == 3, done.stderr
            assert "while it is served" in _error_line(done.stderr)
        assert (instance.directory / "sealtrail.json").read_text() == config_before
    finally:
        instance.stop()
    # The state is in PostgreSQL, the tiles in the configured directory, one per log.
    with psycopg.connect(database) as conn:
        subjects = {row[0] for row in conn.execute("SELECT subject FROM ca.issued")}
        assert subjects == {"dev1@example.com", "dev2@example.com"}
        assert conn.execute("SELECT count(*) FROM log_rekor.entries").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM log_log1.entries").fetchone() == (1,)
        # The CT log took one precertificate per certificate.
        assert conn.execute("SELECT count(*) FROM ct_log.entries").fetchone() == (2,)
    for log in ("log1", "rekor", "ct"):
        assert (tiles / log / "checkpoint").is_file()
    assert not list(instance.directory.rglob("*.sqlite*"))
    assert not (instance.directory / "logs" / "log1" / "tiles").exists()
    # Stopped, the rotation goes through; served again, the new shard is a new schema.
    done = run(str(BIN / "sealtrail"), "rotate", "log", str(instance.directory), "--api", "2")
    assert "published trust root" in done.stdout
    assert "log_log2" not in _schemas(database)
    instance.start()
    instance.stop()
    assert "log_log2" in _schemas(database)


def test_serve_keeps_tiles_in_an_s3_bucket(tmp_path: Path, database: str,
                                           s3_credentials: SeaweedS3) -> None:
    # The credentials reach `serve` through the standard AWS variables only (the fixture
    # sets them in this process's environment, which the servers inherit).
    bucket = "sealtrail-instance-" + secrets.token_hex(4)
    s3_credentials.create_bucket(bucket)
    instance = InstanceServer(tmp_path / "instance")
    instance.init("--database", database, "--tiles", f"s3://{bucket}/prod",
                  "--tiles-endpoint", s3_credentials.endpoint_url)
    config = json.loads((instance.directory / "sealtrail.json").read_text())
    assert config["storage"] == {"database": database, "tiles": f"s3://{bucket}/prod",
                                 "tilesEndpoint": s3_credentials.endpoint_url}
    assert s3_credentials.secret_key not in json.dumps(config)
    instance.start()
    try:
        artifact, _ = _sign_and_verify(instance, tmp_path, "2")
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
        found = httpx.get(instance.url + "/logs/log1/api/v2/log/search",
                          params={"sha256": digest}, timeout=30).json()
        assert len(found["logIndexes"]) == 1
        # Tiles are read back through the instance from the bucket.
        assert httpx.get(instance.url + "/logs/log1/checkpoint", timeout=30).status_code == 200
    finally:
        instance.stop()
    listed = s3_credentials.client().list_objects_v2(Bucket=bucket, Prefix="prod/")
    keys = {item["Key"] for item in listed.get("Contents", [])}
    assert {"prod/log1/checkpoint", "prod/rekor/checkpoint", "prod/ct/checkpoint",
            "prod/log1/tile/0/000.p/1", "prod/ct/tile/0/000.p/1"} <= keys
    assert not (instance.directory / "logs" / "log1" / "tiles").exists()
