"""Start-up import budget: what the client commands import before they do anything.

Each command runs RUNS times with ``PYTHONPROFILEIMPORTTIME=1`` (the same report as
``python -X importtime``); per command the table gives the number of modules imported
(deterministic), the total of the import self times (the fastest run: load only adds to it) and
the top self times. A command over its budget (BUDGETS: about 1.5x the figure measured when
the budget was set, so that noise does not trip it but a new heavy import does) is reported,
and `make bench` (benchmarks/run_all.py) exits non-zero.

Commands: `sealtrail --version`; `sealtrail verify --help`; a real offline `sealtrail verify`
of one conformance bundle; a real `sealtrail sign` of one file against a fresh local instance;
and `sigstore --version` for reference (no budget).

    python benchmarks/bench_imports.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from _harness import BIN, FAILURES, local_instance

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "tests" / "vectors" / "conformance"
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"
RUNS, QUICK_RUNS = 7, 3
TOP = 10

# (total import self time in ms, modules imported): budgets set at about 1.5x of the figures
# measured on 2026-12-07 at commit 1c60c71 (before issue 12's HTTP client change); raise one
# only with a reason in the commit message.
BUDGETS = {
    "sealtrail --version": (35.0, 100),
    "sealtrail verify --help": (35.0, 100),
    "sealtrail verify (one bundle)": (115.0, 310),
    "sealtrail sign (one file)": (250.0, 350),
}


def parse_importtime(stderr: str) -> dict[str, int]:
    """Module name -> self time in microseconds, from ``-X importtime`` lines."""
    found: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3:
            continue
        try:
            self_us = int(fields[0])
        except ValueError:
            continue
        name = fields[2].strip()
        found[name] = found.get(name, 0) + self_us
    return found


def profile(argv: list[str], runs: int) -> tuple[int, float, list[tuple[str, float]]]:
    """(modules imported, total self ms of the fastest run, top self times in ms by median)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    totals, counts = [], []
    per_module: dict[str, list[int]] = defaultdict(list)
    for _ in range(runs):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"{argv[:3]} failed:\n{done.stderr[-2000:]}")
        modules = parse_importtime(done.stderr)
        totals.append(sum(modules.values()) / 1000)
        counts.append(len(modules))
        for name, us in modules.items():
            per_module[name].append(us)
    medians = {name: sorted(v)[len(v) // 2] / 1000 for name, v in per_module.items()}
    top = sorted(medians.items(), key=lambda item: -item[1])[:TOP]
    return max(counts), min(totals), top


def main(quick: bool = False) -> str:
    runs = QUICK_RUNS if quick else RUNS
    sealtrail = str(BIN / "sealtrail")
    commands = {
        "sealtrail --version": [sealtrail, "--version"],
        "sealtrail verify --help": [sealtrail, "verify", "--help"],
        "sealtrail verify (one bundle)": [
            sealtrail, "verify", str(CASES / "a.txt"), "--bundle",
            str(CASES / "happy-path-v0.3" / "bundle.sigstore.json"),
            "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER],
        "sigstore --version (reference)": [str(BIN / "sigstore"), "--version"],
    }
    results = {}
    for name, argv in commands.items():
        results[name] = profile(argv, runs)
    with tempfile.TemporaryDirectory() as tmp, local_instance(Path(tmp)) as instance:
        artifact = Path(tmp) / "artifact.txt"
        artifact.write_bytes(b"one release artifact\n")
        argv = [sealtrail, "sign", str(artifact), "--trust-config",
                str(instance.directory / "trust" / "trust_config.json"),
                "--identity-token", instance.token]
        bundle = Path(str(artifact) + ".sigstore.json")
        results["sealtrail sign (one file)"] = (0, 0.0, [])
        samples = []
        for _ in range(runs):  # each run signs anew: the bundle must not exist yet
            bundle.unlink(missing_ok=True)
            samples.append(profile(argv, 1))
        count = max(s[0] for s in samples)
        total = min(s[1] for s in samples)
        results["sealtrail sign (one file)"] = (count, total, min(samples, key=lambda s: s[1])[2])
    rows, tops, over = [], [], []
    for name in [*BUDGETS, "sigstore --version (reference)"]:
        count, total, top = results[name]
        budget = BUDGETS.get(name)
        verdict = "-"
        if budget:
            ok = total <= budget[0] and count <= budget[1]
            verdict = ("within" if ok else "**OVER**") + f" ({budget[0]:.0f} ms, {budget[1]} modules)"
            if not ok:
                over.append(f"{name}: {total:.1f} ms, {count} modules; budget {budget[0]:.0f} ms, "
                            f"{budget[1]} modules")
        rows.append(f"| {name} | {count} | **{total:.1f} ms** | {verdict} |")
        tops.append(f"| {name} | " + ", ".join(f"{m} {ms:.1f}" for m, ms in top) + " |")
    FAILURES.extend(f"import budget exceeded: {line}" for line in over)
    return "\n".join([
        "### Start-up imports", "",
        f"`PYTHONPROFILEIMPORTTIME=1` (as `python -X importtime`), {runs} runs per command; total "
        "of the import self times in the fastest run, modules imported, and the top self times "
        "(ms, median over runs). A command over its budget fails `make bench`.", "",
        "| Command | modules | import time | budget |", "|---|---|---|---|", *rows, "",
        f"| Command | top {TOP} self times (ms) |", "|---|---|", *tops])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs per command")
    args = parser.parse_args()
    print(main(args.quick))
    if FAILURES:
        print("\n".join(FAILURES), file=sys.stderr)
        sys.exit(1)
