"""The signer identity written into a Fulcio certificate: SAN, OIDC issuer and claim extensions.

Pure parsing: this module says *who* a certificate names, never whether to trust it (that
is :mod:`sealtrail.verify._certificate`) nor whether the identity is the expected one (that
is the verification policy).

SPEC: Fulcio docs/oid-info.md and docs/certificate-specification.md. Extensions from
1.3.6.1.4.1.57264.1.8 on hold a DER UTF8String; the legacy ones (.1.1 to .1.6) hold the
raw UTF-8 bytes with no DER wrapper.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, NamedTuple


from cryptography import x509
from cryptography.hazmat.asn1 import decode_der

from sealtrail.errors import CertProfileInvalidError

__all__ = ["FULCIO_EXTENSIONS", "FulcioIdentity", "OTHERNAME_OID"]

_FULCIO_ARC = "1.3.6.1.4.1.57264.1."

# SPEC: Fulcio oid-info.md: the username identity type puts `sub!domain` into an OtherName
# SAN of this type, as a UTF8String.
OTHERNAME_OID = x509.ObjectIdentifier(_FULCIO_ARC + "7")

_RAW = "raw"  # legacy: the extnValue is the UTF-8 text itself
_DER = "der"  # the extnValue is a DER UTF8String

# The one table: OID -> friendly name -> encoding. The two issuer entries are lifted out
# into FulcioIdentity.issuer; every other entry lands in FulcioIdentity.extensions.
FULCIO_EXTENSIONS: tuple[tuple[str, str, str], ...] = (
    (_FULCIO_ARC + "1", "issuer_v1", _RAW),
    (_FULCIO_ARC + "2", "github_workflow_trigger", _RAW),
    (_FULCIO_ARC + "3", "github_workflow_sha", _RAW),
    (_FULCIO_ARC + "4", "github_workflow_name", _RAW),
    (_FULCIO_ARC + "5", "github_workflow_repository", _RAW),
    (_FULCIO_ARC + "6", "github_workflow_ref", _RAW),
    (_FULCIO_ARC + "8", "issuer", _DER),
    (_FULCIO_ARC + "9", "build_signer_uri", _DER),
    (_FULCIO_ARC + "10", "build_signer_digest", _DER),
    (_FULCIO_ARC + "11", "runner_environment", _DER),
    (_FULCIO_ARC + "12", "source_repository_uri", _DER),
    (_FULCIO_ARC + "13", "source_repository_digest", _DER),
    (_FULCIO_ARC + "14", "source_repository_ref", _DER),
    (_FULCIO_ARC + "15", "source_repository_identifier", _DER),
    (_FULCIO_ARC + "16", "source_repository_owner_uri", _DER),
    (_FULCIO_ARC + "17", "source_repository_owner_identifier", _DER),
    (_FULCIO_ARC + "18", "build_config_uri", _DER),
    (_FULCIO_ARC + "19", "build_config_digest", _DER),
    (_FULCIO_ARC + "20", "build_trigger", _DER),
    (_FULCIO_ARC + "21", "run_invocation_uri", _DER),
    (_FULCIO_ARC + "22", "source_repository_visibility_at_signing", _DER),
    (_FULCIO_ARC + "24", "sub", _DER),
)
_BY_OID = {oid: (name, encoding) for oid, name, encoding in FULCIO_EXTENSIONS}

# Claims are short strings; anything longer is not a Fulcio value and is ignored.
_MAX_VALUE_BYTES = 8192

E = CertProfileInvalidError


def _decode(value: bytes, encoding: str) -> str | None:
    """Decode one extension value, or None if it is not what the table says it is."""
    if len(value) > _MAX_VALUE_BYTES:
        return None
    try:
        if encoding == _RAW:
            return value.decode("utf-8")
        # cryptography's DER decoder maps ``str`` to UTF8String and rejects anything else
        # (another tag, trailing bytes, bad lengths).
        return decode_der(str, value)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


def _san(extensions: x509.Extensions) -> tuple[str, str]:
    """The single identity in the SubjectAlternativeName, with its kind."""
    try:
        names = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        raise E("certificate has no SubjectAlternativeName",
                expected="one URI, email or OtherName SAN", actual="none") from None
    # SPEC: Fulcio certificate-specification.md: "exactly one SAN". More than one would make
    # the identity ambiguous, so refuse to guess.
    if len(names) != 1:
        raise E("certificate SubjectAlternativeName must hold exactly one identity",
                expected=1, actual=len(names))
    name = names[0]
    if isinstance(name, x509.UniformResourceIdentifier):
        return name.value, "uri"
    if isinstance(name, x509.RFC822Name):
        return name.value, "email"
    if isinstance(name, x509.OtherName):
        if name.type_id != OTHERNAME_OID:
            raise E("certificate OtherName SAN has an unsupported type",
                    expected=OTHERNAME_OID.dotted_string, actual=name.type_id.dotted_string)
        text = _decode(name.value, _DER)
        if text is None:
            raise E("certificate OtherName SAN is not a DER UTF8String")
        return text, "othername"
    raise E("certificate SAN is of an unsupported type",
            expected="URI, email or OtherName", actual=type(name).__name__)


class FulcioIdentity(NamedTuple):
    """Who a Fulcio certificate was issued to.

    ``san`` is the identity (``san_kind`` is ``"uri"``, ``"email"`` or ``"othername"``),
    ``issuer`` the OIDC issuer (None if the certificate has none) and ``extensions`` the
    claim extensions that were present and well-formed, by friendly name.
    """

    san: str
    san_kind: str
    issuer: str | None
    extensions: Mapping[str, str] = MappingProxyType({})

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> "FulcioIdentity":
        """Extract the identity of ``cert``.

        Raises :class:`CertProfileInvalidError` if the SAN is missing, ambiguous or
        malformed. Claim extensions that are malformed are skipped, not fatal: a policy
        that needs one will then find it missing.
        """
        try:
            extensions = cert.extensions
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
            raise E(f"certificate extensions do not parse: {exc}") from exc
        san, san_kind = _san(extensions)

        found: dict[str, str] = {}
        for ext in extensions:
            entry = _BY_OID.get(ext.oid.dotted_string)
            if entry is None or not isinstance(ext.value, x509.UnrecognizedExtension):
                continue
            name, encoding = entry
            text = _decode(ext.value.value, encoding)
            if text is not None:
                found[name] = text

        # SPEC: oid-info.md deprecates .1.1 in favour of .1.8 (same value, DER-encoded);
        # Fulcio writes both, older certificates only .1.1.
        legacy_issuer = found.pop("issuer_v1", None)
        issuer = found.pop("issuer", None) or legacy_issuer
        return cls(san=san, san_kind=san_kind, issuer=issuer, extensions=found)
