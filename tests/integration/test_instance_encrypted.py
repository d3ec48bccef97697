"""`sealtrail init --encrypt-keys`: every private key is encrypted with the passphrase from the
environment; `serve` needs it, refuses a wrong one, and works with the right one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.integration.instance_server import BIN, InstanceServer, free_port, run

pytestmark = pytest.mark.integration
PASS = {"SEALTRAIL_PASSPHRASE": "correct horse battery staple"}


def test_encrypted_instance(tmp_path: Path) -> None:
    instance = InstanceServer(tmp_path / "instance")
    instance.port = free_port()
    run(str(BIN / "sealtrail"), "init", str(instance.directory), "--port", str(instance.port),
        "--builtin-issuer", "--encrypt-keys", env=PASS)
    keys = list((instance.directory / "keys").rglob("*.pem")) + \
        list((instance.directory / "logs" / "keys").glob("*.pem"))
    private = [k for k in keys if not k.name.endswith(".pub.pem")]
    assert len(private) >= 10
    for key in private:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes(), key
    # Without the passphrase, or with a wrong one: a clear one-line error, no traceback.
    for env in ({"SEALTRAIL_PASSPHRASE": ""}, {"SEALTRAIL_PASSPHRASE": "wrong"}):
        done = run(str(BIN / "sealtrail"), "token", "email", "x@example.com", "--instance",
                   str(instance.directory), env=env, check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    # With it, the instance serves and signs.
    os.environ.update(PASS)
    try:
        instance.start()
        artifact = tmp_path / "a.txt"
        artifact.write_text("encrypted keys")
        bundle = tmp_path / "a.txt.sigstore.json"
        token = run(str(BIN / "sealtrail"), "token", "email", "enc@example.com", "--instance",
                    str(instance.directory), env=PASS).stdout.strip()
        run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "sign",
            "--identity-token", token, "--bundle", str(bundle), str(artifact))
        run(str(BIN / "sealtrail"), "verify", str(artifact), "--bundle", str(bundle),
            "--trusted-root", str(instance.trusted_root), "--certificate-identity",
            "enc@example.com", "--certificate-oidc-issuer", instance.issuer)
    finally:
        instance.stop()
        os.environ.pop("SEALTRAIL_PASSPHRASE", None)
