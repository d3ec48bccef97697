"""Start a `sealtrail serve` / `sealtrail log serve` process and wait until it listens.

The server's log goes to stderr as JSON lines; its "listening on http://HOST:PORT" record is
written once the socket listens (and after the port file, when one was asked for). A reader
thread copies every line to the test's log file and signals that record, or the end of the
stream when the process dies first: the test waits on that event, not on a polling loop.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["PATIENCE", "poll_until", "start_server"]

#: A bound on waiting for a condition the system under test reaches by itself: never
#: reached when the code works, whatever the machine's load; a safety net, not a schedule.
PATIENCE = 90.0
_POLL_INTERVAL = 0.05


def poll_until(condition: Callable[[], bool], what: str, *, patience: float = PATIENCE,
               tolerate: tuple[type[BaseException], ...] = ()) -> None:
    """Wait until ``condition()`` holds, asking again every 50 ms: for conditions that only
    an external service shows (a checkpoint served over HTTP, a replica's role), where
    there is no event to wait on. ``tolerate``: exceptions that mean "not yet" (a server
    being restarted). AssertionError naming ``what`` after ``patience`` seconds."""
    pause = threading.Event()  # never set: its wait() is the pause between two asks
    deadline = time.monotonic() + patience
    while True:
        try:
            if condition():
                return
        except tolerate:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(_POLL_INTERVAL)

_READY = "listening on http://"


def start_server(argv: list[str], log_path: Path, *, timeout: float = 60,
                 **popen: object) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` (its own session, stderr and stdout appended to ``log_path``) and
    return it with the port it listens on; raises RuntimeError with the log's tail when it
    exits or has not listened within ``timeout`` seconds."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True, **popen)  # type: ignore[call-overload]
    listening = threading.Event()
    found: list[int] = []

    def copy_log() -> None:
        assert process.stderr is not None
        with process.stderr, open(log_path, "ab") as log:
            for line in process.stderr:
                log.write(line)
                log.flush()
                if not found:
                    port = _listening_port(line)
                    if port is not None:
                        found.append(port)
                        listening.set()
        listening.set()  # the stream ended: the process is gone

    threading.Thread(target=copy_log, name=f"log of {Path(argv[0]).name}", daemon=True).start()
    if not listening.wait(timeout) or not found:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        raise RuntimeError(f"{' '.join(argv[:3])} did not start "
                           f"(exit status {process.returncode}): {tail}")
    return process, found[0]


def _listening_port(line: bytes) -> int | None:
    try:
        message = json.loads(line).get("message", "")
    except (ValueError, AttributeError):
        return None
    if not isinstance(message, str) or not message.startswith(_READY):
        return None
    return int(message.rsplit(":", 1)[1])
