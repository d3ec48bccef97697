"""The tests' server starter waits for the server's own "listening" record, and reports a
server that dies first instead of waiting out its time limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.instance_server import BIN
from tests.integration.serving import start_server


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with pytest.raises(RuntimeError, match="did not start") as info:
        # Not an instance directory: `serve` exits at once. The time limit is far beyond
        # that, so the error must come from the end of its log stream, not from the limit.
        start_server([str(BIN / "sealtrail"), "serve", str(tmp_path / "nothing-here")], log,
                     timeout=600)
    assert "exit status 2" in str(info.value)
    assert log.read_text().strip()  # the server's one-line error was kept for the report


def test_a_listening_server_gives_its_port(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    process, port = start_server([str(BIN / "sealtrail"), "log", "serve", str(logs), "--port",
                                  "0", "--port-file", str(tmp_path / "port")],
                                 tmp_path / "serve.log")
    try:
        assert port > 0 and int((tmp_path / "port").read_text()) == port
    finally:
        process.terminate()
        process.wait(30)
