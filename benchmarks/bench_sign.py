"""Signing speed: sign 100 small files in one invocation, `sealtrail sign` against
sigstore-python (`sigstore sign`), the same instance, trust config and token, Rekor v2 and v1.

Two settings (`make bench` records both):
- plain loopback (``--latency-ms 0``): the client's and instance's CPU on one machine;
- as CI sees it (``--latency-ms 25``): every connection to every service (CA, TSA, log) goes
  through a relay in this process that delays each chunk by 25 ms in each direction (a new
  connection also pays its handshake round trip; see _relay.py). The instance is created with
  the relay's URL as its public URL, so its trust config, the one both clients are given,
  names the relay.

The two tools take turns (one warm-up run each, then PAIRS pairs of runs); the speed-up is the
median over the pairs of sigstore-python's wall time over sealtrail's within the pair, with the
lowest and highest pair: the machine's speed drifts by tens of percent over minutes, and two
neighbouring runs see nearly the same machine. Every run signs a release whose bundles do not
exist yet, as a CI job does (the previous run's bundles are deleted first, untimed).

    python benchmarks/bench_sign.py [--latency-ms MS] [--quick] [--rekor 1|2] [--pairs N]
                                    [--sealtrail-args '--jobs 64']
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from _harness import BIN, LocalInstance, free_port, local_instance, server_cpu, spread
from _relay import Relay, probe

FILES = 100
PAIRS = {0: 15, 25: 7}  # pairs of runs per Rekor version, by latency (others: the 25 ms count)
QUICK_PAIRS = 3
SINGLE_RUNS = 7  # runs of the one-file reference row


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
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall, _children_cpu() - children_before, server_cpu(server_pid) - server_before


def _files(directory: Path, count: int = FILES) -> list[str]:
    directory.mkdir()
    paths = []
    for i in range(count):
        path = directory / f"artifact-{i:03d}.txt"
        path.write_bytes(f"release artifact {i}\n".encode() * 16)
        paths.append(str(path))
    return paths


@contextlib.contextmanager
def instance_behind(root: Path, latency_ms: float) -> Iterator[tuple[LocalInstance, Relay | None]]:
    """A fresh local instance, reached directly (``latency_ms`` 0) or only through a relay
    that adds ``latency_ms`` each way (its trust documents name the relay)."""
    if not latency_ms:
        with local_instance(root) as instance:
            yield instance, None
        return
    port = free_port()
    with Relay(port, latency_ms) as relay, \
            local_instance(root, port=port, public_url=f"http://127.0.0.1:{relay.port}") as instance:
        yield instance, relay


def measure(latency_ms: float = 0, *, pairs: int | None = None,
            versions: Sequence[str] = ("2", "1"), single: bool = True,
            extra: Sequence[str] = ()) -> str:
    """The table for ``latency_ms``; ``extra``: more arguments for `sealtrail sign` (to try an
    option, e.g. ``--jobs 64``)."""
    if shutil.which(str(BIN / "sigstore")) is None:
        return "sigstore-python is not installed: skipped."
    pairs = pairs or PAIRS.get(int(latency_ms), PAIRS[25])
    with tempfile.TemporaryDirectory() as tmp, instance_behind(Path(tmp), latency_ms) as (instance, relay):
        root = Path(tmp)
        trust_config = str(instance.directory / "trust" / "trust_config.json")
        token = instance.token
        ours, theirs = _files(root / "sealtrail"), _files(root / "sigstore-python")
        rows = []
        connections: dict[str, list[int]] = {}  # per 100-file run, by client
        for version in versions:
            tools = {
                "sealtrail sign": [str(BIN / "sealtrail"), "sign", *ours, "--trust-config",
                                   trust_config, "--identity-token", token, "--rekor-version",
                                   version, *extra],
                "sigstore-python sign": [str(BIN / "sigstore"), "--trust-config", trust_config,
                                         "sign", "--identity-token", token, "--rekor-version",
                                         version, *theirs],
            }
            bundles = {"sealtrail sign": [p + ".sigstore.json" for p in ours],
                       "sigstore-python sign": [p + ".sigstore.json" for p in theirs]}
            results: dict[str, list[tuple[float, float, float]]] = {}
            for name, argv in tools.items():
                _run(argv, instance.server.pid, bundles[name])  # warm-up
            for i in range(pairs):  # interleaved, so drift affects both alike
                order = list(tools.items()) if i % 2 == 0 else list(reversed(tools.items()))
                for name, argv in order:
                    opened = relay.connections if relay else 0
                    results.setdefault(name, []).append(
                        _run(argv, instance.server.pid, bundles[name]))
                    if relay:
                        connections.setdefault(name, []).append(relay.connections - opened)
            medians = {name: tuple(statistics.median(r[i] for r in runs) for i in range(3))
                       for name, runs in results.items()}
            ratios = [t[0] / o[0] for o, t in
                      zip(results["sealtrail sign"], results["sigstore-python sign"])]
            for name, (wall, cpu, instance_cpu) in medians.items():
                rows.append(f"| Rekor v{version} | {name} | {FILES} | **{wall:.2f} s** | "
                            f"{wall / FILES * 1000:.1f} ms | {cpu:.2f} s | {instance_cpu:.2f} s | "
                            + (spread(ratios) if name == "sealtrail sign" else "1x") + " |")
        if single:  # the fixed cost of one run (start-up, certificate, one file), for reference
            tools = {"sealtrail sign": [str(BIN / "sealtrail"), "sign", ours[0], "--trust-config",
                                        trust_config, "--identity-token", token],
                     "sigstore-python sign": [str(BIN / "sigstore"), "--trust-config",
                                              trust_config, "sign", "--identity-token", token,
                                              theirs[0]]}
            outputs = {"sealtrail sign": [ours[0] + ".sigstore.json"],
                       "sigstore-python sign": [theirs[0] + ".sigstore.json"]}
            results = {}
            for _ in range(min(SINGLE_RUNS, pairs)):
                for name, argv in tools.items():
                    results.setdefault(name, []).append(
                        _run(argv, instance.server.pid, outputs[name]))
            ratios = [t[0] / o[0] for o, t in
                      zip(results["sealtrail sign"], results["sigstore-python sign"])]
            for name, runs in results.items():
                wall, cpu, instance_cpu = (statistics.median(r[i] for r in runs) for i in range(3))
                rows.append(f"| default | {name} | 1 | {wall:.2f} s | - | {cpu:.2f} s | "
                            f"{instance_cpu:.2f} s | "
                            + (spread(ratios) if name == "sealtrail sign" else "1x") + " |")
        opened = "; ".join(f"{name.split()[0]} {statistics.median(counts):.0f}"
                           for name, counts in connections.items())
        if relay:
            fresh, kept = probe(relay.port)
            opened = (f" Connections opened per {FILES}-file run (median, through the relay): "
                      f"{opened}. A GET through the relay took {fresh * 1000:.0f} ms on a new "
                      f"connection and {kept * 1000:.0f} ms on a kept-alive one.")
        else:
            opened = ""
    target = "at least 4x" if latency_ms else "at least 2.5x"
    where = f"{latency_ms:g} ms each way to every service" if latency_ms else "loopback"
    lines = [f"One invocation signs all {FILES} files ({where}); {pairs} pairs of runs after a "
             "warm-up, the clients taking turns. Medians; the speed-up is the median of "
             f"per-pair ratios (lowest-highest pair). Target: {target}.{opened}", "",
             "| Log | Client | files | wall time | per file | client CPU | instance CPU | speed-up |",
             "|---|---|---|---|---|---|---|---|", *rows]
    return "\n".join(lines)


def main(latency_ms: float = 0, quick: bool = False) -> str:
    return measure(latency_ms, pairs=QUICK_PAIRS if quick else None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=0,
                        help="delay added each way to every service (default 0: loopback)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_PAIRS} pairs of runs, no one-file row")
    parser.add_argument("--rekor", choices=("1", "2"), help="only this Rekor version")
    parser.add_argument("--pairs", type=int, help="pairs of runs per Rekor version")
    parser.add_argument("--sealtrail-args", default="",
                        help="more arguments for `sealtrail sign` (e.g. '--jobs 64')")
    args = parser.parse_args()
    print(measure(args.latency_ms, pairs=args.pairs or (QUICK_PAIRS if args.quick else None),
                  versions=(args.rekor,) if args.rekor else ("2", "1"), single=not args.quick,
                  extra=args.sealtrail_args.split()))
