"""Verification speed, side by side with sigstore-python, in one run on the same bundles.

Three measurements (issue: offline verifier):
1. in-process verifications per second (parse bundle + verify), sealtrail vs sigstore-python;
2. wall time per CLI invocation, `sealtrail verify` vs `sigstore verify identity --offline`;
3. hashing a 1 GiB file, sealtrail's streaming hasher vs `sha256sum`.
Prints a Markdown table with ratios; `benchmarks/run_all.py` records it in docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from _harness import BIN

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "tests" / "vectors" / "conformance"
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"
PRODUCTION_ROOT = REPO / "src" / "sealtrail" / "data" / "public-good" / "production" / "trusted_root.json"

# (label, case dir, trusted root) -- one bundle of each main shape.
BUNDLES = [
    ("v0.3 hashedrekord, Rekor v1", "happy-path-v0.3", PRODUCTION_ROOT),
    ("v0.3 DSSE in-toto, Rekor v1", "happy-path-intoto-in-dsse-v3", PRODUCTION_ROOT),
    ("v0.3 hashedrekord, Rekor v2 + TSA", "rekor2-happy-path",
     CASES / "rekor2-happy-path" / "trusted_root.json"),
]


def rate(fn: Callable[[], None], seconds: float = 2.0) -> float:
    """Calls per second of ``fn``, measured for about ``seconds`` after a warm-up call."""
    fn()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def bench_in_process() -> list[tuple[str, float, float, float]]:
    from sigstore.models import Bundle as SPBundle
    from sigstore.models import TrustedRoot as SPTrustedRoot
    from sigstore.verify import Verifier as SPVerifier
    from sigstore.verify.policy import Identity

    from sealtrail.models.bundle import Bundle
    from sealtrail.trustroot import load_trusted_root
    from sealtrail.verify.policy import IdentityPolicy
    from sealtrail.verify.verifier import Artifact, Verifier

    artifact = (CASES / "a.txt").read_bytes()
    rows = []
    for label, case, root in BUNDLES:
        text = (CASES / case / "bundle.sigstore.json").read_bytes()
        ours = Verifier(load_trusted_root(root))
        # memo_size=0: every signature and chain check runs every time (no memory of
        # passed checks), as when each bundle is new.
        ours_cold = Verifier(load_trusted_root(root), memo_size=0)
        policy = IdentityPolicy(identity=IDENTITY, issuer=ISSUER)
        digest = Artifact.from_bytes(artifact, ("sha256",))
        theirs = SPVerifier(trusted_root=SPTrustedRoot.from_file(str(root)))
        their_policy = Identity(identity=IDENTITY, issuer=ISSUER)
        is_dsse = b"dsseEnvelope" in text

        def run_ours() -> None:
            ours.verify_artifact(digest, Bundle.from_json(text), policy)

        def run_ours_cold() -> None:
            ours_cold.verify_artifact(digest, Bundle.from_json(text), policy)

        def run_theirs() -> None:
            bundle = SPBundle.from_json(text)
            if is_dsse:
                theirs.verify_dsse(bundle, their_policy)
            else:
                theirs.verify_artifact(artifact, bundle, their_policy)

        rows.append((label, rate(run_ours), rate(run_ours_cold), rate(run_theirs)))
    return rows


def _wall(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"benchmark command failed: {argv}\n{done.stderr.decode()[-2000:]}")
    return statistics.median(times)


def bench_cli(runs: int = 10) -> tuple[float, float]:
    artifact = str(CASES / "a.txt")
    bundle = str(CASES / "happy-path-v0.3" / "bundle.sigstore.json")
    ours = [str(BIN / "sealtrail"), "verify", artifact, "--bundle", bundle,
            "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]
    theirs = [str(BIN / "sigstore"), "verify", "identity", "--offline", "--bundle", bundle,
              "--cert-identity", IDENTITY, "--cert-oidc-issuer", ISSUER, artifact]
    _wall(theirs, 1)  # let sigstore-python set up its TUF cache from its embedded root
    return _wall(ours, runs), _wall(theirs, runs)


def bench_hashing(size: int = 1 << 30, runs: int = 3) -> tuple[float, float]:
    from sealtrail.batch import digest_file

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as tmp:
        path = Path(tmp) / "big.bin"
        block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB of non-zero bytes
        with open(path, "wb") as handle:
            for _ in range(size // len(block)):
                handle.write(block)
        sha256sum = shutil.which("sha256sum")
        assert sha256sum is not None, "sha256sum (coreutils) is needed for this comparison"
        ours, theirs = [], []
        for _ in range(runs):  # interleaved, so page cache and frequency affect both alike
            start = time.perf_counter()
            digest_file(str(path), ("sha256",))
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run([sha256sum, str(path)], check=True, capture_output=True)
            theirs.append(time.perf_counter() - start)
        return min(ours), min(theirs)


def main() -> str:
    lines = ["### Verification (issue 2)", "",
             "| Measurement | sealtrail | sigstore-python / coreutils | ratio |", "|---|---|---|---|"]
    for label, ours, cold, theirs in bench_in_process():
        lines.append(f"| in-process verifications/s, {label}, repeated bundle | {ours:,.0f}/s | "
                     f"{theirs:,.0f}/s | **{ours / theirs:.1f}x** (target >= 5x) |")
        lines.append(f"| in-process verifications/s, {label}, every check run (memo off) | "
                     f"{cold:,.0f}/s | {theirs:,.0f}/s | **{cold / theirs:.1f}x** |")
    ours_cli, theirs_cli = bench_cli()
    lines.append(f"| CLI wall time per invocation (median of 10) | {ours_cli * 1000:.0f} ms | "
                 f"{theirs_cli * 1000:.0f} ms (`sigstore verify identity --offline`) | "
                 f"**{ours_cli / theirs_cli:.2f}** of theirs (target <= 0.25) |")
    ours_hash, theirs_hash = bench_hashing()
    lines.append(f"| SHA-256 of a 1 GiB file (best of 3) | {ours_hash:.2f} s | {theirs_hash:.2f} s "
                 f"(`sha256sum`) | **{ours_hash / theirs_hash:.2f}** of its time (target <= 1.10) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
