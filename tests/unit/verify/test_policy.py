"""Identity policies: patterns match as cosign's (Go regexp.MatchString), ADR 0012."""

from __future__ import annotations

import pickle

import pytest

from sealtrail.errors import IdentityMismatchError, IssuerMismatchError, UsageError
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.verify.policy import IdentityPolicy, anchoring_warning

RELEASE = "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1.0.0"
ISSUER = "https://token.actions.githubusercontent.com"


def found(san: str = RELEASE, issuer: str | None = ISSUER) -> FulcioIdentity:
    return FulcioIdentity(san=san, san_kind="uri", issuer=issuer, extensions={})


@pytest.mark.parametrize("pattern", [
    r"^https://github.com/org/",                 # as users write it for cosign
    r"^https://github\.com/org/repo/\.github/workflows/release\.yml@refs/tags/v.*$",
    r"release\.yml@refs/tags/",                  # unanchored: anywhere (warned about)
    r"(?i)^HTTPS://GITHUB.COM/ORG/",
])
def test_a_pattern_matches_anywhere_in_the_value_as_cosign(pattern: str) -> None:
    IdentityPolicy(identity_regexp=pattern, issuer=ISSUER).check(found())


@pytest.mark.parametrize("pattern,san", [
    (r"^https://github.com/org/", "https://evil.example/?https://github.com/org/repo"),
    (r"^https://github\.com/org/repo/.*@refs/tags/v1\.0\.0$", RELEASE + "-evil"),
    # Python's $ matches before a final newline, RE2's does not: such a value never matches.
    (r"^https://github\.com/org/.*v1\.0\.0$", RELEASE + "\n"),
])
def test_anchored_patterns_refuse_other_values(pattern: str, san: str) -> None:
    with pytest.raises(IdentityMismatchError) as info:
        IdentityPolicy(identity_regexp=pattern, issuer=ISSUER).check(found(san))
    text = info.value.diagnostics()
    assert "matches anywhere in the value" in text and "anchored with ^ and $" in text


def test_issuer_patterns_match_anywhere_too() -> None:
    IdentityPolicy(identity=RELEASE, issuer_regexp=r"^https://token\.actions\.").check(found())
    with pytest.raises(IssuerMismatchError) as info:
        IdentityPolicy(identity=RELEASE, issuer_regexp=r"^https://accounts\.google\.com$"
                       ).check(found())
    assert "matches anywhere" in info.value.diagnostics()


def test_an_identity_mismatch_names_the_identity_found_once() -> None:
    with pytest.raises(IdentityMismatchError) as info:
        IdentityPolicy(identity="someone@example.com", issuer=ISSUER).check(found())
    text = info.value.diagnostics()
    assert text.count(RELEASE) == 1 and ISSUER in text and "someone@example.com" in text
    assert info.value.actual == RELEASE and info.value.expected == "someone@example.com"
    assert "pattern" not in text  # exact identities say nothing about patterns


@pytest.mark.parametrize("pattern,construct", [
    (r"^https://github\.com/(?=org)", "look-ahead"),
    (r"^https://(?!evil)", "negative look-ahead"),
    (r"(?<=github\.com/)org", "look-behind"),
    (r"^(a)\1", "back-reference"),
    (r"^a++", "possessive quantifier"),
    (r"^(?>a)", "atomic group"),
    (r"^https://github\.com/org/\Z", r"\Z"),
])
def test_python_only_syntax_is_refused(pattern: str, construct: str) -> None:
    with pytest.raises(UsageError) as info:
        IdentityPolicy(identity_regexp=pattern, issuer=ISSUER)
    assert construct in info.value.message and "RE2" in info.value.message


def test_escaped_constructs_are_not_mistaken_for_python_syntax() -> None:
    IdentityPolicy(identity_regexp=r"^a\(\?=b\)\\", issuer=ISSUER)


def test_character_classes_are_ascii_as_in_re2() -> None:
    policy = IdentityPolicy(identity_regexp=r"^user\d+@example\.com$", issuer=ISSUER)
    policy.check(found("user42@example.com"))
    with pytest.raises(IdentityMismatchError):
        policy.check(found("user\u0664\u0662@example.com"))  # Arabic-Indic digits


@pytest.mark.parametrize("pattern,warned", [
    (r"^https://github.com/org/", False), (r"\Ahttps://", False), (r"(?i)^https://", False),
    (r"https://github.com/org/", True), (r".*@example\.com$", True), (None, False),
])
def test_a_pattern_not_anchored_at_the_start_is_warned_about(pattern: str | None,
                                                             warned: bool) -> None:
    warning = anchoring_warning(pattern, "--certificate-identity-regexp")
    assert (warning is not None) == warned
    if warning:
        assert "--certificate-identity-regexp" in warning and "anywhere" in warning


def test_policies_still_pickle() -> None:
    policy = IdentityPolicy(identity_regexp=r"^https://github.com/org/", issuer=ISSUER)
    pickle.loads(pickle.dumps(policy)).check(found())
