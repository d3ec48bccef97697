"""Signing a large release in several processes.

Why: CPython runs one thread at a time, and signing is CPU work in the client once the
services answer quickly: per artifact a signature, an RFC 3161 request and the check of its
answer, a log request, a bundle, and the verification of that bundle against the trusted
root (about 2 ms of client CPU per file, measured on the 2-core benchmark machine). Threads
keep many log submissions in flight, but only one core computes. So ``Signer.sign_many``
can fork helper processes once the certificate is verified: each signs an interleaved share
of the artifacts with its own threads and connections, under the same key and certificate,
and sends every verified bundle back over a pipe. The parent signs its own share meanwhile,
and it alone hands results to the caller (which moves the files into place). See
docs/adr/0009.

The rules that keep this safe:

* Fork happens only on Linux, from a process with no other thread (a lock held by another
  thread at fork time would stay locked in the child forever); otherwise the work stays in
  one process. Nothing after the fork touches the parent's connections in the child.
* A helper never puts an output in place and never prints; at most it writes the hidden
  temporaries of the files it verified (``sign_many(prepare=...)``), which the parent adopts,
  or removes when the run fails. It leaves with ``os._exit`` (no atexit handlers, no second
  flush of inherited buffers).
* The failure of the lowest artifact index, whether in the parent or in a helper, is
  raised with its class, code and message; the other helpers are stopped (SIGTERM: nothing
  of theirs is in place), and every helper is reaped before ``sign_many`` returns or raises.
* A helper that dies without reporting a result for its share is an error, never a short
  result list.

Messages (helper -> parent): a 4-byte big-endian length, then a JSON object: ``{"i": index,
...}`` with the result as the signer encodes it (bundle, signature, log index, digest and
what ``prepare`` returned), or ``{"i": index, "error": {"type": class name, "message",
"expected", "actual"}}``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sealtrail import errors
from sealtrail.errors import Error, SigningProcessError

__all__ = ["DEFAULT_WORKERS", "MAX_WORKERS", "MIN_ITEMS_PER_PROCESS", "auto_processes",
           "can_fork", "effective_processes", "raise_first", "run_in_processes"]

# Log submissions wait on the network (and, for Rekor v2, on the next checkpoint): many in
# flight at once let the log batch them. Bounded so a large release does not open hundreds
# of connections. (Here rather than in the signer: the CLI checks --jobs before it asks the
# CA anything, without loading the signer.)
DEFAULT_WORKERS = 16
MAX_WORKERS = 64
#: Fewer artifacts than this per process are not worth a fork (about 2-3 ms each).
MIN_ITEMS_PER_PROCESS = 32
MAX_PROCESSES = 16
_LENGTH = struct.Struct(">I")
#: sign_share(indexes, report, halt): sign those artifacts in this process, report each
#: result, raise the first failure; stop taking new artifacts once ``halt`` is set.
ShareSigner = Callable[[Sequence[int], Callable[[int, Any], None], threading.Event], None]
# A message holds one bundle (a few KiB; a DSSE statement is bounded by the signer's inputs).
_MAX_MESSAGE = 64 * 1024 * 1024


def can_fork() -> bool:
    """Whether helper processes may be forked here and now (see the module notes)."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and threading.active_count() == 1)


def effective_processes(requested: int, count: int) -> int:
    """How many processes ``count`` artifacts are signed in when ``requested`` are asked for:
    never more than the artifacts, and one where forking is not safe (:func:`can_fork`)."""
    processes = min(requested, count)
    return processes if processes > 1 and can_fork() else 1


def auto_processes(count: int) -> int:
    """How many processes to sign ``count`` artifacts with: one per available core, at
    most one per :data:`MIN_ITEMS_PER_PROCESS` artifacts."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, count // MIN_ITEMS_PER_PROCESS, MAX_PROCESSES))


def run_in_processes(count: int, processes: int, sign_share: ShareSigner,
                     encode: Callable[[Any], dict[str, Any]],
                     decode: Callable[[int, dict[str, Any]], Any],
                     deliver: Callable[[int, Any], None],
                     after_fork: Callable[[], None]) -> None:
    """Sign items ``0..count-1`` in ``processes`` processes (this one included).

    ``sign_share(indexes, deliver, halt)`` signs those items in the calling process,
    calling ``deliver(index, result)`` for each (from any thread), raising the first failure
    and taking no new item once ``halt`` is set (a helper failed: the run is lost anyway).
    ``encode``/``decode`` turn a result into a JSON object and back (``decode`` gets the
    index). ``deliver`` receives every result of every process in this process, from one
    thread at a time per source. ``after_fork`` runs first in each helper (to drop state
    that belongs to the parent, such as open connections).
    """
    shares = _shares(count, processes)
    sys.stdout.flush()
    sys.stderr.flush()
    helpers: list[_Helper] = []
    halt = threading.Event()
    try:
        for share in shares[1:]:
            helpers.append(_fork_helper(share, sign_share, encode, after_fork,
                                        [h.read_fd for h in helpers]))
        for helper in helpers:
            helper.start_reading(decode, deliver, halt)
        own_failure: BaseException | None = None
        try:
            sign_share(shares[0], deliver, halt)
        except BaseException as exc:
            own_failure = exc
        if own_failure is not None:
            _stop(helpers)
        for helper in helpers:
            helper.finish()
    except BaseException:
        _stop(helpers)
        for helper in helpers:
            helper.finish()
        raise
    failures = [(h.failure_index, h.failure) for h in helpers if h.failure is not None]
    if own_failure is not None:
        # sign_share marks each failure with its artifact's index; anything else (say, a
        # KeyboardInterrupt) comes first.
        failures.append((getattr(own_failure, "sealtrail_index", -1), own_failure))
    raise_first(failures)


def raise_first(failures: Sequence[tuple[int, BaseException]]) -> None:
    """Raise the failure of the lowest artifact index among ``failures`` (index, error), if
    there is one: the rule of the module notes, whether the failures come from threads or
    from processes. Index -1 (no one artifact's, say a KeyboardInterrupt) comes first."""
    if failures:
        raise min(failures, key=lambda failure: failure[0])[1]


#: The parent's share, relative to a helper's: besides its own artifacts it decodes and
#: delivers every helper's result (about 0.1 of the 2 ms a file costs). On the 2-core
#: benchmark machine, values from 0.6 to 1.0 made no difference beyond its noise.
PARENT_SHARE = 0.9


def _shares(count: int, processes: int) -> list[list[int]]:
    """Artifact indexes per process (the parent's first): interleaved, so that each
    process gets early and late artifacts alike, with the parent's share :data:`PARENT_SHARE`
    of a helper's."""
    weights = [PARENT_SHARE] + [1.0] * (processes - 1)
    shares: list[list[int]] = [[] for _ in range(processes)]
    for index in range(count):
        # The process furthest behind its weighted share takes the next artifact.
        chosen = min(range(processes), key=lambda p: ((len(shares[p]) + 1) / weights[p], p))
        shares[chosen].append(index)
    return shares


class _Helper:
    """The parent's view of one helper process."""

    def __init__(self, pid: int, read_fd: int, share: list[int]) -> None:
        self.pid = pid
        self.read_fd = read_fd
        self.share = share
        self.delivered = 0
        self.failure: BaseException | None = None
        self.failure_index = -1  # the artifact the failure concerns (-1: not one artifact)
        self.stopped = False  # by us: its death is then no failure of its own
        self._reader: threading.Thread | None = None
        self._finished = False

    def start_reading(self, decode: Callable[[int, dict[str, Any]], Any],
                      deliver: Callable[[int, Any], None], halt: threading.Event) -> None:
        self._reader = threading.Thread(target=self._read, args=(decode, deliver, halt),
                                        name=f"sealtrail-sign-from-{self.pid}", daemon=True)
        self._reader.start()

    def _read(self, decode: Callable[[int, dict[str, Any]], Any],
              deliver: Callable[[int, Any], None], halt: threading.Event) -> None:
        with os.fdopen(self.read_fd, "rb", buffering=256 * 1024) as pipe:
            try:
                while True:
                    head = pipe.read(_LENGTH.size)
                    if not head:
                        return  # the helper is done (or died: finish() tells which)
                    message = _parse(head, pipe)
                    index = message["i"]
                    if "error" in message:
                        self.failure, self.failure_index = _error(message["error"]), index
                        halt.set()
                        return
                    deliver(index, decode(index, message))
                    self.delivered += 1
            except BaseException as exc:  # a failing deliver() stops the run like a failure
                self.failure, self.failure_index = exc, -1
                halt.set()
                _stop([self])

    def finish(self) -> None:
        """Wait for the reader and the process; a helper that ended without delivering its
        whole share (and that we did not stop) becomes this helper's failure. Idempotent
        once it has returned (it may be called again after an interruption)."""
        if self._finished:
            return
        if self._reader is not None:
            self._reader.join()
        elif self.read_fd >= 0:  # never read: the helpers were being stopped
            os.close(self.read_fd)
            self.read_fd = -1
        _, status = _wait(self.pid)
        if self.failure is None and self.delivered < len(self.share) and not self.stopped:
            how = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exited with status {os.waitstatus_to_exitcode(status)}")
            self.failure = SigningProcessError(
                f"a signing process {how} before signing its share",
                actual=f"{self.delivered} of {len(self.share)} signed")
            self.failure_index = self.share[self.delivered]
        self._finished = True


def _parse(head: bytes, pipe: Any) -> dict[str, Any]:
    """One message after its length prefix ``head``; SigningProcessError if malformed."""
    size = _LENGTH.unpack(head)[0] if len(head) == _LENGTH.size else 0
    if not 0 < size <= _MAX_MESSAGE:
        raise SigningProcessError("a signing process sent a malformed message",
                                  actual=f"length {size}")
    body = pipe.read(size)
    if len(body) != size:
        raise SigningProcessError("a signing process sent a cut message",
                                  actual=f"{len(body)} of {size} bytes")
    try:
        message = json.loads(body)
        if not isinstance(message, dict) or not isinstance(message.get("i"), int):
            raise ValueError("no index")
    except ValueError as exc:
        raise SigningProcessError("a signing process sent a malformed message") from exc
    return message


def _wait(pid: int) -> tuple[int, int]:
    while True:
        try:
            return os.waitpid(pid, 0)
        except InterruptedError:  # pragma: no cover - PEP 475 retries this already
            continue
        except ChildProcessError:  # already reaped
            return pid, 0


def _stop(helpers: list[_Helper]) -> None:
    # Nothing of a helper's is in place (only the parent commits), so ending it at once
    # loses nothing but log entries for bundles nobody will write, as a cancelled thread
    # does; the caller's cleanup removes its temporaries.
    for helper in helpers:
        helper.stopped = True
        try:
            os.kill(helper.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _fork_helper(share: list[int], sign_share: ShareSigner,
                 encode: Callable[[Any], dict[str, Any]], after_fork: Callable[[], None],
                 parent_fds: list[int]) -> _Helper:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return _Helper(pid, read_fd, share)
    # -- in the helper: never return from here ---------------------------------------------
    code = 1
    try:
        os.close(read_fd)
        for fd in parent_fds:  # the parent's pipes to earlier helpers
            os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the parent cleans up
        after_fork()
        code = _serve_share(share, sign_share, encode, write_fd)
    finally:
        os._exit(code)


def _serve_share(share: list[int], sign_share: ShareSigner,
                 encode: Callable[[Any], dict[str, Any]], write_fd: int) -> int:
    lock = threading.Lock()
    pipe = os.fdopen(write_fd, "wb", buffering=0)

    def send(message: dict[str, Any]) -> None:
        body = json.dumps(message, separators=(",", ":")).encode()
        with lock:
            pipe.write(_LENGTH.pack(len(body)) + body)

    def deliver(index: int, result: Any) -> None:
        send({"i": index, **encode(result)})

    try:
        sign_share(share, deliver, threading.Event())  # the parent stops helpers by signal
    except BaseException as exc:
        index = getattr(exc, "sealtrail_index", share[0] if share else 0)
        if isinstance(exc, Error):
            detail = {"type": type(exc).__name__, "message": exc.message,
                      "expected": _plain(exc.expected), "actual": _plain(exc.actual)}
        else:
            detail = {"type": "SigningProcessError",
                      "message": f"{type(exc).__name__}: {exc}", "expected": None, "actual": None}
        try:
            send({"i": index, "error": detail})
        except OSError:  # the parent is gone: nobody to tell
            pass
        return 1
    finally:
        try:
            pipe.close()
        except OSError:
            pass
    return 0


def _plain(value: Any) -> Any:
    """``expected``/``actual`` as JSON can carry them."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _error(detail: dict[str, Any]) -> Error:
    """The helper's error, as the same sealtrail error class where there is one."""
    cls = getattr(errors, str(detail.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, Error)):
        cls = SigningProcessError
    try:
        return cls(str(detail.get("message")), expected=detail.get("expected"),
                   actual=detail.get("actual"))
    except TypeError:  # pragma: no cover - every sealtrail error takes these arguments
        return SigningProcessError(str(detail.get("message")))
