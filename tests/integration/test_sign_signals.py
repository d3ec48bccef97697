"""A signing run stopped by SIGTERM cleans up as one stopped by SIGINT (Ctrl-C) does: no
output at its target, no hidden temporary left beside it.

The run is held in a known state with no sleeps: its timestamp requests go through a relay in
this test, which lets the first file's through and holds the rest. The test waits for the
run's own progress line saying the first file is staged, sends the signal, waits for the line
the run writes when it is interrupted, and only then lets the held request go, so the run
unwinds with a staged file and a file in flight."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import pytest

from tests.integration.instance_server import BIN, InstanceServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("signals") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


class HeldRelay:
    """Relays timestamp requests to the instance's TSA: the first at once, later ones once
    :attr:`release` is set."""

    def __init__(self, target: str) -> None:
        self.release = threading.Event()
        self.count = 0
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                relay.count += 1
                if relay.count > 1:
                    relay.release.wait(60)
                request = urllib.request.Request(target, data=body, headers={
                    "Content-Type": self.headers["Content-Type"]})
                with urllib.request.urlopen(request, timeout=30) as answer:
                    data = answer.read()
                    status, kind = answer.status, answer.headers["Content-Type"]
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the run is gone (killed before it could read the answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/timestamp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _wait_for(stream: IO[str], text: str, seen: list[str]) -> None:
    for line in stream:
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"the run ended before writing {text!r}: {''.join(seen)}")


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, -signal.SIGTERM),
                                            (signal.SIGINT, 130)])
def test_a_signal_during_signing_leaves_no_outputs_and_no_temporaries(
        instance: InstanceServer, tmp_path: Path, signum: int, status: int) -> None:
    trust = json.loads(instance.trust_config.read_text())
    relay = HeldRelay(trust["signingConfig"]["tsaUrls"][0]["url"])
    try:
        trust["signingConfig"]["tsaUrls"][0]["url"] = relay.url
        trust_config = tmp_path / "trust_config.json"
        trust_config.write_text(json.dumps(trust))
        work = tmp_path / "release"
        work.mkdir()
        files = []
        for name in ("a.tar.gz", "b.whl", "c.txt"):
            (work / name).write_text(f"contents of {name}\n")
            files.append(str(work / name))
        process = subprocess.Popen(
            [str(BIN / "sealtrail"), "sign", *files, "--jobs", "1", "--trust-config",
             str(trust_config), "--identity-token", instance.token("release@example.com")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        seen: list[str] = []
        try:
            _wait_for(process.stderr, "[1/3] signed", seen)
            # The first bundle is staged under its hidden temporary name.
            assert any(name.startswith(".a.tar.gz.") for name in _names(work)), _names(work)
            process.send_signal(signum)
            _wait_for(process.stderr, "interrupted", seen)
            relay.release.set()  # the file in flight finishes, then the run unwinds
            rest = process.stderr.read()
            assert process.wait(60) == status, "".join(seen) + rest
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert "Traceback" not in rest, rest
        assert sorted(_names(work)) == ["a.tar.gz", "b.whl", "c.txt"]
    finally:
        relay.close()


def _names(directory: Path) -> list[str]:
    return [path.name for path in directory.iterdir()]
