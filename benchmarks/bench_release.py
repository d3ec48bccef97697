"""`sealtrail release sign` and `release verify` of a 200-file release, through 25 ms each way.

A fresh local instance is reached only through a relay in this process that delays each
chunk by 25 ms in each direction (a new connection pays its handshake round trip too; see
_relay.py); the instance's trust config names the relay. Side by side, the same work done
with sigstore-python as a release script would without `release sign`: one `sigstore sign`
call per file. 200 such calls take minutes, so a sample of single-file calls is timed
(interleaved with sealtrail's runs) and the median is multiplied by 200; one `sigstore sign`
of all 200 files in a single call is recorded too. Every signing run starts from a release
without outputs (the previous run's are deleted first, untimed), as a CI job does.
`release verify` runs on the signed release (offline: no relay involved).

    python benchmarks/bench_release.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _harness import BIN, FAILURES, free_port, local_instance
from _relay import Relay

FILES = 200
LATENCY_MS = 25
RUNS = 5  # sealtrail release sign / release verify runs, and single-file sigstore calls
QUICK_RUNS = 2
SIGN_TARGET = 3.0  # at least 3x faster than 200 calls of sigstore-python's sign
VERIFY_TARGET_S = 2.0


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall


def _release(directory: Path) -> list[Path]:
    directory.mkdir()
    paths = []
    for i in range(FILES):
        path = directory / f"artifact-{i:03d}.tar.gz"
        path.write_bytes(f"release artifact {i}\n".encode() * 64)
        paths.append(path)
    return paths


def _clean(directory: Path, artifacts: list[Path]) -> None:
    keep = set(artifacts)
    for path in directory.iterdir():
        if path not in keep:
            path.unlink()


def measure(runs: int = RUNS) -> str:
    if shutil.which(str(BIN / "sigstore")) is None:
        return "sigstore-python is not installed: skipped."
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, Relay(port, LATENCY_MS) as relay, \
            local_instance(Path(tmp), port=port,
                           public_url=f"http://127.0.0.1:{relay.port}") as instance:
        root = Path(tmp)
        trust_config = str(instance.directory / "trust" / "trust_config.json")
        trusted_root = str(instance.directory / "trust" / "trusted_root.json")
        ours_dir, theirs_dir = root / "release", root / "sigstore-python"
        ours, theirs = _release(ours_dir), _release(theirs_dir)
        sign = [str(BIN / "sealtrail"), "release", "sign", str(ours_dir), "--trust-config",
                trust_config, "--identity-token", instance.token, "--no-provenance"]
        verify = [str(BIN / "sealtrail"), "release", "verify", str(ours_dir),
                  "--certificate-identity", "bench@example.com", "--certificate-oidc-issuer",
                  instance.base_url + "/oidc", "--trusted-root", trusted_root]

        def sigstore(paths: list[Path]) -> list[str]:
            return [str(BIN / "sigstore"), "--trust-config", trust_config, "sign",
                    "--identity-token", instance.token, *map(str, paths)]

        def sigstore_one(i: int) -> float:
            target = theirs[i % FILES]
            Path(str(target) + ".sigstore.json").unlink(missing_ok=True)
            return _timed(sigstore([target]))

        _clean(ours_dir, ours)
        _timed(sign)  # warm-up (and the release verify runs on)
        sigstore_one(0)
        signs, singles, verifies = [], [], []
        for i in range(runs):
            _clean(ours_dir, ours)
            signs.append(_timed(sign))
            singles.append(sigstore_one(i + 1))
            singles.append(sigstore_one(i + 1 + runs))
            verifies.append(_timed(verify))
        _clean(theirs_dir, theirs)
        batch = _timed(sigstore(theirs))
    ours_s, one_s, verify_s = (statistics.median(v) for v in (signs, singles, verifies))
    theirs_s = one_s * FILES
    speedup = theirs_s / ours_s
    sign_met = speedup >= SIGN_TARGET
    verify_met = verify_s < VERIFY_TARGET_S
    if not sign_met:
        FAILURES.append(f"release sign: {speedup:.1f}x < {SIGN_TARGET}x")
    if not verify_met:
        FAILURES.append(f"release verify: {verify_s:.2f} s >= {VERIFY_TARGET_S} s")
    lines = [
        f"{FILES} files, {LATENCY_MS} ms each way to every service. Medians of {runs} runs; sigstore-python's 200 calls are {FILES} x the median of "
        f"{2 * runs} single-file calls, interleaved with sealtrail's runs. "
        f"`release sign` also writes and signs SHA256SUMS and writes VERIFY.md.", "",
        "| Measurement | sealtrail | sigstore-python | speed-up / target |",
        "|---|---|---|---|",
        f"| `release sign` of {FILES} files vs {FILES} calls of `sigstore sign` | "
        f"**{ours_s:.2f} s** | {theirs_s:.0f} s ({one_s:.2f} s per call) | "
        f"**{speedup:.0f}x** (target >= {SIGN_TARGET:g}x: {'met' if sign_met else 'NOT MET'}) |",
        f"| `release sign` of {FILES} files vs one `sigstore sign` of {FILES} files | "
        f"{ours_s:.2f} s | {batch:.2f} s | {batch / ours_s:.1f}x |",
        f"| `release verify` of the release ({FILES} files, SHA256SUMS) | **{verify_s:.2f} s** "
        f"| - | target < {VERIFY_TARGET_S:g} s: {'met' if verify_met else 'NOT MET'} |",
    ]
    return "\n".join(lines)


def main(quick: bool = False) -> str:
    return measure(QUICK_RUNS if quick else RUNS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs")
    print(main(parser.parse_args().quick))
