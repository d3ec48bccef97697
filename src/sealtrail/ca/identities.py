"""From verified token claims to a certificate identity: SAN, challenge and claim extensions.

Each issuer type is *data* (an :class:`IdentityType`): which claims it needs, which claim is
the proof-of-possession challenge, a template for the SAN and templates for the Fulcio
claim extensions. A new issuer type is a new table entry (user-needs #6: bring your own
issuer); only the few subject rules (email syntax, URI domain, SPIFFE trust domain,
username) are code, referenced by name.

SPEC: sigstore-wire.md §1 "Identity -> SAN" and "Extensions on every cert"; Fulcio
docs/oid-info.md (the OID table and encodings: .1.1-.1.6 raw UTF-8, .1.8 on DER
UTF8String); Fulcio pkg/identity/*/principal.go (required claims per type).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

from asn1crypto import core

from sealtrail.errors import ConfigInvalidError, TokenInvalidError

__all__ = [
    "DER",
    "IDENTITY_TYPES",
    "RAW",
    "ClaimExtension",
    "IdentityType",
    "IssuerSettings",
    "Principal",
    "San",
    "principal_from_claims",
    "utf8_der",
]

RAW = "raw"  # legacy extensions: the extnValue is the UTF-8 text itself
DER = "der"  # the extnValue is a DER UTF8String

_ARC = "1.3.6.1.4.1.57264.1."
# SPEC: oid-info.md: the username type's OtherName SAN type id.
OTHERNAME_OID = _ARC + "7"

# A claim value longer than this is not an identity; bounding it bounds the certificate.
MAX_CLAIM_CHARS = 2048
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SAN_KINDS = ("uri", "email", "othername")


def utf8_der(text: str) -> bytes:
    """DER UTF8String, the encoding of the Fulcio extensions from .1.8 on."""
    der: bytes = core.UTF8String(text).dump()
    return der


@dataclass(frozen=True)
class ClaimExtension:
    """One certificate extension filled from a template: ``oid`` (dotted), ``template``
    (``{claim}`` placeholders) and ``encoding`` (:data:`RAW` or :data:`DER`). An
    ``optional`` extension is left out when a claim of its template is absent or empty
    (GitLab's ``environment``: only jobs that deploy have one)."""

    oid: str
    template: str
    encoding: str = DER
    optional: bool = False


@dataclass(frozen=True)
class IdentityType:
    """How tokens of one issuer type become a certificate identity.

    - ``required_claims``: claims that must be present and non-empty (besides ``iss``,
      ``sub``, ``aud``, ``exp``, ``iat`` that every token needs);
    - ``challenge_claim``: the claim whose value the client signs as proof of possession;
    - ``san_kind`` (``uri``, ``email``, ``othername``) and ``san_template``;
    - ``extensions``: claim extensions beyond the ones every certificate gets (.1.1, .1.8,
      .1.24);
    - ``choices``: derived values, ``name -> (claim, {claim value: template})``, for claims
      that select a format (GitLab's ``ref_type``);
    - ``default_base``: template of ``{_base}``, the CI platform's URL (an issuer may
      override it with ``ci_base_url``);
    - ``subject_rule``: the name of a rule in :data:`SUBJECT_RULES`, or None;
    - ``requires``: issuer settings this type needs (``subject_domain``,
      ``spiffe_trust_domain``).

    Templates may use any claim by name and these derived values: ``{_issuer}`` (the value
    written to the issuer extensions), ``{_issuer_url}`` (the token's ``iss``),
    ``{_issuer_host}``, ``{_subject_domain}``, ``{_base}`` and the ``choices``.
    """

    name: str
    san_kind: str
    san_template: str
    challenge_claim: str = "sub"
    required_claims: tuple[str, ...] = ()
    extensions: tuple[ClaimExtension, ...] = ()
    choices: Mapping[str, tuple[str, Mapping[str, str]]] = field(
        default_factory=lambda: MappingProxyType({}))
    default_base: str = ""
    subject_rule: str | None = None
    requires: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        E = ConfigInvalidError
        if self.san_kind not in _SAN_KINDS:
            raise E(f"identity type {self.name}: unknown SAN kind", actual=self.san_kind,
                    expected=list(_SAN_KINDS))
        if self.subject_rule is not None and self.subject_rule not in SUBJECT_RULES:
            raise E(f"identity type {self.name}: unknown subject rule", actual=self.subject_rule,
                    expected=sorted(SUBJECT_RULES))
        templates = [self.san_template, self.default_base]
        templates += [ext.template for ext in self.extensions]
        templates += [t for _, options in self.choices.values() for t in options.values()]
        for template in templates:
            if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
                raise E(f"identity type {self.name}: malformed template", actual=template)
        for ext in self.extensions:
            if ext.encoding not in (RAW, DER) or not re.fullmatch(r"\d+(\.\d+)+", ext.oid):
                raise E(f"identity type {self.name}: malformed extension", actual=ext.oid)
        for setting in self.requires:
            if setting not in ("subject_domain", "spiffe_trust_domain"):
                raise E(f"identity type {self.name}: unknown issuer setting", actual=setting)


class San(NamedTuple):
    """The one SubjectAlternativeName: ``kind`` is ``uri``, ``email`` or ``othername``."""

    kind: str
    value: str


@dataclass(frozen=True)
class Principal:
    """A verified identity, ready to be written into a certificate.

    ``issuer`` is the token's ``iss``; ``subject`` its ``sub``; ``challenge`` the string the
    client must sign as proof of possession (the email for email issuers, ``sub``
    otherwise, as Fulcio); ``alternate_challenges`` other strings real clients sign
    (``sub``, the token's ``email``); ``san`` the certificate identity; ``extensions`` maps
    dotted OIDs to the encoded extnValue bytes, in OID order.
    """

    issuer: str
    issuer_type: str
    subject: str
    challenge: str
    san: San
    extensions: Mapping[str, bytes]
    alternate_challenges: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (for ``sealtrail ca dry-run``)."""
        return {
            "issuer": self.issuer,
            "issuerType": self.issuer_type,
            "subject": self.subject,
            "challenge": self.challenge,
            "alternateChallenges": list(self.alternate_challenges),
            "san": {"kind": self.san.kind, "value": self.san.value},
            "extensions": {oid: _describe(value) for oid, value in self.extensions.items()},
        }


def _describe(value: bytes) -> str:
    # A DER UTF8String starts with tag 0x0c; a raw (legacy) value never does, because claim
    # values with control characters are refused.
    if value[:1] == b"\x0c":
        try:
            return str(core.UTF8String.load(value, strict=True).native)
        except (ValueError, TypeError):
            pass
    return value.decode("utf-8", "replace")


@dataclass(frozen=True)
class IssuerSettings:
    """What the identity mapping needs to know about the issuer that signed the token."""

    issuer_url: str  # the token's iss
    issuer_value: str  # what goes into .1.1 / .1.8 (iss unless an issuer claim overrides it)
    subject_domain: str | None = None
    spiffe_trust_domain: str | None = None
    skip_email_verified: bool = False
    ci_base_url: str | None = None


# -- subject rules (the only code per type) ---------------------------------------------------

T = TokenInvalidError
_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_SPIFFE = re.compile(r"spiffe://([a-z0-9._-]{1,255})((?:/[A-Za-z0-9._-]+)+)")


def _email_rule(claims: Mapping[str, Any], settings: IssuerSettings) -> None:
    # SPEC: sigstore-wire.md §1: email needs email, email_verified=true (unless skipped)
    # and a well-formed address.
    email = _claim_text(claims, "email") or ""
    if not _EMAIL.fullmatch(email) or not email.isascii():
        raise T("token email claim is not a well-formed address", actual=email)
    if settings.skip_email_verified:
        return
    verified = claims.get("email_verified")
    # Some providers (e.g. AWS Cognito) send the boolean as a string.
    if verified is not True and verified != "true":
        raise T("token email is not verified (email_verified must be true)",
                actual=verified, expected=True)


def _uri_rule(claims: Mapping[str, Any], settings: IssuerSettings) -> None:
    # SPEC: sigstore-wire.md §1: uri: URI = sub; scheme and host must match subject-domain.
    subject = _claim_text(claims, "sub") or ""
    domain = urlsplit(settings.subject_domain or "")
    parts = _split_url(subject)
    if parts is None:
        raise T("token sub is not a URI", actual=subject)
    if (parts.scheme, parts.hostname) != (domain.scheme, domain.hostname):
        raise T("token sub is outside the issuer's subject domain", actual=subject,
                expected=f"{domain.scheme}://{domain.hostname}/...")


def _spiffe_rule(claims: Mapping[str, Any], settings: IssuerSettings) -> None:
    # SPEC: sigstore-wire.md §1: spiffe: URI = sub, which must be in the trust domain.
    subject = _claim_text(claims, "sub") or ""
    match = _SPIFFE.fullmatch(subject)
    if match is None or any(seg in (".", "..") for seg in match.group(2).split("/")[1:]):
        raise T("token sub is not a SPIFFE ID", actual=subject,
                expected="spiffe://<trust domain>/<path>")
    if match.group(1) != settings.spiffe_trust_domain:
        raise T("token SPIFFE ID is outside the issuer's trust domain", actual=match.group(1),
                expected=settings.spiffe_trust_domain)


def _username_rule(claims: Mapping[str, Any], settings: IssuerSettings) -> None:
    # Fulcio pkg/identity/username: "!" separates the username from the domain.
    subject = _claim_text(claims, "sub") or ""
    if "!" in subject:
        raise T("token sub must not contain '!' for username issuers", actual=subject)


SUBJECT_RULES: Mapping[str, Callable[[Mapping[str, Any], IssuerSettings], None]] = \
    MappingProxyType({"email": _email_rule, "uri": _uri_rule, "spiffe": _spiffe_rule,
                      "username": _username_rule})


# -- the table ---------------------------------------------------------------------------------

def _ext(arc: int, template: str, encoding: str = DER, *, optional: bool = False
         ) -> ClaimExtension:
    return ClaimExtension(_ARC + str(arc), template, encoding, optional)


# SPEC: Fulcio docs/oid-info.md: the GitHub Actions mapping (legacy .1.2-.1.6 raw, .1.9-.1.22
# DER) and pkg/identity/github/principal.go (the claims a workflow token must carry).
_GITHUB = IdentityType(
    name="github-workflow",
    san_kind="uri",
    san_template="{_base}/{job_workflow_ref}",
    default_base="https://github.com",
    required_claims=(
        "job_workflow_ref", "sha", "event_name", "repository", "workflow", "ref",
        "job_workflow_sha", "runner_environment", "repository_id", "repository_owner",
        "repository_owner_id", "repository_visibility", "workflow_ref", "workflow_sha",
        "run_id", "run_attempt",
    ),
    extensions=(
        _ext(2, "{event_name}", RAW),  # GitHub Workflow Trigger
        _ext(3, "{sha}", RAW),  # GitHub Workflow SHA
        _ext(4, "{workflow}", RAW),  # GitHub Workflow Name
        _ext(5, "{repository}", RAW),  # GitHub Workflow Repository
        _ext(6, "{ref}", RAW),  # GitHub Workflow Ref
        _ext(9, "{_base}/{job_workflow_ref}"),  # Build Signer URI
        _ext(10, "{job_workflow_sha}"),  # Build Signer Digest
        _ext(11, "{runner_environment}"),  # Runner Environment
        _ext(12, "{_base}/{repository}"),  # Source Repository URI
        _ext(13, "{sha}"),  # Source Repository Digest
        _ext(14, "{ref}"),  # Source Repository Ref
        _ext(15, "{repository_id}"),  # Source Repository Identifier
        _ext(16, "{_base}/{repository_owner}"),  # Source Repository Owner URI
        _ext(17, "{repository_owner_id}"),  # Source Repository Owner Identifier
        _ext(18, "{_base}/{workflow_ref}"),  # Build Config URI
        _ext(19, "{workflow_sha}"),  # Build Config Digest
        _ext(20, "{event_name}"),  # Build Trigger
        _ext(21, "{_base}/{repository}/actions/runs/{run_id}/attempts/{run_attempt}"),
        _ext(22, "{repository_visibility}"),  # Source Repository Visibility At Signing
    ),
)

# SPEC: Fulcio pkg/identity/gitlabcom/principal.go: the SAN is the ci_config_ref_uri claim
# (which already holds the host, e.g. "gitlab.com/group/project//.gitlab-ci.yml@refs/heads/
# main") with an https scheme; ref_type selects refs/heads/ or refs/tags/; the platform URL
# is the issuer's host.
_GITLAB = IdentityType(
    name="gitlab-pipeline",
    san_kind="uri",
    san_template="https://{ci_config_ref_uri}",
    default_base="https://{_issuer_host}",
    required_claims=(
        "ci_config_ref_uri", "ci_config_sha", "project_path", "project_id", "namespace_path",
        "namespace_id", "pipeline_source", "job_id", "ref", "ref_type", "sha",
        "runner_environment", "project_visibility",
    ),
    choices=MappingProxyType({"_git_ref": ("ref_type", MappingProxyType(
        {"branch": "refs/heads/{ref}", "tag": "refs/tags/{ref}"}))}),
    extensions=(
        _ext(9, "https://{ci_config_ref_uri}"),
        _ext(10, "{ci_config_sha}"),
        _ext(11, "{runner_environment}"),
        _ext(12, "{_base}/{project_path}"),
        _ext(13, "{sha}"),
        _ext(14, "{_git_ref}"),
        _ext(15, "{project_id}"),
        _ext(16, "{_base}/{namespace_path}"),
        _ext(17, "{namespace_id}"),
        _ext(18, "https://{ci_config_ref_uri}"),
        _ext(19, "{ci_config_sha}"),
        _ext(20, "{pipeline_source}"),
        _ext(21, "{_base}/{project_path}/-/jobs/{job_id}"),
        _ext(22, "{project_visibility}"),
        # SPEC: Fulcio config/identity/config.yaml (gitlab-pipeline: deployment-environment
        # is the environment claim), oid-info.md .23 Deployment Environment: present only
        # when the job has an environment.
        _ext(23, "{environment}", optional=True),
    ),
)

IDENTITY_TYPES: Mapping[str, IdentityType] = MappingProxyType({
    "email": IdentityType(name="email", san_kind="email", san_template="{email}",
                          challenge_claim="email", required_claims=("email",),
                          subject_rule="email"),
    "github-workflow": _GITHUB,
    "gitlab-pipeline": _GITLAB,
    "uri": IdentityType(name="uri", san_kind="uri", san_template="{sub}", subject_rule="uri",
                        requires=("subject_domain",)),
    "spiffe": IdentityType(name="spiffe", san_kind="uri", san_template="{sub}",
                           subject_rule="spiffe", requires=("spiffe_trust_domain",)),
    # SPEC: sigstore-wire.md §1: username: OtherName SAN, UTF8 `sub!domain`.
    "username": IdentityType(name="username", san_kind="othername",
                             san_template="{sub}!{_subject_domain}", subject_rule="username",
                             requires=("subject_domain",)),
})

# SPEC: sigstore-wire.md §1 "Extensions on every cert": .1.1 issuer (raw), .1.8 issuer
# (DER UTF8String), .1.24 the token's sub (DER UTF8String).
COMMON_EXTENSIONS = (
    _ext(1, "{_issuer}", RAW),
    _ext(8, "{_issuer}"),
    _ext(24, "{sub}"),
)


# -- building a principal ----------------------------------------------------------------------

def _split_url(value: str) -> SplitResult | None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts


def _claim_text(claims: Mapping[str, Any], name: str) -> str | None:
    """A claim as template text, None if absent or empty; refuses non-scalar values."""
    value = claims.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise T(f"token claim {name} must be a string", actual=type(value).__name__)
    text = str(value)
    if len(text) > MAX_CLAIM_CHARS:
        raise T(f"token claim {name} is too long", actual=len(text),
                expected=f"<= {MAX_CLAIM_CHARS} characters")
    if _CONTROL.search(text):
        raise T(f"token claim {name} contains control characters")
    return text


def _render(template: str, values: Mapping[str, str], claims: Mapping[str, Any],
            type_name: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        text = _claim_text(claims, name)
        if text is None:
            raise T(f"token lacks claim {name} required for {type_name} issuers")
        return text

    return _PLACEHOLDER.sub(one, template)


def _check_san(kind: str, value: str) -> None:
    # X.509 URI and rfc822Name SANs are IA5String: ASCII only.
    if kind in ("uri", "email") and not value.isascii():
        raise T(f"certificate identity {kind} must be ASCII", actual=value)
    if kind == "uri" and _split_url(value) is None:
        raise T("certificate identity is not a URI with a scheme and host", actual=value)


def principal_from_claims(identity_type: IdentityType, claims: Mapping[str, Any],
                          settings: IssuerSettings) -> Principal:
    """Map verified token ``claims`` to a :class:`Principal` per ``identity_type``.

    The token's signature, issuer, audience and times must already be verified. Raises
    :class:`TokenInvalidError` naming the missing or malformed claims.
    """
    subject = _claim_text(claims, "sub")
    if subject is None:
        raise T("token has no sub claim")
    missing = [name for name in identity_type.required_claims
               if _claim_text(claims, name) is None]
    if missing:
        raise T(f"token lacks claims required for {identity_type.name} issuers: "
                f"{', '.join(missing)}", actual=missing)
    if identity_type.subject_rule is not None:
        SUBJECT_RULES[identity_type.subject_rule](claims, settings)

    values: dict[str, str] = {
        "_issuer": settings.issuer_value,
        "_issuer_url": settings.issuer_url,
        "_issuer_host": urlsplit(settings.issuer_url).hostname or "",
        "_subject_domain": settings.subject_domain or "",
    }
    base = settings.ci_base_url or _render(identity_type.default_base, values, claims,
                                           identity_type.name)
    values["_base"] = base.rstrip("/")
    for name, (claim, options) in identity_type.choices.items():
        selector = _claim_text(claims, claim)
        if selector is None or selector not in options:
            raise T(f"token claim {claim} has an unexpected value", actual=selector,
                    expected=sorted(options))
        values[name] = _render(options[selector], values, claims, identity_type.name)

    san = San(identity_type.san_kind,
              _render(identity_type.san_template, values, claims, identity_type.name))
    _check_san(san.kind, san.value)
    challenge = _claim_text(claims, identity_type.challenge_claim)
    if challenge is None:
        raise T(f"token lacks the challenge claim {identity_type.challenge_claim}")

    extensions: dict[str, bytes] = {}
    for ext in COMMON_EXTENSIONS + identity_type.extensions:
        if ext.optional and any(name not in values and _claim_text(claims, name) is None
                                for name in _PLACEHOLDER.findall(ext.template)):
            continue
        text = _render(ext.template, values, claims, identity_type.name)
        extensions[ext.oid] = text.encode() if ext.encoding == RAW else utf8_der(text)
    ordered = dict(sorted(extensions.items(),
                          key=lambda item: tuple(int(p) for p in item[0].split("."))))
    # SPEC: sigstore-wire.md §1: clients differ in what they sign: sigstore-go signs the
    # email if the token has one, else sub; sigstore-js signs sub except for two well-known
    # issuers. Any of them proves possession of the key equally well.
    email = claims.get("email")
    alternates = tuple(dict.fromkeys(
        value for value in (subject, email if isinstance(email, str) else None)
        if value and value != challenge))
    return Principal(issuer=settings.issuer_url, issuer_type=identity_type.name,
                     subject=subject, challenge=challenge, san=san,
                     extensions=MappingProxyType(ordered), alternate_challenges=alternates)
