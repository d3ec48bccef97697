"""`sealtrail sign` / `attest` / `generate-key-pair` and `sealtrail-conformance sign-bundle`
against a fresh `sealtrail serve` instance, with real clients as oracles.

The release walkthrough of issue 5 runs first: sign with an identity from the instance's
issuer, verify with the expected identity and issuer, then the two failures a user must be
able to act on (another artifact: the digest mismatch; another identity: the identity and
issuer the certificate holds), once with an email identity and once with a GitHub-Actions-shaped
workflow identity (the built-in issuer answers at /oidc for email and /oidc/github for
workflow identities).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import os
import shutil
import stat
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.integration.instance_server import BIN, NPM_SIGSTORE, InstanceServer, free_port, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
RELEASER = "release@example.com"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("sign") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def release(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(f"contents of {name}\n".encode())
        paths.append(path)
    return paths


def verify(instance: InstanceServer, artifact: Path, identity: str, *extra: str,
           check: bool = True) -> tuple[int, str, str]:
    done = run(SEALTRAIL, "verify", str(artifact), "--trusted-root", str(instance.trusted_root),
               "--certificate-identity", identity, "--certificate-oidc-issuer", instance.issuer,
               *extra, check=check)
    return done.returncode, done.stdout, done.stderr


def test_walkthrough_sign_verify_and_the_two_failures(instance: InstanceServer,
                                                      tmp_path: Path) -> None:
    tarball, checksums = release(tmp_path, "proj-1.0.tar.gz", "SHA256SUMS")
    # The instance's built-in issuer mints the token (no other token source is set).
    env = {"SIGSTORE_ID_TOKEN": "", "ACTIONS_ID_TOKEN_REQUEST_URL": "", "GITLAB_CI": ""}
    done = run(SEALTRAIL, "sign", str(tarball), str(checksums), "--instance-dir",
               str(instance.directory), "--builtin-email", RELEASER, env=env)
    assert "identity token from the instance's built-in issuer" in done.stderr
    assert "[2/2] signed" in done.stderr and "verified against the trusted root" in done.stderr
    for path in (tarball, checksums):
        bundle = json.loads(Path(f"{path}.sigstore.json").read_text())
        assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
        assert "certificate" in bundle["verificationMaterial"]
        code, out, _ = verify(instance, path, RELEASER)
        assert code == 0 and f"signed by identity {RELEASER} (issuer {instance.issuer})" in out
    # Both files were signed under one certificate.
    certificates = {json.loads(Path(f"{p}.sigstore.json").read_text())["verificationMaterial"]
                    ["certificate"]["rawBytes"] for p in (tarball, checksums)}
    assert len(certificates) == 1

    # Failure 1: another artifact presented with the bundle names both digests.
    other = tmp_path / "elsewhere" / tarball.name
    other.parent.mkdir()
    other.write_bytes(b"a tampered tarball\n")
    shutil.copy(f"{tarball}.sigstore.json", f"{other}.sigstore.json")
    code, _, err = verify(instance, other, RELEASER, check=False)
    assert code == 1 and "DIGEST_MISMATCH" in err
    assert hashlib.sha256(other.read_bytes()).hexdigest() in err
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() in err

    # Failure 2: another expected identity prints the identity and issuer found.
    code, _, err = verify(instance, tarball, "someone-else@example.com", check=False)
    assert code == 1 and "IDENTITY_MISMATCH" in err
    assert RELEASER in err and instance.issuer in err


def test_walkthrough_with_a_github_workflow_identity(instance: InstanceServer,
                                                     tmp_path: Path) -> None:
    """The release flow of issue 5 with a GitHub-Actions-shaped workflow identity."""
    artifact, other = release(tmp_path, "proj-1.0.tar.gz", "proj-evil.tar.gz")
    token = run(SEALTRAIL, "token", "github", "--repository", "org/proj", "--ref",
                "refs/tags/v1.0", "--instance", str(instance.directory)).stdout.strip()
    run(SEALTRAIL, "sign", str(artifact), "--instance-dir", str(instance.directory),
        "--identity-token", token)
    identity = "https://github.com/org/proj/.github/workflows/release.yml@refs/tags/v1.0"
    issuer = instance.url + "/oidc/github"
    policy = ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer]

    def verify_with(target: Path, *flags: str) -> subprocess.CompletedProcess[str]:
        return run(SEALTRAIL, "verify", str(target), "--bundle", str(artifact) + ".sigstore.json",
                   "--trusted-root", str(instance.trusted_root), *flags, check=False)

    done = verify_with(artifact, *policy, "--cert-github-workflow-repository", "org/proj",
                       "--cert-github-workflow-ref", "refs/tags/v1.0")
    assert done.returncode == 0, done.stderr
    assert f"signed by identity {identity} (issuer {issuer})" in done.stdout
    # Another artifact: the digest mismatch is named.
    done = verify_with(other, *policy)
    assert done.returncode == 1 and "DIGEST_MISMATCH" in done.stderr
    # Another identity: the identity and issuer the certificate holds are printed.
    done = verify_with(artifact, "--certificate-identity",
                       "https://github.com/org/other/.github/workflows/release.yml@refs/tags/v1.0",
                       "--certificate-oidc-issuer", issuer)
    assert done.returncode == 1 and identity in done.stderr and issuer in done.stderr


def test_detached_signature_and_certificate(instance: InstanceServer, tmp_path: Path) -> None:
    (artifact,) = release(tmp_path, "tool.bin")
    sig, pem, bundle = (tmp_path / "tool.sig", tmp_path / "tool.pem", tmp_path / "tool.bundle")
    run(SEALTRAIL, "sign", str(artifact), "--trust-config", str(instance.trust_config),
        "--identity-token", instance.token(RELEASER), "--bundle", str(bundle),
        "--output-signature", str(sig), "--output-certificate", str(pem), "--rekor-version", "1")
    data = json.loads(bundle.read_text())
    assert base64.b64decode(sig.read_bytes()) == base64.b64decode(data["messageSignature"]["signature"])
    leaf = x509.load_pem_x509_certificate(pem.read_bytes())
    assert base64.b64encode(leaf.public_bytes(Encoding.DER)).decode() == \
        data["verificationMaterial"]["certificate"]["rawBytes"]
    assert data["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"] == "0.0.1"
    code, _, _ = verify(instance, artifact, RELEASER, "--bundle", str(bundle))
    assert code == 0


@pytest.mark.parametrize("rekor_version", ["1", "2"])
def test_sign_and_attest_bundles_verify_with_sigstore_python(instance: InstanceServer,
                                                            tmp_path: Path, rekor_version: str) -> None:
    artifact, second = release(tmp_path, "app.whl", "app.tar.gz")
    identity = f"python-oracle-v{rekor_version}@example.com"
    token = instance.token(identity)
    common = ["--trust-config", str(instance.trust_config), "--identity-token", token,
              "--rekor-version", rekor_version]
    run(SEALTRAIL, "sign", str(artifact), *common)
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps({"buildType": "https://example.com/ci"}))
    attested = tmp_path / "attestation.json"
    run(SEALTRAIL, "attest", str(artifact), str(second), "--predicate", str(predicate),
        "--predicate-type", "https://slsa.dev/provenance/v1", "--bundle", str(attested), *common)
    kinds = json.loads(attested.read_text())["verificationMaterial"]["tlogEntries"][0]["kindVersion"]
    assert kinds["kind"] == ("dsse" if rekor_version == "1" else "hashedrekord")
    for target, bundle in ((artifact, f"{artifact}.sigstore.json"), (artifact, attested),
                           (second, attested)):
        run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "verify",
            "identity", "--bundle", str(bundle), "--cert-identity", identity,
            "--cert-oidc-issuer", instance.issuer, str(target))
        code, _, _ = verify(instance, target, identity, "--bundle", str(bundle))
        assert code == 0


def test_sign_and_attest_bundles_verify_with_sigstore_js(instance: InstanceServer,
                                                        tmp_path: Path) -> None:
    if not NPM_SIGSTORE.exists() or shutil.which("node") is None:
        pytest.fail(f"{NPM_SIGSTORE} is missing: `make test` installs the npm clients")
    (artifact,) = release(tmp_path, "lib.tgz")
    token = instance.token("js-oracle@example.com")
    run(SEALTRAIL, "sign", str(artifact), "--trust-config", str(instance.trust_config),
        "--identity-token", token)
    statement = tmp_path / "statement.json"
    statement.write_text(json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "lib.tgz",
                     "digest": {"sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()}}],
        "predicateType": "https://slsa.dev/provenance/v1", "predicate": {}}))
    attested = tmp_path / "lib.intoto.json"
    run(SEALTRAIL, "attest", "--statement", str(statement), "--bundle", str(attested),
        "--trust-config", str(instance.trust_config), "--identity-token", token)
    # @sigstore/cli takes no trusted root file, but it can bootstrap from the instance's TUF
    # repository with its pinned root (the trusted root is a TUF target there).
    tuf = ["--tuf-mirror-url", instance.url + "/tuf", "--tuf-root-path",
           str(instance.directory / "tuf" / "metadata" / "1.root.json"),
           "--tuf-cache-path", str(tmp_path / "tuf-cache"),
           "--certificate-identity-email", "js-oracle@example.com",
           "--certificate-issuer", instance.issuer]
    done = run(str(NPM_SIGSTORE), "verify", f"{artifact}.sigstore.json", "--blob-file",
               str(artifact), *tuf)
    assert "Verification succeeded" in done.stdout + done.stderr
    done = run(str(NPM_SIGSTORE), "verify", str(attested), *tuf)
    assert "Verification succeeded" in done.stdout + done.stderr


@pytest.mark.parametrize("rekor_version", [1, 2])
def test_conformance_sign_bundle_round_trips(instance: InstanceServer, tmp_path: Path,
                                             rekor_version: int) -> None:
    config = json.loads((instance.directory / "trust" / "signing_config.v0.2.json").read_text())
    config["rekorTlogUrls"] = [u for u in config["rekorTlogUrls"]
                               if u["majorApiVersion"] == rekor_version]
    signing_config = tmp_path / "signing_config.json"
    signing_config.write_text(json.dumps(config))
    (artifact,) = release(tmp_path, "a.txt")
    identity = f"conformance-v{rekor_version}@example.com"
    conformance = str(BIN / "sealtrail-conformance")
    documents = ["--trusted-root", str(instance.trusted_root), "--signing-config",
                 str(signing_config)]
    bundle = tmp_path / "a.sigstore.json"
    run(conformance, "sign-bundle", "--identity-token", instance.token(identity), "--bundle",
        str(bundle), *documents, str(artifact))
    entry = json.loads(bundle.read_text())["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"]["version"] == f"0.0.{rekor_version}"
    check = ["--certificate-identity", identity, "--certificate-oidc-issuer", instance.issuer,
             "--trusted-root", str(instance.trusted_root)]
    run(conformance, "verify-bundle", "--bundle", str(bundle), *check, str(artifact))
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    run(conformance, "verify-bundle", "--bundle", str(bundle), *check, f"sha256:{digest}")
    # --in-toto: FILE is a statement, signed as DSSE; it verifies for its subject.
    statement = tmp_path / "statement.json"
    statement.write_text(json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a.txt", "digest": {"sha256": digest}}],
        "predicateType": "https://example.com/predicate/v1", "predicate": {"ok": True}}))
    dsse = tmp_path / "statement.sigstore.json"
    run(conformance, "sign-bundle", "--in-toto", "--identity-token", instance.token(identity),
        "--bundle", str(dsse), *documents, str(statement))
    assert "dsseEnvelope" in json.loads(dsse.read_text())
    run(conformance, "verify-bundle", "--bundle", str(dsse), *check, str(artifact))


def test_existing_outputs_are_not_overwritten(instance: InstanceServer, tmp_path: Path) -> None:
    first, second = release(tmp_path, "one.bin", "two.bin")
    existing = Path(f"{second}.sigstore.json")
    existing.write_text("keep me")
    common = ["--trust-config", str(instance.trust_config), "--identity-token",
              instance.token(RELEASER)]
    done = run(SEALTRAIL, "sign", str(first), str(second), *common, check=False)
    assert done.returncode == 2 and "exists; pass --overwrite" in done.stderr
    assert existing.read_text() == "keep me"
    assert not Path(f"{first}.sigstore.json").exists()  # nothing was written for the other
    run(SEALTRAIL, "sign", str(first), str(second), *common, "--overwrite")
    assert json.loads(existing.read_text())["mediaType"].startswith("application/vnd.dev")


def test_managed_key_sign_and_verify(instance: InstanceServer, tmp_path: Path) -> None:
    env = {"SEALTRAIL_PASSPHRASE": "release passphrase"}
    key = tmp_path / "release.key"
    run(SEALTRAIL, "generate-key-pair", "--output-key", str(key), env=env)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    done = run(SEALTRAIL, "generate-key-pair", "--output-key", str(key), env=env, check=False)
    assert done.returncode == 2 and "exists" in done.stderr
    (artifact,) = release(tmp_path, "keyed.bin")
    run(SEALTRAIL, "sign", str(artifact), "--key", str(key), "--trust-config",
        str(instance.trust_config), env=env)
    bundle = json.loads(Path(f"{artifact}.sigstore.json").read_text())
    assert "publicKey" in bundle["verificationMaterial"]
    assert bundle["verificationMaterial"]["tlogEntries"]  # still logged
    done = run(SEALTRAIL, "verify", str(artifact), "--key", str(tmp_path / "release.pub"),
               "--trusted-root", str(instance.trusted_root))
    assert "signed by key" in done.stdout
    done = run(SEALTRAIL, "sign", str(artifact), "--key", str(key), "--trust-config",
               str(instance.trust_config), "--overwrite", env={"SEALTRAIL_PASSPHRASE": "wrong"},
               check=False)
    assert done.returncode == 2 and "KEY_MALFORMED" in done.stderr


def test_attestations_have_their_own_default_name(instance: InstanceServer,
                                                 tmp_path: Path) -> None:
    """`attest` never writes (or is refused for) the name `sign` writes; several artifacts
    verify against one attestation in one call, and --json gives its predicate and subjects."""
    first, second = release(tmp_path, "pkg.whl", "pkg.tar.gz")
    common = ["--trust-config", str(instance.trust_config), "--identity-token",
              instance.token(RELEASER)]
    run(SEALTRAIL, "sign", str(first), *common)
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps({"buildType": "https://example.com/ci"}))
    done = run(SEALTRAIL, "attest", str(first), str(second), "--predicate", str(predicate),
               "--predicate-type", "https://slsa.dev/provenance/v1", *common)
    for path in (first, second):
        assert f"{path}.intoto.sigstore.json" in done.stdout
    signed = json.loads(Path(f"{first}.sigstore.json").read_text())
    assert "messageSignature" in signed  # the signature bundle is untouched
    attestation = f"{first}.intoto.sigstore.json"
    assert "dsseEnvelope" in json.loads(Path(attestation).read_text())
    done = run(SEALTRAIL, "verify", str(first), str(second), "--bundle", attestation,
               "--trusted-root", str(instance.trusted_root), "--certificate-identity", RELEASER,
               "--certificate-oidc-issuer", instance.issuer, "--json", check=False)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["ok"] for r in results] == [True, True]
    assert results[0]["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert sorted(s["name"] for s in results[0]["subjects"]) == ["pkg.tar.gz", "pkg.whl"]
    # Without --bundle, the attestation is found beside a file that has no signature bundle.
    done = run(SEALTRAIL, "verify", str(second), "--trusted-root", str(instance.trusted_root),
               "--certificate-identity", RELEASER, "--certificate-oidc-issuer", instance.issuer,
               check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("flags, fragment", [
    (["--detached", "--rekor-version", "2"], "records no time"),
    (["--detached", "--key", "k.key"], "keyless"),
    (["--output-signature", "x.sig"], "single FILE only"),
])
def test_detached_outputs_that_could_not_verify_are_refused(
        instance: InstanceServer, tmp_path: Path, flags: list[str], fragment: str) -> None:
    first, second = release(tmp_path, "one.bin", "two.bin")
    files = [str(first)] if "--rekor-version" in flags or "--key" in flags else [str(first),
                                                                                  str(second)]
    done = run(SEALTRAIL, "sign", *files, *flags, "--trust-config", str(instance.trust_config),
               "--identity-token", instance.token(RELEASER), check=False)
    assert done.returncode == 2 and fragment in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.bin", "two.bin"]


def test_statement_that_does_not_name_the_file_is_refused(instance: InstanceServer,
                                                          tmp_path: Path) -> None:
    (artifact,) = release(tmp_path, "x.bin")
    statement = tmp_path / "s.json"
    statement.write_text(json.dumps({"_type": "https://in-toto.io/Statement/v1",
                                     "subject": [{"name": "y", "digest": {"sha256": "00" * 32}}],
                                     "predicateType": "https://example.com/p", "predicate": {}}))
    done = run(SEALTRAIL, "attest", str(artifact), "--statement", str(statement),
               "--trust-config", str(instance.trust_config), "--identity-token",
               instance.token(RELEASER), check=False)
    assert done.returncode == 1 and "SUBJECT_MISMATCH" in done.stderr
    assert not Path(f"{artifact}.sigstore.json").exists()


def test_many_files_signed_with_few_workers(instance: InstanceServer, tmp_path: Path) -> None:
    """A release larger than the files in flight: every bundle verifies, each file has its
    own log entry, and nothing is left behind."""
    names = [f"part-{n:02d}.bin" for n in range(40)]
    artifacts = release(tmp_path, *names)
    done = run(SEALTRAIL, "sign", *map(str, artifacts), "--trust-config",
               str(instance.trust_config), "--identity-token", instance.token(RELEASER),
               "--jobs", "4")
    assert "[40/40] signed" in done.stderr
    verified = run(SEALTRAIL, "verify", *map(str, artifacts), "--trusted-root",
                   str(instance.trusted_root), "--certificate-identity", RELEASER,
                   "--certificate-oidc-issuer", instance.issuer, "--json")
    outcomes = [json.loads(line) for line in verified.stdout.splitlines()]
    assert len(outcomes) == 40 and all(o["ok"] for o in outcomes)
    assert len({o["log_index"] for o in outcomes}) == 40
    bundles = {p.name for p in tmp_path.iterdir() if p.name.endswith(".sigstore.json")}
    assert bundles == {f"{name}.sigstore.json" for name in names}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


# Run in a fresh interpreter: the garbage check below must not see other tests' objects.
SIGN_MANY = r"""
import hashlib, json, os, sys, threading
from pathlib import Path
from sealtrail.errors import UsageError
from sealtrail.sign import Signer, SigningContext
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import Artifact, Verifier

trust_config, token, token2, identity, issuer = sys.argv[1:6]
context = SigningContext.from_trust_config(Path(trust_config).read_bytes(), 2)
digests = [hashlib.sha256(b"item %d" % n).digest() for n in range(24)]
delivered = []
with Signer(context, identity_token=token, max_workers=8) as signer:
    results = signer.sign_many([(f"item{n}", d) for n, d in enumerate(digests)],
                               on_done=lambda r: delivered.append(
                                   threading.current_thread().name))
verifier = Verifier(context.trusted_root)
policy = IdentityPolicy(identity=identity, issuer=issuer)
verified = [verifier.verify_artifact(Artifact({"sha256": d}), r.bundle, policy).log_index
            for r, d in zip(results, digests)]

bad_item = 13
items = [(f"item{n}", d) for n, d in enumerate(digests)]
items[bad_item] = (f"item{bad_item}", b"too short")
with Signer(context, identity_token=token2, max_workers=8) as signer:
    try:
        signer.sign_many(items)
        failure = None
    except UsageError as exc:
        failure = exc.message
left = sorted(t.name for t in threading.enumerate() if t.name.startswith("sealtrail-"))

# The CLI signs with the garbage collector mostly idle: a file signed must leave no cycle.
import gc
with Signer(context, identity_token=token2) as signer:
    signer.sign_many([(f"warm{n}", hashlib.sha256(b"w%d" % n).digest()) for n in range(4)])
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    signer.sign_many([(f"more{n}", hashlib.sha256(b"m%d" % n).digest()) for n in range(30)])
    gc.collect()
    garbage = sorted({type(o).__name__ for o in gc.garbage})
print(json.dumps({
    "names": [r.name for r in results], "digests_match": [r.digest for r in results] == digests,
    "log_indexes": [r.log_index for r in results], "verified": verified,
    "certificates": all(r.certificate is not None and r.signature for r in results),
    "delivered": delivered, "bad_item": bad_item, "failure": failure, "threads_left": left,
    "garbage": garbage}))
"""


def test_signer_reports_from_one_thread_and_a_failure_names_its_item(
        instance: InstanceServer) -> None:
    done = run(str(BIN / "python"), "-c", SIGN_MANY, str(instance.trust_config),
               instance.token(RELEASER), instance.token(RELEASER), RELEASER, instance.issuer)
    out = json.loads(done.stdout)
    assert out["names"] == [f"item{n}" for n in range(24)] and out["digests_match"]
    assert out["verified"] == out["log_indexes"] and len(set(out["log_indexes"])) == 24
    assert out["certificates"]
    # Every result reached the caller from the one verifying thread, after it verified.
    assert len(out["delivered"]) == 24 and set(out["delivered"]) == {"sealtrail-verify_0"}
    # A bad item fails the run, with its name; no thread of the run is left.
    assert out["failure"] == f"item{out['bad_item']}: a SHA-256 digest has 32 bytes"
    assert out["threads_left"] == []
    assert out["garbage"] == []  # signing leaves no reference cycles behind


def test_unreachable_log_is_a_clear_error_and_writes_nothing(instance: InstanceServer,
                                                             tmp_path: Path) -> None:
    config = json.loads(instance.trust_config.read_text())
    dead = f"http://127.0.0.1:{free_port()}"
    for item in config["signingConfig"]["rekorTlogUrls"]:
        item["url"] = dead if item["majorApiVersion"] == 1 else dead + "/logs/x"
    trust_config = tmp_path / "trust_config.json"
    trust_config.write_text(json.dumps(config))
    artifacts = release(tmp_path, "a.bin", "b.bin", "c.bin")
    done = run(SEALTRAIL, "sign", *map(str, artifacts), "--trust-config", str(trust_config),
               "--identity-token", instance.token(RELEASER), check=False)
    assert done.returncode == 3, done.stderr  # a service failed: retry later
    assert "LOG_ERROR" in done.stderr and f"cannot reach the log at {dead}" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin", "c.bin",
                                                          "trust_config.json"]


def test_verify_detached_signature_and_certificate_online(instance: InstanceServer,
                                                          tmp_path: Path) -> None:
    """cosign's layout (.sig + .pem, no bundle): the log entry is looked up on the instance."""
    artifact, other = release(tmp_path, "cli.bin", "cli-evil.bin")
    sig, pem = tmp_path / "cli.sig", tmp_path / "cli.pem"
    run(SEALTRAIL, "sign", str(artifact), "--trust-config", str(instance.trust_config),
        "--identity-token", instance.token(RELEASER), "--output-signature", str(sig),
        "--output-certificate", str(pem), "--rekor-version", "1")
    detached = ["--signature", str(sig), "--certificate", str(pem), "--instance-dir",
                str(instance.directory), "--certificate-identity", RELEASER,
                "--certificate-oidc-issuer", instance.issuer]
    done = run(SEALTRAIL, "verify", str(artifact), *detached, check=False)
    assert done.returncode == 0, done.stderr
    assert "online" in done.stderr and f"signed by identity {RELEASER}" in done.stdout
    # Another artifact: the signature does not cover it (found offline, before any look-up).
    done = run(SEALTRAIL, "verify", str(other), *detached, check=False)
    assert done.returncode == 1 and "SIGNATURE_INVALID" in done.stderr
    # Another identity: named as for bundles.
    done = run(SEALTRAIL, "verify", str(artifact), *detached[:6], "--certificate-identity",
               "mallory@example.com", "--certificate-oidc-issuer", instance.issuer, check=False)
    assert done.returncode == 1 and RELEASER in done.stderr and "IDENTITY_MISMATCH" in done.stderr


# Keep last: it stops the module's instance.
def test_stopped_instance_is_a_clear_error_and_writes_nothing(instance: InstanceServer,
                                                              tmp_path: Path) -> None:
    # Runs last in this module: it stops the shared instance.
    token = instance.token(RELEASER)
    instance.stop()
    (artifact,) = release(tmp_path, "late.bin")
    done = run(SEALTRAIL, "sign", str(artifact), "--trust-config", str(instance.trust_config),
               "--identity-token", token, check=False)
    assert done.returncode == 3  # a service could not be reached: retry later
    assert f"cannot reach the CA at {instance.url}" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [artifact]

