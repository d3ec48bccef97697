"""`make bench`: run every benchmark and record the results, with the machine, in docs/benchmarks.md.

The file keeps one section per table between markers, replaced on each run, so results from
different benchmarks live side by side with hand-written notes around them. A benchmark's
main() returns one section's body, or several (name, body) pairs.

    python benchmarks/run_all.py [NAME ...] [--quick] [--no-record]

Exits 1 when a benchmark reports a budget exceeded (the start-up import budget), after
recording everything.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    from importlib.metadata import version

    libs = ", ".join(f"{name} {version(name)}" for name in ("cryptography", "sigstore"))
    return (f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {libs}")


def record(name: str, body: str) -> None:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"{begin}\n{body}\n\nMeasured {stamp} on: {machine()}.\n{end}"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)


# name -> (module, keyword arguments of its main()). A main() returns one section's body, or
# a list of (section name, body) when it fills several sections.
BENCHMARKS = {
    "verify": ("bench_verify", {}),
    "sign": ("bench_sign", {"latency_ms": 0}),
    "sign-latency": ("bench_sign", {"latency_ms": 25}),
    "imports": ("bench_imports", {}),
    "log": ("bench_log", {}),
    "instance": ("bench_instance", {}),
    "replicas": ("bench_replicas", {}),
    "pypi": ("bench_pypi", {}),
    "release": ("bench_release", {}),
}


def main() -> None:
    import argparse
    import importlib
    import time

    import _harness

    parser = argparse.ArgumentParser(description="Run the benchmarks and record them in "
                                                 "docs/benchmarks.md.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default all: {', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs where a benchmark supports it (development)")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    for name in args.names:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}")
    began = time.monotonic()
    for name in args.names or BENCHMARKS:
        module_name, kwargs = BENCHMARKS[name]
        module = importlib.import_module(module_name)
        if args.quick and "quick" in module.main.__code__.co_varnames:
            kwargs = {**kwargs, "quick": True}
        started = time.monotonic()
        result = module.main(**kwargs)
        for section, body in ([(name, result)] if isinstance(result, str) else result):
            print(body + "\n")
            if not args.no_record:
                record(section, body)
        print(f"({name}: {time.monotonic() - started:.0f} s)\n", flush=True)
    print(f"all benchmarks: {time.monotonic() - began:.0f} s")
    if not args.no_record:
        print(f"recorded in {DOC.relative_to(REPO)}")
    if _harness.FAILURES:
        print("\n".join(["budgets exceeded:", *_harness.FAILURES]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
