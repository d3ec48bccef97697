"""`make bench`: run every benchmark and record the results, with the machine, in docs/benchmarks.md.

The file keeps one section per benchmark between markers, replaced on each run, so results
from different issues live side by side.
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


BENCHMARKS = ("verify", "log", "instance", "sign")


def main() -> None:
    import importlib

    wanted = sys.argv[1:] or BENCHMARKS
    for name in wanted:
        try:
            module = importlib.import_module(f"bench_{name}")
        except ModuleNotFoundError:
            print(f"(no benchmarks/bench_{name}.py)")
            continue
        body = module.main()
        print(body + "\n")
        record(name, body)
    print(f"recorded in {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
