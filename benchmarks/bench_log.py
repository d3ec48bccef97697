"""Transparency log speed (issue 3), on this machine over loopback HTTP.

1. Accepted entries per second with 32 concurrent clients, signatures verified by the server,
   for the Rekor v1 and v2 write APIs; each response is sent once a checkpoint covers the
   entry, so its latency is the time until the entry is covered (p50 / p99).
2. Time per inclusion proof in logs of 10^3 and 10^6 entries (engine, in-process).

The load generator runs in this process (asyncio + httpx) while the server runs in its own:
both share the machine's two cores, as a real client and server on one host would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import BIN, server_cpu, serving

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 32
DURATION = 8.0  # seconds of sustained load per API
CHECKPOINT_INTERVAL = 2.0  # the engine's default; the p99 target is this + 250 ms


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed_requests(api: int, count: int) -> list[dict[str, Any]]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(CLIENTS)]
    out = []
    for i in range(count):
        key = keys[i % len(keys)]
        public = key.public_key()
        artifact = os.urandom(32)
        signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
        if api == 1:
            pem = public.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
            out.append({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}},
                "signature": {"content": _b64(signature), "publicKey": {"content": _b64(pem)}}}})
        else:
            der = public.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
            out.append({"hashedRekordRequestV002": {
                "digest": _b64(hashlib.sha256(artifact).digest()),
                "signature": {"content": _b64(signature), "verifier": {
                    "publicKey": {"rawBytes": _b64(der)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}})
    return out


async def _load(url: str, requests: list[dict[str, Any]]) -> tuple[int, float, list[float], int]:
    import httpx

    latencies: list[float] = []
    failures = 0
    cursor = iter(requests)
    stop_at = time.perf_counter() + DURATION

    async def client_task(http: httpx.AsyncClient) -> None:
        nonlocal failures
        for body in cursor:
            if time.perf_counter() > stop_at:
                return
            start = time.perf_counter()
            response = await http.post(url, json=body)
            if response.status_code == 201:
                latencies.append(time.perf_counter() - start)
            else:
                failures += 1

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client_task(http) for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - began
    return len(latencies), elapsed, latencies, failures


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# wrk (C, from Debian's packages) drives the load: a Python client on the same two cores would
# spend more CPU per request than the server does and measure itself instead.
WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  bodies, next_body, nthreads = {}, 1, tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == tid then table.insert(bodies, line) end
    i = i + 1
  end
end
function request()
  local body = bodies[next_body] or bodies[#bodies]
  next_body = next_body + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""
WRK_THREADS = 2


def _wrk(url: str, api: int, tmp: str) -> tuple[int, float, float, float, int]:
    import json

    bodies = Path(tmp) / f"bodies-v{api}.txt"
    bodies.write_text("\n".join(json.dumps(b, separators=(",", ":")) for b in signed_requests(api, 40_000)))
    script = Path(tmp) / "post.lua"
    script.write_text(WRK_SCRIPT)
    done = subprocess.run(["wrk", f"-t{WRK_THREADS}", f"-c{CLIENTS}", f"-d{DURATION:.0f}s", "--timeout", "30s",
                           "-s", str(script), url, "--", str(bodies), str(WRK_THREADS)],
                          capture_output=True, text=True, check=True, timeout=DURATION + 60)
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))
    requests, duration_us, errors, p50_us, p99_us = map(int, line.split()[1:])
    return requests - errors, duration_us / 1e6, p50_us / 1e6, p99_us / 1e6, errors


def bench_http() -> list[str]:
    import shutil

    rows = []
    use_wrk = shutil.which("wrk") is not None
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        with serving([str(BIN / "sealtrail"), "log", "serve", f"{tmp}/logs", "--port", "0",
                      "--port-file", str(port_file)], port_file, "log server") as server:
            base = f"http://127.0.0.1:{int(port_file.read_text())}"
            for api, path in ((1, "/api/v1/log/entries"), (2, "/logs/log1/api/v2/log/entries")):
                cpu_before = server_cpu(server.pid)
                if use_wrk:
                    accepted, elapsed, p50, p99, failures = _wrk(base + path, api, tmp)
                    tool = "wrk"
                else:
                    accepted, elapsed, latencies, failures = asyncio.run(
                        _load(base + path, signed_requests(api, 40_000)))
                    p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
                    tool = "httpx (install wrk for a lighter load generator)"
                cpu_ms = (server_cpu(server.pid) - cpu_before) / max(accepted, 1) * 1000
                rate = accepted / elapsed
                rows.append(f"| Rekor v{api} API: accepted entries/s, {CLIENTS} clients ({tool}), "
                            f"signatures verified ({accepted:,} in {elapsed:.1f} s, {failures} failed; "
                            f"server CPU {cpu_ms:.2f} ms/entry) | **{rate:,.0f}/s** | >= 1,000/s |")
                rows.append(f"| Rekor v{api} API: time until the entry is covered by a checkpoint "
                            f"(response latency) p50 / p99 | {p50 * 1000:.0f} ms / **{p99 * 1000:.0f} ms** | "
                            f"p99 <= {CHECKPOINT_INTERVAL * 1000 + 250:.0f} ms |")
    return rows


def _proof_time(size: int, samples: int = 2000) -> float:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from sealtrail.log.engine import LogConfig, LogEngine
    from sealtrail.log.storage import LogStorage

    with tempfile.TemporaryDirectory() as tmp:
        config = LogConfig(origin="bench.example", key_name="bench.example",
                           private_key=ed25519.Ed25519PrivateKey.generate(), batch_max=4096,
                           max_pending=1 << 20)
        engine = LogEngine.open(config, LogStorage.embedded(tmp, fsync=False))
        engine.start()
        try:
            futures = [engine.submit(i.to_bytes(8, "big") + b"-bench-entry") for i in range(size)]
            last = max(f.result(timeout=600).index for f in futures)
            engine.wait_blocking(last, timeout=600)
            rng = random.Random(7)
            indexes = [rng.randrange(size) for _ in range(samples)]
            for index in indexes:  # a first pass warms the tile cache, as a running server's is
                engine.inclusion_proof(index, size)
            start = time.perf_counter()
            for index in indexes:
                engine.inclusion_proof(index, size)
            return (time.perf_counter() - start) / samples
        finally:
            engine.close()


def bench_proofs() -> list[str]:
    small, large = _proof_time(1_000), _proof_time(1_000_000)
    return [f"| time per inclusion proof at 10^3 / 10^6 entries (tile cache warm) | {small * 1e6:.0f} us / "
            f"{large * 1e6:.0f} us (**{large / small:.1f}x**) | within 2x |"]


def main() -> str:
    lines = ["| Measurement | sealtrail | target |", "|---|---|---|"]
    lines += bench_http()
    lines += bench_proofs()
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
