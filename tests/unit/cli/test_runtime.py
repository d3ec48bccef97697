"""The one table of how each command runs and ends (garbage collection, quick exit), and
what the console script does with it. tests/conftest.py restores the collector's state
after each test, so these may change it."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Iterator

import pytest

from sealtrail.cli import _runtime
from sealtrail.cli import main as cli_main
from sealtrail.cli._runtime import DEFAULT, RUNTIMES, SIGNING_GC_THRESHOLD, runtime_for

CLIENTS = ("sign", "attest", "verify", "verify-pypi", "generate-key-pair")
SERVERS_AND_TOOLS = ("serve", "log", "init", "token", "trust", "ca", "rotate", None, "unknown")


@pytest.fixture(autouse=True)
def _signal_handlers() -> Iterator[None]:
    """begin() installs handlers for client commands: give pytest its own back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    _runtime._received = None


def test_client_commands_start_without_collection_and_leave_quickly() -> None:
    assert set(RUNTIMES) == set(CLIENTS)
    for command in CLIENTS:
        runtime = runtime_for(command)
        assert not runtime.collect_at_start and runtime.freeze_when_started
        assert runtime.quick_exit
    assert runtime_for("sign").young_threshold == SIGNING_GC_THRESHOLD
    assert runtime_for("verify").young_threshold is None


@pytest.mark.parametrize("command", SERVERS_AND_TOOLS)
def test_servers_and_other_commands_collect_and_exit_normally(command: str | None) -> None:
    assert runtime_for(command) == DEFAULT
    assert DEFAULT.collect_at_start and not DEFAULT.quick_exit
    gc.disable()
    _runtime.begin(command)
    assert gc.isenabled()


def test_a_client_command_collects_from_when_it_has_started() -> None:
    gc.enable()
    _runtime.begin("sign")
    assert not gc.isenabled()
    frozen = gc.get_freeze_count()
    _runtime.started("sign")
    assert gc.isenabled()
    assert gc.get_threshold()[0] == SIGNING_GC_THRESHOLD
    assert gc.get_freeze_count() >= frozen and gc.get_freeze_count() > 0


def test_verify_keeps_the_default_threshold() -> None:
    threshold = gc.get_threshold()
    _runtime.begin("verify")
    _runtime.started("verify")
    assert gc.isenabled() and gc.get_threshold() == threshold


def test_leave_returns_for_a_command_that_exits_normally(monkeypatch) -> None:
    left: list[int] = []
    monkeypatch.setattr(_runtime.os, "_exit", left.append)
    _runtime.leave("serve", 0)
    _runtime.leave(None, 2)
    assert left == []
    _runtime.leave("verify", 1)
    assert left == [1]


def test_the_console_script_applies_the_table(monkeypatch) -> None:
    # `serve` reaches its command with the collector on, whatever the state before; a
    # client command reaches it with the collector off.
    seen: dict[str, bool] = {}

    def fake_main() -> int:
        seen[sys.argv[1]] = gc.isenabled()
        return 0

    monkeypatch.setattr(cli_main, "main", fake_main)
    monkeypatch.setattr(_runtime.os, "_exit", lambda code: None)
    for command, before in (("serve", False), ("sign", True)):
        monkeypatch.setattr(sys, "argv", ["sealtrail", command])
        (gc.disable if not before else gc.enable)()
        with pytest.raises(SystemExit):
            cli_main.run()
    assert seen == {"serve": True, "sign": False}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_client_command_unwinds_on_sigterm_as_on_sigint(signum: int, capfd) -> None:
    # Both raise KeyboardInterrupt in the main thread (the unwinding removes staged outputs,
    # tests/integration/test_sign_signals.py), once: a second signal does not cut it short.
    _runtime.begin("sign")
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signum)
    assert _runtime.interrupted_by() == signum
    signal.raise_signal(signum)  # ignored while the first is handled
    err = capfd.readouterr().err
    assert err.count("sealtrail: interrupted") == 1
    assert f"interrupted by {signal.Signals(signum).name}: removing the outputs" in err


@pytest.mark.parametrize("command", [*SERVERS_AND_TOOLS, "verify"])
def test_servers_tools_and_verify_keep_the_default_signal_handling(command: str | None) -> None:
    term = signal.getsignal(signal.SIGTERM)
    _runtime.begin(command)
    assert signal.getsignal(signal.SIGTERM) is term
