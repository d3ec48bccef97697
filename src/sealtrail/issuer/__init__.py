"""A built-in OpenID Connect issuer for local and test use (L2).

:class:`BuiltinIssuer` mints ES256 identity tokens (an email identity, or a GitHub-Actions-shaped
workflow identity) and serves its discovery document and JWKS; :class:`TokenRequest` validates
the JSON body of the HTTP token endpoint (wired in ``sealtrail.server.issuer_api``).
"""

from __future__ import annotations

from sealtrail.issuer._fields import DEFAULT_AUDIENCE, DEFAULT_LIFETIME, MAX_LIFETIME
from sealtrail.issuer.builtin import (
    ALGORITHM,
    BuiltinIssuer,
    create_issuer_key,
    create_token_secret,
    email_subject,
    issuer_key_id,
    jwk_thumbprint,
    load_issuer_key,
    load_issuer_key_file,
    load_token_secret,
)
from sealtrail.issuer.request import KINDS, TokenRequest, parse_token_request

__all__ = [
    "ALGORITHM",
    "DEFAULT_AUDIENCE",
    "DEFAULT_LIFETIME",
    "KINDS",
    "MAX_LIFETIME",
    "BuiltinIssuer",
    "TokenRequest",
    "create_issuer_key",
    "create_token_secret",
    "email_subject",
    "issuer_key_id",
    "jwk_thumbprint",
    "load_issuer_key",
    "load_issuer_key_file",
    "load_token_secret",
    "parse_token_request",
]
