"""The trust cache's state file (instance.json) is read strictly (ADR 0002): the fields
TrustStore writes, with their JSON types; anything else is a one-line InputError."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sealtrail.errors import InputError, TrustUpdateError
from sealtrail.trustroot.tuf_client import TrustStore

PINNED = "pinned-root.json"
DOCUMENT = b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'
GOOD: dict[str, Any] = {
    "name": "example", "url": "https://tuf.example.com",
    "last_updated": "2026-06-01T12:00:00Z",
    "targets": {"trusted_root.json": {"sha256": hashlib.sha256(DOCUMENT).hexdigest(),
                                      "length": len(DOCUMENT)}},
}


def store_with(tmp_path: Path, state: Any) -> TrustStore:
    entry = tmp_path / "trust" / "example"
    (entry / "targets").mkdir(parents=True)
    (entry / "targets" / "trusted_root.json").write_bytes(DOCUMENT)
    (entry / "instance.json").write_text(json.dumps(state))
    (entry / PINNED).write_text("{}")  # read, not parsed, by the offline reads
    return TrustStore(tmp_path)


def test_a_written_state_is_read(tmp_path: Path) -> None:
    assert store_with(tmp_path, GOOD).trusted_root_bytes("example") == DOCUMENT


def test_a_state_never_updated_has_a_null_time(tmp_path: Path) -> None:
    store = store_with(tmp_path, {**GOOD, "last_updated": None, "targets": {}})
    with pytest.raises(TrustUpdateError, match="run an update first"):
        store.trusted_root_bytes("example")


@pytest.mark.parametrize("change,message", [
    ({"last_updated": 0}, "last_updated must be a string or null"),
    ({"last_updated": ""}, "last_updated is not an RFC 3339 timestamp"),
    ({"url": ["https://tuf.example.com"]}, "url must be a string"),
    ({"targets": []}, "targets must be a JSON object"),
    ({"targets": {"trusted_root.json": "abc"}}, "is not a {sha256, length} record"),
    ({"targets": {"trusted_root.json": {"sha256": "ABC"}}}, "sha256 must be 64 lowercase hex"),
    ({"targets": {"trusted_root.json": {**GOOD["targets"]["trusted_root.json"],
                                        "length": True}}}, "length must be an integer"),
    ({"targets": {"trusted_root.json": {**GOOD["targets"]["trusted_root.json"],
                                        "verified": True}}}, "is not a {sha256, length}"),
    ({"lastUpdated": "2026-06-01T12:00:00Z"}, "unknown fields 'lastUpdated'"),
])
def test_a_damaged_state_is_refused(tmp_path: Path, change: dict[str, Any],
                                    message: str) -> None:
    store = store_with(tmp_path, {**GOOD, **change})
    with pytest.raises(InputError, match=re.escape(message)) as info:
        store.trusted_root_bytes("example")
    assert str(tmp_path / "trust" / "example" / "instance.json") in info.value.message
    assert info.value.exit_code == 2


def test_a_state_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a JSON object"):
        store_with(tmp_path, [GOOD]).show("example")
