"""`sealtrail token gitlab` and `sealtrail ca dry-run`: the instance's GitLab issuer mints a
GitLab CI token and its CA shows the certificate the token would get, with the Fulcio GitLab
extensions (SPEC: shared/reference/provenance-formats.md §3). No server: both commands work on
the instance directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.instance_server import BIN, InstanceServer, run

pytestmark = pytest.mark.integration

SEALTRAIL = str(BIN / "sealtrail")
SHA = "0123456789abcdef0123456789abcdef01234567"


def test_gitlab_token_through_ca_dry_run(tmp_path: Path) -> None:
    instance = InstanceServer(tmp_path / "inst")
    instance.init()
    token = run(SEALTRAIL, "token", "gitlab", "--instance", str(instance.directory),
                "--project", "g/p", "--ref", "refs/tags/v1", "--sha", SHA,
                "--environment", "prod").stdout.strip()
    done = run(SEALTRAIL, "ca", "dry-run", token, "--instance", str(instance.directory))
    shown, _, pem = done.stdout.partition("-----BEGIN CERTIFICATE-----")
    principal = json.loads(shown)
    issuer = f"{instance.url}/oidc/gitlab"
    host = issuer.split("://", 1)[1]
    config = f"https://{host}/g/p//.gitlab-ci.yml@refs/tags/v1"
    assert principal["issuerType"] == "gitlab-pipeline"
    assert principal["san"] == {"kind": "uri", "value": config}
    arc = "1.3.6.1.4.1.57264.1."
    ext = {oid[len(arc):]: value for oid, value in principal["extensions"].items()}
    assert ext["1"] == ext["8"] == issuer
    assert ext["9"] == ext["18"] == config
    assert ext["10"] == ext["19"] == ext["13"] == SHA
    assert ext["11"] == "gitlab-hosted"
    assert ext["12"] == f"{issuer}/g/p" and ext["16"] == f"{issuer}/g"
    assert ext["14"] == "refs/tags/v1"
    assert ext["15"].isdigit() and ext["17"].isdigit()
    assert ext["20"] == "push" and ext["22"] == "public" and ext["23"] == "prod"
    assert ext["21"].startswith(f"{issuer}/g/p/-/jobs/") and ext["21"].rsplit("/", 1)[1].isdigit()
    assert ext["24"] == "project_path:g/p:ref_type:tag:ref:v1"
    cert = x509.load_pem_x509_certificate(("-----BEGIN CERTIFICATE-----" + pem).encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [config]
    # A GitLab command without its project is a usage error, in one line.
    done = run(SEALTRAIL, "token", "gitlab", "--instance", str(instance.directory), check=False)
    assert done.returncode == 2 and "--project" in done.stderr and "Traceback" not in done.stderr
