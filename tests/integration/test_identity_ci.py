"""The real `id` code path fetches a GitHub Actions token from a local token service.

ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN point at a small HTTP server
on 127.0.0.1 (an ephemeral port), which records what it is asked and answers as GitHub's
token service does (SPEC: GitHub "Configuring OpenID Connect in cloud providers": GET
``$ACTIONS_ID_TOKEN_REQUEST_URL&audience=<aud>`` with ``Authorization: bearer
$ACTIONS_ID_TOKEN_REQUEST_TOKEN``, answer ``{"value": "<jwt>"}``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sealtrail.errors import ServiceUnavailableError
from sealtrail.identity.tokens import AMBIENT_SOURCE, find_identity_token

KEY = ec.generate_private_key(ec.SECP256R1())
BEARER = "runtime-request-token"
SEALTRAIL = str(Path(sys.executable).parent / "sealtrail")
# Every variable by which `id` recognises a CI system: the tests set only their own.
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GITLAB_CI", "SIGSTORE_ID_TOKEN",
                "BUILDKITE", "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME")


def ci_token(audience: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": "https://token.actions.githubusercontent.com",
                       "sub": "repo:org/proj:ref:refs/heads/main", "aud": audience,
                       "iat": now, "exp": now + 300}, KEY, algorithm="ES256")


@dataclass
class TokenService:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def token_service() -> Iterator[TokenService]:
    service = TokenService("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's API
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            service.requests.append({"path": parts.path, "query": query,
                                     "authorization": self.headers.get("Authorization")})
            if service.status == 200:
                body = json.dumps({"value": ci_token(query.get("audience", [""])[0])}).encode()
            else:
                body = b'{"message": "the token service is down"}'
            self.send_response(service.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    service.url = f"http://127.0.0.1:{server.server_address[1]}/token?api-version=2.0"
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def github_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", BEARER)


def test_the_token_is_fetched_with_the_audience_and_the_bearer(
        token_service: TokenService, monkeypatch: pytest.MonkeyPatch) -> None:
    github_env(monkeypatch, token_service.url)
    token, source = find_identity_token()
    assert source == AMBIENT_SOURCE
    assert token.claims["aud"] == "sigstore"
    assert token.issuer == "https://token.actions.githubusercontent.com"
    (request,) = token_service.requests
    assert request["path"] == "/token"
    # The service's own query is kept; the audience is Sigstore's.
    assert request["query"] == {"api-version": ["2.0"], "audience": ["sigstore"]}
    assert request["authorization"] == f"bearer {BEARER}"


def test_a_failing_token_service_is_a_service_failure(
        token_service: TokenService, monkeypatch: pytest.MonkeyPatch) -> None:
    github_env(monkeypatch, token_service.url)
    token_service.status = 503
    with pytest.raises(ServiceUnavailableError) as info:
        find_identity_token()
    assert info.value.exit_code == 3 and info.value.actual == "HTTP 503"
    assert len(token_service.requests) >= 1


def test_an_unreachable_token_service_is_a_service_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A bound socket that does not listen: connecting to it is refused, and no other
    # process can take the port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        github_env(monkeypatch, f"http://127.0.0.1:{closed.getsockname()[1]}/token")
        with pytest.raises(ServiceUnavailableError, match="timed out|could not get") as info:
            find_identity_token()
    assert info.value.exit_code == 3


def test_sign_in_a_failing_ci_exits_3(token_service: TokenService, tmp_path: Path) -> None:
    token_service.status = 500
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release\n")
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    env.update(GITHUB_ACTIONS="true", ACTIONS_ID_TOKEN_REQUEST_URL=token_service.url,
               ACTIONS_ID_TOKEN_REQUEST_TOKEN=BEARER)
    done = subprocess.run([SEALTRAIL, "sign", str(artifact)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "SERVICE_UNAVAILABLE" in done.stderr and "Traceback" not in done.stderr
    assert BEARER not in done.stderr  # the request credential is never printed
    assert not (tmp_path / "release.tar.gz.sigstore.json").exists()


def test_sign_in_github_actions_without_the_permission_exits_2(tmp_path: Path) -> None:
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"release\n")
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    env.update(GITHUB_ACTIONS="true", CI="true")
    done = subprocess.run([SEALTRAIL, "sign", str(artifact)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("sealtrail: error: TOKEN_INVALID: no identity token found")
    assert "add `permissions: id-token: write` to the job" in line
