"""OIDC identity tokens for keyless signing: where to find one, and a first look at it.

:func:`find_identity_token` tries the sources in a fixed order and takes the first token
found:

1. the token given explicitly (``--identity-token``);
2. the ``SIGSTORE_ID_TOKEN`` environment variable (cosign's and sigstore-python's name);
3. the ambient credentials of the CI system this runs in, for audience ``sigstore``,
   found by the Sigstore project's `id` library (:func:`id.detect_credential`): GitHub
   Actions (the job needs ``permissions: id-token: write``), Google Cloud, Buildkite,
   GitLab CI (a job declares ``id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore``, which step 2
   usually finds first) and CircleCI;
4. any extra sources the caller adds (the CLI adds a local instance's built-in issuer);
5. an interactive browser login (authorization code with PKCE, see
   :mod:`sealtrail.identity.browser`) at the OIDC issuer -- only for a person at a
   terminal (stdin and stderr are TTYs), never in CI (``$CI`` set and not ``false``), and
   only when an issuer URL is known (the signing config's, or ``--oidc-issuer``).

When nothing is found, the error lists every source tried and why it gave nothing
(:class:`~sealtrail.errors.TokenInvalidError`, exit 2). A CI token service that cannot be
reached or fails is a :class:`~sealtrail.errors.ServiceUnavailableError` (exit 3).

:class:`IdentityToken` decodes the claims *without verifying the signature*: the CA verifies
the token; the client only reads its issuer, identity and expiry so that an expired token is
reported with its expiry instead of as a CA refusal.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sealtrail.errors import ServiceUnavailableError, TokenInvalidError
from sealtrail.net.http import HttpClient

__all__ = [
    "AMBIENT_SOURCE",
    "BROWSER_SOURCE",
    "DEFAULT_AUDIENCE",
    "IdentityToken",
    "TOKEN_ENV",
    "TokenSource",
    "ambient_ci_token",
    "find_identity_token",
]

TOKEN_ENV = "SIGSTORE_ID_TOKEN"
GITHUB_REQUEST_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
DEFAULT_AUDIENCE = "sigstore"
AMBIENT_SOURCE = "CI ambient credentials"
BROWSER_SOURCE = "interactive browser login"
MAX_TOKEN_CHARS = 64 * 1024

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

#: The CI systems whose ambient credentials :func:`id.detect_credential` finds, in its order.
AMBIENT_CI = "GitHub Actions, Google Cloud, Buildkite, GitLab CI, CircleCI"

# What the `id` library raises on purpose (it has no class for "could not reach"): a
# request that failed with an HTTP status names it this way ("request failed (code=500").
_HTTP_FAILURE = re.compile(r"request failed \(code=(\d+)")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _one_line(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_github_request_url(env: Mapping[str, str]) -> None:
    """Refuse a GitHub token request URL that would send the bearer credential in clear.

    The `id` library asks whatever URL the environment names; the request carries
    ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``, so it may go over plain HTTP only to this machine
    (GitHub's own URL is always https)."""
    url = env.get(GITHUB_REQUEST_URL_ENV)
    if not env.get("GITHUB_ACTIONS") or not url:
        return
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
        host, scheme = parts.hostname, parts.scheme
    except ValueError:
        host, scheme = None, ""
    if not host or scheme not in ("https", "http"):
        raise TokenInvalidError(f"{GITHUB_REQUEST_URL_ENV} is not a URL", actual=url[:100])
    if scheme != "https" and host not in _LOOPBACK:
        raise TokenInvalidError(f"{GITHUB_REQUEST_URL_ENV} must be an https URL",
                                actual=url[:100])


def _reached_nothing(exc: BaseException) -> bool:
    """Whether ``exc`` (from `id`) comes from a network failure: its chain holds a urllib3
    or OS error (`id` turns urllib3's MaxRetryError into AmbientCredentialError)."""
    import urllib3

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (urllib3.exceptions.HTTPError, OSError)):
            return True
        current = current.__cause__ or current.__context__
    return False


def ambient_ci_token(audience: str = DEFAULT_AUDIENCE,
                     detect: Callable[[str], str | None] | None = None,
                     env: Mapping[str, str] | None = None) -> SourceResult:
    """An identity token for ``audience`` from the CI system this runs in, if any.

    ``detect`` defaults to :func:`id.detect_credential`, which reads the process
    environment itself (``env``, default ``os.environ``, only feeds the checks and hints
    here). What `id` raises becomes:

    - a GitHub Actions job without ``permissions: id-token: write`` (GITHUB_ACTIONS set,
      no ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN): no token here, with the reason telling the user
      to add that permission (the search goes on, and lists it if nothing else has one);
    - the CI's token service unreachable, timing out, or answering an HTTP error:
      :class:`ServiceUnavailableError` (exit 3, retry later);
    - any other detected-but-unusable credential (a GitLab job without ``id_tokens``, no
      ``buildkite-agent``, a token for another audience...): no token, with the reason.
    """
    import id as ambient  # the `id` library (and urllib3) only when this source is asked

    if env is None:
        import os

        env = os.environ
    _check_github_request_url(env)
    detect = detect or ambient.detect_credential
    service = "the CI's identity token service"
    try:
        value = detect(audience)
    except ambient.GitHubOidcPermissionCredentialError as exc:
        # SPEC: GitHub "About security hardening with OpenID Connect": a job may request an
        # OIDC token only with `permissions: id-token: write`; without it the runner sets
        # neither ACTIONS_ID_TOKEN_REQUEST_URL nor ACTIONS_ID_TOKEN_REQUEST_TOKEN.
        return None, ("in GitHub Actions, but the job may not request an identity token: add "
                      f"`permissions: id-token: write` to the job ({_one_line(exc)})")
    except ambient.IdentityError as exc:
        message = _one_line(exc)
        status = _HTTP_FAILURE.search(message)
        if _reached_nothing(exc) or status:
            raise ServiceUnavailableError(
                f"could not get an identity token from {service}: {message}",
                actual=f"HTTP {status.group(1)}" if status else None) from None
        if message.startswith("GitLab:"):
            # SPEC: GitLab CI/CD "OpenID Connect (OIDC) Authentication Using ID Tokens": the
            # job's id_tokens keyword names the variable; Sigstore's is SIGSTORE_ID_TOKEN.
            message += (f"; declare `id_tokens: {TOKEN_ENV}: aud: {audience}` in the job")
        return None, message
    except (OSError, ValueError) as exc:
        # Raised through `id` unwrapped: a socket error, or an answer that is not JSON/UTF-8.
        raise ServiceUnavailableError(f"could not get an identity token from {service}: "
                                      f"{_one_line(exc) or type(exc).__name__}") from None
    if not value:
        return None, f"none detected ({AMBIENT_CI})"
    return value, "found"


def _default_sources(explicit: str | None, env: Mapping[str, str],
                     detect: Callable[[str], str | None] | None) -> list[TokenSource]:
    def from_explicit() -> SourceResult:
        return (explicit, "given") if explicit else (None, "not given")

    def from_env() -> SourceResult:
        value = env.get(TOKEN_ENV)
        return (value, "set") if value else (None, "not set")

    def from_ci() -> SourceResult:
        return ambient_ci_token(DEFAULT_AUDIENCE, detect, env)

    return [TokenSource("--identity-token", from_explicit),
            TokenSource(f"${TOKEN_ENV}", from_env),
            TokenSource(AMBIENT_SOURCE, from_ci)]


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
                        read: bool = True,
                        detect: Callable[[str], str | None] | None = None,
                        ) -> tuple[IdentityToken, str]:
    """The first identity token found, in the documented order, and the source's name.

    ``env`` defaults to ``os.environ``. With ``now``, an expired token is refused with its
    expiry. ``read=False`` returns the token unread (:meth:`IdentityToken.unread`; ``now``
    is then not checked): for a caller that checks it if the CA refuses it.
    ``oidc_issuer`` enables the interactive browser login as the last source;
    ``interactive`` overrides the terminal check (default: stdin and stderr are TTYs) and
    ``login`` replaces :func:`~sealtrail.identity.browser.browser_login` (tests), and
    ``detect`` replaces :func:`id.detect_credential` (tests; see :func:`ambient_ci_token`).
    Raises :class:`TokenInvalidError` listing each source tried when none has one, and
    :class:`ServiceUnavailableError` when the CI's token service fails.
    """
    if env is None:
        import os

        env = os.environ
    tried: list[str] = []
    sources = [*_default_sources(explicit, env, detect), *extra_sources,
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
