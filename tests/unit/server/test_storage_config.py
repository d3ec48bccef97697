"""The ``storage`` section of sealtrail.json (PostgreSQL and a tile location) is parsed
strictly, never holds or shows a password, and maps each log to its schema and tiles.
No network: only parsing, the embedded default and refusals made before any connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sealtrail.cli.main import main
from sealtrail.errors import ConfigInvalidError
from sealtrail.server.instance import InstanceConfig
from sealtrail.server.storage import (StorageConfig, log_schema, open_issuance_record,
                                      open_log_storage)

DATABASE = "postgresql://sealtrail@db.example:5432/sealtrail?sslmode=verify-full"
SECRET = "pw-Zq81xK"
BASE: dict[str, Any] = {"publicUrl": "https://sigstore.example.com",
                        "created": "2026-01-31T12:00:00Z"}


def test_the_section_reads_back_the_same() -> None:
    for section in ({"database": DATABASE},
                    {"database": "host=db.example dbname=sealtrail user=sealtrail "
                                 "passfile=/etc/sealtrail/pgpass", "tiles": "/srv/tiles"},
                    {"database": DATABASE, "tiles": "file:///srv/tiles"},
                    {"database": DATABASE, "tiles": "s3://bucket/some/prefix",
                     "tilesEndpoint": "https://s3.example.com"}):
        config = InstanceConfig.from_json({**BASE, "storage": section})
        assert config.storage is not None and config.storage.to_json() == section
        assert InstanceConfig.from_json(config.to_json()).storage == config.storage
    # No section: the embedded default, and none is written back.
    plain = InstanceConfig.from_json(BASE)
    assert plain.storage is None and "storage" not in plain.to_json()


@pytest.mark.parametrize("section, message", [
    ("postgresql://x", "storage must be a JSON object"),
    ({}, "storage has no database"),
    ({"database": DATABASE, "tile": "/srv"}, "tile"),
    ({"database": 5}, "storage.database must be a string"),
    ({"database": ""}, "storage.database must not be empty"),
    ({"database": "not a conninfo"}, "storage.database is not a libpq connection string"),
    ({"database": DATABASE, "tiles": "relative/dir"}, "storage.tiles must be an absolute"),
    ({"database": DATABASE, "tiles": "gs://bucket"}, "storage.tiles must be s3://"),
    ({"database": DATABASE, "tiles": "s3://"}, "storage.tiles must be s3://BUCKET"),
    ({"database": DATABASE, "tiles": "file://host/srv"}, "file:///ABSOLUTE/DIR"),
    ({"database": DATABASE, "tiles": "/srv", "tilesEndpoint": "https://s3.example.com"},
     "storage.tilesEndpoint is for s3:// tiles only"),
    ({"database": DATABASE, "tilesEndpoint": "https://s3.example.com"},
     "storage.tilesEndpoint is for s3:// tiles only"),
    ({"database": DATABASE, "tiles": "s3://b", "tilesEndpoint": "s3.example.com"},
     "storage.tilesEndpoint must be an http(s) URL"),
])
def test_bad_sections_are_refused_naming_the_field(section: Any, message: str) -> None:
    with pytest.raises(ConfigInvalidError) as info:
        InstanceConfig.from_json({**BASE, "storage": section}, "DIR/sealtrail.json")
    assert info.value.diagnostics().startswith("DIR/sealtrail.json: storage")
    assert message in info.value.diagnostics()


@pytest.mark.parametrize("database", [
    f"postgresql://sealtrail:{SECRET}@db.example/sealtrail",
    f"postgresql://sealtrail@db.example/sealtrail?password={SECRET}",
    f"host=db.example user=sealtrail password={SECRET}",
    f"host=db.example user=sealtrail password='{SECRET} with space'",
    f"host=db.example user=sealtrail password={SECRET} garbage'",  # unparsable too
])
def test_a_password_is_refused_and_never_shown(database: str) -> None:
    with pytest.raises(ConfigInvalidError) as info:
        StorageConfig.from_json({"database": database})
    shown = str(info.value.to_json())
    assert SECRET not in shown and "db.example" not in shown
    assert "password" in shown or "libpq connection string" in shown


def test_logs_map_to_schemas_and_tile_locations(tmp_path: Path) -> None:
    assert log_schema("rekor") == "log_rekor" and log_schema("my-log-2") == "log_my_log_2"
    embedded = str(tmp_path / "logs" / "log1")
    cases = {"": f"{embedded}/tiles", "/srv/tiles": "/srv/tiles/log1",
             "file:///srv/my%20tiles": "/srv/my tiles/log1",
             "s3://bucket": "s3://bucket/log1", "s3://bucket/pre/fix/": "s3://bucket/pre/fix/log1"}
    for tiles, location in cases.items():
        assert StorageConfig(DATABASE, tiles).tile_location("log1", embedded) == location


def test_no_section_opens_the_embedded_storage(tmp_path: Path) -> None:
    storage = open_log_storage(None, "log1", str(tmp_path / "log1"), fsync=False)
    try:
        assert type(storage.sequencer).__name__ == "SqliteSequencer"
    finally:
        storage.close()
    assert (tmp_path / "log1" / "sequencer.sqlite3").exists()
    assert (tmp_path / "log1" / "tiles").is_dir()
    record = open_issuance_record(None, str(tmp_path / "ca" / "issued.sqlite"))
    try:
        assert record.count() == 0
    finally:
        record.close()


def test_init_refuses_a_password_before_writing_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "instance"
    code = main(["init", str(directory), "--database",
                 f"postgresql://sealtrail:{SECRET}@db.example/sealtrail"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and "CONFIG_INVALID: --database must not hold a password" in err
    assert SECRET not in out + err
    assert not directory.exists()


@pytest.mark.parametrize("argv, message", [
    (["--tiles", "/srv/tiles"], "--tiles and --tiles-endpoint go with --database"),
    (["--database", DATABASE, "--tiles", "tiles"], "--tiles must be an absolute directory"),
    (["--database", DATABASE, "--tiles-endpoint", "https://s3.example.com"],
     "--tiles-endpoint is for s3:// tiles only"),
])
def test_init_flags_are_checked_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    directory = tmp_path / "instance"
    assert main(["init", str(directory), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not directory.exists()


def test_the_postgres_record_never_shows_a_string_it_cannot_parse() -> None:
    from sealtrail.ca.record import PostgresIssuanceRecord

    with pytest.raises(ConfigInvalidError) as info:  # refused before any connection
        PostgresIssuanceRecord(f"host=db.example password='{SECRET}")
    assert SECRET not in str(info.value.to_json())
