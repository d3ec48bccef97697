"""Verification speed, side by side with sigstore-python in one run.

Distinct bundles (the targets): COUNT files are signed by sigstore-python against a fresh local
instance, once with Rekor v2 and once with Rekor v1 (the instance's signing config lists both
logs; ``--rekor-version`` picks one). Two sets per log version:
- a release: one `sigstore sign` run over all the files (one certificate, COUNT bundles), as a
  CI job produces;
- independent signers: sigstore-python's API with one certificate per file (a `Signer` each), as a
  registry receiving bundles from many publishers sees them.
No bundle is verified twice by one verifier or one process:
(a) in-process rate: a fresh process loads the trusted root, verifies one extra bundle (warm-up,
    not timed), then parses and verifies each of the COUNT bundles once; sealtrail's `Verifier`
    as users get it (memory of passed checks on) against sigstore-python's `Verifier`;
(b) the CLI verifying all COUNT in one call (`sealtrail verify A1..An` against
    `sigstore verify identity --offline A1..An`), wall time;
(c) one CLI verification of one bundle, a different bundle in each run.
The two tools take turns (each pair in a new order); ratios are the median of per-pair ratios,
with the lowest and highest pair.

Repeated bundle (secondary): in-process rates on the conformance vectors, each bundle verified
again and again (with and without the memory of passed checks), and SHA-256 of a 1 GiB file
against coreutils' `sha256sum`.

    python benchmarks/bench_verify.py [--quick] [--rekor 1|2] [--skip-repeated]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from _harness import BIN, local_instance, spread

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "tests" / "vectors" / "conformance"
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"
PRODUCTION_ROOT = REPO / "src" / "sealtrail" / "data" / "public-good" / "production" / "trusted_root.json"
EMAIL = "bench@example.com"  # the identity _harness.local_instance's token carries

COUNT = 200
PAIRS = {"inprocess": 5, "cli_all": 5, "cli_one": 10}
QUICK_PAIRS = {"inprocess": 2, "cli_all": 2, "cli_one": 3}
RUN_TIMEOUT = 300

# (label, case dir, trusted root) -- one bundle of each main shape, for the repeated rows.
BUNDLES = [
    ("v0.3 hashedrekord, Rekor v1", "happy-path-v0.3", PRODUCTION_ROOT),
    ("v0.3 DSSE in-toto, Rekor v1", "happy-path-intoto-in-dsse-v3", PRODUCTION_ROOT),
    ("v0.3 hashedrekord, Rekor v2 + TSA", "rekor2-happy-path",
     CASES / "rekor2-happy-path" / "trusted_root.json"),
]


# -- workers (run in a fresh process each) ----------------------------------------------------
def _worker_verify(tool: str, root: str, issuer: str, files: list[str]) -> None:
    """Verify files[0] untimed, then each of files[1:] once; print the seconds taken."""
    artifacts = [Path(f).read_bytes() for f in files]
    bundles = [Path(f + ".sigstore.json").read_bytes() for f in files]
    if tool == "sealtrail":
        from sealtrail.models.bundle import Bundle
        from sealtrail.trustroot import load_trusted_root
        from sealtrail.verify.policy import IdentityPolicy
        from sealtrail.verify.verifier import Verifier

        verifier = Verifier(load_trusted_root(root))
        policy = IdentityPolicy(identity=EMAIL, issuer=issuer)

        def verify(data: bytes, text: bytes) -> None:
            verifier.verify_artifact(data, Bundle.from_json(text), policy)
    else:
        from sigstore.models import Bundle as SPBundle
        from sigstore.models import TrustedRoot as SPTrustedRoot
        from sigstore.verify import Verifier as SPVerifier
        from sigstore.verify.policy import Identity

        their_verifier = SPVerifier(trusted_root=SPTrustedRoot.from_file(root))
        their_policy = Identity(identity=EMAIL, issuer=issuer)

        def verify(data: bytes, text: bytes) -> None:
            their_verifier.verify_artifact(data, SPBundle.from_json(text), their_policy)

    verify(artifacts[0], bundles[0])  # warm-up: first-use imports and set-up
    start = time.perf_counter()
    for data, text in zip(artifacts[1:], bundles[1:]):
        verify(data, text)
    print(json.dumps({"seconds": time.perf_counter() - start, "count": len(files) - 1}))


def _worker_sign_own(trust_config: str, version: int, token: str, files: list[str]) -> None:
    """Sign each file with sigstore-python's API, a new key and certificate for each (a new
    `Signer` per file: with cache=False, sigstore-python 4.5 signs with a key other than the
    certificate's)."""
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    config = ClientTrustConfig.from_json(Path(trust_config).read_text())
    config.force_tlog_version = version
    context = SigningContext.from_trust_config(config)
    identity = IdentityToken(token)
    for path in files:
        with context.signer(identity) as signer:
            bundle = signer.sign_artifact(Path(path).read_bytes())
        Path(path + ".sigstore.json").write_text(bundle.to_json())


# -- driver ----------------------------------------------------------------------------------
def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"benchmark command failed: {argv[:6]}...\n{done.stdout[-1500:]}\n"
                         f"{done.stderr[-1500:]}")
    return wall, done.stdout


def _files(directory: Path, count: int) -> list[str]:
    directory.mkdir(parents=True)
    paths = []
    for i in range(count):
        path = directory / f"artifact-{i:03d}.txt"
        path.write_bytes(f"{directory.name} artifact {i} {os.urandom(8).hex()}\n".encode() * 16)
        paths.append(str(path))
    return paths


def _paired(ours: Callable[[int], float], theirs: Callable[[int], float],
            pairs: int) -> tuple[list[float], list[float]]:
    """Run the two measurements ``pairs`` times, alternating which goes first."""
    mine, others = [], []
    for i in range(pairs):
        if i % 2 == 0:
            mine.append(ours(i))
            others.append(theirs(i))
        else:
            others.append(theirs(i))
            mine.append(ours(i))
    return mine, others


def bench_distinct(versions: tuple[str, ...], pairs: dict[str, int]) -> dict[str, list[str]]:
    """Rows for the 'distinct' and 'one bundle' tables."""
    rows: dict[str, list[str]] = {"distinct": [], "one": []}
    python = sys.executable
    me = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory() as tmp, local_instance(Path(tmp)) as instance:
        root = str(instance.directory / "trust" / "trusted_root.json")
        trust_config = str(instance.directory / "trust" / "trust_config.json")
        issuer = instance.base_url + "/oidc"
        for version in versions:
            release = _files(Path(tmp) / f"release-v{version}", COUNT + 1)
            _run([str(BIN / "sigstore"), "--trust-config", trust_config, "sign",
                  "--identity-token", instance.token, "--rekor-version", version, *release])
            own = _files(Path(tmp) / f"own-v{version}", COUNT + 1)
            _run([python, me, "--worker-sign-own", trust_config, version, instance.token, *own])

            def in_process(tool: str, files: list[str]) -> Callable[[int], float]:
                def run(_: int) -> float:
                    _, out = _run([python, me, "--worker-verify", tool, root, issuer, *files])
                    return json.loads(out)["seconds"]
                return run

            ours_cli = [str(BIN / "sealtrail"), "verify", "--trusted-root", root,
                        "--certificate-identity", EMAIL, "--certificate-oidc-issuer", issuer]
            theirs_cli = [str(BIN / "sigstore"), "--trust-config", trust_config, "verify",
                          "identity", "--offline", "--cert-identity", EMAIL,
                          "--cert-oidc-issuer", issuer]
            for label, files in (("one release (1 certificate)", release),
                                 ("independent signers (1 certificate each)", own)):
                target = " (target >= 2x)" if files is release else ""
                mine, others = _paired(in_process("sealtrail", files), in_process("sigstore", files),
                                       pairs["inprocess"])
                ratios = [(COUNT / m) / (COUNT / o) for m, o in zip(mine, others)]
                rows["distinct"].append(
                    f"| Rekor v{version}, {COUNT} distinct, in-process, {label} | "
                    f"{COUNT / statistics.median(mine):,.0f}/s | "
                    f"{COUNT / statistics.median(others):,.0f}/s | {spread(ratios)}{target} |")
                targets = files[1:]
                mine, others = _paired(lambda _: _run([*ours_cli, *targets])[0],
                                       lambda _: _run([*theirs_cli, *targets])[0],
                                       pairs["cli_all"] if files is release else max(2, pairs["cli_all"] - 2))
                ratios = [o / m for m, o in zip(mine, others)]
                rows["distinct"].append(
                    f"| Rekor v{version}, CLI, {COUNT} in one call, {label} | "
                    f"{statistics.median(mine):.2f} s | {statistics.median(others):.2f} s | "
                    f"{spread(ratios)}{target} |")
            # (c) one bundle per invocation, a different one each time.
            mine, others = _paired(lambda i: _run([*ours_cli, release[1 + i]])[0],
                                   lambda i: _run([*theirs_cli, release[1 + i]])[0],
                                   pairs["cli_one"])
            ratios = [m / o for m, o in zip(mine, others)]
            ordered = sorted(ratios)
            rows["one"].append(
                f"| Rekor v{version}, CLI, one bundle per call (wall time) | "
                f"{statistics.median(mine) * 1000:.0f} ms | "
                f"{statistics.median(others) * 1000:.0f} ms | **{statistics.median(ratios):.2f}** "
                f"({ordered[0]:.2f}-{ordered[-1]:.2f}) of its time (target <= 0.25) |")
    return rows


# -- repeated bundle (secondary) -------------------------------------------------------------
def rate(fn: Callable[[], None], seconds: float = 1.0) -> float:
    """Calls per second of ``fn``, measured for about ``seconds`` after a warm-up call."""
    fn()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds and count < 100_000:
        fn()
        count += 1
    return count / elapsed


def bench_repeated() -> list[tuple[str, float, float, float]]:
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
        ours_cold = Verifier(load_trusted_root(root), memo_size=0)  # every check runs each time
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


# -- sections ----------------------------------------------------------------------------------
def sections(quick: bool = False, versions: tuple[str, ...] = ("2", "1"),
             repeated: bool = True) -> str:
    """One table: distinct bundles, one CLI call, a repeated bundle, hashing."""
    pairs = QUICK_PAIRS if quick else PAIRS
    lines = [f"{COUNT} files signed by sigstore-python against a local instance: one release "
             "(1 certificate) and independent signers (1 each). In-process: each bundle once in "
             f"a fresh process ({pairs['inprocess']} pairs); CLI: wall time, start-up included. "
             "Ratios are medians of per-pair ratios (lowest-highest pair). Repeated-bundle rows "
             "are secondary: the memory of passed checks answers repeats (ADR 0005).", "",
             "| Measurement | sealtrail | sigstore-python / coreutils | ratio |",
             "|---|---|---|---|"]
    if shutil.which(str(BIN / "sigstore")) is None:
        lines.append("| distinct bundles | sigstore-python is not installed: skipped | | |")
    else:
        rows = bench_distinct(versions, pairs)
        lines += rows["distinct"] + rows["one"]
    if repeated:
        for label, ours, cold, theirs in bench_repeated():
            lines.append(f"| in-process, {label}, repeated bundle | {ours:,.0f}/s | "
                         f"{theirs:,.0f}/s | **{ours / theirs:.1f}x** |")
            lines.append(f"| in-process, {label}, memory of passed checks off | "
                         f"{cold:,.0f}/s | {theirs:,.0f}/s | **{cold / theirs:.1f}x** |")
        ours_hash, theirs_hash = bench_hashing(runs=2 if quick else 3)
        lines.append(f"| SHA-256 of a 1 GiB file (best of runs) | {ours_hash:.2f} s | "
                     f"{theirs_hash:.2f} s (`sha256sum`) | **{ours_hash / theirs_hash:.2f}** of "
                     "its time (target <= 1.10) |")
    return "\n".join(lines)


def main(quick: bool = False) -> str:
    return sections(quick)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker-verify":
        _worker_verify(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--worker-sign-own":
        _worker_sign_own(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs of runs")
    parser.add_argument("--rekor", choices=("1", "2"), help="only this Rekor version")
    parser.add_argument("--skip-repeated", action="store_true",
                        help="only the distinct-bundle and one-bundle tables")
    args = parser.parse_args()
    for _, body in sections(args.quick, (args.rekor,) if args.rekor else ("2", "1"),
                            not args.skip_repeated):
        print(body + "\n")
