"""OIDC identity token validation for the CA.

A token is accepted only if its issuer is configured (exactly or by a wildcard URL), its
signature verifies with a key from the issuer's JWKS (found by OIDC discovery), ``aud``
contains the configured audience, ``exp``/``nbf``/``iat`` hold with a small leeway, and it
carries the claims its issuer type needs. The result is a :class:`Principal`.

I/O-free: the caller passes ``fetch_json(url) -> JSON``; discovery documents and JWKS are
cached per issuer, refreshed after a TTL, and refetched (rate-limited) when a token names a
key id the cache does not know, so that issuer key rotation needs no restart.

The token itself is never logged nor echoed in an error message.

SPEC: sigstore-wire.md §1 "Token checks"; OpenID Connect Discovery 1.0 §4; RFC 7519 §4.1;
RFC 7515/7517 (JWS, JWK).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from sealtrail.ca.identities import (
    IDENTITY_TYPES,
    IdentityType,
    IssuerSettings,
    Principal,
    San,
    principal_from_claims,
)
from sealtrail.errors import ConfigInvalidError, TokenInvalidError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "IssuerConfig",
    "Principal",
    "San",
    "TokenVerifier",
]

T = TokenInvalidError

# SPEC: the JWS algorithms OIDC providers use for ID tokens; never "none", never HMAC (an
# HMAC "key" from a JWKS would be public).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1"}

MAX_TOKEN_CHARS = 64 * 1024
MAX_JWKS_KEYS = 100
MAX_CACHED_ISSUERS = 256
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_ISSUER_CLAIM = re.compile(r"\$(\.[A-Za-z0-9_-]+)+")


def _url_allowed(url: str) -> bool:
    """https, or plain http to a loopback host (local test issuers)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)


def _when(seconds: Any) -> str:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError, TypeError):
        return repr(seconds)


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted OIDC issuer.

    ``url`` is the exact issuer URL, or a wildcard URL such as ``https://*.example.com``
    where each ``*`` matches one run of ``[-_a-zA-Z0-9]`` (Fulcio's MetaIssuers).
    ``issuer_type`` names an :class:`IdentityType` (email, github-workflow,
    gitlab-pipeline, uri, spiffe, username, or a custom one). ``audience`` must be in the
    token's ``aud``. ``subject_domain`` (uri: a URL whose scheme and host the ``sub`` must
    share; username: the domain appended as ``sub!domain``), ``spiffe_trust_domain``,
    ``skip_email_verified``, ``issuer_claim`` (a ``$.a.b`` path to a claim that replaces
    ``iss`` in the issuer extensions, e.g. Dex's ``$.federated_claims.connector_id``) and
    ``ci_base_url`` (the CI platform URL, e.g. a GitHub Enterprise host) are per type.
    """

    url: str
    issuer_type: str
    audience: str = "sigstore"
    subject_domain: str | None = None
    spiffe_trust_domain: str | None = None
    skip_email_verified: bool = False
    issuer_claim: str | None = None
    ci_base_url: str | None = None

    def __post_init__(self) -> None:
        E = ConfigInvalidError
        if not isinstance(self.url, str) or not _url_allowed(self.url.replace("*", "x")):
            raise E("issuer URL must be an https URL (http only for loopback)",
                    actual=self.url)
        if not isinstance(self.issuer_type, str) or not self.issuer_type:
            raise E(f"issuer {self.url}: issuer type must be a non-empty string")
        if not isinstance(self.audience, str) or not self.audience:
            raise E(f"issuer {self.url}: audience must be a non-empty string")
        for name in ("subject_domain", "spiffe_trust_domain", "issuer_claim", "ci_base_url"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise E(f"issuer {self.url}: {name} must be a non-empty string")
        if not isinstance(self.skip_email_verified, bool):
            raise E(f"issuer {self.url}: skip_email_verified must be a boolean")
        if self.issuer_claim is not None and not _ISSUER_CLAIM.fullmatch(self.issuer_claim):
            raise E(f"issuer {self.url}: issuer_claim must be a path like $.a.b",
                    actual=self.issuer_claim)
        if self.ci_base_url is not None and not _url_allowed(self.ci_base_url):
            raise E(f"issuer {self.url}: ci_base_url must be an https URL",
                    actual=self.ci_base_url)

    @property
    def wildcard(self) -> bool:
        """Whether ``url`` is a wildcard pattern."""
        return "*" in self.url

    def matches(self, issuer: str) -> bool:
        """Whether the token issuer ``issuer`` is this configured issuer."""
        if not self.wildcard:
            return issuer == self.url
        # SPEC: Fulcio pkg/config MetaIssuers: QuoteMeta the pattern, `*` -> [-_a-zA-Z0-9]+.
        pattern = "[-_a-zA-Z0-9]+".join(re.escape(part) for part in self.url.split("*"))
        return re.fullmatch(pattern, issuer) is not None

    @classmethod
    def from_dict(cls, data: Any) -> "IssuerConfig":
        """Parse the JSON form used in sealtrail.json (see :meth:`to_dict`).

        Raises :class:`ConfigInvalidError`.
        """
        if not isinstance(data, dict):
            raise ConfigInvalidError("an issuer must be a JSON object")
        known = {"url", "type", "audience", "subjectDomain", "spiffeTrustDomain",
                 "skipEmailVerified", "issuerClaim", "ciBaseUrl"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigInvalidError("unknown issuer fields", actual=unknown,
                                     expected=sorted(known))
        if "url" not in data or "type" not in data:
            raise ConfigInvalidError("an issuer needs url and type")
        return cls(url=data["url"], issuer_type=data["type"],
                   audience=data.get("audience", "sigstore"),
                   subject_domain=data.get("subjectDomain"),
                   spiffe_trust_domain=data.get("spiffeTrustDomain"),
                   skip_email_verified=data.get("skipEmailVerified", False),
                   issuer_claim=data.get("issuerClaim"), ci_base_url=data.get("ciBaseUrl"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"url", "type", "audience", ...optional fields}``."""
        out: dict[str, Any] = {"url": self.url, "type": self.issuer_type,
                               "audience": self.audience}
        for key, value in (("subjectDomain", self.subject_domain),
                           ("spiffeTrustDomain", self.spiffe_trust_domain),
                           ("issuerClaim", self.issuer_claim),
                           ("ciBaseUrl", self.ci_base_url)):
            if value is not None:
                out[key] = value
        if self.skip_email_verified:
            out["skipEmailVerified"] = True
        return out


@dataclass
class _KeySet:
    jwks_uri: str
    keys: list[dict[str, Any]]
    fetched_at: float
    last_refetch: float


def _check_issuer_settings(issuer: IssuerConfig, identity: IdentityType) -> None:
    E = ConfigInvalidError
    for setting in identity.requires:
        if getattr(issuer, setting) is None:
            raise E(f"issuer {issuer.url} of type {identity.name} needs {setting}")
    domain = issuer.subject_domain
    if domain is not None and "subject_domain" in identity.requires:
        if identity.subject_rule == "uri":
            parts = urlsplit(domain)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise E(f"issuer {issuer.url}: subject_domain must be a URL like "
                        "https://example.com", actual=domain)
        elif not re.fullmatch(r"[A-Za-z0-9.-]+", domain) or "!" in domain:
            raise E(f"issuer {issuer.url}: subject_domain must be a domain name", actual=domain)


class TokenVerifier:
    """Validate OIDC identity tokens against configured issuers.

    ``fetch_json(url)`` returns the decoded JSON at ``url`` (or raises); ``clock()``
    returns seconds since the epoch; ``leeway`` (seconds) is the clock skew allowed for
    ``exp``, ``nbf`` and ``iat``. ``identity_types`` extends or overrides
    :data:`~sealtrail.ca.identities.IDENTITY_TYPES`. JWKS are cached ``jwks_ttl`` seconds;
    an unknown key id triggers at most one refetch per issuer every ``refetch_interval``
    seconds; after a failed fetch an issuer is not retried for ``failure_backoff``
    seconds. Raises :class:`ConfigInvalidError` for an inconsistent issuer list.
    """

    def __init__(self, issuers: Sequence[IssuerConfig], fetch_json: Callable[[str], Any], *,
                 clock: Callable[[], float] = time.time, leeway: float = 60,
                 identity_types: Mapping[str, IdentityType] | None = None,
                 jwks_ttl: float = 3600, refetch_interval: float = 30,
                 failure_backoff: float = 5) -> None:
        self.issuers = tuple(issuers)
        self.identity_types = dict(IDENTITY_TYPES)
        self.identity_types.update(identity_types or {})
        for issuer in self.issuers:
            identity = self.identity_types.get(issuer.issuer_type)
            if identity is None:
                raise ConfigInvalidError(f"issuer {issuer.url} has an unknown type",
                                         actual=issuer.issuer_type,
                                         expected=sorted(self.identity_types))
            _check_issuer_settings(issuer, identity)
        urls = [issuer.url for issuer in self.issuers]
        if len(set(urls)) != len(urls):
            raise ConfigInvalidError("an issuer URL is configured twice")
        self._fetch_json = fetch_json
        self._clock = clock
        self.leeway = leeway
        self._jwks_ttl = jwks_ttl
        self._refetch_interval = refetch_interval
        self._failure_backoff = failure_backoff
        self._cache: OrderedDict[str, _KeySet] = OrderedDict()
        self._failures: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    # -- public -----------------------------------------------------------------------------
    def issuer_for(self, issuer: str) -> IssuerConfig:
        """The configured issuer matching the URL ``issuer`` (exact before wildcard)."""
        for config in self.issuers:
            if not config.wildcard and config.matches(issuer):
                return config
        for config in self.issuers:
            if config.wildcard and config.matches(issuer):
                return config
        raise T(f"unknown issuer {issuer}", actual=issuer,
                expected=[config.url for config in self.issuers])

    def verify(self, token: Any) -> Principal:
        """Validate ``token`` (a compact JWS) and return the identity it proves.

        Raises :class:`TokenInvalidError` with a message naming the failed check.
        """
        header, unverified = self._parse(token)
        issuer_url = unverified.get("iss")
        if not isinstance(issuer_url, str) or not issuer_url:
            raise T("token has no iss claim")
        config = self.issuer_for(issuer_url)
        key = self._key_for(issuer_url, header)
        claims = self._verify_signature(token, key, header["alg"], issuer_url)
        self._check_claims(claims, config)
        identity = self.identity_types[config.issuer_type]
        settings = IssuerSettings(
            issuer_url=issuer_url,
            issuer_value=self._issuer_value(claims, config, issuer_url),
            subject_domain=config.subject_domain,
            spiffe_trust_domain=config.spiffe_trust_domain,
            skip_email_verified=config.skip_email_verified,
            ci_base_url=config.ci_base_url,
        )
        return principal_from_claims(identity, claims, settings)

    # -- parsing ----------------------------------------------------------------------------
    def _parse(self, token: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(token, str) or not token:
            raise T("no identity token was given")
        if len(token) > MAX_TOKEN_CHARS:
            raise T("identity token is too large", actual=len(token),
                    expected=f"<= {MAX_TOKEN_CHARS} characters")
        if token.count(".") != 2:
            raise T("identity token is not a compact JWT (header.payload.signature)")
        try:
            header = jwt.get_unverified_header(token)
            decoded = jwt.PyJWS().decode_complete(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise T(f"identity token does not parse: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise T("token is not signed (alg none)", actual=alg)
        if alg not in ALLOWED_ALGORITHMS:
            raise T(f"token algorithm {alg} is not allowed", actual=alg,
                    expected=list(ALLOWED_ALGORITHMS))
        if "crit" in header:
            raise T("token has critical header parameters we do not understand",
                    actual=header.get("crit"))
        return header, self._payload(decoded["payload"])

    @staticmethod
    def _payload(raw: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise T("token payload is not JSON") from None
        if not isinstance(payload, dict):
            raise T("token payload is not a JSON object")
        return payload

    # -- keys -------------------------------------------------------------------------------
    def _fetch(self, url: str, what: str, issuer: str) -> dict[str, Any]:
        try:
            data = self._fetch_json(url)
        except T:
            raise
        except Exception as exc:  # noqa: BLE001 - a foreign callable; any failure is "cannot fetch"
            raise T(f"cannot fetch the {what} of issuer {issuer}: {exc}") from None
        if not isinstance(data, dict):
            raise T(f"the {what} of issuer {issuer} is not a JSON object")
        return data

    def _load_keyset(self, issuer: str, now: float) -> _KeySet:
        # SPEC: OIDC Discovery 1.0 §4: the document lives at the issuer URL (without a
        # trailing slash) + /.well-known/openid-configuration, and its `issuer` MUST be
        # identical to the issuer URL the token names.
        discovery = self._fetch(issuer.rstrip("/") + "/.well-known/openid-configuration",
                                "OIDC discovery document", issuer)
        if discovery.get("issuer") != issuer:
            raise T(f"the discovery document of issuer {issuer} names another issuer",
                    actual=discovery.get("issuer"), expected=issuer)
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _url_allowed(jwks_uri):
            raise T(f"issuer {issuer} has no usable jwks_uri (https required)",
                    actual=jwks_uri)
        # A first unknown key id may refetch at once (the issuer may have just rotated).
        return _KeySet(jwks_uri, self._fetch_keys(jwks_uri, issuer), now, float("-inf"))

    def _fetch_keys(self, jwks_uri: str, issuer: str) -> list[dict[str, Any]]:
        jwks = self._fetch(jwks_uri, "JWKS", issuer)
        keys = jwks.get("keys")
        if not isinstance(keys, list) or len(keys) > MAX_JWKS_KEYS:
            raise T(f"the JWKS of issuer {issuer} has no usable keys list")
        # SPEC: RFC 7517 §4.2: a key whose "use" is not "sig" is not for signatures.
        return [key for key in keys if isinstance(key, dict) and key.get("use", "sig") == "sig"]

    def _keyset(self, issuer: str, *, refresh: bool) -> _KeySet | None:
        """The cached key set; fetched if absent or stale, or refreshed on request.

        Returns None when a refresh was asked for but is rate-limited.
        """
        now = self._clock()
        with self._lock:
            cached = self._cache.get(issuer)
            if cached is not None:
                self._cache.move_to_end(issuer)
            fresh = cached is not None and now - cached.fetched_at < self._jwks_ttl
            if fresh and not refresh:
                return cached
            if fresh and refresh and cached is not None:
                if now - cached.last_refetch < self._refetch_interval:
                    return None
                cached.last_refetch = now  # claim the refetch before fetching, outside the lock
            failure = self._failures.get(issuer)
            if failure is not None and now - failure[0] < self._failure_backoff:
                raise T(f"{failure[1]} (not retrying for a few seconds)")
        try:
            if fresh and refresh and cached is not None:
                keyset = _KeySet(cached.jwks_uri, self._fetch_keys(cached.jwks_uri, issuer),
                                 now, now)
            else:
                keyset = self._load_keyset(issuer, now)
        except T as exc:
            with self._lock:
                self._failures[issuer] = (now, exc.message)
                self._failures.move_to_end(issuer)
                # Wildcard issuers let clients name many issuer URLs: stay bounded.
                while len(self._failures) > MAX_CACHED_ISSUERS:
                    self._failures.popitem(last=False)
            raise
        with self._lock:
            self._failures.pop(issuer, None)
            self._cache[issuer] = keyset
            self._cache.move_to_end(issuer)
            while len(self._cache) > MAX_CACHED_ISSUERS:
                self._cache.popitem(last=False)
        return keyset

    @staticmethod
    def _candidates(keyset: _KeySet, kid: Any) -> list[dict[str, Any]]:
        if kid is None:
            return list(keyset.keys)  # no kid: try every key (go-oidc does the same)
        return [key for key in keyset.keys if key.get("kid") == kid]

    def _key_for(self, issuer: str, header: Mapping[str, Any]) -> list[dict[str, Any]]:
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise T("token kid must be a string", actual=type(kid).__name__)
        keyset = self._keyset(issuer, refresh=False)
        assert keyset is not None
        candidates = self._candidates(keyset, kid)
        if not candidates:
            # The issuer may have rotated its keys since we cached them: refetch once.
            refreshed = self._keyset(issuer, refresh=True)
            if refreshed is not None:
                candidates = self._candidates(refreshed, kid)
        if not candidates:
            raise T(f"unknown key id {kid!r} for issuer {issuer}", actual=kid)
        return candidates

    # -- signature and claims ---------------------------------------------------------------
    @staticmethod
    def _public_key(jwk: dict[str, Any], alg: str) -> Any:
        """The key of ``jwk`` if it is usable with ``alg``, else None."""
        if jwk.get("alg") not in (None, alg):
            return None
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None
        if alg in _EC_CURVES:
            ok = isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _EC_CURVES[alg]
        elif alg == "EdDSA":
            ok = isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey))
        else:
            ok = isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
        return key if ok else None

    def _verify_signature(self, token: str, candidates: list[dict[str, Any]], alg: str,
                          issuer: str) -> dict[str, Any]:
        keys = [key for key in (self._public_key(jwk, alg) for jwk in candidates) if key]
        if not keys:
            raise T(f"issuer {issuer} has no {alg} key matching the token's key id",
                    actual=candidates[0].get("kid"))
        for key in keys:
            try:
                decoded = jwt.PyJWS().decode_complete(token, key, algorithms=[alg])
            except jwt.InvalidSignatureError:
                continue
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise T(f"token signature cannot be checked: {exc}") from None
            return self._payload(decoded["payload"])
        raise T(f"token signature does not verify with the keys of issuer {issuer}")

    def _check_claims(self, claims: Mapping[str, Any], config: IssuerConfig) -> None:
        now = self._clock()
        leeway = self.leeway

        def number(name: str, required: bool) -> float | None:
            value = claims.get(name)
            if value is None:
                if required:
                    raise T(f"token has no {name} claim")
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or value != value:  # NaN
                raise T(f"token {name} claim must be a number", actual=value)
            return float(value)

        # SPEC: RFC 7519 §4.1.4 exp, §4.1.5 nbf, §4.1.6 iat; sigstore-python requires
        # iss, sub, iat and exp (sigstore-wire.md §1).
        exp = number("exp", True)
        assert exp is not None
        if now > exp + leeway:
            raise T(f"token expired at {_when(exp)}", actual=_when(exp), expected=_when(now))
        nbf = number("nbf", False)
        if nbf is not None and now + leeway < nbf:
            raise T(f"token is not valid before {_when(nbf)}", actual=_when(nbf),
                    expected=_when(now))
        iat = number("iat", True)
        assert iat is not None
        if now + leeway < iat:
            raise T(f"token was issued in the future, at {_when(iat)}", actual=_when(iat),
                    expected=_when(now))

        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise T("token has no valid aud claim", actual=audience)
        if config.audience not in audiences:
            raise T(f"token audience {audiences[:5]!r} does not include {config.audience!r}",
                    actual=audiences[:5], expected=config.audience)

        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise T("token has no sub claim")

    @staticmethod
    def _issuer_value(claims: Mapping[str, Any], config: IssuerConfig, issuer: str) -> str:
        # SPEC: sigstore-wire.md §1: an optional IssuerClaim (e.g. Dex's
        # $.federated_claims.connector_id) overrides the value of the issuer extension.
        if config.issuer_claim is None:
            return issuer
        value: Any = claims
        for part in config.issuer_claim.split(".")[1:]:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str) or not value:
            raise T(f"token lacks the issuer claim {config.issuer_claim}")
        return value
