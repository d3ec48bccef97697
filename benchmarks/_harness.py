"""What the benchmarks share: the installed commands, a server started for one benchmark
(and stopped after it), a fresh local instance with a token from its built-in issuer, and
a server process's CPU time."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), or NaN."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


@contextlib.contextmanager
def serving(argv: list[str], port_file: Path, what: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run the server ``argv`` (which writes its port to ``port_file``) until the block ends."""
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"{what} did not start")
            time.sleep(0.05)
        yield server
    finally:
        server.terminate()
        server.wait(30)


class LocalInstance(NamedTuple):
    directory: Path
    base_url: str
    server: subprocess.Popen[bytes]
    token: str  # an email identity token from the instance's built-in issuer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port() -> int:
    return _free_port()


@contextlib.contextmanager
def local_instance(root: Path, *, port: int | None = None,
                   public_url: str | None = None) -> Iterator[LocalInstance]:
    """A fresh instance under ``root`` (``sealtrail init`` + ``serve``), served until the
    block ends. With ``public_url``, the trust documents (and so every client) name that URL
    instead of the instance's own address (a relay in front of it, for example)."""
    directory = root / "instance"
    port = port or _free_port()
    extra = ["--public-url", public_url] if public_url else []
    subprocess.run([str(BIN / "sealtrail"), "init", str(directory), "--port", str(port),
                    "--builtin-issuer", *extra], check=True, capture_output=True, timeout=120)
    port_file = root / "port"
    with serving([str(BIN / "sealtrail"), "serve", str(directory), "--port-file", str(port_file)],
                 port_file, "instance") as server:
        token = subprocess.run([str(BIN / "sealtrail"), "token", "email", "bench@example.com",
                                "--instance", str(directory)], check=True, capture_output=True,
                               text=True, timeout=120).stdout.strip()
        yield LocalInstance(directory, public_url or f"http://127.0.0.1:{port}", server, token)


# Budgets a benchmark found exceeded (run_all.py exits non-zero when this is not empty).
FAILURES: list[str] = []


def spread(ratios: list[float], fmt: str = "{:.2f}") -> str:
    """The median of per-pair ratios with the lowest and highest pair: '**2.31x** (1.90-2.60)'."""
    import statistics

    ordered = sorted(ratios)
    return (f"**{fmt.format(statistics.median(ordered))}x** "
            f"({fmt.format(ordered[0])}-{fmt.format(ordered[-1])})")


def median_time(values: list[float]) -> float:
    import statistics

    return statistics.median(values)
