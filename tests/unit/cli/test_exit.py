"""How the console script ends: client commands skip interpreter finalisation, after
flushing their output, and only when no other thread of theirs still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from sealtrail.cli import main as cli_main


class _Left(BaseException):
    """Raised by the stand-in for os._exit."""


def _fake_exit(code: int) -> None:
    raise _Left(code)


VERIFY_MISSING = ["verify", "missing.txt", "--certificate-identity", "someone@example.com",
                  "--certificate-oidc-issuer", "https://issuer.example"]


def test_a_client_command_leaves_with_its_exit_code(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_main.os, "_exit", _fake_exit)
    monkeypatch.setattr(sys, "argv", ["sealtrail", *VERIFY_MISSING, "--json"])
    with pytest.raises(_Left) as left:
        cli_main.run()
    assert left.value.args == (2,)
    assert json.loads(capsys.readouterr().out)["code"] == "INPUT_INVALID"


def test_a_running_thread_gets_the_normal_exit(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_main.os, "_exit", _fake_exit)
    monkeypatch.setattr(sys, "argv", ["sealtrail", *VERIFY_MISSING])
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        with pytest.raises(SystemExit) as exited:
            cli_main.run()
    finally:
        release.set()
        other.join()
    assert exited.value.code == 2


def test_other_commands_exit_normally(monkeypatch, capsys):
    monkeypatch.setattr(cli_main.os, "_exit", _fake_exit)
    monkeypatch.setattr(sys, "argv", ["sealtrail", "--version"])
    with pytest.raises(SystemExit) as exited:
        cli_main.run()
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("sealtrail ")


def test_buffered_output_is_flushed_before_leaving(tmp_path):
    # A pipe makes stdout block-buffered (without PYTHONUNBUFFERED): what is printed must
    # still arrive although finalisation, which would flush it, is skipped.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", "from sealtrail.cli.main import run; run()",
                           *VERIFY_MISSING, "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert json.loads(done.stdout)["message"].startswith("cannot read bundle")


def test_a_daemon_thread_does_not_hold_the_quick_exit(monkeypatch, tmp_path):
    # A normal exit does not wait for a daemon thread either (a progress bar's refresh
    # thread that is ending, say).
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_main.os, "_exit", _fake_exit)
    monkeypatch.setattr(sys, "argv", ["sealtrail", *VERIFY_MISSING])
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        with pytest.raises(_Left) as left:
            cli_main.run()
    finally:
        release.set()
        other.join()
    assert left.value.args == (2,)
