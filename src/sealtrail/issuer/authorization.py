"""The built-in issuer's authorization-code flow with PKCE, for a browser login on this machine.

This is what lets ``sealtrail sign`` (and any OIDC client of the same shape, such as
sigstore-python) log in against a local instance in a browser: the client sends the browser to
the authorization endpoint, the person types the email address to be certified, the endpoint
redirects to the client's loopback callback with a single-use code, and the client trades the
code (with its PKCE verifier) for an identity token at the token endpoint.

**It certifies whatever address is typed**: there are no accounts and no passwords. Anyone who
can reach the authorization endpoint can get a token, and so a certificate, for any email
address. It is meant for local testing: the HTTP layer (``sealtrail.server.issuer_api``)
answers it only to clients on the loopback interface unless told otherwise, and a real
deployment trusts a real identity provider instead (``issuers`` in sealtrail.json).

SPEC: RFC 6749 §4.1 (authorization code grant; §4.1.2.1 errors: never redirect to an
unchecked redirect URI; §5.2 token error responses; §10.5 codes are short-lived and single
use), RFC 7636 (PKCE; only S256 is accepted, §4.2, §4.6), RFC 8252 §7.3 (loopback redirect
URIs: http, a loopback host, any port), OpenID Connect Core 1.0 §3.1.2.1 (``scope`` holds
``openid``; ``nonce`` goes into the id_token) and §3.1.2.1 ``login_hint`` (the address).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sealtrail.errors import InputError
from sealtrail.issuer import _fields as f
from sealtrail.issuer.builtin import BuiltinIssuer

__all__ = ["CODE_LIFETIME", "AuthorizationCodes", "AuthorizationError", "AuthorizationRequest",
           "GrantError", "check_login_hint", "parse_authorization_request"]

#: Seconds an authorization code can be redeemed in (RFC 6749 §4.1.2: at most 10 minutes
#: recommended; the browser comes straight back, so one minute is plenty).
CODE_LIFETIME = 60.0
#: Codes waiting to be redeemed at once; the oldest is dropped beyond this.
MAX_PENDING = 1000
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
# RFC 7636 §4.1/§4.2: 43-128 characters of the unreserved set.
_PKCE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_STATE = re.compile(r"[\x21-\x7e]{1,512}")  # printable ASCII: echoed in a URL and a page


class AuthorizationError(Exception):
    """An authorization request refused. ``redirect`` tells whether the error may be sent to
    the redirect URI (it was checked) or must be shown on the page (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str, *, redirect: bool) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect = redirect


class GrantError(Exception):
    """A token request of the code grant refused: ``error`` is RFC 6749 §5.2's code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked authorization request (the values the code is bound to)."""

    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str | None
    code_challenge: str

    def query(self) -> dict[str, str]:
        """The request's parameters, as a form re-submits them."""
        out = {"response_type": "code", "client_id": self.client_id,
               "redirect_uri": self.redirect_uri, "scope": "openid email",
               "code_challenge": self.code_challenge, "code_challenge_method": "S256"}
        if self.state is not None:
            out["state"] = self.state
        if self.nonce is not None:
            out["nonce"] = self.nonce
        return out


def _loopback_redirect(value: str | None) -> str:
    if not value or len(value) > 2048:
        raise AuthorizationError("invalid_request", "redirect_uri is missing", redirect=False)
    try:
        parts = urlsplit(value)
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        raise AuthorizationError("invalid_request", "redirect_uri is not a URL",
                                 redirect=False) from None
    # Only a loopback redirect: the code goes to a program on the machine that asked, never
    # to a site (this issuer has no registered clients to check a redirect against).
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK or parts.fragment \
            or parts.username is not None or parts.password is not None:
        raise AuthorizationError(
            "invalid_request", "redirect_uri must be a loopback URL such as "
            "http://localhost:PORT/auth/callback (RFC 8252 §7.3)", redirect=False)
    return value


def parse_authorization_request(params: Mapping[str, str], *,
                                client_id: str = f.DEFAULT_AUDIENCE) -> AuthorizationRequest:
    """Check an authorization request's query. The client id and redirect URI are checked
    first: until both are, an error cannot be redirected (raises :class:`AuthorizationError`
    with ``redirect=False``)."""
    if params.get("client_id") != client_id:
        raise AuthorizationError("unauthorized_client",
                                 f"unknown client_id (this issuer serves {client_id!r})",
                                 redirect=False)
    redirect_uri = _loopback_redirect(params.get("redirect_uri"))
    state = params.get("state")
    if state is not None and not _STATE.fullmatch(state):
        raise AuthorizationError("invalid_request", "state must be printable ASCII",
                                 redirect=False)

    def refuse(error: str, description: str) -> AuthorizationError:
        return AuthorizationError(error, description, redirect=True)

    if params.get("response_type") != "code":
        raise refuse("unsupported_response_type", "only response_type=code is supported")
    if "openid" not in params.get("scope", "").split():
        raise refuse("invalid_scope", "scope must include openid")
    if params.get("code_challenge_method") != "S256":
        raise refuse("invalid_request", "PKCE is required, with code_challenge_method=S256")
    challenge = params.get("code_challenge", "")
    if not _PKCE.fullmatch(challenge):
        raise refuse("invalid_request", "code_challenge must be 43-128 unreserved characters")
    nonce = params.get("nonce")
    if nonce is not None and not _STATE.fullmatch(nonce):
        raise refuse("invalid_request", "nonce must be printable ASCII")
    return AuthorizationRequest(params["client_id"], redirect_uri, state, nonce, challenge)


def check_login_hint(value: str) -> str:
    """The email address typed on the authorization page (:class:`InputError` if malformed)."""
    return f.check_email(value.strip(), InputError)


@dataclass(frozen=True)
class _Grant:
    request: AuthorizationRequest
    email: str
    expires: float


class AuthorizationCodes:
    """Single-use authorization codes of one issuer, held in memory.

    ``clock`` gives seconds on a clock that never goes back (default :func:`time.monotonic`);
    codes expire :data:`CODE_LIFETIME` seconds after they were issued. Thread-safe.
    """

    def __init__(self, issuer: BuiltinIssuer, *, clock: Callable[[], float] = time.monotonic,
                 lifetime: float = CODE_LIFETIME, capacity: int = MAX_PENDING) -> None:
        self._issuer = issuer
        self._clock = clock
        self._lifetime = lifetime
        self._capacity = capacity
        self._grants: OrderedDict[str, _Grant] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, request: AuthorizationRequest, email: str) -> str:
        """A fresh code for ``email``, bound to ``request``."""
        email = check_login_hint(email)
        code = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            while len(self._grants) >= self._capacity:
                self._grants.popitem(last=False)
            self._grants[code] = _Grant(request, email, now + self._lifetime)
        return code

    def redeem(self, form: Mapping[str, str]) -> tuple[str, int]:
        """Trade a token request's form (RFC 6749 §4.1.3 with RFC 7636's ``code_verifier``)
        for ``(id_token, lifetime)``. The code is spent by the attempt, whatever its outcome.
        Raises :class:`GrantError`."""
        if form.get("grant_type") != "authorization_code":
            raise GrantError("unsupported_grant_type", "only authorization_code is supported")
        code = form.get("code", "")
        with self._lock:
            self._drop_expired(self._clock())
            grant = self._grants.pop(code, None)
        if grant is None:
            raise GrantError("invalid_grant", "unknown, expired or already used code")
        request = grant.request
        if form.get("client_id", request.client_id) != request.client_id \
                or form.get("redirect_uri") != request.redirect_uri:
            raise GrantError("invalid_grant", "the code was issued to another client or "
                                              "redirect_uri")
        verifier = form.get("code_verifier", "")
        if not _PKCE.fullmatch(verifier):
            raise GrantError("invalid_request", "code_verifier is missing or malformed")
        # SPEC: RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge.
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=")
        if not hmac.compare_digest(computed, request.code_challenge.encode("ascii")):
            raise GrantError("invalid_grant", "PKCE verification failed")
        lifetime = f.DEFAULT_LIFETIME
        token = self._issuer.mint_email(grant.email, audience=request.client_id,
                                        lifetime=lifetime, nonce=request.nonce)
        return token, lifetime

    def _drop_expired(self, now: float) -> None:
        # Codes are kept in the order issued, all with the same lifetime: the expired ones
        # are at the front.
        while self._grants:
            code, grant = next(iter(self._grants.items()))
            if grant.expires > now:
                return
            del self._grants[code]
