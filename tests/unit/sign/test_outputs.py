"""Temporaries left by a run that was killed (sign.outputs): a later run that plans the same
targets removes them when they are stale, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sealtrail.sign.outputs import STALE_AFTER, StagedOutputs

NOW = 1_800_000_000.0
TAG = "0123456789abcdef"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _file(directory: Path, name: str, age: float = 60.0) -> Path:
    path = directory / name
    path.write_bytes(b"a complete bundle")
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_plan_removes_the_stale_temporaries_of_its_targets_only(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getppid()
    stale = [
        _file(tmp_path, f".a.json.{dead}-{TAG}-0.tmp"),  # its process is gone
        _file(tmp_path, f".a.json.{dead}-{TAG}-7.tmp"),
        _file(tmp_path, f".a.json.{alive}-{TAG}-1.tmp", age=STALE_AFTER + 1),  # pid reused
        _file(tmp_path, f".a.json.{TAG}-0.tmp", age=STALE_AFTER + 1),  # the older naming
        _file(tmp_path, f".b.sig.{dead}-{TAG}-2.tmp"),
    ]
    kept = [
        _file(tmp_path, f".a.json.{alive}-{TAG}-3.tmp"),  # a run still going
        _file(tmp_path, f".a.json.{TAG}-0.tmp.keep"),
        _file(tmp_path, f".a.json.{TAG}-1.tmp"),  # older naming, recent: could be running
        _file(tmp_path, ".a.json.backup.tmp"),  # not our pattern
        _file(tmp_path, f".a.json.{dead}-{TAG.upper()}-0.tmp"),
        _file(tmp_path, f".c.json.{dead}-{TAG}-0.tmp"),  # a target this run does not plan
        _file(tmp_path, f"a.json.{dead}-{TAG}-0.tmp"),  # not hidden: not ours
    ]
    (tmp_path / f".a.json.{dead}-{TAG}-9.tmp").mkdir()  # only regular files are removed
    kept.append(tmp_path / f".a.json.{dead}-{TAG}-9.tmp")
    (tmp_path / f".a.json.{dead}-{TAG}-8.tmp").symlink_to(tmp_path / "elsewhere")
    kept.append(tmp_path / f".a.json.{dead}-{TAG}-8.tmp")

    outputs = StagedOutputs(clock=lambda: NOW)
    outputs.plan([str(tmp_path / "a.json"), str(tmp_path / "b.sig")])
    assert not [path.name for path in stale if os.path.lexists(path)]
    assert [path.name for path in kept if not os.path.lexists(path)] == []


def test_a_run_names_its_temporaries_with_its_process(tmp_path: Path) -> None:
    with StagedOutputs() as outputs:
        outputs.plan([str(tmp_path / "a.json")])
        outputs.put(str(tmp_path / "a.json"), b"bundle")
        (name,) = os.listdir(tmp_path)
        assert name.startswith(f".a.json.{os.getpid()}-") and name.endswith("-0.tmp")
        # A second run planning the same target leaves a live run's temporary alone.
        StagedOutputs().plan([str(tmp_path / "a.json")])
        assert os.listdir(tmp_path) == [name]
