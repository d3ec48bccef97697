"""Which trusted root a verification uses (trustroot.selection): the newest of the packaged
copy and the TUF-verified copy in the cache, read offline, with its age from an injected
clock; a damaged cache falls back to the packaged copy with a warning."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sealtrail.errors import InputError, TrustUpdateError, UsageError
from sealtrail.trustroot import PACKAGED_AS_OF, packaged_path
from sealtrail.trustroot.selection import HINT_CODES, select_trusted_root
from sealtrail.trustroot.tuf_client import TrustStore
from tests.fakes.network import forbid_network

PACKAGED_DAY = PACKAGED_AS_OF["public-good"]
AS_OF = datetime(PACKAGED_DAY.year, PACKAGED_DAY.month, PACKAGED_DAY.day, tzinfo=timezone.utc)
NOW = AS_OF + timedelta(days=40)
CACHED = b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'


def packaged(name: str) -> bytes:
    return Path(packaged_path(name, "trusted_root.json")).read_bytes()


def cache(tmp_path: Path, name: str, updated: datetime, content: bytes = CACHED) -> TrustStore:
    """A cache entry as a successful `trust update` leaves it (no network needed)."""
    entry = tmp_path / "trust" / name
    (entry / "targets").mkdir(parents=True)
    (entry / "targets" / "trusted_root.json").write_bytes(content)
    state = {"name": name, "url": "https://tuf.example.com",
             "last_updated": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "targets": {"trusted_root.json": {"sha256": hashlib.sha256(content).hexdigest(),
                                               "length": len(content)}}}
    (entry / "instance.json").write_text(json.dumps(state))
    (entry / "pinned-root.json").write_text("{}")
    return TrustStore(tmp_path)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return forbid_network(monkeypatch)


def test_without_a_cache_the_packaged_root_is_used_and_its_age_given(tmp_path: Path) -> None:
    root = select_trusted_root(store=TrustStore(tmp_path), now=NOW)
    assert root.data == packaged("public-good")
    assert (root.instance, root.source, root.warning) == ("public-good", "packaged", None)
    assert root.as_of == AS_OF and root.age == timedelta(days=40)
    assert "public-good" in root.describe() and "packaged" in root.describe()
    assert "40 days" in root.describe()
    assert root.to_json() == {
        "instance": "public-good", "source": "packaged", "path": root.path,
        "as_of": "2026-12-07T00:00:00Z", "age_seconds": 40 * 86400}
    assert not (tmp_path / "trust").exists()  # reading created nothing


def test_a_cached_root_newer_than_the_packaged_one_is_used(tmp_path: Path) -> None:
    updated = AS_OF + timedelta(days=30, hours=2)
    store = cache(tmp_path, "public-good", updated)
    root = select_trusted_root(store=store, now=NOW)
    assert root.data == CACHED
    assert (root.source, root.as_of, root.warning) == ("tuf-cache", updated, None)
    assert root.age == timedelta(days=9, hours=22)
    assert root.path == str(tmp_path / "trust" / "public-good" / "targets" / "trusted_root.json")
    assert "TUF cache" in root.describe() and "9 days" in root.describe()
    assert root.to_json()["age_seconds"] == int(timedelta(days=9, hours=22).total_seconds())


def test_a_cached_root_older_than_the_packaged_one_is_not_used(tmp_path: Path) -> None:
    store = cache(tmp_path, "public-good", AS_OF - timedelta(days=1))
    root = select_trusted_root(store=store, now=NOW)
    assert root.data == packaged("public-good") and root.source == "packaged"
    assert root.warning is None


def test_staging_is_its_own_instance(tmp_path: Path) -> None:
    cache(tmp_path, "public-good", AS_OF + timedelta(days=1))  # production only
    root = select_trusted_root(instance="public-good-staging", store=TrustStore(tmp_path),
                               now=NOW)
    assert root.data == packaged("public-good-staging") and root.source == "packaged"


@pytest.mark.parametrize("damage", ["content", "state", "unreadable"])
def test_a_damaged_cache_falls_back_to_the_packaged_root_with_a_warning(
        tmp_path: Path, damage: str) -> None:
    store = cache(tmp_path, "public-good", AS_OF + timedelta(days=1))
    entry = tmp_path / "trust" / "public-good"
    if damage == "content":
        (entry / "targets" / "trusted_root.json").write_bytes(b'{"evil": 1}')
    elif damage == "state":
        (entry / "instance.json").write_text("{not json")
    else:
        (entry / "targets" / "trusted_root.json").unlink()
    root = select_trusted_root(store=store, now=NOW)
    assert root.data == packaged("public-good") and root.source == "packaged"
    assert root.warning is not None
    assert "public-good" in root.warning and "sealtrail trust update" in root.warning
    assert "\n" not in root.warning
    assert root.to_json()["warning"] == root.warning


def test_a_trusted_root_file_is_used_as_given(tmp_path: Path) -> None:
    path = tmp_path / "root.json"
    path.write_bytes(CACHED)
    root = select_trusted_root(trusted_root=path, store=TrustStore(tmp_path), now=NOW)
    assert (root.data, root.source, root.instance, root.age) == (CACHED, "file", None, None)
    assert str(path) in root.describe()
    with pytest.raises(InputError):
        select_trusted_root(trusted_root=tmp_path / "missing.json", now=NOW)


def test_an_added_instance_needs_its_cache(tmp_path: Path) -> None:
    updated = NOW - timedelta(hours=5)
    store = cache(tmp_path, "mine", updated)
    root = select_trusted_root(instance="mine", store=store, now=NOW)
    assert (root.data, root.source, root.age) == (CACHED, "tuf-cache", timedelta(hours=5))
    assert "5 hours" in root.describe()
    # No packaged copy to fall back to: a damaged cache is an error, as before.
    (tmp_path / "trust" / "mine" / "targets" / "trusted_root.json").write_bytes(b"{}")
    with pytest.raises(TrustUpdateError, match="changed since it was verified"):
        select_trusted_root(instance="mine", store=store, now=NOW)
    with pytest.raises(UsageError):
        select_trusted_root(instance="never-added", store=store, now=NOW)


def test_the_clock_must_be_aware(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        select_trusted_root(store=TrustStore(tmp_path), now=datetime(2026, 1, 1))


@pytest.mark.parametrize("code", sorted(HINT_CODES))
def test_the_hint_names_the_root_and_the_ways_out(tmp_path: Path, code: str) -> None:
    root = select_trusted_root(store=TrustStore(tmp_path), now=NOW)
    hint = root.hint(code)
    assert hint is not None and root.describe() in hint
    for option in ("--staging", "--trusted-root", "--instance", "sealtrail trust update"):
        assert option in hint
    assert root.hint("IDENTITY_MISMATCH") is None and root.hint(None) is None
    assert root.annotate({"ok": False, "code": code})["hint"] == hint
    assert "hint" not in root.annotate({"ok": True, "code": None})
    assert root.annotate({"ok": True})["trusted_root"] == root.to_json()


def test_notes_say_which_root_on_failure_only(tmp_path: Path) -> None:
    root = select_trusted_root(store=TrustStore(tmp_path), now=NOW)
    assert root.notes([]) == []
    assert root.notes(["DIGEST_MISMATCH"]) == [f"trusted root: {root.describe()}"]
    notes = root.notes(["DIGEST_MISMATCH", "TLOG_KEY_UNKNOWN", "CERT_CHAIN_INVALID"])
    assert notes == [f"trusted root: {root.describe()}",
                     f"hint: {root.hint('TLOG_KEY_UNKNOWN', root='this root')}"]
    assert notes[1].startswith("hint: the bundle's transparency log is not trusted by this root.")


SIGNING = b'{"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"}'


def test_signing_documents_come_from_the_same_place(tmp_path: Path) -> None:
    from sealtrail.trustroot.selection import select_signing_documents

    root, config = select_signing_documents(store=TrustStore(tmp_path), now=NOW)
    assert root.source == "packaged"
    assert config == Path(packaged_path("public-good", "signing_config.v0.2.json")).read_bytes()
    store = cache(tmp_path, "public-good", AS_OF + timedelta(days=1))
    with pytest.raises(InputError, match="publishes no signing_config"):
        select_signing_documents(store=store, now=NOW)
    entry = tmp_path / "trust" / "public-good"
    (entry / "targets" / "signing_config.v0.2.json").write_bytes(SIGNING)
    state = json.loads((entry / "instance.json").read_text())
    state["targets"]["signing_config.v0.2.json"] = {
        "sha256": hashlib.sha256(SIGNING).hexdigest(), "length": len(SIGNING)}
    (entry / "instance.json").write_text(json.dumps(state))
    root, config = select_signing_documents(store=store, now=NOW)
    assert (root.source, root.data, config) == ("tuf-cache", CACHED, SIGNING)
