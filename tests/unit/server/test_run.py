"""server/run.py: a server collects garbage whoever starts it."""

from __future__ import annotations

import asyncio
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


# -- limits in the config -------------------------------------------------------------------

def test_limits_parse_strictly_with_defaults_for_what_is_absent() -> None:
    from sealtrail.errors import ConfigInvalidError

    limits = run.ServerLimits.from_json({"headerTimeout": 0.5, "maxConnections": 10}, "f: server")
    assert limits.header_timeout == 0.5 and limits.max_connections == 10
    assert limits.body_timeout == run.DEFAULT_BODY_TIMEOUT
    assert run.ServerLimits.from_json(limits.to_json(), "f: server") == limits
    for bad, message in [
        ({"headerTimout": 1}, "unknown fields: 'headerTimout'"),
        ({"headerTimeout": "10"}, "headerTimeout must be a number of seconds"),
        ({"headerTimeout": True}, "headerTimeout must be a number of seconds"),
        ({"bodyTimeout": 0}, "bodyTimeout must be a number of seconds"),
        ({"keepAliveTimeout": -1}, "keepAliveTimeout must be a number of seconds"),
        ({"maxConnections": 0}, "maxConnections is out of range"),
        ({"maxHeaderBytes": 100}, "maxHeaderBytes is out of range"),
        ({"maxHeaderBytes": 65536.0}, "maxHeaderBytes must be an integer"),
        ([], "must be a JSON object"),
    ]:
        with pytest.raises(ConfigInvalidError) as info:
            run.ServerLimits.from_json(bad, "f: server")
        assert message in info.value.message and "f: server" in info.value.message


def test_the_instance_config_carries_the_limits() -> None:
    from sealtrail.server.instance import InstanceConfig

    base = {"publicUrl": "http://127.0.0.1:8080", "created": "2026-01-31T12:00:00Z"}
    assert InstanceConfig.from_json(base).server_limits is None
    assert "server" not in InstanceConfig.from_json(base).to_json()
    config = InstanceConfig.from_json({**base, "server": {"keepAliveTimeout": 2}})
    assert config.server_limits == run.ServerLimits(keep_alive_timeout=2.0)
    assert InstanceConfig.from_json(config.to_json()).server_limits == config.server_limits


# -- a failure is logged once ---------------------------------------------------------------

def _failing_app() -> object:
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from sealtrail.server._http import EXCEPTION_HANDLERS

    async def broken(request: object) -> None:
        raise RuntimeError("a bug")

    async def broken_midway(request: object) -> StreamingResponse:
        async def body():  # type: ignore[no-untyped-def]
            yield b"partial"
            raise RuntimeError("a bug after the answer began")
        return StreamingResponse(body())

    return Starlette(routes=[Route("/broken", broken), Route("/midway", broken_midway)],
                     exception_handlers=EXCEPTION_HANDLERS)


async def _call(app: object, path: str) -> list[dict[str, object]]:
    """One GET through ``app`` (raw ASGI: an exception escaping it fails the test)."""
    sent: list[dict[str, object]] = []
    requested = False

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays
        raise AssertionError  # pragma: no cover

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [], "server": ("t", 80),
             "client": ("c", 1)}
    await app(scope, receive, send)  # type: ignore[operator]
    return sent


@pytest.mark.parametrize("path", ["/broken", "/midway"])
def test_a_500_is_logged_once(path: str, caplog: pytest.LogCaptureFixture) -> None:
    import json

    caplog.set_level("ERROR")
    sent = asyncio.run(_call(run._LogErrorsOnce(_failing_app()), path))
    records = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert path in records[0].getMessage() and records[0].exc_info is not None
    if path == "/broken":
        assert sent[0]["status"] == 500
        assert json.loads(sent[-1]["body"])["reason"] == "INTERNAL"  # type: ignore[arg-type]
    else:  # the answer had begun: left incomplete, and not answered twice
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[-1]["more_body"] is True


def test_without_the_outer_layer_the_exception_escapes_to_the_server() -> None:
    # What made uvicorn log a second, plain-text traceback: Starlette raises it again.
    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(_call(_failing_app(), "/broken"))


# -- file descriptors for the connections ---------------------------------------------------

def test_the_descriptor_limit_is_raised_to_fit_the_connections(monkeypatch) -> None:
    import resource

    state = {"soft": 1024, "hard": 65536}
    monkeypatch.setattr(resource, "getrlimit", lambda which: (state["soft"], state["hard"]))

    def setrlimit(which: int, limits: tuple[int, int]) -> None:
        state["soft"], state["hard"] = limits

    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    limits = run.ServerLimits(max_connections=4096)
    assert run._fit_descriptor_limit(limits) == limits
    assert state["soft"] == 4096 + run._FD_RESERVE


def test_a_low_hard_limit_serves_fewer_connections_and_says_so(monkeypatch, caplog) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 2048))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: None)
    caplog.set_level("WARNING")
    fitted = run._fit_descriptor_limit(run.ServerLimits(max_connections=4096))
    # The soft limit goes up to the hard one (2048), which fits 2048 - reserve connections.
    assert fitted.max_connections == 2048 - run._FD_RESERVE
    assert "allows 1792 connections, not 4096" in caplog.text
