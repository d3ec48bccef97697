"""A built-in OpenID Connect issuer for local and test use.

It mints ES256-signed identity tokens for an email identity or a GitHub-Actions-shaped
workflow identity, and describes itself with an OIDC discovery document and a JWKS, so that
the instance's CA (or real Fulcio) can validate its tokens exactly as it validates Google's
or GitHub's.

SPEC: sigstore-wire.md §1 (claims Fulcio's email and github-workflow types need; sigstore-python
requires aud "sigstore", iss, sub, iat, exp) and §9 (discovery document and JWKS).
SPEC: OpenID Connect Discovery 1.0 §3 (provider metadata); RFC 7517 (JWK); RFC 7638 (JWK
thumbprint); RFC 7519 (JWT claims).

JWTs are produced by PyJWT; nothing here encodes or signs a JWT by hand.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
import re
import secrets
import stat
import time
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sealtrail._internal.keyfiles import load_private_key
from sealtrail.errors import ConfigInvalidError, Error, KeyMalformedError, UsageError
from sealtrail.issuer import _fields as f

if TYPE_CHECKING:
    from sealtrail.issuer.request import TokenRequest

__all__ = [
    "ALGORITHM",
    "BuiltinIssuer",
    "create_issuer_key",
    "create_token_secret",
    "email_subject",
    "issuer_key_id",
    "jwk_thumbprint",
    "load_issuer_key",
    "load_issuer_key_file",
    "load_token_secret",
]

ALGORITHM = "ES256"
DISCOVERY_PATH = "/.well-known/openid-configuration"

_EMAIL_CLAIMS = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "email", "email_verified"]
# SPEC: GitHub docs "About security hardening with OpenID Connect" (token claims); sigstore-wire.md
# §1 lists the ones Fulcio's github-workflow type requires.
_WORKFLOW_CLAIMS = [
    "actor", "actor_id", "base_ref", "environment", "event_name", "head_ref",
    "job_workflow_ref", "job_workflow_sha", "ref", "ref_protected", "ref_type", "repository",
    "repository_id", "repository_owner", "repository_owner_id", "repository_visibility",
    "run_attempt", "run_id", "run_number", "runner_environment", "sha", "workflow",
    "workflow_ref", "workflow_sha",
]
# SPEC: GitLab docs "OpenID Connect (OIDC) Authentication Using ID Tokens" (the claims of an
# id_tokens token); provenance-formats.md §3 lists the ones Fulcio's gitlab-pipeline type maps.
_GITLAB_CLAIMS = [
    "ci_config_ref_uri", "ci_config_sha", "environment", "job_id", "namespace_id",
    "namespace_path", "pipeline_id", "pipeline_source", "project_id", "project_path",
    "project_visibility", "ref", "ref_path", "ref_protected", "ref_type", "runner_environment",
    "runner_id", "sha", "user_login",
]
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_MAX_URL = 2048

# SPEC: RFC 7638 §3.2: the required members of each key type, the only ones hashed.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                       "OKP": ("crv", "kty", "x")}


def create_issuer_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 signing key for the built-in issuer (ES256)."""
    return ec.generate_private_key(ec.SECP256R1())


def create_token_secret() -> bytes:
    """A fresh secret for the token endpoint: 256 random bits, URL-safe ASCII (header-safe)."""
    return secrets.token_urlsafe(32).encode("ascii")


def load_issuer_key_file(path: str | os.PathLike[str], password: bytes | None = None
                         ) -> ec.EllipticCurvePrivateKey:
    """Load the issuer's key file (``keys/oidc.pem``) as the CA key is loaded: refused
    (:class:`~sealtrail.errors.ConfigInvalidError`) when group or others may read it."""
    return _check_signing_key(load_private_key(path, passphrase=password))


#: A token secret is 43 characters; anything much larger is not one.
_MAX_SECRET_BYTES = 4096


def load_token_secret(path: str | os.PathLike[str]) -> bytes:
    """Read the token endpoint's secret (``keys/token-secret``), refusing a file that group
    or others may read, with the error and code a private key gets (it is one)."""
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        with open(path, "rb") as handle:
            # The mode of the file we read, not of whatever the name points to later.
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if os.name == "posix" and mode & 0o077:
                raise ConfigInvalidError(f"private key {name} is readable by others",
                                         actual=oct(mode), expected="0o600")
            secret = handle.read(_MAX_SECRET_BYTES + 1).strip()
    except OSError as exc:
        raise ConfigInvalidError(f"cannot read the token secret {path}: {exc.strerror}") from exc
    if not secret or len(secret) > _MAX_SECRET_BYTES:
        raise ConfigInvalidError(f"the token secret {path} is empty or too large")
    return secret


def load_issuer_key(pem: bytes, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Load the issuer's PEM (PKCS#8, optionally encrypted) private key; it must be P-256."""
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        # cryptography says "Bad decrypt" or "Could not deserialize"; keep it to one line.
        raise KeyMalformedError("cannot load the OIDC issuer key",
                                actual=str(exc).splitlines()[0] if str(exc) else None) from None
    return _check_signing_key(key)


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url without padding) of a public JWK.

    SPEC: RFC 7638 §3: hash the JSON object of the required members only, sorted by name,
    with no whitespace; member values here are all strings, so sorted-keys compact JSON is
    exactly the canonical form the RFC describes.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise KeyMalformedError("unsupported JWK key type for a thumbprint",
                                expected=", ".join(sorted(_THUMBPRINT_MEMBERS)), actual=kty)
    required = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise KeyMalformedError(f"JWK lacks the {name!r} member")
        required[name] = value
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issuer_key_id(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """The stable key id of an issuer key: the RFC 7638 thumbprint of its public JWK."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise KeyMalformedError("the OIDC issuer key must be an ECDSA key",
                                actual=type(key).__name__)
    return jwk_thumbprint(ECAlgorithm.to_jwk(public, as_dict=True))


def _check_signing_key(key: object) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        curve = getattr(getattr(key, "curve", None), "name", None)
        raise KeyMalformedError("the OIDC issuer key must be an ECDSA P-256 private key (ES256)",
                                expected="ECDSA P-256 private key",
                                actual=f"{type(key).__name__}{f' ({curve})' if curve else ''}")
    return key


def _check_issuer_url(url: object) -> str:
    if not isinstance(url, str) or not url or len(url) > _MAX_URL:
        raise UsageError("the issuer URL must be a non-empty string of at most 2048 characters")
    if any(not 0x21 <= ord(c) <= 0x7E for c in url):
        raise UsageError("the issuer URL must be printable ASCII without spaces", actual=url)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise UsageError("the issuer URL is malformed", actual=url) from None
    # SPEC: OpenID Connect Discovery 1.0 §3: issuer is a URL using the https scheme with no
    # query or fragment. Plain http is allowed too: this issuer is for local use, e.g.
    # http://127.0.0.1:PORT/oidc.
    if parts.scheme not in ("http", "https") or not hostname:
        raise UsageError("the issuer URL must be an http(s) URL with a host", actual=url)
    if parts.query or parts.fragment or "?" in url or "#" in url or "@" in parts.netloc:
        raise UsageError("the issuer URL must not have a query, fragment or user info",
                         actual=url)
    if url.endswith("/"):
        # The issuer is compared byte for byte with "iss": one spelling only.
        raise UsageError("the issuer URL must not end with '/'", actual=url)
    return url


class BuiltinIssuer:
    """An OIDC issuer that mints ES256 identity tokens with its own P-256 key.

    ``issuer_url`` is the public URL of the issuer (the ``iss`` claim; discovery lives at
    ``issuer_url + "/.well-known/openid-configuration"``). ``key_id`` defaults to the RFC 7638
    thumbprint of the key. ``clock`` returns the current time in seconds since the epoch.
    """

    def __init__(self, issuer_url: str, signing_key: ec.EllipticCurvePrivateKey,
                 key_id: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self._url = _check_issuer_url(issuer_url)
        self._key = _check_signing_key(signing_key)
        if key_id is None:
            key_id = issuer_key_id(self._key)
        if not isinstance(key_id, str) or _KEY_ID.fullmatch(key_id) is None:
            raise UsageError("the key id must be 1-128 characters of letters, digits and . _ -",
                             actual=key_id)
        self._kid = key_id
        self._clock = clock

    @property
    def issuer_url(self) -> str:
        """The ``iss`` value of every token, and the base of every endpoint URL."""
        return self._url

    @property
    def key_id(self) -> str:
        """The ``kid`` header of every token and of the one key in the JWKS."""
        return self._kid

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the signing key."""
        return self._key.public_key()

    @property
    def discovery_url(self) -> str:
        """Where OIDC discovery finds :meth:`discovery`."""
        return self._url + DISCOVERY_PATH

    def discovery(self, *, browser_login: bool = True) -> dict[str, Any]:
        """The OpenID Provider metadata (``/.well-known/openid-configuration``).

        SPEC: OpenID Connect Discovery 1.0 §3. With ``browser_login`` (the email issuer) it
        advertises the authorization endpoint of the code flow with PKCE
        (:mod:`sealtrail.issuer.authorization`), which ``sealtrail sign`` and sigstore-python
        use to log in; without it (the workflow issuer: a GitHub-Actions identity is not a
        person at a browser) there is no such endpoint, and none is advertised. Either way
        ``/token`` also mints directly for holders of the instance's token secret.
        """
        document: dict[str, Any] = {
            "issuer": self._url,
            "jwks_uri": self._url + "/jwks",
            "token_endpoint": self._url + "/token",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "scopes_supported": ["openid", "email"],
            "claims_supported": sorted(set(_EMAIL_CLAIMS) | set(_WORKFLOW_CLAIMS)
                                       | set(_GITLAB_CLAIMS) | {"nonce"}),
        }
        if browser_login:
            document.update({
                "authorization_endpoint": self._url + "/authorize",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "code_challenge_methods_supported": ["S256"],
                # A public client (RFC 6749 §2.1): PKCE, not a client secret, binds the code.
                "token_endpoint_auth_methods_supported": ["none"],
            })
        return document

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set holding the issuer's one public key (RFC 7517 §5)."""
        jwk = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        jwk.update({"kid": self._kid, "use": "sig", "alg": ALGORITHM})
        return {"keys": [jwk]}

    def mint_email(self, email: str, *, audience: str = f.DEFAULT_AUDIENCE,
                   lifetime: int = f.DEFAULT_LIFETIME, email_verified: bool = True,
                   nonce: str | None = None) -> str:
        """An identity token for ``email`` (Fulcio's email issuer type).

        ``sub`` is an opaque id derived from the address alone, so it is the same for every
        token of that address. ``nonce`` (a login request's, OpenID Connect Core §3.1.2.1)
        is copied into the token. Raises :class:`UsageError` for invalid arguments.
        """
        email = f.check_email(email, UsageError)
        extra: dict[str, Any] = {
            "sub": email_subject(email),
            "email": email,
            "email_verified": f.check_bool("email_verified", email_verified, UsageError),
        }
        if nonce is not None:
            if not isinstance(nonce, str) or not 1 <= len(nonce) <= 512 \
                    or not nonce.isascii() or not nonce.isprintable():
                raise UsageError("nonce must be 1-512 printable ASCII characters")
            extra["nonce"] = nonce
        return self._sign(extra, audience, lifetime)

    def mint_github_workflow(
        self, *, repository: str, workflow_path: str, ref: str, sha: str,
        event_name: str = "push", workflow_name: str | None = None,
        repository_id: str | int | None = None, repository_owner_id: str | int | None = None,
        repository_visibility: str = "public", run_id: str | int | None = None,
        run_number: str | int = "1", run_attempt: str | int = "1", actor: str | None = None,
        actor_id: str | int | None = None, environment: str | None = None,
        runner_environment: str = "github-hosted", job_workflow_ref: str | None = None,
        job_workflow_sha: str | None = None, audience: str = f.DEFAULT_AUDIENCE,
        lifetime: int = f.DEFAULT_LIFETIME,
    ) -> str:
        """A GitHub-Actions-shaped identity token (Fulcio's github-workflow issuer type).

        Only ``repository`` (``owner/name``), ``workflow_path`` (e.g.
        ``.github/workflows/release.yml``), ``ref`` (``refs/...``) and ``sha`` are needed: ids
        default to stable numbers derived from the names, ``workflow_name`` to the path,
        ``actor`` to the owner, and ``job_workflow_ref``/``job_workflow_sha`` to the workflow
        itself (pass them to model a reusable workflow). Raises :class:`UsageError` for invalid
        arguments.
        """
        e = UsageError
        repository = f.check_repository(repository, e)
        workflow_path = f.check_workflow_path(workflow_path, e)
        ref = f.check_ref(ref, e)
        sha = f.check_sha("sha", sha, e)
        owner = repository.split("/", 1)[0]
        owner_id = (f.check_decimal("repository_owner_id", repository_owner_id, e)
                    if repository_owner_id is not None else _derived_id("owner", owner))
        workflow_ref = f"{repository}/{workflow_path}@{ref}"
        claims: dict[str, Any] = {
            # SPEC: GitHub OIDC: sub is repo:<repo>:environment:<env> for jobs with an
            # environment, repo:<repo>:pull_request for pull requests, else repo:<repo>:ref:<ref>.
            "sub": "",
            "ref": ref,
            "ref_type": _ref_type(ref),
            "ref_protected": "false",
            "sha": sha,
            "repository": repository,
            "repository_id": (f.check_decimal("repository_id", repository_id, e)
                              if repository_id is not None else _derived_id("repository",
                                                                            repository)),
            "repository_owner": owner,
            "repository_owner_id": owner_id,
            "repository_visibility": f.check_choice("repository_visibility",
                                                    repository_visibility, f.VISIBILITIES, e),
            "run_id": (f.check_decimal("run_id", run_id, e) if run_id is not None
                       else _derived_id("run", f"{workflow_ref}\0{sha}", size=5)),
            "run_number": f.check_decimal("run_number", run_number, e),
            "run_attempt": f.check_decimal("run_attempt", run_attempt, e),
            "runner_environment": f.check_choice("runner_environment", runner_environment,
                                                 f.RUNNER_ENVIRONMENTS, e),
            "actor": f.check_actor(actor, e) if actor is not None else owner,
            "actor_id": (f.check_decimal("actor_id", actor_id, e) if actor_id is not None
                         else owner_id),
            "workflow": (f.check_workflow_name(workflow_name, e) if workflow_name is not None
                         else workflow_path),
            "workflow_ref": workflow_ref,
            "workflow_sha": sha,
            "job_workflow_ref": (f.check_job_workflow_ref(job_workflow_ref, e)
                                 if job_workflow_ref is not None else workflow_ref),
            "job_workflow_sha": (f.check_sha("job_workflow_sha", job_workflow_sha, e)
                                 if job_workflow_sha is not None else sha),
            "event_name": f.check_event_name(event_name, e),
            "head_ref": "",
            "base_ref": "",
        }
        if environment is not None:
            claims["environment"] = f.check_environment(environment, e)
            claims["sub"] = f"repo:{repository}:environment:{environment}"
        elif claims["event_name"] in ("pull_request", "pull_request_target"):
            claims["sub"] = f"repo:{repository}:pull_request"
        else:
            claims["sub"] = f"repo:{repository}:ref:{ref}"
        return self._sign(claims, audience, lifetime)

    def mint_gitlab_pipeline(
        self, *, project: str, ref: str, sha: str, ref_type: str | None = None,
        ci_config_path: str = ".gitlab-ci.yml", ci_config_sha: str | None = None,
        pipeline_source: str = "push", project_id: str | int | None = None,
        namespace_id: str | int | None = None, project_visibility: str = "public",
        pipeline_id: str | int | None = None, job_id: str | int | None = None,
        runner_id: str | int = "1", runner_environment: str = "gitlab-hosted",
        environment: str | None = None, user_login: str | None = None,
        audience: str = f.DEFAULT_AUDIENCE, lifetime: int = f.DEFAULT_LIFETIME,
    ) -> str:
        """A GitLab-CI-shaped identity token (an ``id_tokens`` token; Fulcio's gitlab-pipeline
        issuer type).

        The issuer plays the GitLab server: its URL is the server URL, so
        ``ci_config_ref_uri`` is ``<issuer host[:port]/path>/<project>//<ci_config_path>@
        <refs/heads|tags/ref>`` (GitLab writes no scheme; Fulcio's SAN adds ``https://``).
        ``ref`` is the short name (``main``, ``v1.0.0``) as GitLab's ``ref`` claim; a
        ``refs/heads/`` or ``refs/tags/`` prefix is accepted and sets ``ref_type``. Ids
        default to stable numbers derived from the names. Raises :class:`UsageError`.
        """
        e = UsageError
        project = f.check_gitlab_project(project, e)
        sha = f.check_sha("sha", sha, e)
        for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
            if isinstance(ref, str) and ref.startswith(prefix):
                ref, ref_type = ref[len(prefix):], ref_type or kind
        ref_type = f.check_choice("ref_type", ref_type or "branch", ("branch", "tag"), e)
        full_ref = f.check_ref(f"refs/{'heads' if ref_type == 'branch' else 'tags'}/{ref}", e)
        ci_config_path = f.check_workflow_path(ci_config_path, e)
        namespace = project.rsplit("/", 1)[0]
        parts = urlsplit(self._url)
        server = f"{parts.netloc}{parts.path}"
        claims: dict[str, Any] = {
            # SPEC: GitLab ID token: sub is project_path:<path>:ref_type:<type>:ref:<ref>.
            "sub": f"project_path:{project}:ref_type:{ref_type}:ref:{ref}",
            "namespace_id": (f.check_decimal("namespace_id", namespace_id, e)
                             if namespace_id is not None
                             else _derived_id("namespace", namespace)),
            "namespace_path": namespace,
            "project_id": (f.check_decimal("project_id", project_id, e)
                           if project_id is not None else _derived_id("project", project)),
            "project_path": project,
            "user_login": (f.check_actor(user_login, e) if user_login is not None
                           else namespace.split("/", 1)[0]),
            "pipeline_id": (f.check_decimal("pipeline_id", pipeline_id, e)
                            if pipeline_id is not None
                            else _derived_id("pipeline", f"{project}\0{sha}", size=5)),
            "pipeline_source": f.check_choice("pipeline_source", pipeline_source,
                                              f.GITLAB_PIPELINE_SOURCES, e),
            "job_id": (f.check_decimal("job_id", job_id, e) if job_id is not None
                       else _derived_id("job", f"{project}\0{sha}\0{ref}", size=5)),
            "ref": ref,
            "ref_type": ref_type,
            "ref_path": full_ref,
            "ref_protected": "true",
            "runner_id": f.check_decimal("runner_id", runner_id, e),
            "runner_environment": f.check_choice("runner_environment", runner_environment,
                                                 f.GITLAB_RUNNER_ENVIRONMENTS, e),
            "sha": sha,
            "project_visibility": f.check_choice("project_visibility", project_visibility,
                                                 f.VISIBILITIES, e),
            # SPEC: GitLab: "<host>/<project>//<config path>@<ref path>" (the double slash
            # separates the project from the file).
            "ci_config_ref_uri": f"{server}/{project}//{ci_config_path}@{full_ref}",
            "ci_config_sha": (f.check_sha("ci_config_sha", ci_config_sha, e)
                              if ci_config_sha is not None else sha),
        }
        if environment is not None:
            claims["environment"] = f.check_environment(environment, e)
        return self._sign(claims, audience, lifetime)

    def mint(self, request: TokenRequest) -> str:
        """Mint the token a parsed HTTP :class:`~sealtrail.issuer.request.TokenRequest` asks for."""
        minters: dict[str, Callable[..., str]] = {
            "email": self.mint_email, "github-workflow": self.mint_github_workflow,
            "gitlab-pipeline": self.mint_gitlab_pipeline}
        minter = minters.get(request.kind)
        if minter is None:
            raise UsageError("unknown token kind", expected=", ".join(minters),
                             actual=request.kind)
        arguments = dict(request.arguments, audience=request.audience, lifetime=request.lifetime)
        try:
            inspect.signature(minter).bind(**arguments)
        except TypeError:
            # A hand-built request with arguments its kind does not take.
            raise UsageError(f"invalid arguments for a {request.kind} token",
                             actual=sorted(request.arguments)) from None
        return minter(**arguments)

    def _sign(self, identity: dict[str, Any], audience: str, lifetime: int) -> str:
        audience = f.check_audience(audience, UsageError)
        lifetime = f.check_lifetime(lifetime, UsageError)
        now = int(self._clock())
        # SPEC: RFC 7519 §4.1; sigstore-python requires iss, sub, aud, iat, exp and checks
        # nbf <= now < exp without leeway, so nbf is "now", never later.
        claims = {"iss": self._url, "aud": audience, "iat": now, "nbf": now,
                  "exp": now + lifetime, "jti": secrets.token_hex(16), **identity}
        try:
            return jwt.encode(claims, self._key, algorithm=ALGORITHM,
                              headers={"kid": self._kid, "typ": "JWT"})
        except jwt.PyJWTError as exc:  # pragma: no cover - a P-256 key always signs
            raise Error(f"cannot sign the token: {exc}") from None


def email_subject(email: str) -> str:
    """The ``sub`` of an email token: an opaque, stable id derived from the address."""
    digest = hashlib.sha256(b"sealtrail-oidc-email\0" + email.encode("utf-8")).hexdigest()
    return digest[:32]


def _derived_id(label: str, value: str, size: int = 4) -> str:
    """A stable positive decimal id for a name, standing in for GitHub's numeric ids."""
    digest = hashlib.sha256(f"sealtrail-oidc-{label}\0{value}".encode()).digest()
    return str(int.from_bytes(digest[:size], "big") + 1)


def _ref_type(ref: str) -> str:
    return "tag" if ref.startswith("refs/tags/") else "branch"
