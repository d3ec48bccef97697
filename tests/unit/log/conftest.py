"""Fixtures shared by the log engine's tests."""

from __future__ import annotations

import threading

import pytest

from tests.unit.log._support import Crash, CrashWatch


@pytest.fixture
def crash_hook(monkeypatch: pytest.MonkeyPatch) -> CrashWatch:
    """Swallow the simulated crash in the writer thread and signal that it happened."""
    died = CrashWatch()
    original = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, Crash):
            died.set()
        else:  # pragma: no cover - a real bug: let it show
            original(args)

    monkeypatch.setattr(threading, "excepthook", hook)
    return died
