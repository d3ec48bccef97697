"""server/run.py: a server collects garbage whoever starts it."""

from __future__ import annotations

import gc
import sys
import types

import pytest

from sealtrail.server import run


class _Started(Exception):
    """Raised by the stand-in for uvicorn when the server would start."""


def test_serve_turns_the_collector_on_before_the_server_starts(monkeypatch) -> None:
    seen: list[bool] = []

    def config(*args: object, **kwargs: object) -> None:
        seen.append(gc.isenabled())
        raise _Started

    monkeypatch.setitem(sys.modules, "uvicorn", types.SimpleNamespace(Config=config))
    monkeypatch.setattr(run, "_limited_protocol", lambda limits: object)
    gc.disable()  # as a client command's start-up leaves it (tests/conftest.py restores it)
    with pytest.raises(_Started):
        run.serve(object())
    assert seen == [True]
