"""How each command's process runs and ends: garbage collection and the quick exit.

The one place where this is declared (docs/adr/0011). A command not in :data:`RUNTIMES` gets
:data:`DEFAULT`: the collector on as Python sets it, and a normal interpreter exit. That is
what servers need (``serve``, ``log serve``: they run for days and must collect their
cycles) and what the instance tools get (``init``, ``rotate``, ``token``, ``trust``, ``ca``).

Client commands (``sign``, ``attest``, ``verify``, ``generate-key-pair``) are short-lived:

* The collector is off while they start. Importing a few hundred modules allocates many
  long-lived objects, and collections during start-up search them for nothing.
* :func:`started` (called by the command once its long-lived objects exist: the imports, the
  trust root, the signer and its certificate) freezes what exists so far, out of every
  future collection, and turns the collector back on, with a higher youngest-generation
  threshold where the command makes no cyclic garbage (signing: a test keeps it so;
  collections at Python's default of 700 cost about 4 % of a 100-file run, ADR 0009).
* They leave through :func:`leave`, with ``os._exit`` once their output is flushed and no
  other thread runs: tearing down the interpreter took 9-14 ms at the end of a 100-file
  ``sign`` (measured, ADR 0009) and releases nothing the kernel does not. Outputs are
  committed by then, and sockets close with the process.
* SIGTERM stops the commands that write outputs (``sign``, ``attest``,
  ``generate-key-pair``) as SIGINT (Ctrl-C) does: :func:`begin` makes both raise
  ``KeyboardInterrupt`` in the main thread, so the same unwinding removes every output not
  yet committed (``sign.outputs``) instead of the process dying with complete bundles left
  under hidden temporary names. Each writes one line saying so. After SIGINT the command
  ends with status 130, as before; after SIGTERM :func:`leave` ends the process by the
  signal itself, so its parent sees what it asked for.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from types import FrameType
from typing import NamedTuple

__all__ = ["DEFAULT", "RUNTIMES", "Runtime", "begin", "interrupted_by", "leave", "runtime_for",
           "started"]


class Runtime(NamedTuple):
    """A command's garbage-collection and exit policy."""

    collect_at_start: bool  # False: the collector is off until started()
    freeze_when_started: bool  # started() freezes what exists (gc.freeze)
    young_threshold: int | None  # started() sets generation 0's threshold (None: keep it)
    quick_exit: bool  # leave() ends the process with os._exit once output is flushed
    # SIGTERM unwinds as SIGINT does (KeyboardInterrupt), so outputs not committed are removed
    interrupt_on_term: bool = False


DEFAULT = Runtime(collect_at_start=True, freeze_when_started=False, young_threshold=None,
                  quick_exit=False)
_CLIENT = Runtime(collect_at_start=False, freeze_when_started=True, young_threshold=None,
                  quick_exit=True)
#: Allocations between two collections of the youngest generation while files are signed.
SIGNING_GC_THRESHOLD = 100_000
# The commands that write outputs. (Not verify: it writes none, and its forked workers
# must keep the default handling, or a SIGTERM to the group would unwind each of them.)
_SIGNING = _CLIENT._replace(young_threshold=SIGNING_GC_THRESHOLD, interrupt_on_term=True)

RUNTIMES: dict[str, Runtime] = {
    "sign": _SIGNING,
    "attest": _SIGNING,
    "verify": _CLIENT,
    "verify-pypi": _CLIENT,
    "generate-key-pair": _CLIENT._replace(interrupt_on_term=True),
}


def runtime_for(command: str | None) -> Runtime:
    """The policy of ``command`` (a top-level command name; None or unknown: the default)."""
    return RUNTIMES.get(command or "", DEFAULT)


def begin(command: str | None) -> None:
    """At process start, before the command runs: the collector as ``command`` starts, and
    SIGTERM and SIGINT handled as it needs (see the module's docstring)."""
    runtime = runtime_for(command)
    if runtime.collect_at_start:
        gc.enable()
    else:
        gc.disable()
    if runtime.interrupt_on_term:
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)


#: The signal that interrupted the command (None: none did).
_received: int | None = None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Both signals stop the command the way Ctrl-C always did: ``KeyboardInterrupt`` in
    the main thread, whose unwinding removes what was staged. A second signal while that
    runs is not turned into another exception, so the cleanup itself is not cut short."""
    global _received
    if _received is not None:
        return
    _received = signum
    # os.write, not print: the interrupted code may be inside a write to sys.stderr.
    try:
        os.write(2, f"sealtrail: interrupted by {signal.Signals(signum).name}: removing the "
                    "outputs not yet written\n".encode())
    except OSError:
        pass
    raise KeyboardInterrupt


def interrupted_by() -> int | None:
    """The signal that interrupted this command (SIGINT or SIGTERM), if one did."""
    return _received


def started(command: str) -> None:
    """``command`` has made its long-lived objects: apply its policy for the rest of the run
    (freeze, threshold) and turn the collector on."""
    runtime = runtime_for(command)
    if runtime.freeze_when_started:
        gc.freeze()
    if runtime.young_threshold is not None:
        gc.set_threshold(runtime.young_threshold, *gc.get_threshold()[1:])
    gc.enable()


def leave(command: str | None, code: int) -> None:
    """End the process with ``code`` now if ``command`` may leave quickly and no other
    non-daemon thread runs (after flushing its output); otherwise return, for the caller's
    normal exit, which waits for such threads. (A daemon thread, such as a progress bar's
    refresh thread that is ending, is not waited for by a normal exit either.)"""
    if _received == signal.SIGTERM:
        # Cleaned up (the unwinding is over): now end as SIGTERM asked, so the parent sees
        # a process killed by it, and not a status it would have to decode.
        _flush()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    if not runtime_for(command).quick_exit:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    threading = sys.modules.get("threading")
    main = threading.main_thread() if threading is not None else None
    if threading is None or all(thread.daemon for thread in threading.enumerate()
                                if thread is not main):
        os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed by a reader, or already closed
            pass
