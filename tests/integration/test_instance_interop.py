"""Unmodified real clients sign against a fresh `sealtrail serve`; everything verifies.

- sigstore-python (PyPI) signs with the instance's client trust config, once with Rekor v1 and
  once with Rekor v2 plus the TSA, and verifies its own bundles;
- @sigstore/cli (npm) attests against the same instance (Rekor v1 intoto entries + TSA);
- `sealtrail verify` verifies all of those bundles, offline, with the instance's trusted root.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.instance_server import BIN, NPM_SIGSTORE, InstanceServer, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstanceServer]:
    server = InstanceServer(tmp_path_factory.mktemp("instance") / "sealtrail")
    server.init()
    server.start()
    yield server
    server.stop()


def sealtrail_verify(instance: InstanceServer, artifact: Path, bundle: Path, identity: str,
                     *, check: bool = True) -> str:
    done = run(str(BIN / "sealtrail"), "verify", str(artifact), "--bundle", str(bundle),
               "--trusted-root", str(instance.trusted_root), "--certificate-identity", identity,
               "--certificate-oidc-issuer", instance.issuer, "--json", check=check)
    return done.stdout


@pytest.mark.parametrize("rekor_version", ["1", "2"])
def test_sigstore_python_signs_and_both_verify(instance: InstanceServer, tmp_path: Path,
                                               rekor_version: str) -> None:
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release contents " + rekor_version.encode())
    bundle = tmp_path / "release.tar.gz.sigstore.json"
    identity = f"python-v{rekor_version}@example.com"
    token = instance.token(identity)
    run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "sign",
        "--rekor-version", rekor_version, "--identity-token", token, "--bundle", str(bundle),
        str(artifact))
    entry = json.loads(bundle.read_text())["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"]["version"] == ("0.0.1" if rekor_version == "1" else "0.0.2")
    run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "verify", "identity",
        "--bundle", str(bundle), "--cert-identity", identity, "--cert-oidc-issuer",
        instance.issuer, str(artifact))
    record = json.loads(sealtrail_verify(instance, artifact, bundle, identity))
    assert record["ok"] and record["identity"] == identity and record["issuer"] == instance.issuer
    # Another identity fails, naming what the certificate holds.
    done = run(str(BIN / "sealtrail"), "verify", str(artifact), "--bundle", str(bundle),
               "--trusted-root", str(instance.trusted_root), "--certificate-identity",
               "mallory@example.com", "--certificate-oidc-issuer", instance.issuer, check=False)
    assert done.returncode == 1 and identity in done.stderr and "IDENTITY_MISMATCH" in done.stderr


def test_sigstore_js_cli_attests_and_sealtrail_verifies(instance: InstanceServer, tmp_path: Path) -> None:
    if not NPM_SIGSTORE.exists() or shutil.which("node") is None:
        pytest.fail(f"{NPM_SIGSTORE} is missing: `make test` installs the npm clients")
    artifact = tmp_path / "tool.bin"
    artifact.write_bytes(b"a binary built in CI")
    statement = tmp_path / "statement.json"
    statement.write_text(json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "tool.bin", "digest": {"sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()}}],
        "predicateType": "https://slsa.dev/provenance/v1", "predicate": {}}))
    bundle = tmp_path / "tool.bin.sigstore.json"
    identity = "js@example.com"
    run(str(NPM_SIGSTORE), "attest", str(statement), "--fulcio-url", instance.url,
        "--rekor-url", instance.url, "--tsa-server-url", instance.url, "-o", str(bundle),
        env={"CI": "true", "SIGSTORE_ID_TOKEN": instance.token(identity)})
    data = json.loads(bundle.read_text())
    assert data["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"] == "intoto"
    assert data["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    record = json.loads(sealtrail_verify(instance, artifact, bundle, identity))
    assert record["ok"] and record["identity"] == identity
    # The same attestation does not cover another artifact.
    other = tmp_path / "other.bin"
    other.write_bytes(b"something else")
    done = run(str(BIN / "sealtrail"), "verify", str(other), "--bundle", str(bundle),
               "--trusted-root", str(instance.trusted_root), "--certificate-identity", identity,
               "--certificate-oidc-issuer", instance.issuer, check=False)
    assert done.returncode == 1 and "SUBJECT_MISMATCH" in done.stderr


def test_trust_documents_are_served(instance: InstanceServer) -> None:
    import httpx

    for name in ("trusted_root.json", "signing_config.v0.2.json", "trust_config.json"):
        response = httpx.get(f"{instance.url}/trust/{name}")
        assert response.status_code == 200 and response.json()["mediaType"]
    assert httpx.get(f"{instance.url}/tuf/1.root.json").status_code == 200
    assert httpx.get(f"{instance.url}/tuf/../sealtrail.json").status_code == 404
    chain = httpx.get(f"{instance.url}/api/v1/timestamp/certchain")
    assert chain.status_code == 200 and chain.text.count("BEGIN CERTIFICATE") >= 2
    config = httpx.get(f"{instance.url}/api/v2/configuration").json()
    assert any(i.get("issuerUrl") == instance.issuer for i in config["issuers"])


def test_token_refusals_over_http(instance: InstanceServer) -> None:
    import httpx

    body = {"certificateSigningRequest": "AAAA"}
    unsigned = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": f"Bearer {unsigned}"}):
        response = httpx.post(f"{instance.url}/api/v2/signingCert", json=body, headers=headers)
        assert response.status_code in (400, 401), response.text
        assert response.json()["message"]
    # A well-formed, valid token with a CSR whose signature does not verify: 400.
    token = instance.token("csr@example.com")
    response = httpx.post(f"{instance.url}/api/v2/signingCert", json=body,
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400, response.text


def test_trust_through_tuf_then_verify_offline(instance: InstanceServer, tmp_path: Path) -> None:
    """A client bootstraps from the instance's TUF repository with its pinned root.json, then
    verifies offline from the cached trust root (`verify --instance`)."""
    env = {"SEALTRAIL_TRUST_DIR": str(tmp_path / "trust-cache")}
    root = instance.directory / "tuf" / "metadata" / "1.root.json"
    done = run(str(BIN / "sealtrail"), "trust", "add", "mine", instance.url + "/tuf", "--root",
               str(root), env=env)
    assert "root version 1" in done.stdout
    shown = json.loads(run(str(BIN / "sealtrail"), "trust", "show", "mine", "--json", env=env).stdout)
    assert shown["root_version"] == 1 and shown["last_updated"] and shown["expired_roles"] == []
    artifact = tmp_path / "a.txt"
    artifact.write_text("tuf")
    bundle = tmp_path / "a.txt.sigstore.json"
    identity = "tuf@example.com"
    run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "sign",
        "--identity-token", instance.token(identity), "--bundle", str(bundle), str(artifact))
    done = run(str(BIN / "sealtrail"), "verify", str(artifact), "--instance", "mine",
               "--certificate-identity", identity, "--certificate-oidc-issuer", instance.issuer,
               env=env)
    assert "OK: " in done.stdout
    # A name that was never added is a clear input error, not a traceback.
    done = run(str(BIN / "sealtrail"), "verify", str(artifact), "--instance", "nope",
               "--certificate-identity", identity, "--certificate-oidc-issuer", instance.issuer,
               env=env, check=False)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr and done.stderr.strip()


def test_ca_dry_run_shows_the_certificate_or_why_not(instance: InstanceServer) -> None:
    token = instance.token("dry@example.com")
    done = run(str(BIN / "sealtrail"), "ca", "dry-run", token, "--instance", str(instance.directory))
    principal, _, pem = done.stdout.partition("-----BEGIN CERTIFICATE-----")
    assert json.loads(principal)["challenge"] == "dry@example.com"
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(("-----BEGIN CERTIFICATE-----" + pem).encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["dry@example.com"]
    # A token the CA would refuse: the reason, in one line, and no certificate.
    done = run(str(BIN / "sealtrail"), "ca", "dry-run", token[:-8] + "AAAAAAAA", "--instance",
               str(instance.directory), check=False)
    assert done.returncode != 0 and "TOKEN_INVALID" in done.stderr
    assert "BEGIN CERTIFICATE" not in done.stdout and len(done.stderr.strip().splitlines()) == 1


def test_service_logs_are_json_lines_without_secrets(instance: InstanceServer) -> None:
    log = (instance.directory.parent / f"{instance.directory.name}.log").read_text()
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines, "serve should at least log where it listens"
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)
    secret = (instance.directory / "keys" / "token-secret").read_text().strip()
    assert secret not in log and "eyJ" not in log  # no token secret, no JWT


def test_every_issued_certificate_is_recorded(instance: InstanceServer, tmp_path: Path) -> None:
    from sealtrail.ca.record import IssuanceRecord

    identity = "recorded@example.com"
    artifact = tmp_path / "r.txt"
    artifact.write_text("recorded")
    run(str(BIN / "sigstore"), "--trust-config", str(instance.trust_config), "sign",
        "--identity-token", instance.token(identity), "--bundle", str(tmp_path / "r.json"),
        str(artifact))
    record = IssuanceRecord(instance.directory / "ca" / "issued.sqlite")
    try:
        (issued,) = record.by_subject(identity)
        assert issued.issuer == instance.issuer
        bundle = json.loads((tmp_path / "r.json").read_text())
        import base64

        assert issued.certificate == base64.b64decode(
            bundle["verificationMaterial"]["certificate"]["rawBytes"])
        # A dry run issues nothing that lands in the record.
        before = record.count()
        run(str(BIN / "sealtrail"), "ca", "dry-run", instance.token(identity), "--instance",
            str(instance.directory))
        assert record.count() == before
    finally:
        record.close()
