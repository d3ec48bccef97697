"""VSAs written by the --vsa-out writer verify with `sealtrail verify-vsa` (the installed
command), key-signed and keyless; keyless ones are signed by a local instance this test
starts (`sealtrail init` + `sealtrail serve` on 127.0.0.1, its built-in issuer minting the
identity tokens), and verified offline against its trusted root.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from sealtrail.cli.vsa_commands import add_vsa_out_arguments, write_vsa
from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
SIGNER = "vsa-signer@example.com"
ARTIFACT = b"the release artifact\n"
DIGEST = hashlib.sha256(ARTIFACT).hexdigest()
RESOURCE = "git+https://github.com/org/proj"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("vsa") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def vsa_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_vsa_out_arguments(parser)
    args = parser.parse_args(list(argv))
    args.command = "verify-artifact"
    args.source_uri = "github.com/org/proj"
    return args


def write(tmp_path: Path, *argv: str, level: str = "SLSA_BUILD_LEVEL_3",
          when: datetime | None = None) -> dict[str, Any]:
    provenance = tmp_path / "proj.intoto.jsonl"
    provenance.write_bytes(b'{"provenance": true}\n')
    write_vsa(vsa_args(*argv), [("proj.tar.gz", {"sha256": DIGEST})], [str(provenance)],
              {"command": "verify-artifact", "source_uri": "github.com/org/proj"}, level,
              clock=(lambda: when) if when else None)
    return json.loads(Path(argv[argv.index("--vsa-out") + 1]).read_bytes())


def verify_vsa(path: Path, *extra: str, resource: str = RESOURCE) -> tuple[int, str, str]:
    done = run(SEALTRAIL, "verify-vsa", "--attestation-path", str(path), "--subject-digest",
               f"sha256:{DIGEST}", "--verifier-id", "pkg:pypi/sealtrail", "--resource-uri",
               resource, *extra, check=False)
    return done.returncode, done.stdout, done.stderr


def test_key_signed_vsa(tmp_path: Path) -> None:
    env = {"SEALTRAIL_PASSPHRASE": "correct horse"}
    run(SEALTRAIL, "generate-key-pair", "--output-key-prefix", str(tmp_path / "vsa"), env=env)
    out = tmp_path / "proj.vsa.json"
    when = datetime(2026, 12, 7, 18, 0, tzinfo=timezone.utc)
    os.environ["SEALTRAIL_PASSPHRASE"] = env["SEALTRAIL_PASSPHRASE"]
    try:
        document = write(tmp_path, "--vsa-out", str(out), "--vsa-key", str(tmp_path / "vsa.key"),
                         when=when)
    finally:
        del os.environ["SEALTRAIL_PASSPHRASE"]
    body = json.loads(base64.b64decode(document["payload"]))
    assert body["predicate"]["timeVerified"] == "2026-12-07T18:00:00Z"
    key = ["--public-key-path", str(tmp_path / "vsa.pub")]
    code, _, err = verify_vsa(out, *key, "--verified-level", "SLSA_BUILD_LEVEL_2")
    assert code == 0 and err.strip() == "Verifying VSA: PASSED", err
    code, _, err = verify_vsa(out, *key, resource="git+https://github.com/org/other")
    assert code == 1 and "Verifying VSA: FAILED: ErrorMismatchResourceURI" in err
    code, _, err = verify_vsa(out, *key, "--verified-level", "SLSA_BUILD_LEVEL_4")
    assert code == 1 and "Verifying VSA: FAILED: ErrorMismatchVerifiedLevels" in err


def test_keyless_vsa_from_a_local_instance(instance: InstanceServer, tmp_path: Path) -> None:
    token = instance.token(SIGNER)
    out = tmp_path / "proj.vsa.sigstore.json"
    before = datetime.now(timezone.utc).replace(microsecond=0)
    document = write(tmp_path, "--vsa-out", str(out), "--vsa-trust-config",
                     str(instance.trust_config), "--vsa-identity-token", token,
                     level="SLSA_BUILD_LEVEL_2")
    assert document["mediaType"].startswith("application/vnd.dev.sigstore.bundle")
    body = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    stamp = datetime.strptime(body["predicate"]["timeVerified"],
                              "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before <= stamp <= datetime.now(timezone.utc) + timedelta(seconds=1)
    keyless = ["--trusted-root", str(instance.trusted_root), "--certificate-identity", SIGNER,
               "--certificate-oidc-issuer", instance.issuer]
    code, out_text, err = verify_vsa(out, *keyless, "--verified-level", "SLSA_BUILD_LEVEL_2",
                                     "--json")
    assert code == 0 and err.strip() == "Verifying VSA: PASSED", err
    assert json.loads(out_text)["verified_levels"] == ["SLSA_BUILD_LEVEL_2"]
    code, _, err = verify_vsa(out, *keyless, resource="git+https://github.com/org/other")
    assert code == 1 and "FAILED: ErrorMismatchResourceURI" in err
    code, _, err = verify_vsa(out, *keyless, "--verified-level", "SLSA_BUILD_LEVEL_3")
    assert code == 1 and "FAILED: ErrorMismatchVerifiedLevels" in err
    # Another signer identity: the bundle does not verify under the policy.
    code, _, err = verify_vsa(out, "--trusted-root", str(instance.trusted_root),
                              "--certificate-identity", "someone@example.com",
                              "--certificate-oidc-issuer", instance.issuer)
    assert code == 1 and "FAILED: ErrorNoValidSignature" in err and "IDENTITY" in err
    # A bare envelope taken out of the bundle has no key to check it with.
    envelope = tmp_path / "envelope.json"
    envelope.write_text(json.dumps(document["dsseEnvelope"]))
    code, _, err = verify_vsa(envelope, *keyless)
    assert code == 2 and "--public-key-path is required" in err
