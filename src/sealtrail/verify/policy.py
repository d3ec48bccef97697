r"""Verification policies: who must have signed.

A policy is plain data (picklable, so batch verification can ship it to worker processes).

Identity and issuer patterns match as cosign's do (Go's ``regexp.MatchString``): a match
*anywhere* in the value, so ``^https://github.com/org/`` matches every workflow of the
organisation, and a pattern must be anchored (``^...$``) to pin the whole value (ADR 0012,
which supersedes ADR 0003). Patterns are compiled with ``re.ASCII`` (``\d``, ``\w``, ``\s`` are
ASCII, as in RE2); Python-only constructs that RE2 refuses (look-around, back-references,
conditionals, atomic groups, possessive quantifiers) are refused, so a pattern means the same
to sealtrail and cosign. Python's ``$`` also matches before a final newline, RE2's does not: a
value holding a line break never matches a pattern.
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

__all__ = ["IdentityPolicy", "KeyPolicy", "Policy", "anchoring_warning", "matches"]


# Python syntax that RE2 (cosign's engine) refuses or reads differently; refused here.
_NOT_RE2 = (
    ("(?=", "a look-ahead"), ("(?!", "a negative look-ahead"), ("(?<=", "a look-behind"),
    ("(?<!", "a negative look-behind"), ("(?>", "an atomic group"), ("(?(", "a conditional group"),
    ("(?P=", "a named back-reference"), ("*+", "a possessive quantifier"),
    ("++", "a possessive quantifier"), ("?+", "a possessive quantifier"),
    ("}+", "a possessive quantifier"),
)


def _not_re2(pattern: str) -> str | None:
    """The name of the first construct RE2 would refuse, outside escapes; else None."""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            following = pattern[i + 1:i + 2]
            if following.isdigit() and following != "0":
                return "a back-reference"
            if following == "Z":
                return "\\Z (RE2 spells the end of the text \\z; write $)"
            i += 2
            continue
        for text, name in _NOT_RE2:
            if pattern.startswith(text, i):
                return name
        i += 1
    return None


def _compile(pattern: str | None, what: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    construct = _not_re2(pattern)
    if construct is not None:
        raise UsageError(f"{what} uses {construct}, which Go's RE2 (cosign) does not support",
                         actual=pattern)
    try:
        return re.compile(pattern, re.ASCII)
    except re.error as exc:
        raise UsageError(f"{what} is not a valid regular expression: {exc}") from exc


def matches(pattern: re.Pattern[str], value: str) -> bool:
    """cosign's ``regexp.MatchString``: ``pattern`` matches somewhere in ``value``.

    A value with a line break never matches (Python's ``$`` would match before a final
    newline, RE2's does not)."""
    if "\n" in value or "\r" in value:
        return False
    return pattern.search(value) is not None


def anchoring_warning(pattern: str | None, what: str) -> str | None:
    """A warning for a pattern not anchored at the start of the value, else None."""
    if pattern is None:
        return None
    body = re.sub(r"^\(\?[a-zA-Z]+\)", "", pattern)  # a leading flag group, e.g. (?i)
    if body.startswith(("^", "\\A")):
        return None
    return (f"{what} {pattern!r} is not anchored with '^': it matches anywhere in the value, "
            f"so a value that merely contains a match (such as another repository's or "
            f"domain's URL ending with it) is accepted; anchor it, e.g. '^...$'")


_HOW_PATTERNS_MATCH = ("; a pattern matches anywhere in the value, as cosign's do, unless "
                       "anchored with ^ and $")


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
        # 1. Identity (SAN): exact, or a pattern matching anywhere in it (as cosign).
        if self.identity is not None:
            ok = found.san == self.identity
        else:
            pattern = _compile(self.identity_regexp, "the identity pattern")
            ok = pattern is not None and matches(pattern, found.san)
        if not ok:
            raise IdentityMismatchError(
                f"the certificate's identity (issuer {found.issuer!r}) "
                + ("is not the expected identity" if self.identity is not None
                   else "does not match the expected pattern" + _HOW_PATTERNS_MATCH),
                actual=found.san, expected=self.describe_identity())
        # 2. OIDC issuer, from extension .1.8 or the legacy .1.1.
        issuer = found.issuer or ""
        if self.issuer is not None:
            ok = found.issuer is not None and issuer == self.issuer
        else:
            pattern = _compile(self.issuer_regexp, "the issuer pattern")
            ok = found.issuer is not None and pattern is not None and matches(pattern, issuer)
        if not ok:
            raise IssuerMismatchError(
                f"the certificate's OIDC issuer (identity {found.san!r}) "
                + ("is not the expected issuer" if self.issuer is not None
                   else "does not match the expected pattern" + _HOW_PATTERNS_MATCH),
                actual=found.issuer, expected=self.describe_issuer())
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
