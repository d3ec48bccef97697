"""Signing speed (issue 5): sign 100 small files against a fresh local instance, in one
invocation each, with `sealtrail sign` (one certificate, parallel timestamp and log requests,
every bundle verified before it is written) and with sigstore-python (`sigstore sign`, one
invocation for the same 100 files), against the same instance and trust config.

Each tool runs REPEATS times per Rekor version after one warm-up run, the two tools taking
turns; the table shows the median wall time, the client's CPU time and the instance's CPU
time (from /proc) per run. The speed-up is the median over the REPEATS pairs of adjacent
runs of sigstore-python's wall time over sealtrail's, with the lowest and highest pair:
the machine's speed drifts by tens of percent over minutes, and a pair of neighbouring runs
sees nearly the same machine, where medians taken apart may come from different phases.
Every run signs a release whose bundles do not exist yet, as a CI job does: the previous
run's bundles are deleted before it, untimed, for both tools alike.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _harness import BIN, local_instance, server_cpu

FILES = 100
REPEATS = 15  # the machine drifts: more interleaved pairs give a steadier median


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], server_pid: int,
         outputs: Sequence[str] = ()) -> tuple[float, float, float]:
    """Run ``argv`` (after deleting ``outputs``); return (wall seconds, its CPU seconds, the
    server's CPU seconds)."""
    for path in outputs:
        Path(path).unlink(missing_ok=True)
    server_before, children_before = server_cpu(server_pid), _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall, _children_cpu() - children_before, server_cpu(server_pid) - server_before


def _files(directory: Path) -> list[str]:
    directory.mkdir()
    paths = []
    for i in range(FILES):
        path = directory / f"artifact-{i:03d}.txt"
        path.write_bytes(f"release artifact {i}\n".encode() * 16)
        paths.append(str(path))
    return paths


def main() -> str:
    title = f"### Signing {FILES} small files against a local instance (issue 5)"
    if shutil.which(str(BIN / "sigstore")) is None:
        return f"{title}\n\nsigstore-python is not installed: skipped."
    with tempfile.TemporaryDirectory() as tmp, local_instance(Path(tmp)) as instance:
        root = Path(tmp)
        trust_config = str(instance.directory / "trust" / "trust_config.json")
        token = instance.token
        ours, theirs = _files(root / "sealtrail"), _files(root / "sigstore-python")
        rows = []
        for version in ("2", "1"):
            tools = {
                "sealtrail sign": [str(BIN / "sealtrail"), "sign", *ours, "--trust-config",
                                   trust_config, "--identity-token", token, "--rekor-version",
                                   version],
                "sigstore-python sign": [str(BIN / "sigstore"), "--trust-config", trust_config,
                                         "sign", "--identity-token", token, "--rekor-version",
                                         version, *theirs],
            }
            bundles = {"sealtrail sign": [p + ".sigstore.json" for p in ours],
                       "sigstore-python sign": [p + ".sigstore.json" for p in theirs]}
            results: dict[str, list[tuple[float, float, float]]] = {}
            for name, argv in tools.items():
                _run(argv, instance.server.pid, bundles[name])  # warm-up
            for _ in range(REPEATS):  # interleaved, so drift affects both alike
                for name, argv in tools.items():
                    results.setdefault(name, []).append(
                        _run(argv, instance.server.pid, bundles[name]))
            medians = {name: tuple(statistics.median(r[i] for r in runs) for i in range(3))
                       for name, runs in results.items()}
            pairs = sorted(theirs[0] / ours[0] for ours, theirs in
                           zip(results["sealtrail sign"], results["sigstore-python sign"]))
            speedup = (f"**{statistics.median(pairs):.2f}x** "
                       f"({pairs[0]:.2f}-{pairs[-1]:.2f})")
            for name, (wall, cpu, instance_cpu) in medians.items():
                rows.append(f"| Rekor v{version} | {name} | {FILES} | **{wall:.2f} s** | "
                            f"{wall / FILES * 1000:.1f} ms | {cpu:.2f} s | {instance_cpu:.2f} s | "
                            + (speedup if name == "sealtrail sign" else "1x")
                            + " |")
        # The fixed cost of one run (start-up, certificate, one file), for reference.
        single = {"sealtrail sign": [str(BIN / "sealtrail"), "sign", ours[0], "--trust-config",
                                     trust_config, "--identity-token", token],
                  "sigstore-python sign": [str(BIN / "sigstore"), "--trust-config",
                                           trust_config, "sign", "--identity-token", token,
                                           theirs[0]]}
        for name, argv in single.items():
            first = [(ours if name.startswith("sealtrail") else theirs)[0] + ".sigstore.json"]
            runs = [_run(argv, instance.server.pid, first) for _ in range(REPEATS)]
            wall, cpu, instance_cpu = (statistics.median(r[i] for r in runs) for i in range(3))
            rows.append(f"| default | {name} | 1 | {wall:.2f} s | - | {cpu:.2f} s | "
                        f"{instance_cpu:.2f} s | - |")
    lines = [title, "",
             f"One invocation per run signs all {FILES} files (RFC 3161 timestamp + log entry + "
             "bundle each); median of "
             f"{REPEATS} runs after a warm-up, the two clients taking turns, each into a release "
             "without bundles (the previous run's are deleted first, untimed). Client CPU is the "
             "signing processes'; instance CPU is what `sealtrail serve` spent during the run "
             "(CA, TSA, log). The speed-up is the median, over the "
             f"{REPEATS} pairs of neighbouring runs, of sigstore-python's wall time over "
             "sealtrail's (in brackets: the lowest and the highest pair).", "",
             "| Log | Client | files | wall time | per file | client CPU | instance CPU | speed-up |",
             "|---|---|---|---|---|---|---|---|", *rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
