"""`sealtrail verify-attestation --vsa-out` on a fresh local instance: attestations shaped as
actions/attest-build-provenance writes them, signed by `sealtrail attest` with workflow tokens
from the instance's built-in issuer (helpers of tests/integration/test_verify_attestation.py),
verified with gh's flags; the VSA, key-signed or keyless (signed by the same instance), verifies
with `sealtrail verify-vsa` and fails when its flags differ. The level follows the signer:
L2 for the source repository's own workflow, L3 for a reusable workflow of another one."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.instance_server import BIN, InstanceServer, run
from tests.integration.test_verify_attestation import REPO, attest, mint, provenance

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
ENV = {"SEALTRAIL_PASSPHRASE": "vsa key"}


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("vsa-attestation") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def setup(instance: InstanceServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("vsa-attestation-files")
    roots = tmp / "roots.jsonl"
    roots.write_text(json.dumps(json.loads(instance.trusted_root.read_text()),
                                separators=(",", ":")) + "\n")
    run(SEALTRAIL, "generate-key-pair", "--output-key-prefix", str(tmp / "vsa"), env=ENV)
    return {"tmp": tmp, "roots": roots, "key": tmp / "vsa"}


def verify_attestation(instance: InstanceServer, setup: dict[str, Any], artifact: Path,
                       bundle: Path, *flags: str) -> tuple[int, str]:
    done = run(SEALTRAIL, "verify-attestation", str(artifact), "--bundle", str(bundle),
               "--repo", REPO, "--cert-oidc-issuer", instance.url + "/oidc/github",
               "--custom-trusted-root", str(setup["roots"]), *flags, env=ENV, check=False)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stderr


def verify_vsa(vsa: Path, artifact: Path, *flags: str,
               resource: str = f"git+https://github.com/{REPO}") -> tuple[int, str]:
    done = run(SEALTRAIL, "verify-vsa", "--attestation-path", str(vsa), "--subject-digest",
               "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest(), "--verifier-id",
               "pkg:pypi/sealtrail", "--resource-uri", resource, *flags, check=False)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stderr


def payload(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_bytes())
    envelope = document.get("dsseEnvelope", document)
    return json.loads(base64.b64decode(envelope["payload"]))  # type: ignore[no-any-return]


def test_own_workflow_earns_level_2_key_signed(instance: InstanceServer, setup: dict[str, Any],
                                               tmp_path: Path) -> None:
    artifact = tmp_path / "proj-1.0.tar.gz"
    artifact.write_bytes(b"the release tarball\n")
    bundle = attest(instance, tmp_path, artifact, provenance(), mint(instance), "own")
    vsa = tmp_path / "proj.vsa.json"
    code, err = verify_attestation(instance, setup, artifact, bundle, "--vsa-out", str(vsa),
                                   "--vsa-key", f"{setup['key']}.key")
    assert code == 0, err
    body = payload(vsa)
    assert body["predicate"]["verifiedLevels"] == ["SLSA_BUILD_LEVEL_2"]
    assert body["predicate"]["resourceUri"] == f"git+https://github.com/{REPO}"
    assert body["predicate"]["inputAttestations"][0]["name"] == bundle.name
    key = ["--public-key-path", f"{setup['key']}.pub"]
    code, err = verify_vsa(vsa, artifact, *key, "--verified-level", "SLSA_BUILD_LEVEL_2")
    assert code == 0 and "Verifying VSA: PASSED" in err, err
    code, err = verify_vsa(vsa, artifact, *key, "--verified-level", "SLSA_BUILD_LEVEL_3")
    assert code == 1 and "FAILED: ErrorMismatchVerifiedLevels" in err
    code, err = verify_vsa(vsa, artifact, *key, resource="git+https://github.com/org/other")
    assert code == 1 and "FAILED: ErrorMismatchResourceURI" in err
    # A failed check writes no VSA.
    failed = tmp_path / "failed.vsa.json"
    code, _ = verify_attestation(instance, setup, artifact, bundle, "--source-ref",
                                 "refs/heads/main", "--vsa-out", str(failed), "--vsa-key",
                                 f"{setup['key']}.key")
    assert code == 1 and not failed.exists()


def test_reusable_workflow_earns_level_3_keyless(instance: InstanceServer, setup: dict[str, Any],
                                                 tmp_path: Path) -> None:
    signer = "org/builders/.github/workflows/build.yml@refs/tags/v2"
    artifact = tmp_path / "via-reusable.bin"
    artifact.write_bytes(b"built by a reusable workflow\n")
    bundle = attest(instance, tmp_path, artifact,
                    provenance(builder=f"https://github.com/{signer}"),
                    mint(instance, job_workflow_ref=signer), "reusable")
    vsa = tmp_path / "reusable.vsa.sigstore.json"
    token = instance.token("verifier@example.com")
    code, err = verify_attestation(instance, setup, artifact, bundle, "--signer-repo",
                                   "org/builders", "--vsa-out", str(vsa), "--vsa-trust-config",
                                   str(instance.trust_config), "--vsa-identity-token", token,
                                   "--vsa-resource-uri", "pkg:generic/via-reusable@1")
    assert code == 0, err
    assert payload(vsa)["predicate"]["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]
    keyless = ["--trusted-root", str(instance.trusted_root), "--certificate-identity",
               "verifier@example.com", "--certificate-oidc-issuer", instance.issuer]
    code, err = verify_vsa(vsa, artifact, *keyless, "--verified-level", "SLSA_BUILD_LEVEL_3",
                           resource="pkg:generic/via-reusable@1")
    assert code == 0 and "Verifying VSA: PASSED" in err, err
    code, err = verify_vsa(vsa, artifact, *keyless)
    assert code == 1 and "FAILED: ErrorMismatchResourceURI" in err
