"""Instance services speed (issue 4): certificates issued per second and timestamps per second
over loopback HTTP, against a fresh `sealtrail serve`, driven by wrk (32 connections)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _harness import local_instance

CONNECTIONS = 32
DURATION = 8

WRK_SCRIPT = r"""
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def _csr_body() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM)
    return json.dumps({"certificateSigningRequest": base64.b64encode(pem).decode()}).encode()


def _timestamp_query() -> bytes:
    import secrets

    from sealtrail.clients.tsa import build_request

    return build_request(b"a signature to timestamp", secrets.randbits(63) | 1)


def _wrk(url: str, body: bytes, content_type: str, auth: str, tmp: str) -> tuple[float, int, float, float]:
    body_file = Path(tmp) / "body.bin"
    body_file.write_bytes(body)
    script = Path(tmp) / "post.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_CONTENT_TYPE": content_type,
           "BENCH_AUTH": auth}
    done = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--timeout", "30s",
                           "-s", str(script), url], capture_output=True, text=True, env=env, check=True,
                          timeout=DURATION + 60)
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))
    requests, duration_us, errors, p50, p99 = map(int, line.split()[1:])
    return (requests - errors) / (duration_us / 1e6), errors, p50 / 1000, p99 / 1000


def main() -> str:
    if shutil.which("wrk") is None:
        return "wrk is not installed (apt-get install wrk): skipped."
    lines = [f"| Measurement (wrk, {CONNECTIONS} connections, {DURATION} s, loopback) | rate | "
             "p50 / p99 latency | failed |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp, local_instance(Path(tmp)) as instance:
        base = instance.base_url
        rate, errors, p50, p99 = _wrk(base + "/api/v2/signingCert", _csr_body(),
                                      "application/json", f"Bearer {instance.token}", tmp)
        lines.append(f"| certificates issued/s (token checked, CSR verified, SCT embedded) | "
                     f"**{rate:,.0f}/s** | {p50:.0f} ms / {p99:.0f} ms | {errors} |")
        rate, errors, p50, p99 = _wrk(base + "/api/v1/timestamp", _timestamp_query(),
                                      "application/timestamp-query", "", tmp)
        lines.append(f"| RFC 3161 timestamps/s (DER request, certReq) | **{rate:,.0f}/s** | "
                     f"{p50:.0f} ms / {p99:.0f} ms | {errors} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
