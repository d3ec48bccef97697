"""The trust-root lifecycle from the command line: `trust update` across several instances
(real TUF repositories served on 127.0.0.1, one of them unreachable), `trust remove`,
`trust add --replace`, and `verify` using the newest verified root offline and saying which
root it used and how old it is."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from sealtrail.cli.main import main
from sealtrail.trustroot import PACKAGED_AS_OF
from sealtrail.trustroot.tuf_client import BUILTIN_INSTANCES
from sealtrail.tufrepo import RepoKeys, TrustRepository
from tests.fakes.network import forbid_network
from tests.integration.test_tuf import TARGETS, Served, _Handler
from tests.samples import BEACON_IDENTITY, BEACON_ISSUER, RELEASE

pytestmark = pytest.mark.integration

STAGING_ROOT = (Path(__file__).resolve().parents[2] / "src" / "sealtrail" / "data" /
                "public-good" / "staging" / "trusted_root.json").read_bytes()
ARTIFACT = RELEASE / "hello.txt"
POLICY = ["--certificate-identity", BEACON_IDENTITY, "--certificate-oidc-issuer", BEACON_ISSUER]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SEALTRAIL_TRUST_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def keys() -> RepoKeys:
    return RepoKeys.generate()


@pytest.fixture
def serve(tmp_path: Path, keys: RepoKeys) -> Iterator[Callable[[str, dict[str, bytes]], Served]]:
    """Start a TUF repository named ``name`` on an ephemeral port of 127.0.0.1."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(name: str, targets: dict[str, bytes]) -> Served:
        repo = TrustRepository.create(tmp_path / f"repo-{name}", keys, targets)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.repo_dir = repo.directory  # type: ignore[attr-defined]
        server.requests = []  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return Served(repo, server)

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


def stop(served: Served) -> None:
    served.server.shutdown()
    served.server.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def add(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, served: Served,
        *extra: str) -> tuple[int, str, str]:
    root = tmp_path / f"{name}-root.json"
    root.write_bytes(served.repo.root_json())
    return run(capsys, "trust", "add", name, served.url, "--root", str(root), *extra)


# -- trust update ----------------------------------------------------------------------------


def test_update_reports_every_instance_and_goes_on_after_a_failure(
        serve: Callable[[str, dict[str, bytes]], Served], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    alive, dead = serve("alive", TARGETS), serve("dead", TARGETS)
    assert add(capsys, tmp_path, "alive", alive)[0] == 0
    assert add(capsys, tmp_path, "dead", dead)[0] == 0
    alive.repo.publish({**TARGETS, "trusted_root.json": STAGING_ROOT})
    stop(dead)

    code, out, err = run(capsys, "trust", "update", "dead", "alive")
    assert code == 3  # a service failed: retry later
    assert "online" in err  # says it uses the network
    digest = hashlib.sha256(STAGING_ROOT).hexdigest()
    assert f"updated alive from {alive.url}: TUF root v1, targets v2, trusted_root.json " \
           f"sha256:{digest[:16]} (changed)" in out
    assert f"FAILED dead: TRUST_UPDATE_FAILED: cannot update trust for 'dead': cannot reach " \
           f"{dead.url}" in err
    # The reachable one was updated although the first one failed.
    shown = json.loads(run(capsys, "trust", "show", "alive", "--json")[1])
    assert shown["roles"]["targets"]["version"] == 2

    code, out, _ = run(capsys, "trust", "update", "alive", "dead", "--json")
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 3 and [r["name"] for r in results] == ["alive", "dead"]
    assert results[0] == {"name": "alive", "url": alive.url, "ok": True, "root_version": 1,
                          "targets_version": 2, "trusted_root_sha256": digest, "changed": False,
                          "last_updated": results[0]["last_updated"]}
    assert results[1]["ok"] is False and results[1]["code"] == "TRUST_UPDATE_FAILED"
    assert results[1]["url"] == dead.url
    assert results[1]["exit_code"] == 3 and "cannot reach" in results[1]["message"]

    # Unknown names are refused before anything is fetched.
    alive.requests.clear()
    code, _, err = run(capsys, "trust", "update", "alive", "nope")
    assert code == 2 and "nope" in err and alive.requests == []


def test_update_without_names_tries_every_instance(
        serve: Callable[[str, dict[str, bytes]], Served], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    alive = serve("alive", TARGETS)
    assert add(capsys, tmp_path, "alive", alive)[0] == 0
    # The built-in instances are on the Internet: route them to a proxy that refuses
    # connections, so they fail at once, whatever this machine's network (127.0.0.1 is
    # never proxied).
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    code, out, err = run(capsys, "trust", "update")
    assert code == 3
    assert "updated alive" in out
    for name in BUILTIN_INSTANCES:
        assert f"FAILED {name}: TRUST_UPDATE_FAILED: cannot update trust for {name!r}: " \
               "cannot reach https://" in err
    assert err.count("FAILED ") == len(BUILTIN_INSTANCES)
    # A failed update leaves verification on the packaged root.
    code, out, _ = run(capsys, "verify", str(ARTIFACT), *POLICY, "--json")
    assert code == 0 and json.loads(out)["trusted_root"]["source"] == "packaged"


# -- trust remove, trust add --replace -------------------------------------------------------


def test_remove_an_added_instance_and_a_builtin_cache(
        serve: Callable[[str, dict[str, bytes]], Served], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    alive = serve("alive", TARGETS)
    assert add(capsys, tmp_path, "alive", alive)[0] == 0
    code, out, _ = run(capsys, "trust", "remove", "alive")
    assert code == 0 and "removed alive" in out
    assert "alive" not in run(capsys, "trust", "show")[1]
    code, _, err = run(capsys, "trust", "remove", "alive")
    assert code == 2 and "unknown trust instance" in err
    code, out, _ = run(capsys, "trust", "remove", "public-good")
    assert code == 0 and "nothing cached for public-good" in out
    with pytest.raises(SystemExit) as usage:  # argparse: NAME is required
        main(["trust", "remove"])
    assert usage.value.code == 2


def test_add_replace(serve: Callable[[str, dict[str, bytes]], Served], tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    first, second = serve("first", TARGETS), serve("second",
                                                   {"trusted_root.json": STAGING_ROOT})
    assert add(capsys, tmp_path, "mine", first)[0] == 0
    code, _, err = add(capsys, tmp_path, "mine", second)
    assert code == 2 and "--replace" in err
    code, out, _ = add(capsys, tmp_path, "mine", second, "--replace")
    assert code == 0 and f"replaced mine ({second.url})" in out
    shown = json.loads(run(capsys, "trust", "show", "mine", "--json")[1])
    assert shown["url"] == second.url
    assert shown["verification_root"]["source"] == "tuf-cache"
    # A replacement that fails leaves the previous entry in place.
    stop(first)
    code, _, err = add(capsys, tmp_path, "mine", first, "--replace")
    assert code == 3 and "cannot reach" in err
    assert json.loads(run(capsys, "trust", "show", "mine", "--json")[1])["url"] == second.url


def test_show_names_the_cache_and_the_root_verification_uses(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "trust", "show")
    assert code == 0
    assert f"trust cache: {tmp_path / 'cache' / 'trust'} (SEALTRAIL_TRUST_DIR)" in out
    assert "public-good: https://tuf-repo-cdn.sigstore.dev" in out
    assert "verification uses the public-good trusted root packaged with sealtrail" in out
    shown = json.loads(run(capsys, "trust", "show", "public-good", "--json")[1])
    assert shown["cache_dir"] == str(tmp_path / "cache" / "trust")
    assert shown["verification_root"]["source"] == "packaged"


# -- verify: which root, how old, offline ----------------------------------------------------


def fake_update(tmp_path: Path, name: str, content: bytes, when: datetime) -> None:
    """The cache as a successful `trust update` of a built-in instance leaves it."""
    entry = tmp_path / "cache" / "trust" / name
    (entry / "targets").mkdir(parents=True)
    (entry / "targets" / "trusted_root.json").write_bytes(content)
    (entry / "instance.json").write_text(json.dumps({
        "name": name, "url": "https://tuf-repo-cdn.sigstore.dev",
        "last_updated": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "targets": {"trusted_root.json": {"sha256": hashlib.sha256(content).hexdigest(),
                                          "length": len(content)}}}))


def test_verify_uses_the_updated_root_offline_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    day = PACKAGED_AS_OF["public-good"]
    # The command reads the real clock: an update a second ago, after the packaged copy.
    updated = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    assert updated >= datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    # The cache says public-good now publishes the staging root: verification follows it.
    fake_update(tmp_path, "public-good", STAGING_ROOT, updated)
    attempts = forbid_network(monkeypatch, OSError)
    code, out, err = run(capsys, "verify", str(ARTIFACT), *POLICY, "--json", "--jobs", "1")
    result = json.loads(out)
    assert code == 1 and result["code"] == "TLOG_KEY_UNKNOWN"
    root = result["trusted_root"]
    assert (root["instance"], root["source"]) == ("public-good", "tuf-cache")
    assert root["as_of"] == updated.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert 0 <= root["age_seconds"] < 3600
    assert "TUF cache" in result["hint"] and "--staging" in result["hint"]
    assert attempts == []

    # Human text: the failure names the root and its age, and suggests the ways out.
    code, _, err = run(capsys, "verify", str(ARTIFACT), *POLICY, "--jobs", "1")
    assert code == 1
    assert "FAILED: " in err and "TLOG_KEY_UNKNOWN" in err
    assert "sealtrail: trusted root: the public-good trusted root from the TUF cache " \
           f"(verified by `sealtrail trust update` on {root['as_of']}," in err
    for option in ("--staging", "--trusted-root", "--instance", "sealtrail trust update"):
        assert option in err
    assert attempts == []


def test_a_damaged_cache_falls_back_to_the_packaged_root_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_update(tmp_path, "public-good", STAGING_ROOT, datetime.now(timezone.utc))
    (tmp_path / "cache" / "trust" / "public-good" / "targets" / "trusted_root.json"
     ).write_bytes(b"{}")
    code, out, err = run(capsys, "verify", str(ARTIFACT), *POLICY, "--jobs", "1")
    assert code == 0 and out.startswith("OK: ")
    assert "sealtrail: warning: the TUF cache of public-good is not usable" in err


def test_a_failure_against_the_packaged_root_names_it(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    code, out, err = run(capsys, "verify", str(ARTIFACT), *POLICY, "--staging", "--jobs", "1")
    assert code == 1
    assert "sealtrail: trusted root: the public-good-staging trusted root packaged with " \
           "sealtrail" in err
    assert "current as of" in err and "sealtrail: hint: " in err
    code, out, _ = run(capsys, "verify", str(ARTIFACT), *POLICY, "--json", "--jobs", "1",
                       "--trusted-root", os.fspath(RELEASE.parent.parent / "src" / "sealtrail" /
                                                   "data" / "public-good" / "production" /
                                                   "trusted_root.json"))
    result = json.loads(out)
    assert code == 0 and result["trusted_root"]["source"] == "file"
    assert "hint" not in result


def test_verify_an_added_instance_after_update(
        serve: Callable[[str, dict[str, bytes]], Served], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    mine = serve("mine", TARGETS)  # distributes the public-good production root
    assert add(capsys, tmp_path, "mine", mine)[0] == 0
    code, out, _ = run(capsys, "verify", str(ARTIFACT), *POLICY, "--instance", "mine",
                       "--json", "--jobs", "1")
    result = json.loads(out)
    assert code == 0 and result["trusted_root"]["instance"] == "mine"
    assert result["trusted_root"]["source"] == "tuf-cache"


def fake_signing_update(tmp_path: Path, service: str, url: str) -> None:
    """The cache after an update of public-good (a second ago) whose signing config sends
    ``service`` (e.g. ``caUrls``) to ``url``: the packaged root, an edited config."""
    data = Path(__file__).resolve().parents[2] / "src" / "sealtrail" / "data" / "public-good"
    config = json.loads((data / "production" / "signing_config.v0.2.json").read_text())
    config[service][0]["url"] = url
    signing = json.dumps(config).encode()
    fake_update(tmp_path, "public-good", (data / "production" / "trusted_root.json").read_bytes(),
                datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1))
    entry = tmp_path / "cache" / "trust" / "public-good"
    (entry / "targets" / "signing_config.v0.2.json").write_bytes(signing)
    state = json.loads((entry / "instance.json").read_text())
    state["targets"]["signing_config.v0.2.json"] = {
        "sha256": hashlib.sha256(signing).hexdigest(), "length": len(signing)}
    (entry / "instance.json").write_text(json.dumps(state))


def test_the_detached_look_up_uses_the_updated_documents(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A cached update of public-good whose signing config names a log on 127.0.0.1 where
    # nothing listens: the look-up goes there, so the cached documents were used.
    import base64
    import ssl

    port = closed_port()
    fake_signing_update(tmp_path, "rekorTlogUrls", f"http://127.0.0.1:{port}")

    bundle = json.loads((RELEASE / "hello.txt.sigstore.json").read_text())
    artifact = tmp_path / "hello.txt"
    artifact.write_bytes(ARTIFACT.read_bytes())
    Path(f"{artifact}.sig").write_text(bundle["messageSignature"]["signature"])
    der = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    Path(f"{artifact}.pem").write_text(ssl.DER_cert_to_PEM_cert(der))
    code, out, err = run(capsys, "verify", str(artifact), "--signature", f"{artifact}.sig",
                         "--certificate", f"{artifact}.pem", *POLICY, "--json")
    assert f"127.0.0.1:{port}" in err  # the online step went to the cached config's log
    result = json.loads(out)
    assert code == 3 and result["ok"] is False
    assert result["trusted_root"]["source"] == "tuf-cache"


def test_sign_uses_the_updated_signing_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # sign picks its documents by verify's rule: a cached update of public-good whose signing
    # config names a CA on 127.0.0.1 where nothing listens is where the certificate request
    # goes (the packaged config would send it to fulcio.sigstore.dev).
    port = closed_port()
    fake_signing_update(tmp_path, "caUrls", f"http://127.0.0.1:{port}")
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release\n")
    code, _, err = run(capsys, "sign", str(artifact), "--identity-token", "a.b.c")
    assert code == 3
    assert f"127.0.0.1:{port}" in err
    assert not Path(f"{artifact}.sigstore.json").exists()


def test_githubs_root_is_followed_through_the_cache_beside_public_good(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The default root is public-good's; a bundle from GitHub's instance (no log entry, a
    # timestamp) is checked against GitHub's root, chosen by the leaf's issuer. A cached
    # update of github (here: an instance of our own standing in for it) is that root.
    from tests.fakes.ca import DEFAULT_IDENTITY, DEFAULT_ISSUER
    from tests.fakes.instance import FakeInstance

    fake = FakeInstance()
    bundle = fake.sign_artifact(b"app\n", signer=fake.signer(sct_count=0), rekor=2,
                                timestamp=True)
    bundle["verificationMaterial"]["tlogEntries"] = []
    document = fake.trusted_root_json()
    document["tlogs"], document["ctlogs"] = [], []
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"app\n")
    Path(f"{artifact}.sigstore.json").write_text(json.dumps(bundle))
    policy = ["--certificate-identity", DEFAULT_IDENTITY, "--certificate-oidc-issuer",
              DEFAULT_ISSUER, "--jobs", "1"]

    # The packaged GitHub root does not know this CA: the bundle falls to public-good's
    # root, which has logs, so an entry is missing.
    code, _, err = run(capsys, "verify", str(artifact), *policy)
    assert code != 0 and "no transparency log entry" in err

    fake_update(tmp_path, "github", json.dumps(document).encode(),
                datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1))
    code, out, err = run(capsys, "verify", str(artifact), *policy)
    assert code == 0, err
    assert "not logged" in out
