"""Verification policies: who must have signed.

A policy is plain data (picklable, so batch verification can ship it to worker processes).
Regular expressions are matched against the whole value (``re.fullmatch``): an unanchored
search would let ``https://github.com/org/repo`` match ``https://evil.example/?https://github.com/org/repo``.
"""

from __future__ import annotations

import re
from typing import Mapping

from sealtrail.crypto.keys import PublicKey
from sealtrail.errors import (
    ExtensionMismatchError,
    IdentityMismatchError,
    IssuerMismatchError,
    UsageError,
)
from sealtrail.models.certificate import FulcioIdentity

__all__ = ["IdentityPolicy", "KeyPolicy", "Policy"]


def _compile(pattern: str | None, what: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{what} is not a valid regular expression: {exc}") from exc


class IdentityPolicy:
    """Keyless policy: the certificate identity (SAN) and OIDC issuer, exact or by pattern.

    ``extensions`` maps Fulcio extension names (as in :class:`FulcioIdentity.extensions`, e.g.
    ``source_repository_uri``, ``source_repository_ref``, ``build_trigger``) to exact values.
    Instances are immutable and picklable (batch verification ships them to workers).
    """

    __slots__ = ("identity", "identity_regexp", "issuer", "issuer_regexp", "extensions")
    identity: str | None
    identity_regexp: str | None
    issuer: str | None
    issuer_regexp: str | None
    extensions: dict[str, str]

    def __init__(self, *, identity: str | None = None, identity_regexp: str | None = None,
                 issuer: str | None = None, issuer_regexp: str | None = None,
                 extensions: Mapping[str, str] | None = None) -> None:
        if (identity is None) == (identity_regexp is None):
            raise UsageError("give exactly one of a certificate identity or an identity pattern")
        if (issuer is None) == (issuer_regexp is None):
            raise UsageError("give exactly one of an OIDC issuer or an issuer pattern")
        _compile(identity_regexp, "the identity pattern")
        _compile(issuer_regexp, "the issuer pattern")
        for name, value in (("identity", identity), ("identity_regexp", identity_regexp),
                            ("issuer", issuer), ("issuer_regexp", issuer_regexp),
                            ("extensions", dict(extensions or {}))):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("policies are immutable")

    def __reduce__(self) -> tuple[object, ...]:
        return (_identity_policy, (self.identity, self.identity_regexp, self.issuer,
                                   self.issuer_regexp, dict(self.extensions)))

    def __repr__(self) -> str:
        return (f"IdentityPolicy(identity={self.describe_identity()!r}, "
                f"issuer={self.describe_issuer()!r}, extensions={dict(self.extensions)!r})")

    def describe_identity(self) -> str:
        """The expected identity, for messages."""
        return self.identity if self.identity is not None else f"/{self.identity_regexp}/"

    def describe_issuer(self) -> str:
        """The expected issuer, for messages."""
        return self.issuer if self.issuer is not None else f"/{self.issuer_regexp}/"

    def check(self, found: FulcioIdentity) -> None:
        """Raise unless the certificate's identity satisfies the policy."""
        # 1. Identity (SAN): exact or whole-value pattern.
        if self.identity is not None:
            ok = found.san == self.identity
        else:
            pattern = _compile(self.identity_regexp, "the identity pattern")
            ok = pattern is not None and pattern.fullmatch(found.san) is not None
        if not ok:
            raise IdentityMismatchError(
                f"certificate identity {found.san!r} (issuer {found.issuer!r}) does not match "
                f"the expected identity", actual=found.san, expected=self.describe_identity())
        # 2. OIDC issuer, from extension .1.8 or the legacy .1.1.
        issuer = found.issuer or ""
        if self.issuer is not None:
            ok = found.issuer is not None and issuer == self.issuer
        else:
            pattern = _compile(self.issuer_regexp, "the issuer pattern")
            ok = found.issuer is not None and pattern is not None and \
                pattern.fullmatch(issuer) is not None
        if not ok:
            raise IssuerMismatchError(
                f"certificate OIDC issuer {found.issuer!r} (identity {found.san!r}) does not match "
                f"the expected issuer", actual=found.issuer, expected=self.describe_issuer())
        # 3. Optional exact checks of Fulcio claim extensions.
        for name, expected in sorted(self.extensions.items()):
            actual = found.extensions.get(name)
            if actual != expected:
                raise ExtensionMismatchError(
                    f"certificate extension {name} does not match", actual=actual, expected=expected)


class KeyPolicy:
    """Managed-key policy: the bundle must be signed by this public key (PEM)."""

    __slots__ = ("public_key_pem",)
    public_key_pem: bytes

    def __init__(self, public_key_pem: bytes) -> None:
        PublicKey.from_pem(public_key_pem)  # fail early on a malformed key
        object.__setattr__(self, "public_key_pem", bytes(public_key_pem))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("policies are immutable")

    def __reduce__(self) -> tuple[object, ...]:
        return (KeyPolicy, (self.public_key_pem,))

    def key(self) -> PublicKey:
        """The parsed key."""
        return PublicKey.from_pem(self.public_key_pem)


def _identity_policy(identity: str | None, identity_regexp: str | None, issuer: str | None,
                     issuer_regexp: str | None, extensions: dict[str, str]) -> IdentityPolicy:
    return IdentityPolicy(identity=identity, identity_regexp=identity_regexp, issuer=issuer,
                          issuer_regexp=issuer_regexp, extensions=extensions)


Policy = IdentityPolicy | KeyPolicy
