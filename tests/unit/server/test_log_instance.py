"""logs.json, the list of an instance's logs, is parsed strictly (ADR 0002)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sealtrail.errors import ConfigInvalidError
from sealtrail.server.log_instance import LogDirectory, LogSpec

V1: dict[str, Any] = {"name": "rekor", "apiVersion": 1, "originHost": "log.example",
                      "treeId": 42, "indexOffset": 0, "frozen": True,
                      "created": "2026-01-01T00:00:00Z", "frozenAt": "2026-02-01T00:00:00Z"}
V2: dict[str, Any] = {"name": "log1", "apiVersion": 2, "originHost": "log.example"}


def specs(tmp_path: Path, *entries: Any, **extra: Any) -> list[LogSpec]:
    (tmp_path / "logs.json").write_text(json.dumps({"logs": list(entries), **extra}))
    return LogDirectory(str(tmp_path)).specs()


def test_a_written_list_reads_back_the_same(tmp_path: Path) -> None:
    first, second = specs(tmp_path, V1, V2)
    assert first.frozen is True and first.tree_id == 42 and first.origin == "log.example - 42"
    assert second.frozen is False and second.created == "" and second.api_version == 2
    assert specs(tmp_path, first.to_json(), second.to_json()) == [first, second]


@pytest.mark.parametrize("field,value,message", [
    # The truthiness trap: "false" would have frozen the log (no more entries accepted).
    ("frozen", "false", ".frozen must be true or false"),
    ("frozen", 1, ".frozen must be true or false"),
    ("apiVersion", True, ".apiVersion must be an integer"),
    ("apiVersion", "1", ".apiVersion must be an integer"),
    ("apiVersion", 3, ".apiVersion is out of range"),
    ("treeId", "42", ".treeId must be an integer"),
    ("treeId", 4.2, ".treeId must be an integer"),
    ("indexOffset", -1, ".indexOffset is out of range"),
    ("name", "../keys", ".name must be letters, digits and dashes"),
    ("name", 5, ".name must be a string"),
    ("originHost", "", ".originHost must not be empty"),
    ("created", "January", ".created is not an RFC 3339 timestamp"),
    ("frozenAt", None, ".frozenAt must be a string"),
])
def test_a_field_of_the_wrong_type_is_refused(tmp_path: Path, field: str, value: Any,
                                              message: str) -> None:
    with pytest.raises(ConfigInvalidError) as info:
        specs(tmp_path, V2, {**V1, field: value})
    assert f"{tmp_path / 'logs.json'}: logs[1]{message}" in info.value.message
    assert info.value.exit_code == 2


def test_unknown_missing_and_repeated_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalidError, match=r"logs\[0\] has unknown fields: 'frozne'"):
        specs(tmp_path, {**V2, "frozne": True})
    with pytest.raises(ConfigInvalidError, match="has unknown fields: 'shards'"):
        specs(tmp_path, V2, shards=[])
    with pytest.raises(ConfigInvalidError, match=r"logs\[0\] has no originHost"):
        specs(tmp_path, {"name": "log1", "apiVersion": 2})
    with pytest.raises(ConfigInvalidError, match="names a log twice"):
        specs(tmp_path, V2, {**V2, "apiVersion": 1})
    (tmp_path / "logs.json").write_text("[]")
    with pytest.raises(ConfigInvalidError, match=re.escape('must hold {"logs": [...]}')):
        LogDirectory(str(tmp_path)).specs()
