"""Crash recovery: whatever point the process dies at, reopening keeps every committed index,
repairs the tiles, and publishes a checkpoint consistent with every earlier one.

Crashes are simulated in-process by raising a ``BaseException`` (which the writer does not
catch) at a chosen point inside a real driver, then abandoning the engine and reopening the
same directory; one test kills a real process with SIGKILL.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sealtrail.errors import LogStorageError
from sealtrail.log import LogEngine, LogStorage
from sealtrail.merkle import verify_inclusion
from sealtrail.merkle.tiles import decode_entry_bundle
from sealtrail.merkle.tree import compute_root
from sealtrail.verify._checkpoint import verify_checkpoint
from tests.unit.log._support import (
    PATIENCE,
    Crash,
    CrashWatch,
    body,
    check_all_consistent,
    config,
    fake_log,
    recording,
)

V1 = fake_log("v1")


def verify_log(directory: Path, expected: dict[bytes, int], notes: list[str]) -> LogEngine:
    """Reopen ``directory`` and check it against what was acknowledged and published."""
    engine = LogEngine.open(config(V1), LogStorage.embedded(directory))
    cp = engine.latest_checkpoint()
    verify_checkpoint(cp.note, V1.log)
    for b, index in expected.items():
        assert engine.entry(index).body == b, "an acknowledged entry moved or vanished"
    size = cp.size
    assert size >= (max(expected.values()) + 1 if expected else 0)
    leaves = [engine.entry(i).leaf_hash for i in range(size)]
    assert len(set(leaves)) == size  # no entry twice, so no index reused for one body
    assert cp.root_hash == compute_root(leaves)
    for index in range(size):
        verify_inclusion(leaves[index], index, size, engine.inclusion_proof(index, size),
                         cp.root_hash)
    check_all_consistent(V1, [*notes, cp.note], engine)
    assert (directory / "tiles" / "checkpoint").read_text() == cp.note
    return engine


@pytest.mark.parametrize("point", [
    "tiles",             # after the commit, before any tile is written
    "some-tiles",        # after the level-0 tiles, before the rest
    "save_state",        # tiles written, checkpoint not recorded
    "checkpoint-file",   # checkpoint recorded, static copy not written
    "assign-after",      # committed but not yet acknowledged
])
def test_a_crash_at_any_point_is_recovered(tmp_path: Path, crash_hook: CrashWatch,
                                           point: str) -> None:
    directory = tmp_path / "log"
    cycles = {"n": 0}
    armed = threading.Event()

    def tile_fault(operation: str, paths: list[str]):
        if not armed.is_set() or operation != "write":
            return None
        if point == "tiles" and "checkpoint" not in paths:
            return Crash()
        if point == "some-tiles" and "checkpoint" not in paths:
            cycles["n"] += 1
            return None if cycles["n"] == 1 else Crash()
        if point == "checkpoint-file" and paths == ["checkpoint"]:
            return Crash()
        return None

    def seq_fault(operation: str):
        if armed.is_set() and operation == point:
            return Crash()
        return None

    storage, seq, tiles = recording(LogStorage.embedded(directory), seq_fault, tile_fault)
    if point == "some-tiles":
        # Split the writes of one cycle in two calls, so the crash lands between them.
        real_write = tiles.write_many

        def split_write(objects):
            objects = list(objects)
            for chunk in (objects[:1], objects[1:]):
                if chunk:
                    real_write(chunk)

        tiles.write_many = split_write  # type: ignore[method-assign]
    engine = LogEngine.open(config(V1, batch_max=37, batch_wait=0), storage)
    first = [engine.submit(body(i)) for i in range(300)]
    engine.start()
    acked = {body(i): f.result(PATIENCE).index for i, f in enumerate(first)}
    engine.wait_blocking(299, PATIENCE)
    # Arm the fault, then keep writing until the writer dies.
    armed.set()
    second = [engine.submit(body(i, "after")) for i in range(200)]
    assert crash_hook.wait(PATIENCE), "the simulated crash did not happen"
    for i, f in enumerate(second):
        if f.done() and f.exception() is None:
            acked[body(i, "after")] = f.result().index
    notes = [s.checkpoint for s in seq.states]
    # The process is gone: nothing else runs; the kernel releases its file lock.
    seq.inner.close()

    reopened = verify_log(directory, acked, notes)
    try:
        size = reopened.latest_checkpoint().size
        # Entries the dead writer had committed keep their indexes; new ones come after.
        reopened.start()
        fresh = reopened.add_blocking(b"after the restart")
        assert fresh.index == size and not fresh.duplicate
        assert reopened.add_blocking(body(0)).index == acked[body(0)]
    finally:
        reopened.close()


def test_reopening_keeps_every_index(tmp_path: Path) -> None:
    expected: dict[bytes, int] = {}
    notes: list[str] = []
    for round_ in range(3):
        engine = LogEngine.open(config(V1, batch_wait=0), LogStorage.embedded(tmp_path / "log"))
        engine.start()
        for i in range(40):
            expected.setdefault(body(i, str(round_)), engine.add_blocking(body(i, str(round_))).index)
            assert engine.add_blocking(body(i, "0")).index == expected[body(i, "0")]
        notes.append(engine.wait_blocking(max(expected.values()), 10).note)
        engine.close()
    assert sorted(expected.values()) == list(range(120))
    verify_log(tmp_path / "log", expected, notes).close()


def _filled(directory: Path, count: int) -> tuple[dict[bytes, int], str]:
    engine = LogEngine.open(config(V1, batch_max=50, batch_wait=0), LogStorage.embedded(directory))
    futures = [engine.submit(body(i)) for i in range(count)]
    engine.start()
    expected = {body(i): f.result(PATIENCE).index for i, f in enumerate(futures)}
    note = engine.wait_blocking(count - 1, PATIENCE).note
    engine.close()
    return expected, note


def test_missing_and_truncated_tiles_are_rebuilt(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    expected, note = _filled(directory, 700)
    tiles = directory / "tiles" / "tile"
    damaged = {
        "full level-0 tile": tiles / "0" / "001",
        "partial level-1 tile": tiles / "1" / "000.p" / "2",
        "partial level-0 tile": tiles / "0" / "002.p" / "188",
        "full entry bundle": tiles / "entries" / "000",
        "partial entry bundle": tiles / "entries" / "002.p" / "188",
    }
    originals = {name: path.read_bytes() for name, path in damaged.items()}
    damaged["full level-0 tile"].unlink()
    damaged["partial level-1 tile"].unlink()
    damaged["partial level-0 tile"].write_bytes(originals["partial level-0 tile"][:100])
    damaged["full entry bundle"].write_bytes(originals["full entry bundle"][:-1])
    damaged["partial entry bundle"].unlink()
    engine = verify_log(directory, expected, [note])  # proves every index from the tiles
    try:
        assert decode_entry_bundle(engine.read_entry_bundle(0, None), 256)[5] == body(5)
        for name, path in damaged.items():
            assert path.read_bytes() == originals[name], f"{name} was not restored"
    finally:
        engine.close()


def test_a_corrupted_edge_triggers_a_full_rebuild(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    expected, note = _filled(directory, 700)
    level1 = directory / "tiles" / "tile" / "1" / "000.p" / "2"
    full = directory / "tiles" / "tile" / "0" / "000"
    good_level1, good_full = level1.read_bytes(), full.read_bytes()
    level1.write_bytes(bytes(64))  # right size, wrong hashes: the root no longer matches
    full.write_bytes(bytes(8192))
    verify_log(directory, expected, [note]).close()
    assert level1.read_bytes() == good_level1
    assert full.read_bytes() == good_full


def test_damage_beyond_the_durable_size_is_repaired_without_a_rebuild(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # What a power loss may leave: every tile not full at the recorded durable size X
    # damaged in ways a length check does not see. open() re-derives exactly those.
    directory = tmp_path / "log"
    expected, note = _filled(directory, 700)
    conn = sqlite3.connect(directory / "sequencer.sqlite3")
    conn.execute("UPDATE meta SET value = '300' WHERE key = 'durable_size'")  # X = 300
    conn.commit()
    conn.close()
    tiles = directory / "tiles" / "tile"
    originals = {p: p.read_bytes() for p in tiles.rglob("*") if p.is_file()}
    damaged = [tiles / "0" / "001", tiles / "entries" / "001",  # full, but not at 300
               tiles / "0" / "002.p" / "188", tiles / "0" / "002.p" / "88",
               tiles / "entries" / "002.p" / "38", tiles / "1" / "000.p" / "1"]
    for path in damaged:
        path.write_bytes(bytes(len(path.read_bytes())))  # same length, zeros
    stale = tiles / "0" / "001.p" / "44"  # a superseded partial that came back
    stale.parent.mkdir()
    stale.write_bytes(bytes(44 * 32))
    storage, _, recorder = recording(LogStorage.embedded(directory))
    engine = LogEngine.open(config(V1), storage)
    engine.close()
    assert "rebuilding every tile" not in caplog.text
    written = {p for call in recorder.writes for p in call}
    assert "tile/0/000" not in written and "tile/entries/000" not in written  # full at X
    assert {"tile/0/001", "tile/entries/001"} <= written
    for path in damaged:
        assert path.read_bytes() == originals[path], f"{path} was not repaired"
    assert not stale.parent.exists()
    verify_log(directory, expected, [note]).close()


def test_a_tile_directory_of_another_history_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    _filled(directory, 10)
    for name in os.listdir(directory):
        if name.startswith("sequencer.sqlite3"):
            os.unlink(directory / name)
    with pytest.raises(LogStorageError):
        LogEngine.open(config(V1), LogStorage.embedded(directory))


# -- a real process, killed -----------------------------------------------------------------

_CHILD = textwrap.dedent('''
    import base64, sys, threading
    from cryptography.hazmat.primitives import serialization
    from sealtrail.log import LogConfig, LogEngine, LogStorage

    directory, key_file, origin, name, round_ = sys.argv[1:6]
    with open(key_file, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), None)
    engine = LogEngine.open(LogConfig(origin, name, key, batch_wait=0.001),
                            LogStorage.embedded(directory))
    engine.start()
    lock = threading.Lock()

    def worker(w):
        i = 0
        while True:
            body = b"shared" if i % 25 == 0 else f"round {round_} worker {w} entry {i}".encode()
            result = engine.add_blocking(body)
            note = engine.latest_checkpoint().note
            with lock:
                sys.stdout.write(f"ACK {result.index} {body.hex()}\\n")
                if i % 10 == 0:
                    sys.stdout.write("CP " + base64.b64encode(note.encode()).decode() + "\\n")
                sys.stdout.flush()
            i += 1

    for w in range(4):
        threading.Thread(target=worker, args=(w,), daemon=True).start()
    threading.Event().wait()
''')


@pytest.mark.integration
def test_sigkill_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(V1.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    rng = random.Random(7)
    expected: dict[bytes, int] = {}
    notes: list[str] = []
    for round_ in range(3):
        child = subprocess.Popen(
            [sys.executable, str(script), str(directory), str(key_file), V1.origin, V1.name,
             str(round_)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert child.stdout is not None
        target = rng.randint(30, 250)
        acks = 0
        lines: list[bytes] = []
        try:
            for line in child.stdout:
                lines.append(line.rstrip(b"\n"))
                if line.startswith(b"ACK "):
                    acks += 1
                    if acks >= target:
                        break
        finally:
            child.send_signal(signal.SIGKILL)
        # Lines written before the kill are acknowledged too; a last line cut short by
        # the kill (no newline) is not.
        lines.extend(child.stdout.read().split(b"\n")[:-1])
        child.wait(10)
        assert child.returncode == -signal.SIGKILL
        for line in lines:
            kind, _, rest = line.partition(b" ")
            if kind == b"ACK":
                index_text, hex_body = rest.split(b" ")
                b = bytes.fromhex(hex_body.decode())
                assert expected.setdefault(b, int(index_text)) == int(index_text)
            elif kind == b"CP":
                notes.append(base64.b64decode(rest).decode())
    assert len(expected) > 60 and len(notes) > 6
    engine = verify_log(directory, expected, notes)
    engine.close()
