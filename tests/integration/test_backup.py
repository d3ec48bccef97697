"""`sealtrail backup` / `sealtrail restore` of an embedded instance: a backup taken while the
logs are being written restores into a new directory whose logs open and verify (each a
prefix of the original log); restore refuses paths leaving the directory and a non-empty
directory; an instance on PostgreSQL is pointed at the documentation."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from sealtrail.cli.main import main
from sealtrail.server.instance import Instance
from tests.integration.instance_server import free_port
from tests.integration.test_migrate import issue_certificates

pytestmark = pytest.mark.integration


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1]) if lines else {}, out + err


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    made = Instance.init(str(tmp_path / "instance"), port=free_port())
    services = made.logs.open()
    try:
        for service in services:
            last = 0
            for number in range(5):
                last = service.engine.add_blocking(f"{service.name} {number}".encode(),
                                                   [("n", str(number))]).index
            service.engine.wait_blocking(last, 30)
    finally:
        for service in services:
            service.engine.close()
    issue_certificates(made, 2)
    return made


def checkpoints(instance: Instance) -> dict[str, tuple[int, bytes]]:
    services = instance.logs.open()
    try:
        return {s.name: (s.engine.latest_checkpoint().size, s.engine.latest_checkpoint().root_hash)
                for s in services}
    finally:
        for service in services:
            service.engine.close()


def test_backup_while_writing_restores_logs_that_verify(
        instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "backup.tar.gz"
    services = instance.logs.open()
    stop = threading.Event()
    written = {s.name: 0 for s in services}
    writing = {s.name: threading.Event() for s in services}
    failures: list[BaseException] = []

    def write(service: Any) -> None:
        try:
            number = 0
            while not stop.is_set():
                service.engine.add_blocking(f"live {service.name} {number}".encode())
                number += 1
                written[service.name] = number
                if number == 20:
                    writing[service.name].set()
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
            writing[service.name].set()

    writers = [threading.Thread(target=write, args=(s,)) for s in services]
    for thread in writers:
        thread.start()
    try:
        assert all(event.wait(60) for event in writing.values()) and not failures
        code, result, text = run_cli(capsys, "backup", instance.directory, str(archive),
                                     "--json")
    finally:
        stop.set()
        for thread in writers:
            thread.join(60)
        for service in services:
            service.engine.close()
    assert code == 0, text
    assert not failures
    # A sequencer per log and for the CT log, the CA's issuance record.
    assert result["databases"] == 4
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert not [n for n in members if n.endswith(("-wal", "-shm", ".lock")) or ".tmp" in n]
    assert members["logs/rekor/sequencer.sqlite3"].isfile()
    assert stat.S_IMODE(members["keys/ca-intermediate.pem"].mode) == 0o600
    assert stat.S_IMODE(members["logs/keys/rekor.pem"].mode) == 0o600
    assert stat.S_IMODE(members["keys"].mode) == 0o700

    restored = tmp_path / "restored"
    code, result, text = run_cli(capsys, "restore", str(archive), str(restored), "--json")
    assert code == 0, text
    restored_logs = {item["log"]: (item["size"], item["rootHash"]) for item in result["logs"]}
    assert set(restored_logs) == {"rekor", "log1", "ct"}
    assert restored_logs["ct"][0] == 2
    assert stat.S_IMODE(os.stat(restored / "keys" / "ca-intermediate.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(restored / "keys").st_mode) == 0o700

    # Each restored log is a prefix of the original: the same root at its size, and it holds
    # at least what was written before the backup started.
    original = instance.logs.open()
    try:
        assert len(original) == 2
        for service in original:
            size, root = restored_logs[service.name]
            assert size >= 5 + 20
            assert service.engine.root_at(size).hex() == root
    finally:
        for service in original:
            service.engine.close()
    # The restored instance opens with those checkpoints.
    assert {name: (size, root.hex()) for name, (size, root)
            in checkpoints(Instance(str(restored))).items()} == {
        name: value for name, value in restored_logs.items() if name != "ct"}
    # The CA's record came along.
    record = Instance(str(restored)).issuance_record()
    try:
        assert record.count() == 2
    finally:
        record.close()


def test_backup_of_a_stopped_instance_restores_the_same_checkpoints(
        instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = checkpoints(instance)
    archive = tmp_path / "backup.tar"
    assert run_cli(capsys, "backup", instance.directory, str(archive))[0] == 0
    code, result, _ = run_cli(capsys, "restore", str(archive), str(tmp_path / "r"), "--json")
    assert code == 0
    assert {item["log"]: (item["size"], item["rootHash"]) for item in result["logs"]
            if item["log"] != "ct"} == \
        {name: (size, root.hex()) for name, (size, root) in before.items()}

    # Restoring again into the now non-empty directory is refused.
    code, _, text = run_cli(capsys, "restore", str(archive), str(tmp_path / "r"))
    assert code == 2 and "empty directory" in text
    # An archive inside the instance would archive itself.
    code, _, _ = run_cli(capsys, "backup", instance.directory,
                         os.path.join(instance.directory, "self.tar"))
    assert code == 2


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        config = tarfile.TarInfo("sealtrail.json")
        config.size = 2
        tar.addfile(config, io.BytesIO(b"{}"))
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, b""


@pytest.mark.parametrize("member", [
    (tarfile.TarInfo("../escaped"), b"x"),
    (tarfile.TarInfo("/tmp/absolute-escape"), b"x"),
    (tarfile.TarInfo("logs/../../escaped"), b"x"),
    _symlink("keys", "/etc"),
    _symlink("link", "../../outside"),
], ids=["dotdot", "absolute", "nested-dotdot", "absolute-link", "link-out"])
def test_restore_refuses_paths_leaving_the_directory(
        member: tuple[tarfile.TarInfo, bytes], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "evil.tar"
    _archive(archive, member)
    target = tmp_path / "work" / "restored"
    target.parent.mkdir()
    code, result, text = run_cli(capsys, "restore", str(archive), str(target), "--json")
    assert code == 2 and result["code"] == "INPUT_INVALID", text
    assert "leave the directory" in text
    assert not target.exists()  # nothing was extracted
    assert not (tmp_path / "work" / "escaped").exists()
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/absolute-escape").exists()


def test_backup_refuses_an_instance_on_postgresql(
        instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(instance.path("sealtrail.json"))
    document = json.loads(path.read_text())
    document["storage"] = {"database": "postgresql://sealtrail@db.example/sealtrail"}
    path.write_text(json.dumps(document))
    code, _, text = run_cli(capsys, "backup", instance.directory, str(tmp_path / "b.tar"))
    assert code == 2 and "docs/backup-and-migrate.md" in text
    assert len(text.strip().splitlines()) == 1
    assert not (tmp_path / "b.tar").exists()


def test_an_instance_with_encrypted_keys_restores_with_its_passphrase(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    made = Instance.init(str(tmp_path / "instance"), port=free_port(), passphrase=b"s3cret")
    archive = tmp_path / "backup.tgz"
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE", raising=False)
    assert run_cli(capsys, "backup", made.directory, str(archive))[0] == 0
    with tarfile.open(archive) as tar:
        key = tar.extractfile("keys/ca-intermediate.pem")
        assert key is not None and b"ENCRYPTED" in key.read()

    code, _, text = run_cli(capsys, "restore", str(archive), str(tmp_path / "r"))
    assert code == 2 and "SEALTRAIL_PASSPHRASE" in text
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("SEALTRAIL_PASSPHRASE", "s3cret")
    code, result, text = run_cli(capsys, "restore", str(archive), str(tmp_path / "r"),
                                 "--json")
    assert code == 0, text
    assert {item["log"] for item in result["logs"]} == {"rekor", "log1"}
