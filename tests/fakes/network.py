"""Forbid network use inside a test (the offline guarantees are tested with this)."""

from __future__ import annotations

import socket
from typing import Any, Callable

import pytest


class NetworkUsedError(AssertionError):
    """Raised when code under test tries to open a connection or resolve a name."""


def forbid_network(monkeypatch: pytest.MonkeyPatch,
                   error: type[BaseException] = NetworkUsedError) -> list[str]:
    """Make socket creation, connections and name lookups raise ``error``.

    Returns the list of attempts (by function name), so a test can assert it stayed empty.
    """
    attempts: list[str] = []

    def forbidden(name: str) -> Callable[..., Any]:
        def refuse(*args: object, **kwargs: object) -> Any:
            attempts.append(name)
            raise error(f"network use attempted: {name}")
        return refuse

    monkeypatch.setattr(socket, "socket", forbidden("socket.socket"))
    monkeypatch.setattr(socket, "create_connection", forbidden("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", forbidden("socket.getaddrinfo"))
    return attempts
