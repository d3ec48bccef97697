"""Key rotation: a new CA key and new log shards are published through TUF with validity
windows; bundles signed before the rotation still verify, and new ones verify too."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration


def _sign(instance: InstanceServer, tmp_path: Path, name: str, rekor: str) -> tuple[Path, Path, str]:
    artifact = tmp_path / name
    artifact.write_text(f"artifact {name}")
    bundle = tmp_path / f"{name}.sigstore.json"
    identity = f"{name.replace('.', '-')}@example.com"
    run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "sign",
        "--rekor-version", rekor, "--identity-token", instance.token(identity), "--bundle",
        str(bundle), str(artifact))
    return artifact, bundle, identity


def _verify(instance: InstanceServer, env: dict[str, str], artifact: Path, bundle: Path,
            identity: str) -> None:
    run(str(BIN / "sealtrail"), "verify", str(artifact), "--bundle", str(bundle), "--instance",
        "rotating", "--certificate-identity", identity, "--certificate-oidc-issuer",
        instance.issuer, env=env)


def test_rotate_ca_and_logs_old_and_new_bundles_verify(tmp_path: Path) -> None:
    instance = InstanceServer(tmp_path / "instance")
    instance.init()
    env = {"SEALTRAIL_TRUST_DIR": str(tmp_path / "cache")}
    instance.start()
    try:
        run(str(BIN / "sealtrail"), "trust", "add", "rotating", instance.url + "/tuf", "--root",
            str(instance.directory / "tuf" / "metadata" / "1.root.json"), env=env)
        before = [_sign(instance, tmp_path, f"before-v{v}.txt", v) for v in ("1", "2")]
    finally:
        instance.stop()
    old_ca = json.loads(instance.trusted_root.read_text())["certificateAuthorities"][0]
    for argv in (("ca",), ("log", "--api", "1"), ("log", "--api", "2")):
        done = run(str(BIN / "sealtrail"), "rotate", argv[0], str(instance.directory), *argv[1:])
        assert "published trust root" in done.stdout
    root = json.loads(instance.trusted_root.read_text())
    assert len(root["certificateAuthorities"]) == 2 and len(root["tlogs"]) == 4
    assert root["certificateAuthorities"][0]["certChain"] == old_ca["certChain"]
    assert "end" in root["certificateAuthorities"][0]["validFor"]
    assert sum("end" in t["publicKey"]["validFor"] for t in root["tlogs"]) == 2
    instance.start()
    try:
        run(str(BIN / "sealtrail"), "trust", "update", "rotating", env=env)
        after = [_sign(instance, tmp_path, f"after-v{v}.txt", v) for v in ("1", "2")]
        for artifact, bundle, identity in before + after:
            _verify(instance, env, artifact, bundle, identity)
        # The new certificates come from the new CA: the old CA no longer issues.
        def issuer(bundle: Path) -> str:
            raw = json.loads(bundle.read_text())["verificationMaterial"]["certificate"]["rawBytes"]
            return x509.load_der_x509_certificate(base64.b64decode(raw)).issuer.rfc4514_string()

        assert issuer(before[0][1]) != issuer(after[0][1])
        assert "ca-2" in issuer(after[0][1])
    finally:
        instance.stop()


def test_rotations_are_refused_while_the_instance_is_served(tmp_path: Path) -> None:
    """A running server keeps the CA key it started with: rotating it underneath would publish
    a trust root the server's certificates do not chain to. Both rotations are refused
    (the running server holds its logs' locks), and nothing is changed."""
    instance = InstanceServer(tmp_path / "instance")
    instance.init()
    config_before = (instance.directory / "sealtrail.json").read_text()
    root_before = instance.trusted_root.read_text()
    instance.start()
    try:
        for argv in (("ca",), ("log", "--api", "1")):
            done = run(str(BIN / "sealtrail"), "rotate", argv[0], str(instance.directory),
                       *argv[1:], check=False)
            assert done.returncode == 3, done.stderr
            assert "in use" in done.stderr and "Traceback" not in done.stderr, done.stderr
    finally:
        instance.stop()
    assert (instance.directory / "sealtrail.json").read_text() == config_before
    assert instance.trusted_root.read_text() == root_before
    assert not (instance.directory / "keys" / "ca-2").exists()
