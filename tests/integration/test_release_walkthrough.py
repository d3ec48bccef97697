"""The release walkthrough of issue 13, as users run it with cosign's layout.

The release workflow signs every artifact keyless and uploads ``ARTIFACT.sig`` and
``ARTIFACT.pem`` beside each; users run ``verify ARTIFACT --signature ARTIFACT.sig
--certificate ARTIFACT.pem --certificate-identity ... --certificate-oidc-issuer ...``; another
artifact or another identity fails with a message naming what was found.

Two deployments: a local instance standing in for public-good (a trust config whose signing
config has public-good's shape: one CA, one TSA, one Rekor v1 log, nothing else) and a private
instance used as it comes (Rekor v1 and v2 logs; ``--instance-dir``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
RELEASER = "release-bot@example.com"
PACKAGED_PUBLIC_GOOD = (Path(__file__).resolve().parents[2] / "src" / "sealtrail" / "data"
                        / "public-good" / "production" / "signing_config.v0.2.json")


def _public_good_shaped(instance: InstanceServer, path: Path) -> Path:
    """The instance's trust config, with public-good's signing config shape: the packaged
    public-good config with every URL pointed at the instance (so: Rekor v1 only)."""
    config = json.loads(instance.trust_config.read_text())
    signing = json.loads(PACKAGED_PUBLIC_GOOD.read_text())
    start = config["signingConfig"]["caUrls"][0]["validFor"]
    for key, url in (("caUrls", instance.url), ("oidcUrls", instance.issuer),
                     ("rekorTlogUrls", instance.url),
                     ("tsaUrls", instance.url + "/api/v1/timestamp")):
        assert len(signing[key]) == 1, "public-good's config has one service of each kind"
        signing[key][0].update(url=url, validFor=start, operator="stand-in")
    assert [s["majorApiVersion"] for s in signing["rekorTlogUrls"]] == [1]
    config["signingConfig"] = signing
    path.write_text(json.dumps(config))
    return path


class Deployment:
    def __init__(self, name: str, instance: InstanceServer, trust_flags: list[str]) -> None:
        self.name, self.instance, self.trust_flags = name, instance, trust_flags


@pytest.fixture(scope="module", params=["public-good-stand-in", "private"])
def deployment(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    instance = InstanceServer(tmp_path_factory.mktemp(request.param) / "instance")
    instance.init()
    instance.start()
    try:
        if request.param == "private":
            flags = ["--instance-dir", str(instance.directory)]
        else:
            config = _public_good_shaped(instance, instance.directory.parent / "trust.json")
            flags = ["--trust-config", str(config)]
        yield Deployment(request.param, instance, flags)
    finally:
        instance.stop()


def release(directory: Path, *names: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = directory / name
        path.write_bytes(f"release artifact {name}\n".encode() * 100)
        paths.append(path)
    return paths


def verify(deployment: Deployment, artifact: Path, signature: Path, certificate: Path,
           identity: str = RELEASER, *extra: str) -> tuple[int, str, str]:
    done = run(SEALTRAIL, "verify", str(artifact), "--signature", str(signature),
               "--certificate", str(certificate), "--certificate-identity", identity,
               "--certificate-oidc-issuer", deployment.instance.issuer,
               *deployment.trust_flags, *extra, check=False)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout, done.stderr


def test_the_release_walkthrough(deployment: Deployment, tmp_path: Path) -> None:
    artifacts = release(tmp_path / "dist", "tool-1.0-linux-amd64.tar.gz",
                        "tool-1.0-darwin-arm64.tar.gz", "SHA256SUMS")
    # 1. The release workflow signs the three files under one certificate, with cosign's
    #    .sig/.pem beside each (and the bundle too).
    done = run(SEALTRAIL, "sign", *map(str, artifacts), "--detached", *deployment.trust_flags,
               "--identity-token", deployment.instance.token(RELEASER))
    assert "[3/3] signed" in done.stderr
    certificates = set()
    for artifact in artifacts:
        for suffix in (".sig", ".pem", ".sigstore.json"):
            assert Path(f"{artifact}{suffix}").is_file(), suffix
        certificates.add(Path(f"{artifact}.pem").read_bytes())
        entry = json.loads(Path(f"{artifact}.sigstore.json").read_text())[
            "verificationMaterial"]["tlogEntries"][0]
        assert entry["kindVersion"]["version"] == "0.0.1"  # a Rekor v1 entry: a signed time
    assert len(certificates) == 1
    assert next(iter(certificates)).startswith(b"-----BEGIN CERTIFICATE-----")

    # 2. Users verify each with --signature/--certificate and the expected identity.
    for artifact in artifacts:
        code, out, err = verify(deployment, artifact, Path(f"{artifact}.sig"),
                                Path(f"{artifact}.pem"))
        assert code == 0, err
        assert f"OK: {artifact}: signed by identity {RELEASER} " \
               f"(issuer {deployment.instance.issuer})" in out
        # The output says which step used the network, and that it was the only one.
        assert "looking up the log entry online" in err and "the only network step" in err

    # 3. Another artifact fails, naming the digest found.
    other = release(tmp_path / "elsewhere", artifacts[0].name)[0]
    other.write_bytes(b"a tampered tarball\n")
    code, _, err = verify(deployment, other, Path(f"{artifacts[0]}.sig"),
                          Path(f"{artifacts[0]}.pem"))
    assert code == 1 and "SIGNATURE_INVALID" in err
    assert f"sha256:{hashlib.sha256(other.read_bytes()).hexdigest()}" in err
    assert "online" not in err  # refused offline, before any look-up

    # 4. Another identity fails, naming the identity and issuer the certificate holds, once.
    wanted = "https://github.com/example/tool/.github/workflows/release.yml@refs/tags/v1.0"
    code, _, err = verify(deployment, artifacts[0], Path(f"{artifacts[0]}.sig"),
                          Path(f"{artifacts[0]}.pem"), wanted)
    assert code == 1 and "IDENTITY_MISMATCH" in err
    failure = next(line for line in err.splitlines() if line.startswith("FAILED:"))
    assert failure.count(RELEASER) == 1 and deployment.instance.issuer in failure
    assert wanted in failure

    # 5. The same with --json: the failure keeps the identity and issuer found.
    code, out, _ = verify(deployment, artifacts[0], Path(f"{artifacts[0]}.sig"),
                          Path(f"{artifacts[0]}.pem"), wanted, "--json")
    result = json.loads(out)
    assert code == 1 and result["code"] == "IDENTITY_MISMATCH" and result["exit_code"] == 1
    assert result["identity"] == RELEASER and result["issuer"] == deployment.instance.issuer
    assert result["online"]["rekor_version"] == 1

    # 6. All three at once: ARTIFACT.sig and ARTIFACT.pem beside each.
    done = run(SEALTRAIL, "verify", *map(str, artifacts), "--detached",
               "--certificate-identity", RELEASER,
               "--certificate-oidc-issuer", deployment.instance.issuer,
               *deployment.trust_flags, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("OK: ") == 3


def test_a_pair_no_log_holds_has_its_own_code(deployment: Deployment, tmp_path: Path) -> None:
    """A .sig/.pem whose entry is in no searched log: TLOG_ENTRY_NOT_FOUND, naming the logs."""
    (artifact,) = release(tmp_path, "unlogged.bin")
    # Signed against a second, unrelated instance: its log is not the one searched.
    elsewhere = InstanceServer(tmp_path / "elsewhere")
    elsewhere.init()
    elsewhere.start()
    try:
        run(SEALTRAIL, "sign", str(artifact), "--detached", "--instance-dir",
            str(elsewhere.directory), "--identity-token", elsewhere.token(RELEASER))
    finally:
        elsewhere.stop()
    code, out, err = verify(deployment, artifact, Path(f"{artifact}.sig"),
                            Path(f"{artifact}.pem"), RELEASER, "--json")
    result = json.loads(out)
    assert code == 1 and result["code"] == "TLOG_ENTRY_NOT_FOUND", err
    assert deployment.instance.url in result["message"]
    assert result["identity"] == RELEASER  # what the certificate holds, for the user


@pytest.mark.parametrize("deployment", ["private"], indirect=True)  # public-good: no v2 log
def test_what_plain_sign_writes_to_rekor_v2_is_found_and_the_missing_time_explained(
        deployment: Deployment, tmp_path: Path) -> None:
    """Without --detached, a sealtrail instance logs to Rekor v2: the look-up finds the entry
    there (v2 search and tiles), and the failure says why the pair alone cannot verify."""
    # Signed without --detached: the instance's default log, Rekor v2; the pair is taken
    # from the bundle, as a user who extracts it would.
    (second,) = release(tmp_path, "v2-second.bin")
    run(SEALTRAIL, "sign", str(second), "--instance-dir", str(deployment.instance.directory),
        "--identity-token", deployment.instance.token(RELEASER))
    bundle = json.loads(Path(f"{second}.sigstore.json").read_text())
    assert bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"] == "0.0.2"
    Path(f"{second}.sig").write_text(bundle["messageSignature"]["signature"])
    der = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    Path(f"{second}.pem").write_bytes(x509.load_der_x509_certificate(der).public_bytes(
        Encoding.PEM))
    code, out, err = verify(deployment, second, Path(f"{second}.sig"), Path(f"{second}.pem"),
                            RELEASER, "--json")
    result = json.loads(out)
    assert result["online"]["rekor_version"] == 2, err  # found through the v2 search
    assert code == 1 and result["code"] == "NO_VERIFIED_TIME"
    assert "Rekor v2" in result["message"] and "--detached" in result["message"]
