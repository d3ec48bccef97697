"""Trust roots over TUF end to end: a sealtrail repository served over real HTTP on
127.0.0.1, read by sealtrail's TrustStore and by sigstore-python's own TUF client.

Every refusal (tampered target, expired timestamp, rollback, foreign keys, unreachable
server) must surface as TrustUpdateError, and reads after an update must work with every
socket operation forbidden.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sealtrail.errors import InputError, TrustUpdateError, UsageError
from sealtrail.trustroot.tuf_client import (
    BUILTIN_INSTANCES,
    ENV_TRUST_DIR,
    PUBLIC_GOOD,
    PUBLIC_GOOD_STAGING,
    TrustStore,
    default_cache_dir,
)
from sealtrail.tufrepo import RepoKeys, TrustRepository
from tests.fakes.network import forbid_network
from tests.samples import (
    BEACON_IDENTITY as IDENTITY,
    BEACON_ISSUER as ISSUER,
    RELEASE,
)

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "src" / "sealtrail" / "data" / "public-good"
TRUSTED_ROOT = (DATA / "production" / "trusted_root.json").read_bytes()
SIGNING_CONFIG = (DATA / "production" / "signing_config.v0.2.json").read_bytes()
TARGETS = {"trusted_root.json": TRUSTED_ROOT, "signing_config.v0.2.json": SIGNING_CONFIG}
PREFIX = "/tuf/"


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.repo_dir`` at /tuf/ through the repository's own URL mapping."""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        from sealtrail.tufrepo import resolve

        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        found = None
        if self.path.startswith(PREFIX):
            found = resolve(self.server.repo_dir, self.path[len(PREFIX):])  # type: ignore[attr-defined]
        if found is None:
            self.send_error(404)
            return
        data = Path(found).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class Served:
    """A repository, its keys, the HTTP server in front of it and the URL clients use."""

    def __init__(self, repo: TrustRepository, server: ThreadingHTTPServer) -> None:
        self.repo = repo
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/tuf"

    @property
    def requests(self) -> list[str]:
        return self.server.requests  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _direct_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    # python-tuf's fetcher honours *_proxy variables; the server is on 127.0.0.1.
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def keys() -> RepoKeys:
    return RepoKeys.generate()


@pytest.fixture
def served(tmp_path: Path, keys: RepoKeys) -> Iterator[Served]:
    repo = TrustRepository.create(tmp_path / "tuf", keys, TARGETS)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.repo_dir = repo.directory  # type: ignore[attr-defined]
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield Served(repo, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def store(tmp_path: Path) -> TrustStore:
    return TrustStore(tmp_path / "cache", timeout=5)


def _target_file(served: Served, name: str, content: bytes) -> Path:
    sha = hashlib.sha256(content).hexdigest()
    return Path(served.repo.directory) / "targets" / f"{sha}.{name}"


# -- bootstrap, update, offline reads --------------------------------------------------------


def test_bootstrap_from_a_pinned_root_and_read_both_documents(served: Served,
                                                              store: TrustStore) -> None:
    info = store.add("mine", served.url, served.repo.root_json())
    assert store.trusted_root_bytes("mine") == TRUSTED_ROOT
    assert store.signing_config_bytes("mine") == SIGNING_CONFIG
    assert info.url == served.url and not info.builtin
    assert {r: i.version for r, i in info.roles.items()} == {
        "root": 1, "targets": 1, "snapshot": 1, "timestamp": 1}
    assert info.last_updated is not None and info.age is not None
    assert info.age < timedelta(minutes=1)
    assert info.targets["trusted_root.json"] == hashlib.sha256(TRUSTED_ROOT).hexdigest()
    now = datetime.now(timezone.utc)
    assert info.expired_roles(now) == ()
    assert info.expired_roles(now + timedelta(days=2)) == ("timestamp",)
    assert info.expired_roles(now + timedelta(days=400)) == (
        "root", "targets", "snapshot", "timestamp")
    assert store.instances() == (*BUILTIN_INSTANCES, "mine")
    assert store.pinned_root("mine") == served.repo.root_json()
    # The URL layout is Sigstore's: metadata beside the base URL, targets by hash.
    sha = hashlib.sha256(TRUSTED_ROOT).hexdigest()
    assert "/tuf/2.root.json" in served.requests and "/tuf/timestamp.json" in served.requests
    assert f"/tuf/targets/{sha}.trusted_root.json" in served.requests


def test_publish_then_update_brings_the_new_trusted_root(served: Served,
                                                         store: TrustStore) -> None:
    store.add("mine", served.url, served.repo.root_json())
    new_root = TRUSTED_ROOT.replace(b"\n", b"\n ", 1)
    served.repo.publish({**TARGETS, "trusted_root.json": new_root})
    assert store.trusted_root_bytes("mine") == TRUSTED_ROOT  # nothing changes until update
    info = store.update("mine")
    assert store.trusted_root_bytes("mine") == new_root
    assert info.roles["targets"].version == 2 and info.roles["timestamp"].version == 2
    # Unchanged targets are not downloaded again.
    sc_sha = hashlib.sha256(SIGNING_CONFIG).hexdigest()
    assert served.requests.count(f"/tuf/targets/{sc_sha}.signing_config.v0.2.json") == 1


def test_root_rotation_is_followed_from_the_pinned_root(served: Served,
                                                        store: TrustStore) -> None:
    pinned = served.repo.root_json()
    store.add("mine", served.url, pinned)
    served.repo.rotate_root(RepoKeys.generate("ed25519"))
    served.repo.publish({"trusted_root.json": b"{}"})
    info = store.update("mine")
    assert info.root_version == 2
    assert store.trusted_root_bytes("mine") == b"{}"
    assert store.pinned_root("mine") == pinned  # the anchor stays the pinned root
    # A repository that drops a target: the old cached copy is no longer served.
    with pytest.raises(TrustUpdateError):
        store.signing_config_bytes("mine")


def test_reads_after_an_update_work_with_sockets_forbidden(served: Served, store: TrustStore,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    store.add("mine", served.url, served.repo.root_json())
    attempts = forbid_network(monkeypatch, OSError)
    fresh = TrustStore(os.path.dirname(store.directory))  # a new process would do this
    assert fresh.trusted_root_bytes("mine") == TRUSTED_ROOT
    assert fresh.signing_config_bytes("mine") == SIGNING_CONFIG
    assert fresh.show("mine").roles["targets"].version == 1
    assert fresh.instances()[-1] == "mine"
    assert attempts == []
    # The guard works: an update now is refused, as TrustUpdateError.
    with pytest.raises(TrustUpdateError):
        fresh.update("mine")
    assert attempts


def test_public_good_is_known_without_network(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = forbid_network(monkeypatch, OSError)
    store = TrustStore(tmp_path / "cache")
    assert store.instances() == tuple(BUILTIN_INSTANCES)
    for name, folder, url in [(PUBLIC_GOOD, "production", "https://tuf-repo-cdn.sigstore.dev"),
                              (PUBLIC_GOOD_STAGING, "staging",
                               "https://tuf-repo-cdn.sigstage.dev")]:
        pinned = (DATA / folder / "root.json").read_bytes()
        assert store.pinned_root(name) == pinned
        info = store.show(name)
        assert info.builtin and info.url == url
        assert info.root_version == json.loads(pinned)["signed"]["version"]
        assert info.last_updated is None and info.age is None and set(info.roles) == {"root"}
        # Never fetched: no silent fallback, no network; a clear TrustUpdateError.
        with pytest.raises(TrustUpdateError) as err:
            store.trusted_root_bytes(name)
        assert "update" in err.value.message
    assert attempts == []
    assert not (tmp_path / "cache").exists()  # reading created nothing either
    # Only an explicit update goes to the network (refused here, as TrustUpdateError).
    with pytest.raises(TrustUpdateError) as err:
        store.update(PUBLIC_GOOD)
    assert "cannot reach https://tuf-repo-cdn.sigstore.dev" in err.value.message
    assert attempts
    assert store.show(PUBLIC_GOOD).last_updated is None


# -- refusals -------------------------------------------------------------------------------


def test_a_target_modified_after_signing_is_refused(served: Served, store: TrustStore) -> None:
    store.add("mine", served.url, served.repo.root_json())
    new_root = b'{"new": true}'
    served.repo.publish({**TARGETS, "trusted_root.json": new_root})
    target = _target_file(served, "trusted_root.json", new_root)
    target.write_bytes(b'{"new": TRUE}')  # same length, different bytes
    with pytest.raises(TrustUpdateError) as err:
        store.update("mine")
    assert err.value.code == "TRUST_UPDATE_FAILED"
    assert "does not match its signed length or hash" in err.value.message
    assert "\n" not in err.value.diagnostics()
    target.write_bytes(b'{"new": false}')  # longer: refused while downloading
    with pytest.raises(TrustUpdateError) as longer:
        store.update("mine")
    assert "longer than its signed length" in longer.value.message
    assert store.trusted_root_bytes("mine") == TRUSTED_ROOT  # the last good copy stays


def test_a_tampered_target_is_refused_at_bootstrap_and_nothing_is_added(served: Served,
                                                                        store: TrustStore
                                                                        ) -> None:
    _target_file(served, "trusted_root.json", TRUSTED_ROOT).write_bytes(TRUSTED_ROOT + b" ")
    with pytest.raises(TrustUpdateError):
        store.add("mine", served.url, served.repo.root_json())
    assert store.instances() == tuple(BUILTIN_INSTANCES)
    with pytest.raises(UsageError):
        store.show("mine")


def test_expired_timestamp_is_refused(tmp_path: Path, keys: RepoKeys, served: Served,
                                      store: TrustStore) -> None:
    past = datetime.now(timezone.utc) - timedelta(days=2)
    stale = TrustRepository.create(tmp_path / "stale", keys, TARGETS, now=past)
    served.server.repo_dir = stale.directory  # type: ignore[attr-defined]
    with pytest.raises(TrustUpdateError) as err:
        store.add("mine", served.url, stale.root_json())
    assert "expired" in err.value.message
    stale.refresh_timestamp()  # the operator's fix
    store.add("mine", served.url, stale.root_json())
    assert store.trusted_root_bytes("mine") == TRUSTED_ROOT


def test_rollback_to_older_metadata_is_refused(served: Served, store: TrustStore) -> None:
    meta = Path(served.repo.directory) / "metadata"
    old_timestamp = (meta / "timestamp.json").read_bytes()
    served.repo.publish({**TARGETS, "trusted_root.json": b"{}"})
    store.add("mine", served.url, served.repo.root_json())
    (meta / "timestamp.json").write_bytes(old_timestamp)  # a mirror replays version 1
    with pytest.raises(TrustUpdateError) as err:
        store.update("mine")
    assert "rollback" in err.value.message


def test_metadata_signed_by_other_keys_is_refused(tmp_path: Path, served: Served,
                                                  store: TrustStore) -> None:
    store.add("mine", served.url, served.repo.root_json())
    rogue = TrustRepository.create(tmp_path / "rogue", RepoKeys.generate(), TARGETS)
    served.server.repo_dir = rogue.directory  # type: ignore[attr-defined]
    with pytest.raises(TrustUpdateError) as err:
        store.update("mine")
    assert "not signed by the trusted keys" in err.value.message


def test_unreachable_server_and_http_errors(served: Served, store: TrustStore) -> None:
    store.add("mine", served.url, served.repo.root_json())
    with pytest.raises(TrustUpdateError) as missing:
        store.add("wrong", served.url + "/nothing-here", served.repo.root_json())
    assert "HTTP 404" in missing.value.message
    served.server.shutdown()
    served.server.server_close()
    with pytest.raises(TrustUpdateError) as err:
        store.update("mine")
    assert "cannot reach" in err.value.message
    assert store.trusted_root_bytes("mine") == TRUSTED_ROOT


def test_a_modified_cache_is_refused_offline(served: Served, store: TrustStore) -> None:
    store.add("mine", served.url, served.repo.root_json())
    cached = Path(store.directory) / "mine" / "targets" / "trusted_root.json"
    cached.write_bytes(b'{"evil": 1}')
    with pytest.raises(TrustUpdateError) as err:
        store.trusted_root_bytes("mine")
    assert "changed since it was verified" in err.value.message
    store.update("mine")  # the fix: an update restores the verified copy
    assert store.trusted_root_bytes("mine") == TRUSTED_ROOT


# -- argument checks ------------------------------------------------------------------------


def test_add_checks_its_arguments(served: Served, store: TrustStore) -> None:
    root = served.repo.root_json()
    for bad_name in ["", "Mine", "../x", ".hidden", "a/b", "x" * 65]:
        with pytest.raises(UsageError):
            store.add(bad_name, served.url, root, update=False)
    for bad_url in ["ftp://host/tuf", "tuf-repo", "http://host/tuf?x=1", "http:///tuf"]:
        with pytest.raises(UsageError):
            store.add("mine", bad_url, root, update=False)
    with pytest.raises(UsageError):
        store.add(PUBLIC_GOOD, served.url, root, update=False)
    with pytest.raises(InputError):
        store.add("mine", served.url, b"{}", update=False)
    with pytest.raises(InputError):
        store.add("mine", served.url, (Path(served.repo.directory) / "metadata" /
                                       "timestamp.json").read_bytes(), update=False)
    forged = json.loads(root)
    forged["signed"]["expires"] = "2099-01-01T00:00:00Z"  # no longer matches its signature
    with pytest.raises(InputError) as unsigned:
        store.add("mine", served.url, json.dumps(forged).encode(), update=False)
    assert "not signed by its own root keys" in unsigned.value.message
    with pytest.raises(InputError) as huge:
        store.add("mine", served.url, root + b" " * 600_000, update=False)
    assert "too large" in huge.value.message
    with pytest.raises(UsageError):
        store.update("never-added")

    store.add("mine", served.url + "/", root, update=False)
    assert store.show("mine").url == served.url  # trailing slash dropped
    with pytest.raises(TrustUpdateError):  # registered, but nothing fetched yet
        store.trusted_root_bytes("mine")
    with pytest.raises(UsageError):
        store.add("mine", served.url, root)
    store.add("mine", served.url, root, replace=True)
    assert store.trusted_root_bytes("mine") == TRUSTED_ROOT
    store.remove("mine")
    assert "mine" not in store.instances()


def test_cache_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_TRUST_DIR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "sealtrail")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == str(tmp_path / "home" / ".cache" / "sealtrail")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "sealtrail")
    monkeypatch.setenv(ENV_TRUST_DIR, str(tmp_path / "override"))
    assert default_cache_dir() == str(tmp_path / "override")
    assert TrustStore().directory == str(tmp_path / "override" / "trust")
    with pytest.raises(UsageError):
        TrustStore(tmp_path, timeout=0)


# -- interoperability -----------------------------------------------------------------------


def test_sigstore_python_bootstraps_from_our_repository(served: Served, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # sigstore-python keeps its TUF cache under platformdirs' XDG locations.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    from sigstore.models import ClientTrustConfig

    root_path = tmp_path / "root.json"
    root_path.write_bytes(served.repo.root_json())
    # What `sigstore trust-instance root.json --instance URL` does.
    config = ClientTrustConfig.from_tuf(served.url, bootstrap_root=root_path)
    assert config.trusted_root is not None and config.signing_config is not None
    # What a later `sigstore --instance URL verify ...` does: the cached root is the anchor.
    served.repo.publish(TARGETS)
    again = ClientTrustConfig.from_tuf(served.url)
    assert again.trusted_root is not None
    cached = list((tmp_path / "xdg-cache").rglob("trusted_root.json"))
    assert [p.read_bytes() for p in cached] == [TRUSTED_ROOT]
    # And a tampered target is refused by sigstore-python too.
    served.repo.publish({**TARGETS, "trusted_root.json": TRUSTED_ROOT + b"\n"})
    _target_file(served, "trusted_root.json", TRUSTED_ROOT + b"\n").write_bytes(b"{}")
    from sigstore.errors import TUFError

    with pytest.raises(TUFError):
        ClientTrustConfig.from_tuf(served.url)


def test_both_clients_share_one_repository(served: Served, store: TrustStore, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    from sigstore.models import ClientTrustConfig

    root_path = tmp_path / "root.json"
    root_path.write_bytes(served.repo.root_json())
    store.add("mine", served.url, root_path.read_bytes())
    ClientTrustConfig.from_tuf(served.url, bootstrap_root=root_path)
    shutil.rmtree(tmp_path / "xdg-cache")
    # sigstore-python re-downloads into an emptied cache; ours keeps working offline.
    ClientTrustConfig.from_tuf(served.url)
    assert store.trusted_root_bytes("mine") == TRUSTED_ROOT


def test_sigstore_cli_trusts_our_instance_and_verifies_through_it(served: Served,
                                                                   tmp_path: Path) -> None:
    # `sigstore trust-instance` + `sigstore --instance URL verify`, as a user would run them.
    # The repository distributes the public-good trusted root, so a public-good bundle
    # verifies only if sigstore-python really took its trust root from our repository.
    command = Path(sys.executable).parent / "sigstore"
    if not command.exists():
        pytest.skip("the sigstore command is not installed")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    root_path = tmp_path / "root.json"
    root_path.write_bytes(served.repo.root_json())
    done = subprocess.run([str(command), "--instance", served.url, "trust-instance",
                           str(root_path)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    served.requests.clear()
    done = subprocess.run(
        [str(command), "--instance", served.url, "verify", "identity",
         "--bundle", str(RELEASE / "hello.txt.sigstore.json"), "--cert-identity", IDENTITY,
         "--cert-oidc-issuer", ISSUER, str(RELEASE / "hello.txt")],
        env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "OK: " in done.stdout + done.stderr  # sigstore-python prints it on stderr
    assert "/tuf/timestamp.json" in served.requests  # it refreshed from our repository
    # A repository that serves a different trusted root makes the same bundle fail.
    served.repo.publish({**TARGETS, "trusted_root.json": (
        DATA / "staging" / "trusted_root.json").read_bytes()})
    done = subprocess.run(
        [str(command), "--instance", served.url, "verify", "identity",
         "--bundle", str(RELEASE / "hello.txt.sigstore.json"), "--cert-identity", IDENTITY,
         "--cert-oidc-issuer", ISSUER, str(RELEASE / "hello.txt")],
        env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0, done.stderr
    assert "OK: " not in done.stdout + done.stderr
