"""TrustRepository: layout, signing, publish/refresh/rotate, and python-tuf clients reading it.

No network: a python-tuf ``Updater`` reads the repository through ``DirFetcher``
(tests/unit/tufrepo/_support.py), which applies the same ``resolve`` mapping as a server.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Metadata

from sealtrail.errors import ConfigInvalidError, UsageError
from sealtrail.tufrepo import (
    DEFAULT_EXPIRY,
    MAX_TARGETS,
    ROLES,
    RepoKeys,
    TrustRepository,
    resolve,
)
from tests.unit.tufrepo._support import DirFetcher, fetch_targets

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
TARGETS = {"trusted_root.json": b'{"version": 1}', "signing_config.v0.2.json": b'{"sc": 1}'}
BOTH = ("trusted_root.json", "signing_config.v0.2.json")


@pytest.fixture(scope="module")
def keys() -> RepoKeys:
    return RepoKeys.generate()


@pytest.fixture
def repo(tmp_path: Path, keys: RepoKeys) -> TrustRepository:
    return TrustRepository.create(tmp_path / "tuf", keys, TARGETS)


def _md(repo: TrustRepository, name: str) -> Metadata:
    return Metadata.from_bytes((Path(repo.directory) / "metadata" / name).read_bytes())


def test_create_writes_sigstore_layout(repo: TrustRepository, keys: RepoKeys) -> None:
    meta = Path(repo.directory) / "metadata"
    assert sorted(p.name for p in meta.iterdir()) == [
        "1.root.json", "1.snapshot.json", "1.targets.json", "root.json", "snapshot.json",
        "targets.json", "timestamp.json"]
    sha = hashlib.sha256(TARGETS["trusted_root.json"]).hexdigest()
    assert (Path(repo.directory) / "targets" / f"{sha}.trusted_root.json").read_bytes() \
        == TARGETS["trusted_root.json"]
    root = _md(repo, "1.root.json").signed
    assert (meta / "root.json").read_bytes() == (meta / "1.root.json").read_bytes()
    assert root.consistent_snapshot is True
    for role in ROLES:
        assert root.roles[role].threshold == 1
        assert root.roles[role].keyids == [keys.keyid(role)]
    assert repo.target_names() == tuple(sorted(TARGETS))
    assert repo.read_target("trusted_root.json") == TARGETS["trusted_root.json"]
    assert repo.root_json() == (meta / "1.root.json").read_bytes()


def test_expiry_defaults_and_overrides(tmp_path: Path, keys: RepoKeys) -> None:
    repo = TrustRepository.create(tmp_path / "a", keys, TARGETS, now=NOW)
    assert {r: s.expires for r, s in repo.status().items()} == {
        r: NOW + DEFAULT_EXPIRY[r] for r in ROLES}
    assert DEFAULT_EXPIRY == {"root": timedelta(days=365), "targets": timedelta(days=90),
                              "snapshot": timedelta(days=7), "timestamp": timedelta(days=1)}
    other = TrustRepository.create(tmp_path / "b", keys, TARGETS, now=NOW,
                                   expiry={"timestamp": timedelta(hours=2)})
    assert other.status()["timestamp"].expires == NOW + timedelta(hours=2)
    assert other.status()["root"].expires == NOW + timedelta(days=365)


def test_a_python_tuf_client_fetches_with_sigstore_file_names(repo: TrustRepository,
                                                               tmp_path: Path) -> None:
    fetcher = DirFetcher(repo.directory)
    got = fetch_targets(repo.directory, tmp_path / "client", repo.root_json(), BOTH, fetcher)
    assert got == TARGETS
    sha = hashlib.sha256(TARGETS["trusted_root.json"]).hexdigest()
    # What sigstore-python's TrustUpdater (same Updater configuration) asks for.
    assert fetcher.requested[:4] == ["2.root.json", "timestamp.json", "1.snapshot.json",
                                     "1.targets.json"]
    assert f"targets/{sha}.trusted_root.json" in fetcher.requested


def test_publish_makes_new_versions_and_keeps_old_ones(repo: TrustRepository,
                                                       tmp_path: Path) -> None:
    bootstrap = repo.root_json()
    fetch_targets(repo.directory, tmp_path / "c", bootstrap, BOTH)
    new = {"trusted_root.json": b'{"version": 2}', "signing_config.v0.2.json": b'{"sc": 1}'}
    assert repo.publish(new) == 2
    assert {r: s.version for r, s in repo.status().items()} == {
        "root": 1, "targets": 2, "snapshot": 2, "timestamp": 2}
    assert fetch_targets(repo.directory, tmp_path / "c", bootstrap, BOTH) == new
    meta = Path(repo.directory) / "metadata"
    assert (meta / "1.targets.json").exists() and (meta / "1.snapshot.json").exists()
    snapshot = _md(repo, "2.snapshot.json").signed
    assert snapshot.meta["targets.json"].version == 2
    assert snapshot.meta["targets.json"].hashes["sha256"] == hashlib.sha256(
        (meta / "2.targets.json").read_bytes()).hexdigest()
    # Publishing replaces the whole set: a dropped target disappears.
    repo.publish({"trusted_root.json": b'{"version": 3}'})
    assert repo.target_names() == ("trusted_root.json",)


def test_refresh_timestamp_only_touches_the_timestamp(repo: TrustRepository) -> None:
    before = repo.status()
    later = datetime.now(timezone.utc) + timedelta(hours=5)
    assert repo.refresh_timestamp(now=later) == 2
    after = repo.status()
    assert after["timestamp"] == type(after["timestamp"])(2, (later + timedelta(days=1))
                                                           .replace(microsecond=0))
    assert {r: after[r] for r in ("root", "targets", "snapshot")} == \
        {r: before[r] for r in ("root", "targets", "snapshot")}


def test_refresh_expiring_re_signs_only_what_is_close_to_expiry(tmp_path: Path,
                                                                keys: RepoKeys) -> None:
    repo = TrustRepository.create(tmp_path / "r", keys, TARGETS, now=NOW)
    assert repo.refresh_expiring(now=NOW) == ()
    # 20 hours in, the 1-day timestamp has less than a quarter left; nothing else does.
    assert repo.refresh_expiring(now=NOW + timedelta(hours=20)) == ("timestamp",)
    # 6 days in, the 7-day snapshot is due too (and re-signing it re-signs the timestamp).
    assert repo.refresh_expiring(now=NOW + timedelta(days=6)) == ("snapshot", "timestamp")
    assert repo.refresh_expiring(now=NOW + timedelta(days=80)) == (
        "targets", "snapshot", "timestamp")
    # Day 300: root (365 days) is in its last quarter and the day-80 targets have expired.
    assert repo.refresh_expiring(now=NOW + timedelta(days=300)) == (
        "root", "targets", "snapshot", "timestamp")
    status = repo.status()
    assert status["root"].version == 2 and status["targets"].version == 3
    assert status["root"].expires == NOW + timedelta(days=300 + 365)
    assert repo.read_target("trusted_root.json") == TARGETS["trusted_root.json"]


def test_rotate_root_is_signed_by_old_and_new_keys_and_clients_follow(
        repo: TrustRepository, keys: RepoKeys, tmp_path: Path) -> None:
    pinned = repo.root_json()
    fetch_targets(repo.directory, tmp_path / "c", pinned)
    new_keys = RepoKeys.generate("ed25519")
    assert repo.rotate_root(new_keys) == 2
    root2 = _md(repo, "2.root.json")
    assert set(root2.signatures) == {keys.keyid("root"), new_keys.keyid("root")}
    assert root2.signed.roles["timestamp"].keyids == [new_keys.keyid("timestamp")]
    # Every other role changed key, so every one was re-signed right away.
    assert {r: s.version for r, s in repo.status().items()} == {
        "root": 2, "targets": 2, "snapshot": 2, "timestamp": 2}
    # A client that trusted root v1 (and one that only has the v1 pin) walks to v2.
    assert fetch_targets(repo.directory, tmp_path / "c", pinned) == {
        "trusted_root.json": TARGETS["trusted_root.json"]}
    assert fetch_targets(repo.directory, tmp_path / "fresh", pinned)
    repo.publish({"trusted_root.json": b"rotated"})
    assert fetch_targets(repo.directory, tmp_path / "c", pinned)["trusted_root.json"] \
        == b"rotated"
    # The old keys no longer open the repository.
    with pytest.raises(ConfigInvalidError):
        TrustRepository.open(repo.directory, keys)
    assert TrustRepository.open(repo.directory, new_keys).status()["root"].version == 2


def test_rotating_one_online_key_re_signs_only_what_it_must(repo: TrustRepository,
                                                            keys: RepoKeys,
                                                            tmp_path: Path) -> None:
    new_keys = RepoKeys.generate().replace(root=keys.private_key("root"),
                                           targets=keys.private_key("targets"),
                                           snapshot=keys.private_key("snapshot"))
    repo.rotate_root(new_keys)
    assert {r: s.version for r, s in repo.status().items()} == {
        "root": 2, "targets": 1, "snapshot": 1, "timestamp": 2}
    assert len(_md(repo, "2.root.json").signatures) == 1  # same root key: one signature
    assert fetch_targets(repo.directory, tmp_path / "c", _md_bytes(repo, "1.root.json"))


def _md_bytes(repo: TrustRepository, name: str) -> bytes:
    return (Path(repo.directory) / "metadata" / name).read_bytes()


def test_open_checks_every_role_key(repo: TrustRepository, keys: RepoKeys) -> None:
    assert TrustRepository.open(repo.directory, keys).status()["timestamp"].version == 1
    for role in ROLES:
        other = keys.replace(**{role: RepoKeys.generate().private_key(role)})
        with pytest.raises(ConfigInvalidError) as err:
            TrustRepository.open(repo.directory, other)
        assert role in err.value.message


def test_open_refuses_a_missing_repository(tmp_path: Path, keys: RepoKeys) -> None:
    with pytest.raises(ConfigInvalidError) as err:
        TrustRepository.open(tmp_path / "nothing", keys)
    assert err.value.code == "CONFIG_INVALID"


def test_open_refuses_modified_metadata(repo: TrustRepository, keys: RepoKeys) -> None:
    path = Path(repo.directory) / "metadata" / "timestamp.json"
    doc = json.loads(path.read_bytes())
    doc["signed"]["version"] = 7  # signature no longer covers it
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigInvalidError) as err:
        TrustRepository.open(repo.directory, keys)
    assert "not signed" in err.value.message
    path.write_text("{not json")
    with pytest.raises(ConfigInvalidError):
        TrustRepository.open(repo.directory, keys)
    shutil.copy(Path(repo.directory) / "metadata" / "snapshot.json", path)
    with pytest.raises(ConfigInvalidError) as wrong_type:
        TrustRepository.open(repo.directory, keys)
    assert wrong_type.value.expected == "timestamp"


def test_open_refuses_metadata_that_does_not_chain(repo: TrustRepository,
                                                   keys: RepoKeys) -> None:
    meta = Path(repo.directory) / "metadata"
    repo.publish({"trusted_root.json": b"two"})
    shutil.copy(meta / "1.snapshot.json", meta / "snapshot.json")  # timestamp names v2
    with pytest.raises(ConfigInvalidError) as err:
        TrustRepository.open(repo.directory, keys)
    assert "refer to each other" in err.value.message


def test_open_refuses_a_timestamp_naming_another_snapshot(tmp_path: Path,
                                                          keys: RepoKeys) -> None:
    repo = TrustRepository.create(tmp_path / "r", keys, TARGETS, now=NOW)
    assert repo.refresh_expiring(now=NOW + timedelta(days=6)) == ("snapshot", "timestamp")
    meta = Path(repo.directory) / "metadata"
    # Snapshot v1 still names targets v1 correctly; only the timestamp (-> v2) disagrees.
    shutil.copy(meta / "1.snapshot.json", meta / "snapshot.json")
    with pytest.raises(ConfigInvalidError) as err:
        TrustRepository.open(repo.directory, keys)
    assert "refer to each other" in err.value.message


def test_create_refuses_an_existing_repository(repo: TrustRepository, keys: RepoKeys) -> None:
    with pytest.raises(ConfigInvalidError) as err:
        TrustRepository.create(repo.directory, keys, TARGETS)
    assert "already exists" in err.value.message


def test_read_target_detects_a_modified_file(repo: TrustRepository) -> None:
    sha = hashlib.sha256(TARGETS["trusted_root.json"]).hexdigest()
    (Path(repo.directory) / "targets" / f"{sha}.trusted_root.json").write_bytes(b'{"evil": 1}')
    with pytest.raises(ConfigInvalidError):
        repo.read_target("trusted_root.json")
    with pytest.raises(UsageError):
        repo.read_target("nope.json")


@pytest.mark.parametrize("targets", [
    {"dir/trusted_root.json": b"x"},
    {".hidden": b"x"},
    {"../escape": b"x"},
    {"trusted root.json": b"x"},
    {"ok.json": "not bytes"},
    {f"t{i}.json": b"x" for i in range(MAX_TARGETS + 1)},
    {"big.json": b"x" * (16 * 1024 * 1024 + 1)},
])
def test_bad_targets_are_refused(tmp_path: Path, keys: RepoKeys, targets: dict) -> None:
    with pytest.raises(UsageError):
        TrustRepository.create(tmp_path / "r", keys, targets)
    assert not (tmp_path / "r" / "metadata" / "root.json").exists()


def test_publish_refuses_bad_targets_without_changing_anything(repo: TrustRepository) -> None:
    with pytest.raises(UsageError):
        repo.publish({"a/b": b"x"})
    assert repo.status()["targets"].version == 1


@pytest.mark.parametrize("expiry", [{"timestamp": timedelta(0)},
                                    {"snapshot": timedelta(seconds=-5)},
                                    {"mirror": timedelta(days=1)},
                                    {"root": 365}])
def test_bad_expiry_values_are_refused(tmp_path: Path, keys: RepoKeys, expiry: dict) -> None:
    with pytest.raises(UsageError):
        TrustRepository.create(tmp_path / "r", keys, TARGETS, expiry=expiry)


def test_naive_times_are_refused(tmp_path: Path, keys: RepoKeys) -> None:
    with pytest.raises(UsageError):
        TrustRepository.create(tmp_path / "r", keys, TARGETS, now=datetime(2026, 1, 1))


def test_resolve_maps_only_repository_files(repo: TrustRepository) -> None:
    base = Path(repo.directory)
    sha = hashlib.sha256(TARGETS["trusted_root.json"]).hexdigest()
    assert resolve(base, "timestamp.json") == str(base / "metadata" / "timestamp.json")
    assert resolve(base, "/1.root.json") == str(base / "metadata" / "1.root.json")
    assert resolve(base, "root.json") == str(base / "metadata" / "root.json")
    assert resolve(base, f"targets/{sha}.trusted_root.json") == \
        str(base / "targets" / f"{sha}.trusted_root.json")
    for bad in ["2.root.json", "0.root.json", "01.root.json", "metadata/root.json",
                "../keys/tuf-root.pem", ".lock", "targets/trusted_root.json",
                f"targets/../metadata/{sha}.x", f"targets/{sha}.../../x", "", "/",
                "1.timestamp.json", "timestamp.json.tmp-1"]:
        assert resolve(base, bad) is None, bad
    # Only the TUF file names are served, even for files that exist in metadata/.
    (base / "metadata" / "notes.json").write_text("{}")
    (base / "metadata" / "1.notes.json").write_text("{}")
    assert resolve(base, "notes.json") is None and resolve(base, "1.notes.json") is None


def test_clients_refuse_a_target_modified_after_signing(repo: TrustRepository,
                                                        tmp_path: Path) -> None:
    sha = hashlib.sha256(TARGETS["trusted_root.json"]).hexdigest()
    (Path(repo.directory) / "targets" / f"{sha}.trusted_root.json").write_bytes(b'{"evil": 1}')
    with pytest.raises(tuf_exceptions.LengthOrHashMismatchError):
        fetch_targets(repo.directory, tmp_path / "c", repo.root_json())


def test_clients_refuse_expired_timestamp(tmp_path: Path, keys: RepoKeys) -> None:
    past = datetime.now(timezone.utc) - timedelta(days=2)
    repo = TrustRepository.create(tmp_path / "r", keys, TARGETS, now=past)
    with pytest.raises(tuf_exceptions.ExpiredMetadataError):
        fetch_targets(repo.directory, tmp_path / "c", repo.root_json())
    repo.refresh_timestamp()  # the fix: re-sign with a fresh expiry
    assert fetch_targets(repo.directory, tmp_path / "c", repo.root_json())
