"""Run an ASGI app with uvicorn on loopback unless told otherwise, and report the bound port."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
from typing import Any

__all__ = ["JsonLogFormatter", "collect_garbage", "configure_logging", "serve"]

log = logging.getLogger("sealtrail.server")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any).

    Structured so that log shippers need no parsing rules; callers never put tokens or keys
    into messages (see docs/instance.md).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + "Z",
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: int = logging.WARNING) -> None:
    """Send the services' logs to stderr as JSON lines."""
    import time

    handler = logging.StreamHandler()
    formatter = JsonLogFormatter()
    formatter.converter = time.gmtime  # UTC, matching the trailing Z
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 0, port_file: str | None = None) -> None:
    """Serve ``app`` until SIGINT/SIGTERM. ``port=0`` picks a free port; ``port_file`` receives it.

    The garbage collector runs, whoever calls this: a server lives for
    days and must collect its reference cycles (the CLI's client commands turn it off while
    they start; see sealtrail/cli/_runtime.py and docs/adr/0011).
    """
    collect_garbage()
    import uvicorn

    use_uvloop = _has("uvloop")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            loop="uvloop" if use_uvloop else "asyncio",
                            http="httptools" if _has("httptools") else "h11",
                            timeout_graceful_shutdown=10, lifespan="on")
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task  # startup failed: raise its error
                return
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        if port_file:
            temporary = port_file + ".tmp"
            with open(temporary, "w") as handle:
                handle.write(f"{bound}\n")
            os.replace(temporary, port_file)
        # Last: whoever waits for this line (a supervisor, the tests) finds the port file too.
        log.warning("listening on http://%s:%d", host, bound)
        await task

    # uvicorn's ``loop=`` only applies when uvicorn makes the loop itself; this function makes
    # it (to learn the bound port), so it must ask for uvloop here or run on asyncio's loop.
    loop_factory = None
    if use_uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def collect_garbage() -> None:
    """Make sure the garbage collector runs, as a process that lives for long needs."""
    gc.enable()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
