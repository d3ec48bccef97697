"""How `sealtrail sign` reports progress: one line per file in logs, a bar at a terminal."""

from __future__ import annotations

import io
import threading
from typing import NamedTuple

import pytest

from sealtrail.cli.sign_commands import _progress, _ProgressBar, _ProgressLines


class _Result(NamedTuple):
    name: str
    log_index: int


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_file() -> None:
    stream = io.StringIO()
    report = _progress(3, stream)
    assert type(report) is _ProgressLines
    with report:
        for i in range(3):
            report(_Result(f"f{i}.txt", 40 + i))
    assert stream.getvalue().splitlines() == [
        "[1/3] signed f0.txt (log index 40)",
        "[2/3] signed f1.txt (log index 41)",
        "[3/3] signed f2.txt (log index 42)",
    ]


class _Writes(io.StringIO):
    """Remembers every write call, as an unbuffered stderr turns each into a system call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_line_is_one_write() -> None:
    stream = _Writes()
    with _progress(2, stream) as report:
        report(_Result("a.txt", 1))
        report(_Result("b.txt", 2))
    assert stream.writes == ["[1/2] signed a.txt (log index 1)\n",
                             "[2/2] signed b.txt (log index 2)\n"]


def test_a_terminal_gets_a_bar_that_ends_at_the_total(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    stream = _Terminal()
    report = _progress(5, stream)
    assert isinstance(report, _ProgressBar)
    with report:
        for i in range(5):
            report(_Result(f"f{i}.txt", i))
    output = stream.getvalue()
    assert "5/5" in output  # the final count is drawn, whatever the refresh interval skipped
    assert "signed f0.txt" not in output  # no per-file lines under the bar


def test_the_bar_refreshes_itself_and_stops_doing_so_at_the_end(monkeypatch) -> None:
    # The bar redraws from rich's refresh thread (the elapsed time moves while the services
    # work); that thread ends with the bar.
    monkeypatch.setenv("TERM", "xterm")
    before = set(threading.enumerate())
    report = _progress(4, _Terminal())
    with report:
        report(_Result("a", 1))
        refreshing = set(threading.enumerate()) - before
        assert len(refreshing) == 1
    for thread in refreshing:  # told to stop: it ends at its next wake-up
        thread.join(10)
        assert not thread.is_alive()


@pytest.mark.parametrize("total, term", [(1, "xterm"), (10, "dumb")])
def test_one_file_or_a_dumb_terminal_gets_lines(monkeypatch, total: int, term: str) -> None:
    monkeypatch.setenv("TERM", term)
    assert type(_progress(total, _Terminal())) is _ProgressLines


def test_a_closed_stream_gets_lines() -> None:
    stream = io.StringIO()
    stream.close()
    assert type(_progress(10, stream)) is _ProgressLines
