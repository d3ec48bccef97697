"""PEP 740 verification speed (issue 14), side by side in one run.

1. Per call: `sealtrail verify-pypi DIST --provenance P <publisher flags>` against
   `pypi-attestations verify pypi --offline --provenance-file P <publisher flags> DIST` on the
   same real distributions and PyPI provenance files (pypi-attestations' own test assets:
   tests/vectors/ecosystem/pypi-attestations and tests/vectors/pypi), a GitHub, a Google
   Cloud and a CircleCI publisher in turn. The two tools take turns (each pair in a new
   order); the speed-up is the median of per-pair ratios (lowest-highest pair). Target: 3x.
   Each command runs once untimed first; both run with their bytecode cached.
2. Many artifacts, one provenance: COUNT files are the subjects of one in-toto attestation
   signed by `sealtrail attest` against a fresh local instance; `sealtrail verify A1..An
   --bundle B` in one call against COUNT calls of `sealtrail verify Ai --bundle B` (one per
   artifact). Recorded: both wall times, the one call's CPU time over its wall time (how
   many cores its worker processes kept busy; the machine's count beside it), and the one
   call again with `--jobs 1` (no worker processes), which shows what the workers bring.
   Then the same with `verify-pypi`: COUNT distributions, each with its own PEP 740
   attestation (signed through the instance by sealtrail's library, rewritten in PEP 740's
   field names), in one call against one call each.

    python benchmarks/bench_pypi.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _harness import BIN, local_instance, spread

REPO = Path(__file__).resolve().parents[1]
ECO = REPO / "tests" / "vectors" / "ecosystem" / "pypi-attestations"
OWN = REPO / "tests" / "vectors" / "pypi"
COUNT = 200
PAIRS, QUICK_PAIRS = 30, 6
BATCH_RUNS, QUICK_BATCH_RUNS = 3, 1
RUN_TIMEOUT = 600
EMAIL = "bench@example.com"  # the identity _harness.local_instance's token carries

# (distribution, provenance, sealtrail's publisher flags, pypi-attestations' flags)
CASES = [
    (ECO / "pypi_attestations-0.0.19.tar.gz", OWN / "pypi_attestations-0.0.19.tar.gz.provenance",
     ["--repository", "https://github.com/trailofbits/pypi-attestations"],
     ["--repository", "https://github.com/trailofbits/pypi-attestations"]),
    (ECO / "gcb_attestation_test-0.0.0.tar.gz", ECO / "gcb_attestation_test-0.0.0.tar.gz.provenance",
     ["--cert-identity", "919436158236-compute@developer.gserviceaccount.com",
      "--cert-oidc-issuer", "https://accounts.google.com"],
     ["--gcp-service-account", "919436158236-compute@developer.gserviceaccount.com"]),
    (ECO / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl",
     OWN / "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl.provenance",
     ["--cert-identity", "https://circleci.com/api/v2/projects/fdd9283f-e619-46af-8f9c-"
      "851f7d3e8b2b/pipeline-definitions/8e4f8ab2-8d7c-4827-9f15-de076d6d647f",
      "--cert-oidc-issuer", "https://oidc.circleci.com"],
     ["--circleci-project-id", "fdd9283f-e619-46af-8f9c-851f7d3e8b2b",
      "--circleci-pipeline-definition-id", "8e4f8ab2-8d7c-4827-9f15-de076d6d647f"]),
]


# Both tools run as installed: with their modules' bytecode cached, as pip leaves them (a
# PYTHONDONTWRITEBYTECODE inherited from the caller would have an edited module recompiled on
# every run). The warm-up runs write the caches.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=ENV)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"benchmark command failed: {argv[:4]}...\n{done.stdout[-1500:]}\n"
                         f"{done.stderr[-1500:]}")
    return wall


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _commands(case: int) -> tuple[list[str], list[str]]:
    dist, provenance, our_flags, their_flags = CASES[case % len(CASES)]
    return ([str(BIN / "sealtrail"), "verify-pypi", str(dist), "--provenance", str(provenance),
             *our_flags],
            [str(BIN / "pypi-attestations"), "verify", "pypi", "--offline", "--provenance-file",
             str(provenance), *their_flags, str(dist)])


def per_call(pairs: int) -> tuple[str, float]:
    for case in range(len(CASES)):  # warm-up, untimed: caches written, files in page cache
        for argv in _commands(case):
            _run(argv)
    ours, theirs, ratios = [], [], []
    for i in range(pairs):
        mine, other = _commands(i)
        if i % 2 == 0:
            a, b = _run(mine), _run(other)
        else:
            b, a = _run(other), _run(mine)
        ours.append(a)
        theirs.append(b)
        ratios.append(b / a)
    median = statistics.median(ratios)
    row = (f"| one distribution per call (GitHub, Google, CircleCI publishers in turn; "
           f"{pairs} pairs) | {statistics.median(ours) * 1000:.0f} ms | "
           f"{statistics.median(theirs) * 1000:.0f} ms | {spread(ratios)} (target >= 3x) |")
    return row, median


def batch(runs: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench-pypi-") as tmp:
        root = Path(tmp)
        with local_instance(root) as instance:
            files = []
            (root / "dist").mkdir()
            for i in range(COUNT):
                path = root / "dist" / f"pkg_{i:03d}-1.0-py3-none-any.whl"
                path.write_bytes(f"distribution {i} {os.urandom(8).hex()}\n".encode() * 64)
                files.append(str(path))
            predicate = root / "predicate.json"
            predicate.write_text(json.dumps({}))
            bundle = root / "all.intoto.sigstore.json"
            _run([str(BIN / "sealtrail"), "attest", *files, "--predicate", str(predicate),
                  "--predicate-type", "https://docs.pypi.org/attestations/publish/v1",
                  "--bundle", str(bundle), "--instance-dir", str(instance.directory),
                  "--identity-token", instance.token])
            policy = ["--trusted-root", str(instance.directory / "trust" / "trusted_root.json"),
                      "--certificate-identity", EMAIL,
                      "--certificate-oidc-issuer", instance.base_url + "/oidc"]
            one_call, one_process, singles, busy = [], [], [], []
            for i in range(runs):
                cpu = _children_cpu()
                wall = _run([str(BIN / "sealtrail"), "verify", *files, "--bundle", str(bundle),
                             *policy])
                one_call.append(wall)
                busy.append((_children_cpu() - cpu) / wall)
                one_process.append(_run([str(BIN / "sealtrail"), "verify", *files, "--bundle",
                                         str(bundle), "--jobs", "1", *policy]))
                start = time.perf_counter()
                for path in files:
                    _run([str(BIN / "sealtrail"), "verify", path, "--bundle", str(bundle),
                          *policy])
                singles.append(time.perf_counter() - start)
            pypi_one, pypi_process, pypi_singles = _pypi_batch(root, instance, files, runs)
    ratio = [s / o for s, o in zip(singles, one_call)]
    return [
        f"| {COUNT} artifacts, one attestation naming all of them: one `sealtrail verify "
        f"--bundle` call ({runs} run(s)) | {statistics.median(one_call):.2f} s, CPU busy "
        f"{statistics.median(busy):.1f} of {os.cpu_count()} cores | | |",
        f"| the same one call with `--jobs 1` (one process, no workers) | "
        f"{statistics.median(one_process):.2f} s | | the default's workers: "
        f"{spread([p / o for p, o in zip(one_process, one_call)])} faster |",
        f"| the same {COUNT} artifacts, one `sealtrail verify` call each | "
        f"{statistics.median(singles):.1f} s | | one call is {spread(ratio, '{:.0f}')} faster |",
        f"| {COUNT} distributions, each with its own PEP 740 attestation: one `sealtrail "
        f"verify-pypi` call | {statistics.median(pypi_one):.2f} s | | |",
        f"| the same one call with `--jobs 1` | {statistics.median(pypi_process):.2f} s | | "
        f"the default's workers: {spread([p / o for p, o in zip(pypi_process, pypi_one)])} "
        "faster |",
        f"| the same {COUNT} distributions, one `sealtrail verify-pypi` call each | "
        f"{statistics.median(pypi_singles):.1f} s | | one call is "
        f"{spread([s / o for s, o in zip(pypi_singles, pypi_one)], '{:.0f}')} faster |",
    ]


def _pypi_batch(root: Path, instance: object, files: list[str],
                runs: int) -> tuple[list[float], list[float], list[float]]:
    """COUNT attestations, a statement per file signed through the local instance (one
    certificate, Rekor v1, sealtrail's signing library), rewritten as PEP 740 attestations
    beside each file (DIST.publish.attestation); then `verify-pypi` over all of them in one
    call, and once per file."""
    import hashlib

    from sealtrail.sign.context import SigningContext
    from sealtrail.sign.signer import Signer

    directory: Path = instance.directory  # type: ignore[attr-defined]
    context = SigningContext.from_trust_config(
        (directory / "trust" / "trust_config.json").read_bytes(), 1)
    with Signer(context, identity_token=instance.token) as signer:  # type: ignore[attr-defined]
        for path in files:
            statement = json.dumps({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": Path(path).name, "digest": {
                    "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}}],
                "predicateType": "https://docs.pypi.org/attestations/publish/v1",
                "predicate": None}).encode()
            bundle = signer.sign_statement(statement).bundle
            material = bundle["verificationMaterial"]
            Path(path + ".publish.attestation").write_text(json.dumps({
                "version": 1,
                "verification_material": {"certificate": material["certificate"]["rawBytes"],
                                          "transparency_entries": material["tlogEntries"]},
                "envelope": {"statement": bundle["dsseEnvelope"]["payload"],
                             "signature": bundle["dsseEnvelope"]["signatures"][0]["sig"]}}))
    policy = ["--trusted-root", str(directory / "trust" / "trusted_root.json"),
              "--cert-identity", EMAIL, "--cert-oidc-issuer",
              instance.base_url + "/oidc"]  # type: ignore[attr-defined]
    one, one_process, singles = [], [], []
    for _ in range(runs):
        one.append(_run([str(BIN / "sealtrail"), "verify-pypi", *files, *policy]))
        one_process.append(_run([str(BIN / "sealtrail"), "verify-pypi", *files, *policy,
                                 "--jobs", "1"]))
        start = time.perf_counter()
        for path in files:
            _run([str(BIN / "sealtrail"), "verify-pypi", path, *policy])
        singles.append(time.perf_counter() - start)
    return one, one_process, singles


def main(quick: bool = False) -> str:
    load = os.getloadavg()[0]
    row, median = per_call(QUICK_PAIRS if quick else PAIRS)
    rows = [row, *batch(QUICK_BATCH_RUNS if quick else BATCH_RUNS)]
    from importlib.metadata import version

    met = "met" if median >= 3 else "**not met**"
    return "\n".join([
        f"`sealtrail verify-pypi` against pypi-attestations {version('pypi-attestations')} "
        "(`verify pypi --offline --provenance-file`), the real distributions and PyPI provenance "
        f"files of pypi-attestations' test assets; wall time per call, start-up included. "
        f"Per-call target (3x): {met}. Load average when the run began: {load:.1f} "
        "(other processes share the machine: the CPU-busy figure counts only what this run "
        "got).",
        "",
        "| Measurement | sealtrail | pypi-attestations | speed-up |",
        "|---|---|---|---|",
        *rows,
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(main(quick=parser.parse_args().quick))
