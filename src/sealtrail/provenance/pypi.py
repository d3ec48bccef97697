"""PEP 740 attestations and PyPI provenance files, checked as pypi-attestations checks them.

Inputs (the pypi-attestations formats, SPEC: PEP 740 "Attestation objects" and
"Provenance objects"; provenance-formats.md §5):

- an attestation ``{version: 1, verification_material: {certificate, transparency_entries},
  envelope: {statement, signature}}``: the Fulcio leaf (base64 DER), Rekor v1
  TransparencyLogEntry objects (protobuf JSON, as in a bundle), and the DSSE payload (an
  in-toto statement) and its one signature, both base64;
- a provenance file ``{version: 1, attestation_bundles: [{publisher, attestations}]}``.

An attestation is rewritten into the Sigstore bundle v0.3 it stands for
(:meth:`Attestation.to_bundle_dict`) and verified by :class:`sealtrail.verify.Verifier`
(certificate chain, SCT, log entry, signature: docs/verification.md). Then, in the order
pypi-attestations uses (SPEC: pypi-attestations ``Attestation.verify``):

1. the signer satisfies the trusted publisher (or the identity policy);
2. the statement has exactly one subject, with a name;
3. the subject name and the distribution's file name are the same distribution once parsed
   (:func:`parse_distribution_filename`: PEP 427 wheels, PEP 625 sdists, PEP 503 names,
   PEP 440 versions, wheel tag sets);
4. the subject's sha256 is the distribution's;
5. the predicate type is one PyPI knows.

Each failure is a sealtrail error whose message is pypi-attestations' (``Verification
failed: subject does not match distribution digest``...) and whose code is stable:
``SUBJECT_MISMATCH`` (steps 2-5), ``IDENTITY_MISMATCH`` / ``ISSUER_MISMATCH`` (step 1),
``BUNDLE_MALFORMED`` (an attestation or provenance file that does not parse, exit 2).

Pure: bytes and parsed values in, results or errors out; the CLI reads the files.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from sealtrail.errors import (
    BundleMalformedError,
    IdentityMismatchError,
    InputError,
    IssuerMismatchError,
    SubjectMismatchError,
    UsageError,
)
from sealtrail.models.bundle import Bundle
from sealtrail.models.certificate import FulcioIdentity
from sealtrail.models.intoto import INTOTO_PAYLOAD_TYPE, Statement
from sealtrail.verify.policy import IdentityPolicy
from sealtrail.verify.verifier import VerificationResult, Verifier

__all__ = [
    "GITHUB_ISSUER",
    "GITLAB_ISSUER",
    "GOOGLE_ISSUER",
    "PREDICATE_TYPES",
    "PUBLISH_V1",
    "SLSA_PROVENANCE_V1",
    "Attestation",
    "AttestationBundle",
    "CircleCIPublisher",
    "DistributionName",
    "GitHubPublisher",
    "GitLabPublisher",
    "GooglePublisher",
    "PyPIResult",
    "check_repository_flag",
    "parse_attestation",
    "parse_distribution_filename",
    "parse_provenance",
    "publisher_from_repository",
    "verify_attestation",
]

PUBLISH_V1 = "https://docs.pypi.org/attestations/publish/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
# SPEC: pypi-attestations AttestationType: the predicate types PyPI accepts.
PREDICATE_TYPES = (SLSA_PROVENANCE_V1, PUBLISH_V1)

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
GOOGLE_ISSUER = "https://accounts.google.com"
CIRCLECI_ISSUER = "https://oidc.circleci.com"

# An attestation or provenance file is small (a certificate, one or two log entries, a
# statement); anything far larger is refused before parsing.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_ATTESTATIONS = 64

_MALFORMED = BundleMalformedError


def _failed(message: str) -> str:
    # SPEC: pypi-attestations VerificationError prefixes every message so.
    return f"Verification failed: {message}"


# -- distribution file names ----------------------------------------------------------------

# SPEC: PEP 440 appendix B, the canonical version pattern (case-insensitive, an optional
# leading "v", surrounding whitespace allowed).
_VERSION = re.compile(
    r"""^\s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?
    (?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$""",
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)
# SPEC: PEP 440 "Pre-release spelling": alpha -> a, beta -> b, c/pre/preview -> rc.
_PRE_SPELLING = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "pre": "rc",
                 "preview": "rc", "rc": "rc"}
# SPEC: PEP 427 "Escaping and Unicode": a wheel's name part holds only word characters,
# dots and underscores (no "-", which separates the fields), and no "__" run.
_WHEEL_NAME = re.compile(r"[\w.]+")
_BUILD_TAG = re.compile(r"([0-9]+)(.*)", re.ASCII)


def _version_key(text: str) -> tuple[Any, ...] | None:
    """The PEP 440 identity of a version (None if it is not one): two spellings of one
    version ("1.0", "1.0.0", "01.0") get the same key, as PEP 440's comparison says
    (release trailing zeros do not count; local segments compare as numbers or lower case)."""
    match = _VERSION.match(text)
    if match is None:
        return None
    release = [int(part) for part in match["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre = None
    if match["pre_l"]:
        pre = (_PRE_SPELLING[match["pre_l"].lower()], int(match["pre_n"] or 0))
    post = None
    if match["post"]:
        post = int(match["post_n1"] or match["post_n2"] or 0)
    dev = int(match["dev_n"] or 0) if match["dev"] else None
    local = None
    if match["local"]:
        local = tuple(int(part) if part.isdigit() else part.lower()
                      for part in re.split(r"[-_.]", match["local"]))
    return (int(match["epoch"] or 0), tuple(release), pre, post, dev, local)


def _canonical_name(name: str) -> str:
    # SPEC: PEP 503 "Normalized Names": runs of "-", "_" and "." become one "-", lower case.
    return re.sub(r"[-_.]+", "-", name).lower()


class DistributionName(NamedTuple):
    """A distribution file name, parsed: what two spellings of one file share.

    ``kind`` is ``"wheel"`` or ``"sdist"``; ``tags`` is the set of (interpreter, abi,
    platform) tags of a wheel (compressed tag sets expanded, lower case), empty for an sdist;
    ``build`` is a wheel's build tag as ``(number, rest)`` or ``()``.
    """

    kind: str
    name: str
    version: tuple[Any, ...]
    build: tuple[Any, ...]
    tags: frozenset[tuple[str, str, str]]


def parse_distribution_filename(filename: str) -> DistributionName:
    """Parse a wheel (``.whl``) or sdist (``.tar.gz``, ``.zip``) file name.

    Raises :class:`ValueError` with pypi-attestations' wording (``Invalid wheel filename``,
    ``Invalid sdist filename``, ``unknown distribution format``).

    SPEC: PEP 427 (``{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl``), PEP 425
    (compressed tag sets ``py2.py3``), PEP 625 (``{name}-{version}.tar.gz``; pypi-attestations
    also accepts ``.zip``, as packaging's parse_sdist_filename does), PEP 503 names and
    PEP 440 versions. Suffixes must be lower case.
    """
    if not isinstance(filename, str):
        raise TypeError("distribution filename must be a string")
    if filename.endswith(".whl"):
        return _parse_wheel(filename)
    if filename.endswith((".tar.gz", ".zip")):
        return _parse_sdist(filename)
    raise ValueError(f"unknown distribution format: {filename}")


def _parse_wheel(filename: str) -> DistributionName:
    stem = filename[:-len(".whl")]
    dashes = stem.count("-")
    if dashes not in (4, 5):
        raise ValueError(f"Invalid wheel filename (wrong number of parts): {stem!r}")
    parts = stem.split("-", dashes - 2)
    name_part = parts[0]
    if "__" in name_part or not _WHEEL_NAME.fullmatch(name_part):
        raise ValueError(f"Invalid wheel filename (invalid project name): {stem!r}")
    version = _version_key(parts[1])
    if version is None:
        raise ValueError(f"Invalid wheel filename (invalid version): {stem!r}")
    build: tuple[Any, ...] = ()
    if dashes == 5:
        match = _BUILD_TAG.fullmatch(parts[2])
        if match is None:
            raise ValueError(f"Invalid wheel filename (invalid build number): {stem!r}")
        build = (int(match[1]), match[2])
    components = [component.split(".") for component in parts[-1].split("-")]
    if len(components) != 3 or any("" in component for component in components) \
            or not all(interpreter.isidentifier() for interpreter in components[0]):
        raise ValueError(f"Invalid wheel filename (invalid tag component): {stem!r}")
    interpreters, abis, platforms = components
    tags = frozenset((interpreter.lower(), abi.lower(), platform.lower())
                     for interpreter in interpreters for abi in abis for platform in platforms)
    return DistributionName("wheel", _canonical_name(name_part), version, build, tags)


def _parse_sdist(filename: str) -> DistributionName:
    stem = filename[:-len(".tar.gz")] if filename.endswith(".tar.gz") else filename[:-len(".zip")]
    # SPEC: PEP 440 versions hold no "-", so the last one separates name and version.
    name_part, dash, version_part = stem.rpartition("-")
    if not dash or not name_part:
        raise ValueError(f"Invalid sdist filename: {filename!r}")
    version = _version_key(version_part)
    if version is None:
        raise ValueError(f"Invalid sdist filename (invalid version): {filename!r}")
    return DistributionName("sdist", _canonical_name(name_part), version, (), frozenset())


# -- attestation and provenance files -------------------------------------------------------


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise _MALFORMED(f"attestation {what} must be a non-empty base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _MALFORMED(f"attestation {what} is not valid base64") from None


def _json_object(data: bytes | str | dict[str, Any], what: str) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_FILE_BYTES:
            raise _MALFORMED(f"{what} is too large", actual=f"{len(data)} bytes",
                             expected=f"<= {MAX_FILE_BYTES} bytes")
    elif not isinstance(data, str):
        raise UsageError(f"{what} must be bytes, str or a dict", actual=type(data).__name__)
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _MALFORMED(f"{what} is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise _MALFORMED(f"{what} must be a JSON object", actual=type(parsed).__name__)
    return parsed


class Attestation(NamedTuple):
    """A PEP 740 attestation, its fields checked and decoded."""

    certificate: bytes  # the Fulcio leaf, DER
    transparency_entries: tuple[dict[str, Any], ...]
    statement: bytes  # the DSSE payload: an in-toto statement (JSON)
    signature: bytes

    def to_bundle_dict(self) -> dict[str, Any]:
        """The Sigstore bundle v0.3 this attestation stands for.

        SPEC: pypi-attestations ``Attestation.to_bundle``: payload type in-toto, one
        signature, and the *first* transparency entry only (PEP 740 allows several; PyPI
        writes one).
        """
        return {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": base64.b64encode(self.certificate).decode()},
                "tlogEntries": [self.transparency_entries[0]],
            },
            "dsseEnvelope": {
                "payload": base64.b64encode(self.statement).decode(),
                "payloadType": INTOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": base64.b64encode(self.signature).decode()}],
            },
        }

    def to_bundle(self) -> Bundle:
        """:meth:`to_bundle_dict`, parsed strictly (BUNDLE_MALFORMED if a part is not
        well-formed: a certificate or log entry that does not parse)."""
        return Bundle.from_dict(self.to_bundle_dict())


def parse_attestation(data: bytes | str | dict[str, Any]) -> Attestation:
    """Parse one PEP 740 attestation (JSON bytes, text, or an already-loaded object).

    Raises :class:`BundleMalformedError` (exit 2) naming the field at fault.
    """
    obj = _json_object(data, "attestation")
    return _attestation(obj, "attestation")


def _attestation(obj: Any, what: str) -> Attestation:
    if not isinstance(obj, dict):
        raise _MALFORMED(f"{what} must be a JSON object")
    if obj.get("version") != 1 or isinstance(obj.get("version"), bool):
        raise _MALFORMED(f"{what}: unsupported version", actual=obj.get("version"), expected=1)
    material = obj.get("verification_material")
    envelope = obj.get("envelope")
    if not isinstance(material, dict):
        raise _MALFORMED(f"{what}: verification_material must be an object")
    if not isinstance(envelope, dict):
        raise _MALFORMED(f"{what}: envelope must be an object")
    entries = material.get("transparency_entries")
    if not isinstance(entries, list) or not entries:
        raise _MALFORMED(f"{what}: verification_material.transparency_entries must be a "
                         "non-empty list")
    if len(entries) > 8 or not all(isinstance(entry, dict) for entry in entries):
        raise _MALFORMED(f"{what}: transparency_entries must be at most 8 objects")
    return Attestation(
        certificate=_b64(material.get("certificate"), "verification_material.certificate"),
        transparency_entries=tuple(entries),
        statement=_b64(envelope.get("statement"), "envelope.statement"),
        signature=_b64(envelope.get("signature"), "envelope.signature"),
    )


# -- trusted publishers -------------------------------------------------------------------


class GitHubPublisher(NamedTuple):
    """A GitHub Actions trusted publisher: ``repository`` is ``owner/repo``, ``workflow``
    the workflow file name (None: any workflow of the repository)."""

    repository: str
    workflow: str | None = None
    environment: str | None = None

    @property
    def kind(self) -> str:
        """The publisher's ``kind`` in a provenance file."""
        return "GitHub"

    def check(self, identity: VerificationResult) -> None:
        """SPEC: pypi-attestations _GitHubTrustedPublisherPolicy: issuer (.8) is GitHub
        Actions', the source repository (.12) is ``https://github.com/<repository>``, and the
        Build Config URI (.18) is ``https://github.com/<repository>/.github/workflows/
        <workflow>@<suffix>`` for the Source Repository Digest (.13) or Ref (.14)."""
        _check_issuer(identity, GITHUB_ISSUER)
        _check_extension(identity, "source_repository_uri", "OIDCSourceRepositoryURI",
                         "1.3.6.1.4.1.57264.1.12", f"https://github.com/{self.repository}")
        if self.workflow is None:
            return
        suffixes = [identity.extensions[name] for name in ("source_repository_digest",
                                                           "source_repository_ref")
                    if name in identity.extensions]
        if not suffixes:
            raise IdentityMismatchError(_failed(
                "Certificate must contain either Source Repository Digest or Source "
                "Repository Ref"))
        _check_build_config(identity, [
            f"https://github.com/{self.repository}/.github/workflows/{self.workflow}@{suffix}"
            for suffix in suffixes], self.workflow, self.repository)


class GitLabPublisher(NamedTuple):
    """A GitLab CI/CD trusted publisher: ``repository`` is ``namespace/project`` (subgroups
    allowed), ``workflow_filepath`` the CI file's path (None: any CI file of the project)."""

    repository: str
    workflow_filepath: str | None = None
    environment: str | None = None

    @property
    def kind(self) -> str:
        """The publisher's ``kind`` in a provenance file."""
        return "GitLab"

    def check(self, identity: VerificationResult) -> None:
        """SPEC: pypi-attestations _GitLabTrustedPublisherPolicy: issuer ``https://gitlab.com``,
        source repository ``https://gitlab.com/<repository>``, and the Build Config URI
        ``https://gitlab.com/<repository>//<workflow_filepath>@<sha or ref>`` (GitLab's
        ``ci_config_ref_uri``, whose ``//`` separates the project from the file path;
        fulcio config/identity: both .13 and .14 are required)."""
        _check_issuer(identity, GITLAB_ISSUER)
        _check_extension(identity, "source_repository_uri", "OIDCSourceRepositoryURI",
                         "1.3.6.1.4.1.57264.1.12", f"https://gitlab.com/{self.repository}")
        if self.workflow_filepath is None:
            return
        suffixes = []
        for name, label, oid in (("source_repository_digest", "OIDCSourceRepositoryDigest", "13"),
                                 ("source_repository_ref", "OIDCSourceRepositoryRef", "14")):
            if name not in identity.extensions:
                raise IdentityMismatchError(_failed(
                    f"Certificate does not contain {label} (1.3.6.1.4.1.57264.1.{oid}) extension"))
            suffixes.append(identity.extensions[name])
        _check_build_config(identity, [
            f"https://gitlab.com/{self.repository}//{self.workflow_filepath}@{suffix}"
            for suffix in suffixes], self.workflow_filepath, self.repository)


class GooglePublisher(NamedTuple):
    """A Google Cloud service account: the certificate's email SAN, issued by Google."""

    email: str

    @property
    def kind(self) -> str:
        """The publisher's ``kind`` in a provenance file."""
        return "Google"

    def check(self, identity: VerificationResult) -> None:
        """SPEC: pypi-attestations GooglePublisher: ``Identity(email, accounts.google.com)``."""
        if identity.identity != self.email:
            raise IdentityMismatchError(_failed(
                f"Certificate's SANs do not match {self.email}; actual SANs: "
                f"[{identity.identity!r}]"), actual=identity.identity, expected=self.email)
        _check_issuer(identity, GOOGLE_ISSUER)


class CircleCIPublisher(NamedTuple):
    """A CircleCI trusted publisher (project and pipeline definition ids)."""

    project_id: str
    pipeline_definition_id: str
    vcs_origin: str | None = None
    vcs_ref: str | None = None

    @property
    def kind(self) -> str:
        """The publisher's ``kind`` in a provenance file."""
        return "CircleCI"

    def check(self, identity: VerificationResult) -> None:
        """SPEC: pypi-attestations _CircleCITrustedPublisherPolicy: issuer CircleCI's, the
        optional source repository (.12) and ref (.14), and the Build Signer URI (.9)
        ``https://circleci.com/api/v2/projects/<project>/pipeline-definitions/<definition>``."""
        _check_issuer(identity, CIRCLECI_ISSUER)
        if self.vcs_origin is not None:
            _check_extension(identity, "source_repository_uri", "OIDCSourceRepositoryURI",
                             "1.3.6.1.4.1.57264.1.12", self.vcs_origin)
        if self.vcs_ref is not None:
            _check_extension(identity, "source_repository_ref", "OIDCSourceRepositoryRef",
                             "1.3.6.1.4.1.57264.1.14", self.vcs_ref)
        expected = (f"https://circleci.com/api/v2/projects/{self.project_id}/"
                    f"pipeline-definitions/{self.pipeline_definition_id}")
        actual = identity.extensions.get("build_signer_uri")
        if actual != expected:
            raise IdentityMismatchError(_failed(
                f"Certificate's Build Signer URI ({actual}) does not match expected Trusted "
                f"Publisher ({expected})"), actual=actual, expected=expected)


Publisher = GitHubPublisher | GitLabPublisher | GooglePublisher | CircleCIPublisher


def _check_issuer(identity: VerificationResult, expected: str) -> None:
    if identity.issuer is None:
        raise IssuerMismatchError(_failed(
            "Certificate does not contain OIDCIssuerV2 (1.3.6.1.4.1.57264.1.8) extension"),
            expected=expected)
    if identity.issuer != expected:
        raise IssuerMismatchError(_failed(
            f"Certificate's OIDCIssuerV2 does not match (got {identity.issuer}, expected "
            f"{expected})"), actual=identity.issuer, expected=expected)


def _check_extension(identity: VerificationResult, name: str, label: str, oid: str,
                     expected: str) -> None:
    actual = identity.extensions.get(name)
    if actual is None:
        raise IdentityMismatchError(_failed(f"Certificate does not contain {label} ({oid}) "
                                            "extension"), expected=expected)
    if actual != expected:
        raise IdentityMismatchError(_failed(
            f"Certificate's {label} does not match (got {actual}, expected {expected})"),
            actual=actual, expected=expected)


def _check_build_config(identity: VerificationResult, candidates: list[str], workflow: str,
                        repository: str) -> None:
    actual = identity.extensions.get("build_config_uri")
    if actual is not None and actual in candidates:
        return
    raise IdentityMismatchError(_failed(
        f"Certificate's Build Config URI ({actual}) does not match expected Trusted Publisher "
        f"({workflow} @ {repository})"), actual=actual, expected=" or ".join(candidates))


def _optional_str(obj: dict[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _MALFORMED(f"{what}.{key} must be a string")
    return value


def _required_str(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _MALFORMED(f"{what}.{key} must be a non-empty string")
    return value


def _publisher(obj: Any, what: str) -> Publisher:
    """SPEC: pypi-attestations Publisher: a union discriminated by ``kind``."""
    if not isinstance(obj, dict):
        raise _MALFORMED(f"{what} must be an object")
    kind = obj.get("kind")
    if kind == "GitHub":
        return GitHubPublisher(_required_str(obj, "repository", what),
                               _required_str(obj, "workflow", what),
                               _optional_str(obj, "environment", what))
    if kind == "GitLab":
        return GitLabPublisher(_required_str(obj, "repository", what),
                               _required_str(obj, "workflow_filepath", what),
                               _optional_str(obj, "environment", what))
    if kind == "Google":
        return GooglePublisher(_required_str(obj, "email", what))
    if kind == "CircleCI":
        return CircleCIPublisher(_required_str(obj, "project_id", what),
                                 _required_str(obj, "pipeline_definition_id", what),
                                 _optional_str(obj, "vcs_origin", what),
                                 _optional_str(obj, "vcs_ref", what))
    raise _MALFORMED(f"{what}.kind is not a known trusted publisher", actual=kind,
                     expected="GitHub, GitLab, Google or CircleCI")


class AttestationBundle(NamedTuple):
    """One ``attestation_bundles`` item of a provenance file."""

    publisher: Publisher
    attestations: tuple[Attestation, ...]


def parse_provenance(data: bytes | str | dict[str, Any]) -> tuple[AttestationBundle, ...]:
    """Parse a PyPI provenance file (PEP 740 Provenance object).

    Raises :class:`BundleMalformedError` naming the field at fault; a provenance holding no
    attestation at all is refused too (pypi-attestations would pass it without a check).
    """
    obj = _json_object(data, "provenance")
    if obj.get("version", 1) != 1 or isinstance(obj.get("version"), bool):
        raise _MALFORMED("provenance: unsupported version", actual=obj.get("version"), expected=1)
    bundles = obj.get("attestation_bundles")
    if not isinstance(bundles, list):
        raise _MALFORMED("provenance: attestation_bundles must be a list")
    parsed = []
    count = 0
    for i, item in enumerate(bundles):
        what = f"provenance: attestation_bundles[{i}]"
        if not isinstance(item, dict):
            raise _MALFORMED(f"{what} must be an object")
        attestations = item.get("attestations")
        if not isinstance(attestations, list):
            raise _MALFORMED(f"{what}.attestations must be a list")
        count += len(attestations)
        if count > MAX_ATTESTATIONS:
            raise _MALFORMED("provenance holds too many attestations",
                             expected=f"<= {MAX_ATTESTATIONS}")
        parsed.append(AttestationBundle(
            _publisher(item.get("publisher"), f"{what}.publisher"),
            tuple(_attestation(a, f"{what}.attestations[{j}]")
                  for j, a in enumerate(attestations))))
    if count == 0:
        raise _MALFORMED("provenance holds no attestation")
    return tuple(parsed)


def publisher_from_repository(url: str, workflow: str | None = None) -> GitHubPublisher | GitLabPublisher:
    """The trusted publisher ``--repository URL [--workflow W]`` names: GitHub or GitLab by
    the URL's host. Raises :class:`UsageError` for another scheme or host.

    SPEC: pypi-attestations _check_repository_identity: ``https`` only, hosts
    ``github.com`` and ``gitlab.com``; the repository is the path without its leading "/".
    """
    host, repository = _repository_parts(url)
    if host == "github.com":
        return GitHubPublisher(repository, workflow)
    return GitLabPublisher(repository, workflow)


def _repository_parts(url: str) -> tuple[str, str]:
    match = re.fullmatch(r"https://([^/?#@:]+)(/[^?#]*)?", url)
    host = match[1].lower() if match else None
    if match is None or host not in ("github.com", "gitlab.com"):
        raise UsageError(f"Unsupported/invalid URL: {url!r} (expected https://github.com/OWNER/"
                         "REPO or https://gitlab.com/NAMESPACE/PROJECT)")
    repository = (match[2] or "").lstrip("/")
    if not repository:
        raise UsageError(f"Unsupported/invalid URL: {url!r} names no repository")
    return host, repository


def check_repository_flag(url: str, workflow: str | None, publisher: Publisher) -> None:
    """A provenance file's publisher against ``--repository URL [--workflow W]``.

    SPEC: pypi-attestations _verify_pypi / _check_repository_identity (messages as there).
    Raises :class:`IdentityMismatchError`.
    """
    host, repository = _repository_parts(url)
    if not isinstance(publisher, (GitHubPublisher, GitLabPublisher)):
        raise IdentityMismatchError(_failed(
            f"provenance was signed by a {publisher.kind} publisher, not a repository; "
            + ("use --cert-identity EMAIL --cert-oidc-issuer " + GOOGLE_ISSUER
               if isinstance(publisher, GooglePublisher)
               else "use --cert-identity and --cert-oidc-issuer")))
    actual_host = "github.com" if isinstance(publisher, GitHubPublisher) else "gitlab.com"
    if actual_host != host:
        raise IdentityMismatchError(_failed(
            f"provenance was signed by a {actual_host} repository, but expected a {host} "
            "repository"), actual=actual_host, expected=host)
    if publisher.repository != repository:
        raise IdentityMismatchError(_failed(
            f'provenance was signed by repository "{publisher.repository}", expected '
            f'"{repository}"'), actual=publisher.repository, expected=repository)
    actual_workflow = (publisher.workflow if isinstance(publisher, GitHubPublisher)
                       else publisher.workflow_filepath)
    if workflow is not None and actual_workflow != workflow:
        raise IdentityMismatchError(_failed(
            f'provenance was signed by workflow "{actual_workflow}", expected "{workflow}"'),
            actual=actual_workflow, expected=workflow)


def check_identity_flags(identity: str, issuer: str, publisher: Publisher) -> None:
    """A provenance file's Google publisher against ``--cert-identity``/``--cert-oidc-issuer``
    (SPEC: pypi-attestations compares the publisher's email with --gcp-service-account).
    Other publishers are checked against the certificate itself by :meth:`check`."""
    if isinstance(publisher, GooglePublisher) and (issuer != GOOGLE_ISSUER
                                                   or publisher.email != identity):
        raise IdentityMismatchError(_failed(
            f'provenance was signed by service account "{publisher.email}", expected '
            f'"{identity}"'), actual=publisher.email, expected=identity)


# -- verification -------------------------------------------------------------------------

# Every certificate is accepted by the verifier's own policy step: the trusted publisher (or
# the identity policy) is applied to the *verified* identity right after.
_ANY_SIGNER = IdentityPolicy(identity_regexp="", issuer_regexp="")


class PyPIResult(NamedTuple):
    """What a verified attestation established."""

    verification: VerificationResult
    statement: Statement
    predicate_type: str
    subject_name: str


def verify_attestation(verifier: Verifier, attestation: Attestation, *, filename: str,
                       sha256_hex: str, policies: Sequence[Publisher | IdentityPolicy]) -> PyPIResult:
    """Verify ``attestation`` for the distribution file ``filename`` (its base name) whose
    SHA-256 is ``sha256_hex``, under every one of ``policies``.

    Raises a :class:`sealtrail.errors.VerificationError` subclass (exit 1), or
    :class:`InputError` when ``filename`` is not a distribution file name (exit 2).
    """
    if not policies:
        raise UsageError("verify_attestation needs a trusted publisher or an identity policy")
    try:
        dist_name = parse_distribution_filename(filename)
    except ValueError as exc:
        raise InputError(f"Invalid Python package distribution: {exc}") from None
    result = verifier.verify_dsse(attestation.to_bundle(), _ANY_SIGNER,
                                  payload_type=INTOTO_PAYLOAD_TYPE)
    # 1. The signer.
    for policy in policies:
        if isinstance(policy, IdentityPolicy):
            policy.check(_found_identity(result))
        else:
            policy.check(result)
    statement = result.statement
    if statement is None:  # pragma: no cover - verify_dsse parsed the in-toto payload
        raise SubjectMismatchError(_failed("invalid statement"))
    # 2. Exactly one subject, named.
    if len(statement.subjects) != 1:
        raise SubjectMismatchError(_failed("too many subjects in statement (must be exactly one)"),
                                   actual=len(statement.subjects), expected=1)
    subject = statement.subjects[0]
    if not subject.name:
        raise SubjectMismatchError(_failed("invalid subject: missing name"))
    # 3. The same distribution, once both names are parsed.
    try:
        subject_name = parse_distribution_filename(subject.name)
    except ValueError as exc:
        raise SubjectMismatchError(_failed(f"invalid subject: {exc}")) from None
    if subject_name != dist_name:
        raise SubjectMismatchError(_failed(
            f"subject does not match distribution name: {subject.name} != {filename}"),
            actual=subject.name, expected=filename)
    # 4. The same bytes.
    if subject.digest.get("sha256") != sha256_hex.lower():
        raise SubjectMismatchError(_failed("subject does not match distribution digest"),
                                   actual=subject.digest.get("sha256"), expected=sha256_hex)
    # 5. A predicate PyPI knows.
    if statement.predicate_type not in PREDICATE_TYPES:
        raise SubjectMismatchError(_failed(f"unknown attestation type: {statement.predicate_type}"),
                                   actual=statement.predicate_type,
                                   expected=" or ".join(PREDICATE_TYPES))
    return PyPIResult(result, statement, statement.predicate_type, subject.name)


def _found_identity(result: VerificationResult) -> FulcioIdentity:
    # The verified SAN, issuer and claims, as the verifier's own policy step sees them.
    return FulcioIdentity(san=result.identity or "", san_kind="", issuer=result.issuer,
                          extensions=result.extensions)
