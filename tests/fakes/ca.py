"""A Fulcio-like test CA with its own CT log, for certificate verification tests.

``FakeCA`` makes, with fresh keys, a root CA, an optional intermediate (ECDSA P-384 like
Fulcio by default) and a CT log key (ECDSA P-256). It issues leaf certificates in the
Fulcio profile (sigstore-wire.md §1) with an SCT embedded through the precertificate flow
(§1 "Embedded SCT", §2), and produces the matching trusted_root.json entries (§6).

This module deliberately shares no code with ``sealtrail.verify``: it writes the OID table,
the RFC 6962 signed struct and the SCT wire format independently, so that tests compare two
implementations rather than one with itself. Knobs exist for negative tests.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealtrail.models.trusted_root import CertificateAuthority, TransparencyLog, ValidityWindow
from tests.samples import BEACON_IDENTITY, BEACON_ISSUER

__all__ = [
    "CT_SCT_LIST_OID",
    "DEFAULT_IDENTITY",
    "DEFAULT_ISSUER",
    "GITHUB_EXTENSION_OIDS",
    "FakeCA",
    "TRUSTED_ROOT_MEDIA_TYPE",
]

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
DEFAULT_IDENTITY = BEACON_IDENTITY
DEFAULT_ISSUER = BEACON_ISSUER

CT_SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_ARC = "1.3.6.1.4.1.57264.1."
_ISSUER_V1_OID = x509.ObjectIdentifier(_ARC + "1")
_ISSUER_OID = x509.ObjectIdentifier(_ARC + "8")
_OTHERNAME_OID = x509.ObjectIdentifier(_ARC + "7")
_SUB_OID = x509.ObjectIdentifier(_ARC + "24")

# Fulcio docs/oid-info.md: friendly name -> (OID, DER-encoded?). Legacy ones are raw bytes.
GITHUB_EXTENSION_OIDS: dict[str, tuple[str, bool]] = {
    "github_workflow_trigger": (_ARC + "2", False),
    "github_workflow_sha": (_ARC + "3", False),
    "github_workflow_name": (_ARC + "4", False),
    "github_workflow_repository": (_ARC + "5", False),
    "github_workflow_ref": (_ARC + "6", False),
    "build_signer_uri": (_ARC + "9", True),
    "build_signer_digest": (_ARC + "10", True),
    "runner_environment": (_ARC + "11", True),
    "source_repository_uri": (_ARC + "12", True),
    "source_repository_digest": (_ARC + "13", True),
    "source_repository_ref": (_ARC + "14", True),
    "source_repository_identifier": (_ARC + "15", True),
    "source_repository_owner_uri": (_ARC + "16", True),
    "source_repository_owner_identifier": (_ARC + "17", True),
    "build_config_uri": (_ARC + "18", True),
    "build_config_digest": (_ARC + "19", True),
    "build_trigger": (_ARC + "20", True),
    "run_invocation_uri": (_ARC + "21", True),
    "source_repository_visibility_at_signing": (_ARC + "22", True),
}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DEFAULT_CA_START = datetime(2020, 1, 1, tzinfo=timezone.utc)
_DEFAULT_CA_END = datetime(2040, 1, 1, tzinfo=timezone.utc)

# RFC 5246 §7.4.1.4.1 HashAlgorithm / SignatureAlgorithm codes used by RFC 6962.
_TLS_SHA256 = 4
_TLS_ECDSA = 3
_TLS_RSA = 1


def utf8_der(text: str) -> bytes:
    """DER UTF8String, the encoding of the Fulcio extensions from .1.8 on."""
    return core.UTF8String(text).dump()


def _rfc3339(when: datetime) -> str:
    when = when.astimezone(timezone.utc)
    if when.microsecond:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _sign_hash(key: Any) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384(),
                "secp521r1": hashes.SHA512()}[key.curve.name]
    return hashes.SHA256()


def _validity_json(window: ValidityWindow) -> dict[str, str]:
    out = {"start": _rfc3339(window.start)}
    if window.end is not None:
        out["end"] = _rfc3339(window.end)
    return out


class FakeCA:
    """A root (+ intermediate) CA and a CT log that issue Fulcio-profile leaf certificates."""

    def __init__(
        self,
        *,
        ca_curve: ec.EllipticCurve | None = None,
        intermediate: bool = True,
        intermediate_eku: Sequence[x509.ObjectIdentifier] | None = (
            ExtendedKeyUsageOID.CODE_SIGNING,),
        not_before: datetime = _DEFAULT_CA_START,
        not_after: datetime = _DEFAULT_CA_END,
        name: str = "fake",
        uri: str = "https://fulcio.fake.test",
        ct_url: str = "https://ctfe.fake.test",
    ) -> None:
        curve = ca_curve or ec.SECP384R1()
        self.name = name
        self.uri = uri
        self.ct_url = ct_url
        self.not_before = not_before
        self.root_key = ec.generate_private_key(curve)
        root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{name}.dev"),
                               x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.root = self._ca_cert(root_name, self.root_key.public_key(), root_name, self.root_key,
                                  not_before, not_after, path_length=1 if intermediate else 0,
                                  eku=None)
        self.intermediate_key: ec.EllipticCurvePrivateKey | None = None
        self.intermediate: x509.Certificate | None = None
        if intermediate:
            self.intermediate_key = ec.generate_private_key(curve)
            inter_name = x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{name}.dev"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-intermediate")])
            self.intermediate = self._ca_cert(inter_name, self.intermediate_key.public_key(),
                                              root_name, self.root_key, not_before, not_after,
                                              path_length=0, eku=intermediate_eku)
        self.ct_key = ec.generate_private_key(ec.SECP256R1())

    # -- the CA -----------------------------------------------------------------------------
    @staticmethod
    def _ca_cert(subject: x509.Name, public_key: Any, issuer: x509.Name, issuer_key: Any,
                 not_before: datetime, not_after: datetime, *, path_length: int | None,
                 eku: Sequence[x509.ObjectIdentifier] | None) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()), critical=False)
        )
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        return builder.sign(issuer_key, _sign_hash(issuer_key))

    @property
    def issuer_cert(self) -> x509.Certificate:
        """The certificate that signs leaves (the intermediate, or the root if none)."""
        return self.intermediate or self.root

    @property
    def issuer_key(self) -> Any:
        """The private key that signs leaves."""
        return self.intermediate_key or self.root_key

    @property
    def chain(self) -> list[x509.Certificate]:
        """The trusted-root chain, intermediates -> root."""
        return [self.intermediate, self.root] if self.intermediate else [self.root]

    @property
    def ct_log_id(self) -> bytes:
        """SHA-256 of the CT log's DER SPKI (RFC 6962 §3.2 LogID)."""
        return hashlib.sha256(_spki(self.ct_key.public_key())).digest()

    @staticmethod
    def new_key() -> ec.EllipticCurvePrivateKey:
        """A fresh signer key, P-256 like sigstore-python's ephemeral keys."""
        return ec.generate_private_key(ec.SECP256R1())

    # -- trusted root ---------------------------------------------------------------------
    def ca_trusted_root_entry(self, validity: ValidityWindow | None = None) -> dict[str, Any]:
        """A ``certificateAuthorities[]`` entry of trusted_root.json (sigstore-wire.md §6)."""
        validity = validity or ValidityWindow(self.not_before)
        return {
            "subject": {"organization": f"{self.name}.dev", "commonName": self.name},
            "uri": self.uri,
            "certChain": {"certificates": [
                {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))}
                for cert in self.chain]},
            "validFor": _validity_json(validity),
        }

    def ctlog_trusted_root_entry(self, validity: ValidityWindow | None = None,
                                 key: ec.EllipticCurvePrivateKey | None = None) -> dict[str, Any]:
        """A ``ctlogs[]`` entry of trusted_root.json for this CA's CT log (or ``key``)."""
        validity = validity or ValidityWindow(self.not_before)
        public = (key or self.ct_key).public_key()
        return {
            "baseUrl": self.ct_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": _b64(_spki(public)), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                          "validFor": _validity_json(validity)},
            "logId": {"keyId": _b64(hashlib.sha256(_spki(public)).digest())},
        }

    def authority(self, validity: ValidityWindow | None = None) -> CertificateAuthority:
        """The parsed :class:`CertificateAuthority` of :meth:`ca_trusted_root_entry`."""
        return CertificateAuthority.from_json(self.ca_trusted_root_entry(validity), "fake CA")

    def ctlog(self, validity: ValidityWindow | None = None,
              key: ec.EllipticCurvePrivateKey | None = None) -> TransparencyLog:
        """The parsed :class:`TransparencyLog` of :meth:`ctlog_trusted_root_entry`."""
        return TransparencyLog.from_json(self.ctlog_trusted_root_entry(validity, key),
                                         "fake CT log")

    def trusted_root(self, ca_validity: ValidityWindow | None = None,
                     ctlog_validity: ValidityWindow | None = None) -> dict[str, Any]:
        """A whole trusted_root.json document with this CA and CT log (no tlogs, no TSAs)."""
        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [],
            "certificateAuthorities": [self.ca_trusted_root_entry(ca_validity)],
            "ctlogs": [self.ctlog_trusted_root_entry(ctlog_validity)],
            "timestampAuthorities": [],
        }

    # -- leaves ---------------------------------------------------------------------------
    def issue_leaf(
        self,
        public_key: Any,
        *,
        not_before: datetime,
        identity: str = DEFAULT_IDENTITY,
        san_kind: str = "uri",
        san_names: Sequence[x509.GeneralName] | None = None,
        san: bool = True,
        san_critical: bool = True,
        issuer: str | None = DEFAULT_ISSUER,
        der_issuer: bool = True,
        legacy_issuer: bool = True,
        github: Mapping[str, str] | None = None,
        sub: str | None = None,
        extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
        lifetime: timedelta = timedelta(minutes=10),
        key_usage: bool = True,
        digital_signature: bool = True,
        eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CODE_SIGNING,),
        eku_critical: bool = False,
        sct_count: int = 1,
        sct_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
        sct_time: datetime | None = None,
        sct_extensions: bytes = b"",
        sct_hash_code: int = _TLS_SHA256,
        tamper_sct_signature: bool = False,
        transplant_sct_from: x509.Certificate | None = None,
    ) -> x509.Certificate:
        """Issue a Fulcio-profile leaf for ``public_key`` valid from ``not_before``.

        Profile (sigstore-wire.md §1): empty subject, one critical SAN (``san_kind`` is
        "uri", "email" or "othername"), KU digitalSignature (critical), EKU codeSigning,
        SKI, AKI, random serial, issuer in .1.1 (raw) and .1.8 (DER), optional GitHub claim
        extensions, and ``sct_count`` embedded SCTs signed by the CT key (or ``sct_key``).
        The other keyword arguments break one property each, for negative tests;
        ``transplant_sct_from`` copies another certificate's SCT list instead of signing one.
        """
        extensions = self._leaf_extensions(
            public_key, identity=identity, san_kind=san_kind, san_names=san_names, san=san,
            san_critical=san_critical, issuer=issuer, der_issuer=der_issuer,
            legacy_issuer=legacy_issuer, github=github, sub=sub, key_usage=key_usage,
            digital_signature=digital_signature, eku=eku, eku_critical=eku_critical,
        ) + list(extra_extensions)
        serial = x509.random_serial_number()
        not_after = not_before + lifetime

        # Precertificate flow (sigstore-wire.md §1 "Embedded SCT"): the log signs the TBS
        # without the SCT list; the final certificate re-signs the same TBS with the list
        # appended last.
        precert = self._sign_leaf(public_key, serial, not_before, not_after, extensions)
        if transplant_sct_from is not None:
            value = transplant_sct_from.extensions.get_extension_for_oid(
                CT_SCT_LIST_OID).value.public_bytes()
            stolen = x509.UnrecognizedExtension(CT_SCT_LIST_OID, value)
            return self._sign_leaf(public_key, serial, not_before, not_after,
                                   extensions + [(stolen, False)])
        if sct_count == 0:
            return precert
        signed_tbs = precert.tbs_certificate_bytes
        when = sct_time or not_before
        scts = [self._sct(signed_tbs, when + timedelta(milliseconds=i), sct_key=sct_key,
                          extensions=sct_extensions, hash_code=sct_hash_code,
                          tamper=tamper_sct_signature)
                for i in range(sct_count)]
        sct_list = b"".join(struct.pack(">H", len(s)) + s for s in scts)
        sct_list = struct.pack(">H", len(sct_list)) + sct_list
        value = core.OctetString(sct_list).dump()
        sct_extension = x509.UnrecognizedExtension(CT_SCT_LIST_OID, value)
        final = self._sign_leaf(public_key, serial, not_before, not_after,
                                extensions + [(sct_extension, False)])
        assert final.tbs_precertificate_bytes == signed_tbs, \
            "final TBS differs from the signed precert TBS"
        return final

    def _leaf_extensions(self, public_key: Any, *, identity: str, san_kind: str,
                         san_names: Sequence[x509.GeneralName] | None, san: bool,
                         san_critical: bool, issuer: str | None, der_issuer: bool,
                         legacy_issuer: bool, github: Mapping[str, str] | None, sub: str | None,
                         key_usage: bool, digital_signature: bool,
                         eku: Sequence[x509.ObjectIdentifier] | None, eku_critical: bool,
                         ) -> list[tuple[x509.ExtensionType, bool]]:
        out: list[tuple[x509.ExtensionType, bool]] = []
        if key_usage:
            out.append((x509.KeyUsage(
                digital_signature=digital_signature, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
                True))
        if eku is not None:
            out.append((x509.ExtendedKeyUsage(list(eku)), eku_critical))
        out.append((x509.SubjectKeyIdentifier.from_public_key(public_key), False))
        out.append((x509.AuthorityKeyIdentifier.from_issuer_public_key(
            self.issuer_key.public_key()), False))
        if san:
            if san_names is None:
                general: x509.GeneralName = {
                    "uri": lambda: x509.UniformResourceIdentifier(identity),
                    "email": lambda: x509.RFC822Name(identity),
                    "othername": lambda: x509.OtherName(_OTHERNAME_OID, utf8_der(identity)),
                }[san_kind]()
                san_names = [general]
            out.append((x509.SubjectAlternativeName(list(san_names)), san_critical))
        # Fulcio's claim extensions, in OID order like real certificates.
        claims: list[tuple[x509.ObjectIdentifier, bytes]] = []
        if issuer is not None and legacy_issuer:
            claims.append((_ISSUER_V1_OID, issuer.encode()))
        if issuer is not None and der_issuer:
            claims.append((_ISSUER_OID, utf8_der(issuer)))
        for name, value in (github or {}).items():
            oid, der = GITHUB_EXTENSION_OIDS[name]
            claims.append((x509.ObjectIdentifier(oid), utf8_der(value) if der else value.encode()))
        if sub is not None:
            claims.append((_SUB_OID, utf8_der(sub)))
        claims.sort(key=lambda claim: int(claim[0].dotted_string.rsplit(".", 1)[1]))
        out.extend((x509.UnrecognizedExtension(oid, raw), False) for oid, raw in claims)
        return out

    def _sign_leaf(self, public_key: Any, serial: int, not_before: datetime, not_after: datetime,
                   extensions: Sequence[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([])).issuer_name(self.issuer_cert.subject)
            .public_key(public_key).serial_number(serial)
            .not_valid_before(not_before).not_valid_after(not_after)
        )
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical)
        return builder.sign(self.issuer_key, _sign_hash(self.issuer_key))

    def _sct(self, tbs: bytes, when: datetime, *, sct_key: Any, extensions: bytes,
             hash_code: int, tamper: bool) -> bytes:
        """One TLS-encoded SignedCertificateTimestamp over a precert_entry (RFC 6962 §3.2)."""
        key = sct_key or self.ct_key
        timestamp_ms = (when.astimezone(timezone.utc) - _EPOCH) // timedelta(milliseconds=1)
        issuer_key_hash = hashlib.sha256(_spki(self.issuer_cert.public_key())).digest()
        signed = (
            struct.pack(">BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, precert_entry
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big") + tbs
            + struct.pack(">H", len(extensions)) + extensions
        )
        if isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
            sig_code = _TLS_RSA
        else:
            signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
            sig_code = _TLS_ECDSA
        if tamper:
            # The last byte is inside the DER INTEGER s: the signature stays well-formed.
            signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
        # The log id always names this CA's CT log: an SCT "signed by another key" claims to
        # come from the trusted log.
        return (
            struct.pack(">B", 0) + self.ct_log_id + struct.pack(">Q", timestamp_ms)
            + struct.pack(">H", len(extensions)) + extensions
            + struct.pack(">BB", hash_code, sig_code)
            + struct.pack(">H", len(signature)) + signature
        )
