"""A fake RFC 3161 timestamp authority for tests.

``FakeTSA`` builds its own certificate chain (root [-> intermediate] -> TSA leaf) and
issues TimeStampTokens shaped like sigstore's timestamp-authority ones (SignedData v3,
TSTInfo v1, policy 1.3.6.1.4.1.57264.2, accuracy 1 s, signed attributes contentType,
messageDigest, signingTime and ESS signingCertificateV2, sid = issuerAndSerialNumber).
Keyword knobs produce broken tokens for negative tests.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealtrail.models.trusted_root import CertificateAuthority, ValidityWindow

__all__ = ["DEFAULT_GEN_TIME", "SIGSTORE_TSA_POLICY", "FakeTSA", "rfc3339"]

SIGSTORE_TSA_POLICY = "1.3.6.1.4.1.57264.2"
DEFAULT_GEN_TIME = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
DEFAULT_NOT_BEFORE = datetime(2024, 1, 1, tzinfo=timezone.utc)
DEFAULT_NOT_AFTER = datetime(2030, 1, 1, tzinfo=timezone.utc)

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def rfc3339(when: datetime) -> str:
    """Format an aware datetime the way protobuf JSON does (``...Z``)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_key(key_type: str) -> Any:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type}")


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sealtrail-test"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


class FakeTSA:
    """A self-contained test TSA.

    Construction knobs shape the certificates (key type, EKU, validity, extra
    intermediate); :meth:`timestamp` knobs shape (or break) individual tokens.
    """

    def __init__(
        self,
        *,
        key_type: str = "ec",
        name: str = "fake-tsa",
        root_name: str = "fake-tsa-root",
        leaf_serial: int | None = None,
        eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.TIME_STAMPING,),
        eku_critical: bool = True,
        key_usage_digital_signature: bool | None = True,
        leaf_not_before: datetime = DEFAULT_NOT_BEFORE,
        leaf_not_after: datetime = DEFAULT_NOT_AFTER,
        root_not_before: datetime = DEFAULT_NOT_BEFORE,
        root_not_after: datetime = DEFAULT_NOT_AFTER,
        root_is_ca: bool = True,
        root_key_cert_sign: bool = True,
        intermediate: bool = False,
        intermediate_eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.TIME_STAMPING,),
        uri: str = "https://tsa.example.test/api/v1/timestamp",
    ) -> None:
        self.uri = uri
        self.name = name
        self.root_key = _new_key("ec")
        root_subject = _name(root_name)
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_subject)
            .issuer_name(root_subject)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(root_not_before)
            .not_valid_after(root_not_after)
            .add_extension(x509.BasicConstraints(ca=root_is_ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=root_key_cert_sign,
                crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key()),
                           critical=False)
            .sign(self.root_key, hashes.SHA256())
        )
        issuer_cert, issuer_key = self.root, self.root_key
        self.intermediate: x509.Certificate | None = None
        if intermediate:
            self.intermediate_key = _new_key("ec")
            self.intermediate = (
                x509.CertificateBuilder()
                .subject_name(_name(root_name + "-intermediate"))
                .issuer_name(self.root.subject)
                .public_key(self.intermediate_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(root_not_before)
                .not_valid_after(root_not_after)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.ExtendedKeyUsage(list(intermediate_eku)), critical=False)
                .sign(self.root_key, hashes.SHA256())
            )
            issuer_cert, issuer_key = self.intermediate, self.intermediate_key

        self.key = _new_key(key_type)
        self.key_type = key_type
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(issuer_cert.subject)
            .public_key(self.key.public_key())
            .serial_number(leaf_serial or x509.random_serial_number())
            .not_valid_before(leaf_not_before)
            .not_valid_after(leaf_not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()), critical=False)
        )
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=eku_critical)
        if key_usage_digital_signature is not None:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=key_usage_digital_signature, content_commitment=False,
                key_encipherment=not key_usage_digital_signature, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False,
                decipher_only=False), critical=True)
        self.leaf = builder.sign(issuer_key, hashes.SHA256())

    # -- trust material -------------------------------------------------------------
    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The TSA chain, leaf -> root (the trusted-root order for TSAs)."""
        middle = (self.intermediate,) if self.intermediate is not None else ()
        return (self.leaf, *middle, self.root)

    def to_authority(self, validity: ValidityWindow | None = None,
                     chain: Sequence[x509.Certificate] | None = None) -> CertificateAuthority:
        """This TSA as a trusted-root ``CertificateAuthority`` (default validity from 2024)."""
        return CertificateAuthority(
            uri=self.uri,
            chain=tuple(chain if chain is not None else self.chain),
            validity=validity or ValidityWindow(DEFAULT_NOT_BEFORE),
        )

    def trusted_root_json_entry(self, start: datetime = DEFAULT_NOT_BEFORE,
                                end: datetime | None = None) -> dict[str, Any]:
        """The ``timestampAuthorities[]`` JSON item of a trusted_root.json for this TSA."""
        valid_for = {"start": rfc3339(start)}
        if end is not None:
            valid_for["end"] = rfc3339(end)
        return {
            "subject": {"organization": "sealtrail-test", "commonName": self.name},
            "uri": self.uri,
            "certChain": {"certificates": [
                {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()}
                for c in self.chain
            ]},
            "validFor": valid_for,
        }

    # -- tokens ---------------------------------------------------------------------
    def timestamp(
        self,
        message: bytes,
        *,
        gen_time: datetime = DEFAULT_GEN_TIME,
        nonce: int | None = None,
        serial_number: int = 0x5EA17A11,
        policy: str = SIGSTORE_TSA_POLICY,
        hash_name: str = "sha256",
        digest_name: str = "sha256",
        signature_scheme: str | None = None,
        embed_certs: bool | Sequence[x509.Certificate] = False,
        sid: str = "issuer_serial",
        tst_version: int = 1,
        e_content_type: str = "tst_info",
        content_type_attr: str = "tst_info",
        signed_attrs: bool = True,
        wrong_imprint: bool = False,
        wrong_message_digest: bool = False,
        bad_signature: bool = False,
        signer_key: Any = None,
        extra_signer_info: bool = False,
        mutate_tst: Callable[[tsp.TSTInfo], None] | None = None,
        mutate: Callable[[cms.ContentInfo], None] | None = None,
    ) -> bytes:
        """Issue a DER TimeStampToken (CMS ContentInfo) over ``message``.

        ``signature_scheme``: ``"ecdsa"``, ``"pkcs1"`` (rsaEncryption), ``"sha_rsa"``
        (sha*WithRSAEncryption) or ``"pss"``; default follows the key type.
        ``embed_certs``: True embeds the full chain, a sequence embeds those certs.
        ``signer_key`` signs with another key (while still naming this TSA's leaf).
        ``mutate_tst`` edits the TSTInfo before it is hashed and signed; ``mutate`` edits
        the ContentInfo (asn1crypto) after signing, before the final DER encoding.
        """
        imprint = hashlib.new(hash_name, message).digest()
        if wrong_imprint:
            imprint = hashlib.new(hash_name, message + b"!").digest()
        tst_fields: dict[str, Any] = {
            "version": tst_version,
            "policy": policy,
            "message_imprint": {"hash_algorithm": {"algorithm": hash_name},
                                "hashed_message": imprint},
            "serial_number": serial_number,
            "gen_time": core.GeneralizedTime(gen_time),
            "accuracy": {"seconds": 1},
        }
        if nonce is not None:
            tst_fields["nonce"] = nonce
        tst_info = tsp.TSTInfo(tst_fields)
        if mutate_tst is not None:
            mutate_tst(tst_info)
        tst_der = tst_info.dump()

        message_digest = hashlib.new(digest_name, tst_der).digest()
        if wrong_message_digest:
            message_digest = hashlib.new(digest_name, tst_der + b"!").digest()
        leaf_der = self.leaf.public_bytes(serialization.Encoding.DER)
        issuer_name = asn1_x509.Name.load(self.leaf.issuer.public_bytes())
        attrs = cms.CMSAttributes([
            {"type": "content_type", "values": [content_type_attr]},
            {"type": "signing_time", "values": [cms.Time(name="utc_time", value=gen_time)]},
            {"type": "message_digest", "values": [message_digest]},
            {"type": "signing_certificate_v2", "values": [{
                "certs": [{
                    # hash_algorithm left out: SHA-256 is its DEFAULT, which DER omits.
                    "cert_hash": hashlib.sha256(leaf_der).digest(),
                    "issuer_serial": {
                        "issuer": [asn1_x509.GeneralName(name="directory_name",
                                                         value=issuer_name)],
                        "serial_number": self.leaf.serial_number,
                    },
                }],
            }]},
        ])
        # SPEC: RFC 5652 §5.4: sign the DER SET OF (universal tag), not the [0] IMPLICIT form.
        to_sign = attrs.dump(force=True)
        scheme = signature_scheme or ("ecdsa" if self.key_type.startswith("ec") else "pkcs1")
        signature = self._sign(signer_key or self.key, to_sign, digest_name, scheme)
        if bad_signature:
            signature = self._sign(signer_key or self.key, to_sign + b"!", digest_name, scheme)

        signer_info: dict[str, Any] = {
            "version": "v1" if sid == "issuer_serial" else "v3",
            "sid": self._sid(sid),
            "digest_algorithm": {"algorithm": digest_name},
            "signature_algorithm": self._signature_algorithm(scheme, digest_name),
            "signature": signature,
        }
        if signed_attrs:
            signer_info["signed_attrs"] = attrs
        signer_infos = [signer_info]
        if extra_signer_info:
            signer_infos.append(dict(signer_info))

        signed_data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": digest_name}],
            "encap_content_info": {
                "content_type": e_content_type,
                "content": cms.ParsableOctetString(tst_der),
            },
            "signer_infos": signer_infos,
        }
        if embed_certs:
            certs = (self.chain if embed_certs is True
                     else tuple(embed_certs))  # type: ignore[arg-type]
            signed_data["certificates"] = [
                asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
                for c in certs
            ]
        content_info = cms.ContentInfo({"content_type": "signed_data",
                                        "content": cms.SignedData(signed_data)})
        if mutate is not None:
            mutate(content_info)
        # force=True is slow (asn1crypto re-encodes every level), so only pay for it when a
        # mutation may have left cached encodings stale.
        return content_info.dump(force=mutate is not None)

    def response(self, message: bytes, *, status: str = "granted", **kwargs: Any) -> bytes:
        """A DER TimeStampResp (what a TSA returns and Sigstore bundles store)."""
        token = cms.ContentInfo.load(self.timestamp(message, **kwargs))
        return tsp.TimeStampResp({"status": {"status": status},
                                  "time_stamp_token": token}).dump()

    # -- helpers --------------------------------------------------------------------
    def _sid(self, kind: str) -> cms.SignerIdentifier:
        if kind == "issuer_serial":
            return cms.SignerIdentifier(name="issuer_and_serial_number", value={
                "issuer": asn1_x509.Name.load(self.leaf.issuer.public_bytes()),
                "serial_number": self.leaf.serial_number,
            })
        if kind == "ski":
            ski = self.leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return cms.SignerIdentifier(name="subject_key_identifier", value=ski.value.digest)
        raise ValueError(f"unknown sid kind {kind}")

    @staticmethod
    def _signature_algorithm(scheme: str, digest_name: str) -> dict[str, Any]:
        if scheme == "ecdsa":
            return {"algorithm": f"{digest_name}_ecdsa"}
        if scheme == "pkcs1":
            return {"algorithm": "rsassa_pkcs1v15"}
        if scheme == "sha_rsa":
            return {"algorithm": f"{digest_name}_rsa"}
        if scheme == "pss":
            return {"algorithm": "rsassa_pss", "parameters": algos.RSASSAPSSParams({
                "hash_algorithm": {"algorithm": digest_name},
                "mask_gen_algorithm": {"algorithm": "mgf1",
                                       "parameters": {"algorithm": digest_name}},
                "salt_length": _HASHES[digest_name].digest_size,
            })}
        raise ValueError(f"unknown signature scheme {scheme}")

    @staticmethod
    def _sign(key: Any, data: bytes, digest_name: str, scheme: str) -> bytes:
        algorithm = _HASHES[digest_name]()
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(algorithm))
        if scheme == "pss":
            return key.sign(data, padding.PSS(mgf=padding.MGF1(_HASHES[digest_name]()),
                                              salt_length=algorithm.digest_size), algorithm)
        return key.sign(data, padding.PKCS1v15(), algorithm)
