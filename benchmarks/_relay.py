"""A TCP relay that adds network latency on loopback, for the benchmarks.

``Relay(target_port, delay_ms)`` listens on 127.0.0.1 (a port of its own) and forwards every
connection to 127.0.0.1:``target_port``. Each chunk read from one side is written to the
other ``delay_ms`` later, in order, without limiting how many chunks are in flight (latency,
not bandwidth). A new connection also pays the TCP handshake a real network charges: the
client's first bytes reach the server no earlier than one round trip (2 x delay) after the
connection was accepted, plus their own one-way delay, as if the client had waited for the
SYN-ACK before sending.

It runs an asyncio loop in a thread of the benchmark process; the main thread only waits for
the client subprocesses. Every connection is bounded in lifetime (``LIFETIME``), and the relay
stops (closing every connection) when its block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

CHUNK = 65536
LIFETIME = 300.0  # seconds a relayed connection may live at most
START_TIMEOUT = 10.0


class Relay:
    def __init__(self, target_port: int, delay_ms: float, *, handshake: bool = True) -> None:
        self.target_port = target_port
        self.delay = delay_ms / 1000.0
        self.handshake = handshake
        self.port = 0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-relay", daemon=True)
        self._error: BaseException | None = None

    # -- the relay's own thread ------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
        # Connections still open end with the loop (asyncio.run cancels their tasks).

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    not_before: float) -> None:
        """Copy ``source`` to ``sink``, each chunk ``delay`` after it arrived (and not before
        ``not_before``), keeping order; end with a half-close."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    if sink.can_write_eof():
                        sink.write_eof()
                    return
                sink.write(chunk)
                await sink.drain()

        sender = asyncio.create_task(send())
        try:
            while True:
                try:
                    chunk = await source.read(CHUNK)
                except ConnectionError:
                    chunk = b""
                queue.put_nowait((max(loop.time(), not_before) + self.delay, chunk))
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()

    async def _handle(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        accepted = asyncio.get_running_loop().time()
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        first = accepted + 2 * self.delay if self.handshake else 0.0
        try:
            await asyncio.wait_for(asyncio.gather(
                self._pump(client_reader, server_writer, first),
                self._pump(server_reader, client_writer, 0.0)), LIFETIME)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                writer.close()

    # -- the benchmark's side -------------------------------------------------------------
    def __enter__(self) -> "Relay":
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None or not self.port:
            raise SystemExit(f"the latency relay did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)


@contextlib.contextmanager
def relay(target_port: int, delay_ms: float) -> Iterator[Relay]:
    with Relay(target_port, delay_ms) as running:
        yield running


def probe(port: int, path: str = "/healthz") -> tuple[float, float]:
    """Seconds for a GET of ``path`` through the relay on ``port``: on a new connection, then
    again on the same connection (expected: about 4 and 2 one-way delays)."""
    import http.client
    import time

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            connection.request("GET", path)
            connection.getresponse().read()
            times.append(time.perf_counter() - start)
        return times[0], times[1]
    finally:
        connection.close()
