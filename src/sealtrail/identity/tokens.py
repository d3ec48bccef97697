"""OIDC identity tokens for keyless signing: where to find one, and a first look at it.

:func:`find_identity_token` tries the sources in a fixed order and takes the first token
found:

1. the token given explicitly (``--identity-token``);
2. the ``SIGSTORE_ID_TOKEN`` environment variable (cosign's and sigstore-python's name);
3. GitHub Actions ambient credentials: ``ACTIONS_ID_TOKEN_REQUEST_URL`` and
   ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` (the job needs ``permissions: id-token: write``),
   asked for audience ``sigstore``;
4. GitLab CI ``id_tokens``: a job declares ``id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore``,
   which GitLab exposes as the variable of step 2; outside that, there is nothing to find;
5. any extra sources the caller adds (the CLI adds a local instance's built-in issuer);
6. an interactive browser login (authorization code with PKCE, see
   :mod:`sealtrail.identity.browser`) at the OIDC issuer -- only for a person at a
   terminal (stdin and stderr are TTYs), never in CI (``$CI`` set and not ``false``), and
   only when an issuer URL is known (the signing config's, or ``--oidc-issuer``).

When nothing is found, the error lists every source tried and why it gave nothing.

:class:`IdentityToken` decodes the claims *without verifying the signature*: the CA verifies
the token; the client only reads its issuer, identity and expiry so that an expired token is
reported with its expiry instead of as a CA refusal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sealtrail.errors import TokenInvalidError, ServiceUnavailableError
from sealtrail.net.http import HttpClient, http_client, service_message

__all__ = [
    "DEFAULT_AUDIENCE",
    "GITHUB_REQUEST_TOKEN_ENV",
    "GITHUB_REQUEST_URL_ENV",
    "IdentityToken",
    "TOKEN_ENV",
    "BROWSER_SOURCE",
    "TokenSource",
    "find_identity_token",
    "github_actions_token",
]

TOKEN_ENV = "SIGSTORE_ID_TOKEN"
GITHUB_REQUEST_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_REQUEST_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
DEFAULT_AUDIENCE = "sigstore"
BROWSER_SOURCE = "interactive browser login"
MAX_TOKEN_CHARS = 64 * 1024
MAX_GITHUB_RESPONSE_BYTES = 256 * 1024

# What a source yields: a token, or the reason it has none here.
SourceResult = tuple[str | None, str]


class TokenSource(NamedTuple):
    """A named place to look for a token; ``fetch()`` returns ``(token or None, reason)``."""

    name: str
    fetch: Callable[[], SourceResult]


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def unverified_claims(token: str, what: str) -> dict[str, Any]:
    """The claims of a JWT, read without checking its signature or times.

    Only for binding and reporting: the CA is the one that verifies identity tokens.
    """
    import jwt  # PyJWT, imported when a token is at hand (start-up stays light)

    try:
        return jwt.decode(token, options={"verify_signature": False, "verify_exp": False,
                                          "verify_nbf": False, "verify_iat": False,
                                          "verify_aud": False, "verify_iss": False})
    except jwt.PyJWTError as exc:
        raise TokenInvalidError(f"{what} is not a JWT: {exc}") from None


class IdentityToken:
    """A raw OIDC identity token (JWT) and its claims, read without verification.

    :meth:`parse` reads the claims at once; :meth:`unread` leaves them until first used,
    so that a caller that only forwards the token (the CLI, which hands it to the CA) does
    not load PyJWT (about 8 ms of start-up) unless the CA refuses the token."""

    __slots__ = ("raw", "_claims")

    def __init__(self, raw: str, claims: Mapping[str, Any] | None) -> None:
        self.raw = raw
        self._claims = dict(claims) if claims is not None else None

    def __repr__(self) -> str:  # never print the token itself
        if self._claims is None:
            return "IdentityToken(claims not read)"
        return f"IdentityToken(issuer={self.issuer!r}, identity={self.identity!r})"

    @classmethod
    def parse(cls, raw: str) -> "IdentityToken":
        """Decode ``raw``'s claims (no signature check); raise :class:`TokenInvalidError`
        if it is not a JWT with an issuer and a numeric expiry."""
        token = cls.unread(raw)
        token.claims  # noqa: B018 - reads (and checks) them now
        return token

    @classmethod
    def unread(cls, raw: str) -> "IdentityToken":
        """``raw`` as a token whose claims are read (and checked, as :meth:`parse` does) when
        first used; :class:`TokenInvalidError` now only if it is empty or too long."""
        raw = raw.strip() if isinstance(raw, str) else raw
        if not isinstance(raw, str) or not raw:
            raise TokenInvalidError("the identity token is empty")
        if len(raw) > MAX_TOKEN_CHARS:
            raise TokenInvalidError("the identity token is too long", actual=len(raw),
                                    expected=f"<= {MAX_TOKEN_CHARS} characters")
        return cls(raw, None)

    @property
    def is_read(self) -> bool:
        """Whether the claims have been read (no more cost to ask for them)."""
        return self._claims is not None

    @property
    def claims(self) -> dict[str, Any]:
        """The claims, read now if they were not; :class:`TokenInvalidError` if the token is
        not a JWT with an issuer and a numeric expiry."""
        if self._claims is None:
            # The CA verifies the signature; we only read the claims (and check exp
            # ourselves, to say *when* the token expired).
            claims = unverified_claims(self.raw, "the identity token")
            if not isinstance(claims.get("iss"), str) or not claims["iss"]:
                raise TokenInvalidError("the identity token has no issuer (iss claim)")
            exp = claims.get("exp")
            if isinstance(exp, bool) or not isinstance(exp, (int, float)):
                raise TokenInvalidError("the identity token has no numeric expiry (exp claim)",
                                        actual=exp)
            self._claims = claims
        return self._claims

    @property
    def issuer(self) -> str:
        """The ``iss`` claim."""
        return str(self.claims["iss"])

    @property
    def identity(self) -> str:
        """The identity the CA will certify: ``email`` when present, else ``sub``."""
        email = self.claims.get("email")
        return str(email) if isinstance(email, str) and email else str(self.claims.get("sub", ""))

    @property
    def expiry(self) -> datetime:
        """The ``exp`` claim as an aware UTC datetime."""
        try:
            return datetime.fromtimestamp(float(self.claims["exp"]), timezone.utc)
        except (OverflowError, OSError, ValueError):
            return datetime.max.replace(tzinfo=timezone.utc)

    def check_fresh(self, now: datetime) -> None:
        """Raise :class:`TokenInvalidError` naming the expiry if the token has expired."""
        expiry = self.expiry
        if now >= expiry:
            raise TokenInvalidError(
                f"the identity token from {self.issuer} expired at {_iso(expiry)}; get a fresh "
                "one", actual=f"expired at {_iso(expiry)}", expected=f"valid at {_iso(now)}")


# -- sources ------------------------------------------------------------------------------

def github_actions_token(env: Mapping[str, str], client: HttpClient | None = None,
                         audience: str = DEFAULT_AUDIENCE) -> SourceResult:
    """Ask GitHub Actions for an identity token for ``audience``.

    SPEC: GitHub "Configuring OpenID Connect in cloud providers": GET
    ``$ACTIONS_ID_TOKEN_REQUEST_URL&audience=<aud>`` with ``Authorization: bearer
    $ACTIONS_ID_TOKEN_REQUEST_TOKEN``; the answer is ``{"value": "<jwt>"}``.
    """
    url = env.get(GITHUB_REQUEST_URL_ENV)
    if not url:
        return None, f"{GITHUB_REQUEST_URL_ENV} is not set (not in GitHub Actions)"
    bearer = env.get(GITHUB_REQUEST_TOKEN_ENV)
    if not bearer:
        return None, (f"{GITHUB_REQUEST_URL_ENV} is set but {GITHUB_REQUEST_TOKEN_ENV} is not "
                      "(does the job have `permissions: id-token: write`?)")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
        if not parts.hostname:
            raise ValueError("no host")
        # The URL already carries a query (api-version): add to it, never replace it; an
        # audience already there is replaced by ours.
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k != "audience"]
        target = urlunsplit(parts._replace(query=urlencode([*query, ("audience", audience)]),
                                           fragment=""))
    except ValueError:
        raise TokenInvalidError(f"{GITHUB_REQUEST_URL_ENV} is not a URL", actual=url[:100]) from None
    # The request carries a bearer credential: never over plain HTTP to another host.
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise TokenInvalidError(f"{GITHUB_REQUEST_URL_ENV} must be an https URL", actual=url[:100])
    service = "the GitHub Actions token service"
    owned = client is None
    client = client or http_client()
    try:
        status, _headers, body = client.request(
            "GET", target,
            headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
            service=service, limit=MAX_GITHUB_RESPONSE_BYTES)
    finally:
        if owned:
            client.close()
    if status != 200:
        raise ServiceUnavailableError(f"{service} refused to issue an identity token: {service_message(body)}",
                    actual=f"HTTP {status}")
    try:
        value = json.loads(body).get("value")
    except (ValueError, AttributeError, RecursionError):
        value = None
    if not isinstance(value, str) or not value:
        raise TokenInvalidError(f"{service} answered without a token (no \"value\")")
    return value, "GitHub Actions"


def _default_sources(explicit: str | None, env: Mapping[str, str],
                     client: HttpClient | None) -> list[TokenSource]:
    def from_explicit() -> SourceResult:
        return (explicit, "given") if explicit else (None, "not given")

    def from_env() -> SourceResult:
        value = env.get(TOKEN_ENV)
        return (value, "set") if value else (None, "not set")

    def from_github() -> SourceResult:
        return github_actions_token(env, client)

    def from_gitlab() -> SourceResult:
        if env.get("GITLAB_CI") != "true":
            return None, "not in GitLab CI"
        # SPEC: GitLab CI/CD "OpenID Connect (OIDC) Authentication Using ID Tokens": the job's
        # id_tokens keyword names the variable; Sigstore's convention is SIGSTORE_ID_TOKEN.
        return None, (f"in GitLab CI but no {TOKEN_ENV}: declare `id_tokens: {TOKEN_ENV}: "
                      f"aud: {DEFAULT_AUDIENCE}` in the job")

    return [TokenSource("--identity-token", from_explicit),
            TokenSource(f"${TOKEN_ENV}", from_env),
            TokenSource("GitHub Actions", from_github),
            TokenSource("GitLab CI id_tokens", from_gitlab)]


def _on_terminal() -> bool:
    """Whether a person can be at the keyboard: stdin and stderr are both terminals."""
    try:
        return sys.stdin is not None and sys.stderr is not None \
            and sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError, OSError):  # closed or replaced streams
        return False


def _browser_source(env: Mapping[str, str], oidc_issuer: str | None, interactive: bool | None,
                    login: Callable[[str], str] | None,
                    client: HttpClient | None) -> TokenSource:
    def fetch() -> SourceResult:
        ci = env.get("CI")
        if ci is not None and ci.strip().lower() != "false":
            # A CI job has nobody to click through a login; waiting would only hang it.
            return None, f"skipped: in CI ($CI={ci[:20]!r})"
        if not (_on_terminal() if interactive is None else interactive):
            return None, "skipped: not on a terminal (stdin and stderr must be TTYs)"
        if not oidc_issuer:
            return None, ("skipped: no OIDC issuer URL known (the signing config names none; "
                          "give --oidc-issuer)")
        if login is not None:
            return login(oidc_issuer), "logged in"
        from sealtrail.identity.browser import browser_login

        return browser_login(oidc_issuer, http=client), "logged in"

    return TokenSource(BROWSER_SOURCE, fetch)


def find_identity_token(explicit: str | None = None, *, env: Mapping[str, str] | None = None,
                        client: HttpClient | None = None,
                        extra_sources: Sequence[TokenSource] = (),
                        now: datetime | None = None, oidc_issuer: str | None = None,
                        interactive: bool | None = None,
                        login: Callable[[str], str] | None = None,
                        read: bool = True) -> tuple[IdentityToken, str]:
    """The first identity token found, in the documented order, and the source's name.

    ``env`` defaults to ``os.environ``. With ``now``, an expired token is refused with its
    expiry. ``read=False`` returns the token unread (:meth:`IdentityToken.unread`; ``now``
    is then not checked): for a caller that checks it if the CA refuses it.
    ``oidc_issuer`` enables the interactive browser login as the last source;
    ``interactive`` overrides the terminal check (default: stdin and stderr are TTYs) and
    ``login`` replaces :func:`~sealtrail.identity.browser.browser_login` (tests).
    Raises :class:`TokenInvalidError` listing each source tried when none has one.
    """
    if env is None:
        import os

        env = os.environ
    tried = []
    sources = [*_default_sources(explicit, env, client), *extra_sources,
               _browser_source(env, oidc_issuer, interactive, login, client)]
    for source in sources:
        value, reason = source.fetch()
        if value:
            if not read:
                return IdentityToken.unread(value), source.name
            token = IdentityToken.parse(value)
            if now is not None:
                token.check_fresh(now)
            return token, source.name
        tried.append(f"{source.name} ({reason})")
    raise TokenInvalidError("no identity token found; tried: " + "; ".join(tried))
